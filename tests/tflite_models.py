"""One-op int8 TFLite files written in the tests with the flatbuffer object API."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
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


def _finish(path: Path, codes, operators, tensors, buffers, inputs, outputs) -> Path:
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.name = tensors, operators, "main"
    graph.inputs, graph.outputs = inputs, outputs
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [graph]
    model.buffers = buffers
    model.description = "tvmq test"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def _buffer(values: np.ndarray | None = None):
    buffer = schema.BufferT()
    if values is not None:
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
    return buffer


def _code(builtin: int, version: int = 1):
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)  # 127: see builtin_code (int8 field)
    code.version = version
    return code


def _typed(tensor, tensor_type: int):
    tensor.type = tensor_type
    return tensor


def fully_connected_16x8(
    path: Path,
    weights: np.ndarray,
    bias: np.ndarray,
    scales: tuple[float, float, float],
    batch: int = 1,
) -> Path:
    """A FULLY_CONNECTED in TFLite's 16x8 scheme: int16 input and output (zero point 0),
    int8 weights [out, in] and int64 bias. `scales` are input, weight and output."""
    in_scale, weight_scale, out_scale = scales
    out_features, in_features = weights.shape
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1, 2], [3]
    operator.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    operator.builtinOptions = schema.FullyConnectedOptionsT()
    int16, int64 = schema.TensorType.INT16, schema.TensorType.INT64
    tensors = [
        _typed(_tensor("x", (batch, in_features), in_scale, 0, 1), int16),
        _tensor("w", (out_features, in_features), weight_scale, 0, 2),
        _typed(_tensor("b", (out_features,), in_scale * weight_scale, 0, 3), int64),
        _typed(_tensor("y", (batch, out_features), out_scale, 0, 4), int16),
    ]
    buffers = [
        _buffer(),
        _buffer(),
        _buffer(weights.astype(np.int8)),
        _buffer(bias.astype(np.int64)),
    ]
    buffers.append(_buffer())
    code = _code(schema.BuiltinOperator.FULLY_CONNECTED, 7)
    return _finish(path, [code], [operator], tensors, buffers, [0], [3])


def _int8_tensor(name: str, shape: tuple[int, ...], params: tuple[float, int], buffer: int):
    return _tensor(name, shape, params[0], params[1], buffer)


def mul_int8(path: Path, shapes, params, fused_relu: bool = False) -> Path:
    """y = x1 * x2 in int8 (broadcasting `shapes` of x1, x2, y); `params` are the three
    (scale, zero point) pairs."""
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1], [2]
    operator.builtinOptionsType = schema.BuiltinOptions.MulOptions
    operator.builtinOptions = schema.MulOptionsT()
    if fused_relu:
        operator.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
    tensors = [
        _int8_tensor(name, shape, p, i + 1)
        for i, (name, shape, p) in enumerate(zip(("x1", "x2", "y"), shapes, params, strict=True))
    ]
    buffers = [_buffer() for _ in range(4)]
    code = _code(schema.BuiltinOperator.MUL, 2)
    return _finish(path, [code], [operator], tensors, buffers, [0, 1], [2])


def concat_int8(path: Path, shapes, params, axis: int) -> Path:
    """Inputs requantized to the output's parameters (QUANTIZE int8 -> int8, as the
    converter emits), then CONCATENATION along `axis`, which TFLite requires to share
    them. `shapes` and `params` list the inputs then the output."""
    *inputs, (out_shape, out_params) = list(zip(shapes, params, strict=True))
    count = len(inputs)
    tensors = [_int8_tensor(f"x{i}", s, p, 0) for i, (s, p) in enumerate(inputs)]
    tensors += [_int8_tensor(f"r{i}", s, out_params, 0) for i, (s, _) in enumerate(inputs)]
    tensors.append(_int8_tensor("y", out_shape, out_params, 0))
    operators = []
    for i in range(count):
        requantize = schema.OperatorT()
        requantize.opcodeIndex, requantize.inputs, requantize.outputs = 0, [i], [count + i]
        operators.append(requantize)
    concat = schema.OperatorT()
    concat.opcodeIndex, concat.outputs = 1, [2 * count]
    concat.inputs = list(range(count, 2 * count))
    concat.builtinOptionsType = schema.BuiltinOptions.ConcatenationOptions
    concat.builtinOptions = schema.ConcatenationOptionsT()
    concat.builtinOptions.axis = axis
    operators.append(concat)
    codes = [
        _code(schema.BuiltinOperator.QUANTIZE, 2),
        _code(schema.BuiltinOperator.CONCATENATION, 2),
    ]
    return _finish(path, codes, operators, tensors, [_buffer()], list(range(count)), [2 * count])


def fully_connected_float_free_batch(path: Path, weights: np.ndarray, bias: np.ndarray) -> Path:
    """A float32 FULLY_CONNECTED + RELU whose batch is free (-1 in shape_signature, 1 in
    shape), as converters write Keras models."""
    out_features, in_features = weights.shape
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1, 2], [3]
    operator.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    operator.builtinOptions = schema.FullyConnectedOptionsT()
    operator.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
    tensors = []
    for name, shape, buffer in (
        ("x", (1, in_features), 0),
        ("w", (out_features, in_features), 1),
        ("b", (out_features,), 2),
        ("y", (1, out_features), 0),
    ):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = (
            name, list(shape), schema.TensorType.FLOAT32, buffer,
        )  # fmt: skip
        if shape[0] == 1:
            tensor.shapeSignature = [-1, shape[1]]
        tensors.append(tensor)
    buffers = [_buffer(), _buffer(weights.astype(np.float32)), _buffer(bias.astype(np.float32))]
    code = _code(schema.BuiltinOperator.FULLY_CONNECTED, 1)
    return _finish(path, [code], [operator], tensors, buffers, [0], [3])


def mirror_pad_symmetric(path: Path) -> Path:
    """Two float MIRROR_PADs in SYMMETRIC mode, which TVM's converter rejects (LiteRT
    runs them); outputs 'p1' then 'y'."""
    operators = []
    for inputs, output in (([0, 1], 2), ([2, 1], 3)):
        operator = schema.OperatorT()
        operator.opcodeIndex, operator.inputs, operator.outputs = 0, inputs, [output]
        operator.builtinOptionsType = schema.BuiltinOptions.MirrorPadOptions
        operator.builtinOptions = schema.MirrorPadOptionsT()
        operator.builtinOptions.mode = schema.MirrorPadMode.SYMMETRIC
        operators.append(operator)
    tensors = []
    for name, shape, tensor_type, buffer in (
        ("x", (1, 4, 4, 2), schema.TensorType.FLOAT32, 0),
        ("paddings", (4, 2), schema.TensorType.INT32, 1),
        ("p1", (1, 6, 6, 2), schema.TensorType.FLOAT32, 0),
        ("y", (1, 8, 8, 2), schema.TensorType.FLOAT32, 0),
    ):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = (
            name,
            list(shape),
            tensor_type,
            buffer,
        )
        tensors.append(tensor)
    paddings = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)
    buffers = [_buffer(), _buffer(paddings)]
    code = _code(schema.BuiltinOperator.MIRROR_PAD, 2)
    return _finish(path, [code], operators, tensors, buffers, [0], [3])


def mul_and_add_int8(
    path: Path, shape: tuple[int, ...], params, names=("x1", "x2", "y1", "y2")
) -> Path:
    """Two inputs, two outputs: y1 = x1 * x2 and y2 = x1 + x2 in int8; `params` are the
    (scale, zero point) pairs of x1, x2, y1, y2, `names` their tensor names."""
    mul, add = schema.OperatorT(), schema.OperatorT()
    mul.opcodeIndex, mul.inputs, mul.outputs = 0, [0, 1], [2]
    mul.builtinOptionsType, mul.builtinOptions = (
        schema.BuiltinOptions.MulOptions,
        schema.MulOptionsT(),
    )
    add.opcodeIndex, add.inputs, add.outputs = 1, [0, 1], [3]
    add.builtinOptionsType, add.builtinOptions = (
        schema.BuiltinOptions.AddOptions,
        schema.AddOptionsT(),
    )
    tensors = [_int8_tensor(name, shape, p, 0) for name, p in zip(names, params, strict=True)]
    codes = [_code(schema.BuiltinOperator.MUL, 2), _code(schema.BuiltinOperator.ADD, 2)]
    return _finish(path, codes, [mul, add], tensors, [_buffer()], [0, 1], [2, 3])


def transpose_conv_int8(
    path: Path,
    in_shape: tuple[int, int, int, int],
    weights: np.ndarray,
    bias: np.ndarray | None,
    params,
    stride: int,
    same: bool,
) -> Path:
    """An int8 TRANSPOSE_CONV: `weights` int8 OHWI quantized per output channel, int32
    `bias` (None: the optional input left out, index -1); `params` are (input, output)
    (scale, zero point) and the weight scales."""
    (in_params, out_params, weight_scales) = params
    batch, height, width, _ = in_shape
    out_channels, kernel, _, _ = weights.shape
    if same:
        out_shape = (batch, height * stride, width * stride, out_channels)
    else:
        size = [(d - 1) * stride + kernel for d in (height, width)]
        out_shape = (batch, *size, out_channels)
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1, 2, 3], [4]
    operator.builtinOptionsType = schema.BuiltinOptions.TransposeConvOptions
    options = schema.TransposeConvOptionsT()
    options.padding = schema.Padding.SAME if same else schema.Padding.VALID
    options.strideH = options.strideW = stride
    operator.builtinOptions = options
    shape_tensor = _typed(_tensor("shape", (4,), 1.0, 0, 1), schema.TensorType.INT32)
    shape_tensor.quantization = None
    weight = _tensor("w", weights.shape, 1.0, 0, 2)
    weight.quantization.scale = [float(s) for s in weight_scales]
    weight.quantization.zeroPoint = [0] * out_channels
    bias_tensor = _typed(_tensor("b", (out_channels,), 1.0, 0, 3), schema.TensorType.INT32)
    bias_tensor.quantization.scale = [in_params[0] * float(s) for s in weight_scales]
    bias_tensor.quantization.zeroPoint = [0] * out_channels
    tensors = [
        shape_tensor,
        weight,
        _int8_tensor("x", in_shape, in_params, 4),
        bias_tensor,
        _int8_tensor("y", out_shape, out_params, 5),
    ]
    buffers = [
        _buffer(),
        _buffer(np.array(out_shape, np.int32)),
        _buffer(weights.astype(np.int8)),
        _buffer(None if bias is None else bias.astype(np.int32)),
        _buffer(),
        _buffer(),
    ]
    if bias is None:
        operator.inputs, operator.outputs = [0, 1, 2, -1], [3]
        del tensors[3]
        tensors[3].buffer = 4
        del buffers[4]
    code = _code(schema.BuiltinOperator.TRANSPOSE_CONV, 3)
    return _finish(path, [code], [operator], tensors, buffers, [2], [len(tensors) - 1])


def resize_bilinear_int8(
    path: Path, in_shape, size: tuple[int, int], params, align_corners: bool, half_pixel: bool
) -> Path:
    """An int8 RESIZE_BILINEAR to `size` (input and output share `params`)."""
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1], [2]
    operator.builtinOptionsType = schema.BuiltinOptions.ResizeBilinearOptions
    operator.builtinOptions = schema.ResizeBilinearOptionsT()
    operator.builtinOptions.alignCorners = align_corners
    operator.builtinOptions.halfPixelCenters = half_pixel
    size_tensor = _typed(_tensor("size", (2,), 1.0, 0, 2), schema.TensorType.INT32)
    size_tensor.quantization = None
    out_shape = (in_shape[0], *size, in_shape[3])
    tensors = [
        _int8_tensor("x", in_shape, params, 1),
        size_tensor,
        _int8_tensor("y", out_shape, params, 3),
    ]
    buffers = [_buffer(), _buffer(), _buffer(np.array(size, np.int32)), _buffer()]
    code = _code(schema.BuiltinOperator.RESIZE_BILINEAR, 3)
    return _finish(path, [code], [operator], tensors, buffers, [0], [2])
