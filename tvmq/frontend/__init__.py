"""Model import: ONNX and TFLite files into a :class:`tvmq.Model`.

Importing has two steps. :func:`read_source` parses and validates the file into a
:class:`SourceGraph` that describes it (inputs, outputs, operators, weights,
unsupported nodes) without TVM; :func:`load_model` then converts it to Relax. The
split lets ``tvmq inspect`` report on models that cannot be imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

import numpy as np

from tvmq.errors import TvmqError, first_line
from tvmq.frontend.shapes import Shapes, fix_shapes, require_static
from tvmq.frontend.validate import check_outputs, check_qdq_constants
from tvmq.model import Model, TensorSpec

FORMATS = (".onnx", ".tflite", ".tvmq")


class SourceGraph(Protocol):
    """A parsed model file, described in tvmq's terms."""

    path: Path
    format: str
    # A str dim is free in the file (a symbol, or '?'): fixed by `shapes` or refused.
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str]
    params: dict[str, np.ndarray]
    quantization: dict | None
    # Relax var name -> the source file's node (ONNX node name, TFLite op output).
    source_names: dict[str, str]

    def unsupported(self) -> list[tuple[str, str, str]]:
        """(node name, op type, reason) of each node no converter exists for: the
        cheap check, without importing."""
        ...

    def to_relax(self):
        """The graph as a Relax IRModule with its weights bound as constants; raises
        UnsupportedOperatorError naming every node that fails to convert."""
        ...


def read_source(path: str | Path, shapes: Shapes | None = None) -> SourceGraph:
    """Parse `path` (.onnx, .tflite, .tvmq), raising TvmqError for unreadable files.
    `shapes` ({input name: shape}) fixes inputs' free dims; it must agree with the
    file's fixed dims."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise TvmqError(
            f"{path}: unknown model extension '{path.suffix}' (known: {', '.join(FORMATS)})"
        )
    if not path.is_file():
        raise TvmqError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise TvmqError(f"{path}: empty file")
    if suffix == ".onnx":
        from tvmq.frontend.onnx_import import OnnxGraph

        return OnnxGraph.read(path, shapes)
    if suffix == ".tflite":
        from tvmq.frontend.tflite_import import TFLiteGraph

        return TFLiteGraph.read(path, shapes)
    from tvmq.frontend.saved import SavedGraph

    source = SavedGraph.read(path)
    fix_shapes(str(path), source.inputs, shapes or {})  # static: only checked
    return source


def load_model(path: str | Path, shapes: Shapes | None = None) -> Model:
    """Read `path` and import it into Relax; `shapes` as for :func:`read_source`.
    Inputs left with free dims are refused, naming them."""
    return import_model(read_source(path, shapes))


def import_model(source: SourceGraph) -> Model:
    """`source` as a Model, or one TvmqError naming its free dims or failing nodes."""
    require_static(str(source.path), source.inputs)
    _close_scopes_on_error()
    try:
        with without_builder_warnings():
            mod = source.to_relax()
    except TvmqError:
        raise
    except Exception as error:  # TVM importers raise many types; users get one line
        raise TvmqError(f"{source.path}: import failed: {first_line(error)}") from error
    try:
        check_qdq_constants(mod, source.source_names)
        check_outputs(mod, source.outputs)
    except TvmqError as error:
        raise TvmqError(f"{source.path}: {error}") from error
    return Model(
        name=source.path.stem,
        source=source.path,
        format=source.format,
        mod=mod,
        inputs=source.inputs,
        outputs=source.outputs,
        params=source.params,
        operators=source.operators,
        quantization=source.quantization,
        source_names=dict(source.source_names),
    )


BUILDER_WARNING = "BlockBuilder destroyed with remaining blocks"


@contextmanager
def without_builder_warnings() -> Iterator[None]:
    """stderr (the file descriptor: TVM's C++ logs) captured during an import and
    written back without TVM's "BlockBuilder destroyed with remaining blocks!": a
    C++ pass that fails mid-function (ConvertLayout did, on openWakeWord's embedding
    model) leaves its builder open, and the warning printed as it is destroyed
    would stand under the user's one-line error."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if BUILDER_WARNING not in line))
            sys.stderr.flush()


def _close_scopes_on_error() -> None:
    """TVM's BlockBuilder leaves a function's block and scope open when a converter
    raises inside ``with bb.function(...)``, then prints "BlockBuilder destroyed with
    remaining blocks!" on stderr when it is collected: under the user's one-line
    error. Close them as the scope unwinds (installed once, for the whole process:
    patching and restoring around each import would race between threads)."""
    from tvm import relax

    exit_scope = relax.BlockBuilder._exit_function_scope
    if getattr(exit_scope, "closes_scopes", False):
        return

    def exit_closing(builder, exc_type, exc_value, traceback):
        if exc_type is not None:
            with suppress(Exception):  # never mask the error being raised
                builder._end_block()
                builder.end_scope()
        return exit_scope(builder, exc_type, exc_value, traceback)

    exit_closing.closes_scopes = True
    relax.BlockBuilder._exit_function_scope = exit_closing
