"""ONNX files: float models and QDQ-quantized ones (QuantizeLinear/DequantizeLinear)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from tvmq.errors import TvmqError
from tvmq.model import TensorSpec

STANDARD_DOMAINS = ("", "ai.onnx")


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    # Symbolic dimensions (a dynamic batch) are fixed to 1: tvmq compiles static shapes.
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor_type.shape.dim)
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    return TensorSpec(name=value.name, shape=shape, dtype=dtype)


def _supported_ops() -> set[str]:
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    return set(_get_convert_map())


@dataclass
class OnnxGraph:
    """A parsed, checked ONNX model."""

    path: Path
    proto: onnx.ModelProto
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str] = field(default_factory=Counter)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    quantization: dict | None = None
    format: str = "onnx"

    @classmethod
    def read(cls, path: Path) -> OnnxGraph:
        try:
            proto = onnx.load_model_from_string(path.read_bytes())
        except (DecodeError, ValueError, RuntimeError) as error:
            raise TvmqError(f"{path}: not a valid ONNX model ({error})") from error
        if not proto.graph.node:
            raise TvmqError(f"{path}: not a valid ONNX model (no graph nodes)")
        try:
            onnx.checker.check_model(proto)
            proto = onnx.shape_inference.infer_shapes(proto)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
            message = str(error).strip().splitlines()[0]
            raise TvmqError(f"{path}: invalid ONNX model: {message}") from error
        graph = proto.graph
        weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        return cls(
            path=path,
            proto=proto,
            inputs=[_spec(v) for v in graph.input if v.name not in weights],
            outputs=[_spec(v) for v in graph.output],
            operators=Counter(node.op_type for node in graph.node),
            params=weights,
        )

    def unsupported(self) -> list[tuple[str, str]]:
        known = _supported_ops()
        return [
            (
                node.name or node.output[0],
                f"{node.domain}.{node.op_type}" if node.domain else node.op_type,
            )
            for node in self.proto.graph.node
            if node.domain not in STANDARD_DOMAINS or node.op_type not in known
        ]

    def to_relax(self):
        from tvm.relax.frontend.onnx import from_onnx

        shapes = {spec.name: list(spec.shape) for spec in self.inputs}
        dtypes = {spec.name: spec.dtype for spec in self.inputs}
        return from_onnx(self.proto, shape_dict=shapes, dtype_dict=dtypes)
