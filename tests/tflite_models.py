"""One-op int8 TFLite files written in the tests with the flatbuffer object API."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
from ai_edge_litert import schema_py_generated as schema


def _tensor(name: str, shape: tuple[int, ...], scale: float, zero_point: int, buffer: int):
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = (
        name,
        list(shape),
        schema.TensorType.INT8,
        buffer,
    )
    tensor.quantization = schema.QuantizationParametersT()
    tensor.quantization.scale, tensor.quantization.zeroPoint = [scale], [zero_point]
    return tensor


def softmax_int8(path: Path, shape: tuple[int, ...], scale: float, zero_point: int) -> Path:
    """An int8 SOFTMAX (beta 1) over the last axis; output scale 1/256, zero point -128."""
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SOFTMAX
    code.version = 2
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    operator.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    operator.builtinOptions = schema.SoftmaxOptionsT()
    operator.builtinOptions.beta = 1.0
    graph = schema.SubGraphT()
    graph.tensors = [
        _tensor("x", shape, scale, zero_point, 1),
        _tensor("y", shape, 1.0 / 256.0, -128, 2),
    ]
    graph.inputs, graph.outputs, graph.operators, graph.name = [0], [1], [operator], "main"
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT() for _ in range(3)]
    model.description = "tvmq test"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path
