"""Small multi-op TFLite files built in the tests: uint8 graphs and importer quirks.

A :class:`GraphBuilder` adds tensors and operators one at a time (the flatbuffer
object API underneath), so each test states the graph it needs in a few lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tests.tflite_models import _buffer, _code, _finish

TYPES = {
    "float32": schema.TensorType.FLOAT32,
    "float16": schema.TensorType.FLOAT16,
    "int32": schema.TensorType.INT32,
    "uint8": schema.TensorType.UINT8,
    "int8": schema.TensorType.INT8,
    "uint64": schema.TensorType.UINT64,
    "complex64": schema.TensorType.COMPLEX64,
}
OPTIONS = {
    "CONV_2D": ("Conv2DOptions", 3),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", 2),
    "FULLY_CONNECTED": ("FullyConnectedOptions", 1),
    "ADD": ("AddOptions", 1),
    "MUL": ("MulOptions", 1),
    "AVERAGE_POOL_2D": ("Pool2DOptions", 1),
    "MAX_POOL_2D": ("Pool2DOptions", 1),
    "RESHAPE": ("ReshapeOptions", 1),
    "CONCATENATION": ("ConcatenationOptions", 1),
    "SOFTMAX": ("SoftmaxOptions", 1),
    "TRANSPOSE": ("TransposeOptions", 1),
    "DEQUANTIZE": ("DequantizeOptions", 1),
    "DENSIFY": ("DensifyOptions", 1),
    "QUANTIZE": (None, 1),
    "ARG_MAX": ("ArgMaxOptions", 2),
    "MEAN": ("ReducerOptions", 2),
    "RELU": (None, 2),
    "RELU6": (None, 2),
    "RELU_N1_TO_1": (None, 1),
    "HARD_SWISH": (None, 1),
    "LEAKY_RELU": ("LeakyReluOptions", 2),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", 3),
    "SHAPE": ("ShapeOptions", 1),
    "CAST": ("CastOptions", 1),
    "STRIDED_SLICE": ("StridedSliceOptions", 2),
    "PACK": ("PackOptions", 2),
    "RFFT2D": ("Rfft2dOptions", 1),
    "SQUEEZE": ("SqueezeOptions", 1),
    "COMPLEX_ABS": (None, 1),
    "SLICE": ("SliceOptions", 1),
}


class GraphBuilder:
    """One subgraph: tensors by index, operators in execution order."""

    def __init__(self):
        self.tensors, self.operators, self.codes = [], [], []
        self.buffers = [_buffer()]
        self._opcodes: dict[str, int] = {}

    def tensor(
        self,
        name: str,
        shape,
        dtype: str,
        quant: tuple | None = None,
        data: np.ndarray | None = None,
        axis: int = 0,
    ) -> int:
        """Add a tensor; `quant` is (scale(s), zero point(s)), `data` makes it a constant."""
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name, list(shape), TYPES[dtype]
        tensor.buffer = 0
        if data is not None:
            tensor.buffer = len(self.buffers)
            self.buffers.append(_buffer(np.asarray(data, dtype)))
        if quant is not None:
            scale, zero_point = quant
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale = list(np.atleast_1d(scale).astype(float))
            tensor.quantization.zeroPoint = list(np.atleast_1d(zero_point).astype(int))
            tensor.quantization.quantizedDimension = axis
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], **options) -> None:
        """Add builtin operator `name` with its options given as TFLite field names."""
        if name not in self._opcodes:
            self._opcodes[name] = len(self.codes)
            self.codes.append(_code(getattr(schema.BuiltinOperator, name), OPTIONS[name][1]))
        operator = schema.OperatorT()
        operator.opcodeIndex = self._opcodes[name]
        operator.inputs, operator.outputs = list(inputs), list(outputs)
        kind = OPTIONS[name][0]
        if kind is not None:
            operator.builtinOptionsType = getattr(schema.BuiltinOptions, kind)
            operator.builtinOptions = getattr(schema, f"{kind}T")()
            for key, value in options.items():
                setattr(operator.builtinOptions, key, value)
        self.operators.append(operator)

    def write(self, path: Path, inputs: list[int], outputs: list[int]) -> Path:
        return _finish(
            path, self.codes, self.operators, self.tensors, self.buffers, inputs, outputs
        )


def uint8_weights(rng: np.random.Generator, shape) -> tuple[np.ndarray, tuple[float, int]]:
    """Random uint8 weights with a TF1-style asymmetric scale and zero point."""
    return rng.integers(0, 256, shape).astype(np.uint8), (
        float(rng.uniform(0.002, 0.02)),
        int(rng.integers(60, 200)),
    )
