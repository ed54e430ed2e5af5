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
from tvmq.frontend.layout import channels_last
from tvmq.frontend.onnx_fold import fold_shape_computations
from tvmq.frontend.transpose_conv import lower_transposed_convs
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
    source_names: dict[str, str] = field(default_factory=dict)

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
        """The Relax module; fills `source_names` (Relax var name -> ONNX node name)."""
        from tvm.relax.frontend.onnx import onnx_frontend

        shapes = {spec.name: list(spec.shape) for spec in self.inputs}
        dtypes = {spec.name: spec.dtype for spec in self.inputs}
        importer = onnx_frontend.ONNXGraphImporter
        onnx_frontend.ONNXGraphImporter = _naming_importer(importer, self.source_names)
        try:
            mod = onnx_frontend.from_onnx(
                fold_shape_computations(self.proto), shape_dict=shapes, dtype_dict=dtypes
            )
        finally:
            onnx_frontend.ONNXGraphImporter = importer
        _name_output_bindings(mod, self.source_names, self.proto.graph)
        if not (self.operators["QuantizeLinear"] or self.operators["DequantizeLinear"]):
            # A QDQ model's quantize/dequantize pairs fix the layout they were made for.
            mod, names = channels_last(mod, self.source_names)
            self.source_names.clear()
            self.source_names.update(names)
        return lower_transposed_convs(mod, self.source_names)


def _naming_importer(base, names: dict[str, str]):
    """TVM's ONNX importer, binding each node's result as it is converted so that the
    Relax vars it creates can be traced back to the node (names[var] = node name).
    Nodes producing graph outputs are left to the importer, which binds them last."""
    from tvm import relax

    class NamingImporter(base):
        def from_onnx(self, graph, opset):
            outputs = {value.name for value in graph.output}
            self._last = {node.name for node in graph.node if set(node.output) & outputs}
            return super().from_onnx(graph, opset)

        def _convert_operator(self, op_name, inputs, attrs, opset):
            value = super()._convert_operator(op_name, inputs, attrs, opset)
            node = attrs.get("tvm_custom", {}).get("name")
            if not node or node in self._last or not isinstance(value, relax.Call):
                return value
            var = self.bb.emit(value)
            pending = [var]
            while pending:
                current = pending.pop()
                names[current.name] = node
                bound = self.bb.lookup_binding(current)
                pending += [
                    arg
                    for arg in getattr(bound, "args", ())
                    if isinstance(arg, relax.Var)
                    and arg.name not in names
                    and self.bb.lookup_binding(arg) is not None
                ]
            return var

    return NamingImporter


def _name_output_bindings(mod, names: dict[str, str], graph: onnx.GraphProto) -> None:
    """The bindings the importer made for a single output node, after every named
    binding at the end of main, take that node's name."""
    from tvm import relax

    producer = {output: node.name for node in graph.node for output in node.output}
    last = [producer[value.name] for value in graph.output if value.name in producer]
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    named = [i for i, b in enumerate(bindings) if b.var.name in names]
    if len(last) != 1:
        return
    for binding in bindings[named[-1] + 1 if named else 0 :]:
        if isinstance(binding.value, relax.Call):
            names[binding.var.name] = last[0]
