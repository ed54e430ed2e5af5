"""TFLite files: float, full-integer (int8/uint8, per-tensor or per-channel) and
hybrid models whose weights are int8 while activations stay float.

TVM's importer rejects hybrid ("dynamic range") models. tvmq imports them as
weight-only quantized graphs: the int8 weights are dequantized to float constants,
which is what the weight-only mode of the quantizer produces too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

from tvmq.errors import TvmqError
from tvmq.model import QuantParams, TensorSpec

TFLITE_IDENTIFIER = b"TFL3"
NUMPY_TYPES = {
    TensorType.FLOAT32: "float32",
    TensorType.FLOAT16: "float16",
    TensorType.INT32: "int32",
    TensorType.UINT8: "uint8",
    TensorType.INT64: "int64",
    TensorType.BOOL: "bool",
    TensorType.INT16: "int16",
    TensorType.INT8: "int8",
    TensorType.UINT32: "uint32",
}
OPERATOR_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _quant_params(tensor) -> QuantParams | None:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scale = tuple(float(s) for s in q.ScaleAsNumpy())
    zero_point = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,)
    axis = int(q.QuantizedDimension()) if len(scale) > 1 else None
    return QuantParams(scale=scale, zero_point=zero_point, axis=axis)


def _spec(tensor) -> TensorSpec:
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    dtype = NUMPY_TYPES.get(tensor.Type())
    if dtype is None:
        raise TvmqError(
            f"tensor '{tensor.Name().decode()}': unsupported TFLite type {tensor.Type()}"
        )
    return TensorSpec(tensor.Name().decode(), shape, dtype, _quant_params(tensor))


@dataclass
class TFLiteGraph:
    """A parsed, structurally checked TFLite flatbuffer (its first subgraph)."""

    path: Path
    model: tflite.Model
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str] = field(default_factory=Counter)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    nodes: list[tuple[str, str]] = field(default_factory=list)
    quantization: dict | None = None
    source_names: dict[str, str] = field(default_factory=dict)
    format: str = "tflite"

    @classmethod
    def read(cls, path: Path) -> TFLiteGraph:
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
            raise TvmqError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
        try:
            return cls._parse(path, data)
        except TvmqError as error:
            raise TvmqError(f"{path}: {error}") from error
        except Exception as error:  # flatbuffers reads past the end as IndexError/struct.error
            raise TvmqError(f"{path}: truncated or corrupt TFLite file ({error})") from error

    @classmethod
    def _parse(cls, path: Path, data: bytes) -> TFLiteGraph:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise TvmqError("no subgraph")
        graph = model.Subgraphs(0)
        nodes, params = [], {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            op_name = OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if op_name == "CUSTOM":
                op_name = f"CUSTOM:{code.CustomCode().decode()}"
            outputs = op.OutputsAsNumpy()
            node = graph.Tensors(int(outputs[0])).Name().decode() if len(outputs) else f"op{i}"
            nodes.append((node, op_name))
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if isinstance(raw, np.ndarray) and raw.size:
                spec = _spec(tensor)
                params[spec.name] = np.frombuffer(raw.tobytes(), spec.dtype).reshape(spec.shape)
        return cls(
            path=path,
            model=model,
            inputs=[_spec(graph.Tensors(int(i))) for i in graph.InputsAsNumpy()],
            outputs=[_spec(graph.Tensors(int(i))) for i in graph.OutputsAsNumpy()],
            operators=Counter(op for _, op in nodes),
            params=params,
            nodes=nodes,
        )

    def unsupported(self) -> list[tuple[str, str]]:
        from tvm import relax
        from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter

        converter = OperatorConverter(
            self.model, self.model.Subgraphs(0), None, relax.BlockBuilder()
        )
        return [(node, op) for node, op in self.nodes if op not in converter.convert_map]

    def to_relax(self):
        from tvm.relax.frontend.tflite import from_tflite

        from tvmq.frontend.transpose_conv import lower_transposed_convs

        mod = from_tflite(self.model, op_converter=_weight_only_converter())
        return lower_transposed_convs(mod, self.source_names)


def _weight_only_converter():
    """TVM's OperatorConverter, taught to read hybrid ops' int8 weights as float."""
    from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter, TensorWrapper

    class WeightOnlyConverter(OperatorConverter):
        def __init__(self, model, subgraph, *args, **kwargs):
            super().__init__(model, subgraph, *args, **kwargs)
            self._dequantized = _hybrid_weights(model, subgraph)

        def get_tensors(self, tensors_idx_list):
            wrappers = super().get_tensors(tensors_idx_list)
            return [
                TensorWrapper(
                    w.tensor_idx, _FloatTensor(w.tensor), _Buffer(self._dequantized[w.tensor_idx])
                )
                if w.tensor_idx in self._dequantized
                else w
                for w in wrappers
            ]

    return WeightOnlyConverter


def _hybrid_weights(model, graph) -> dict[int, np.ndarray]:
    """Dequantized float values of int8 constants feeding ops with float activations."""
    weights = {}
    for i in range(graph.OperatorsLength()):
        indices = [int(j) for j in graph.Operators(i).InputsAsNumpy() if j >= 0]
        if not indices or graph.Tensors(indices[0]).Type() != TensorType.FLOAT32:
            continue
        for j in indices[1:]:
            tensor = graph.Tensors(j)
            quant = _quant_params(tensor)
            raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if tensor.Type() != TensorType.INT8 or quant is None or not isinstance(raw, np.ndarray):
                continue
            values = np.frombuffer(raw.tobytes(), np.int8).reshape(tensor.ShapeAsNumpy())
            shape = [1] * values.ndim
            if quant.axis is not None:
                shape[quant.axis] = -1
            scale = np.asarray(quant.scale, np.float32).reshape(shape)
            zero = np.asarray(quant.zero_point, np.float32).reshape(
                shape if len(quant.zero_point) > 1 else [1]
            )
            weights[j] = ((values.astype(np.float32) - zero) * scale).astype(np.float32)
    return weights


class _FloatTensor:
    """A TFLite tensor seen as float32 without quantization parameters."""

    def __init__(self, tensor):
        self._tensor = tensor

    def __getattr__(self, name):
        return getattr(self._tensor, name)

    def Type(self):
        return TensorType.FLOAT32

    def Quantization(self):
        return None


class _Buffer:
    """A TFLite buffer holding replacement data."""

    def __init__(self, values: np.ndarray):
        self._bytes = np.frombuffer(values.tobytes(), np.uint8)

    def DataAsNumpy(self):
        return self._bytes

    def DataLength(self):
        return self._bytes.size
