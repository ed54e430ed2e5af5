"""Model import: ONNX and TFLite files into a :class:`tvmq.Model`.

Importing has two steps. :func:`read_source` parses and validates the file into a
:class:`SourceGraph` that describes it (inputs, outputs, operators, weights,
unsupported nodes) without TVM; :func:`load_model` then converts it to Relax. The
split lets ``tvmq inspect`` report on models that cannot be imported.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Protocol

import numpy as np

from tvmq.errors import TvmqError, UnsupportedOperatorError, first_line
from tvmq.frontend.validate import check_outputs, check_qdq_constants
from tvmq.model import Model, TensorSpec

FORMATS = (".onnx", ".tflite", ".tvmq")


class SourceGraph(Protocol):
    """A parsed model file, described in tvmq's terms."""

    path: Path
    format: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str]
    params: dict[str, np.ndarray]
    quantization: dict | None
    # Relax var name -> the source file's node (ONNX node name, TFLite op output).
    source_names: dict[str, str]

    def unsupported(self) -> list[tuple[str, str]]:
        """(node name, op type) of each node the Relax importer cannot convert."""
        ...

    def to_relax(self):
        """The graph as a Relax IRModule with its weights bound as constants."""
        ...


def read_source(path: str | Path) -> SourceGraph:
    """Parse `path` (.onnx or .tflite), raising TvmqError for unreadable files."""
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

        return OnnxGraph.read(path)
    if suffix == ".tvmq":
        from tvmq.frontend.saved import SavedGraph

        return SavedGraph.read(path)
    from tvmq.frontend.tflite_import import TFLiteGraph

    return TFLiteGraph.read(path)


def load_model(path: str | Path) -> Model:
    """Read `path` and import it into Relax."""
    source = read_source(path)
    bad = source.unsupported()
    if bad:
        raise UnsupportedOperatorError(str(source.path), bad)
    _close_scopes_on_error()
    if source.format == "onnx":
        _keep_onnx_importer_prints()
    _printed.line = ""
    try:
        mod = source.to_relax()
    except TvmqError:
        raise
    except Exception as error:  # TVM importers raise many types; users get one line
        node = re.search(r"converting operator (\S+), with inputs: \[(.*)\]", _printed.line)
        at = f" at {node[1]} (inputs {node[2][:80]})" if node else ""
        raise TvmqError(f"{source.path}: import failed{at}: {first_line(error)}") from error
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


# The last line TVM's ONNX importer printed, per thread (boards import in threads).
_printed = threading.local()


def _keep_onnx_importer_prints() -> None:
    """TVM's ONNX importer prints "Error converting operator OP, with inputs: [...]"
    on stdout before raising: keep it for the one-line error instead (the module's
    own ``print`` is replaced, once; stdout stays the program's)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    onnx_frontend.print = _keep_printed


def _keep_printed(*values, **_) -> None:
    _printed.line = " ".join(str(v) for v in values)
