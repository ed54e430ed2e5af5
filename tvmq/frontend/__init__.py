"""Model import: ONNX and TFLite files into a :class:`tvmq.Model`.

Importing has two steps. :func:`read_source` parses and validates the file into a
:class:`SourceGraph` that describes it (inputs, outputs, operators, weights,
unsupported nodes) without TVM; :func:`load_model` then converts it to Relax. The
split lets ``tvmq inspect`` report on models that cannot be imported.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np

from tvmq.errors import TvmqError
from tvmq.frontend.shapes import Shapes, fix_shapes, require_static
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
    try:
        mod = source.to_relax()
    except TvmqError:
        raise
    except Exception as error:  # TVM importers raise many types; users get one line
        raise TvmqError(f"{source.path}: import failed: {first_line(error)}") from error
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


def first_line(error: BaseException) -> str:
    """TVM errors carry multi-line C++ context; users get the first meaningful line."""
    for line in str(error).splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "[bt]")):
            return line
    return type(error).__name__
