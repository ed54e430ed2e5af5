"""Any single-op TFLite file, described by its operands: the builder behind the per-op
conformance tests (tests/test_op_conformance.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from hypothesis import Phase, settings

from tests.tflite_models import _buffer, _code, _finish

TENSOR_TYPES = {
    "int8": schema.TensorType.INT8,
    "int16": schema.TensorType.INT16,
    "int32": schema.TensorType.INT32,
    "int64": schema.TensorType.INT64,
    "float32": schema.TensorType.FLOAT32,
    "bool": schema.TensorType.BOOL,
}

# Hypothesis examples that each build and run a model: few, reproducible, and no
# shrinking (every shrink step would be another build).
BUILD_EXAMPLES = settings(
    max_examples=3,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
)


@dataclass(frozen=True)
class Operand:
    """One tensor of the op: a graph input when it has no `data`, else a constant.
    `scale` and `zero_point` hold one value per tensor or one per index of `axis`."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    axis: int = 0
    data: np.ndarray | None = None

    def tensor(self, buffer: int):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.buffer = self.name, list(self.shape), buffer
        tensor.type = TENSOR_TYPES[self.dtype]
        if self.scale is not None:
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale = [float(s) for s in self.scale]
            tensor.quantization.zeroPoint = [int(z) for z in self.zero_point]
            tensor.quantization.quantizedDimension = self.axis
        return tensor


def quantized(name: str, shape, params: tuple[float, int], dtype: str = "int8") -> Operand:
    """A per-tensor quantized graph input or output."""
    scale, zero_point = params
    return Operand(name, tuple(shape), dtype, (scale,), (zero_point,))


def constant(name: str, values: np.ndarray) -> Operand:
    """An unquantized constant input (axes, shapes, paddings)."""
    return Operand(name, values.shape, str(values.dtype), data=values)


def single_op(
    path: Path,
    builtin: int,
    inputs: list[Operand | None],
    outputs: list[Operand],
    options=None,
    version: int = 1,
) -> Path:
    """A model of one `builtin` op; None in `inputs` is an omitted optional input.
    `options` is a schema ...OptionsT object; its class names the options type."""
    present = [o for o in inputs if o is not None] + outputs
    tensors, buffers = [], [_buffer()]
    for operand in present:
        tensors.append(operand.tensor(len(buffers)))
        buffers.append(_buffer(operand.data))
    index = {operand.name: i for i, operand in enumerate(present)}
    operator = schema.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs = [-1 if o is None else index[o.name] for o in inputs]
    operator.outputs = [index[o.name] for o in outputs]
    if options is not None:
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
        operator.builtinOptions = options
    graph_inputs = [index[o.name] for o in inputs if o is not None and o.data is None]
    graph_outputs = [index[o.name] for o in outputs]
    code = _code(builtin, version)
    return _finish(path, [code], [operator], tensors, buffers, graph_inputs, graph_outputs)


def float_prelu(path: Path, shape, slope: np.ndarray) -> Path:
    """A float PRELU of an input of `shape` with the constant `slope`."""
    x, y = Operand("x", tuple(shape), "float32"), Operand("y", tuple(shape), "float32")
    alpha = Operand("alpha", slope.shape, "float32", data=slope.astype(np.float32))
    return single_op(path, schema.BuiltinOperator.PRELU, [x, alpha], [y])
