"""One-op TFLite files for the converters of :mod:`tvmq.frontend.tflite_ops`: N-D
FULLY_CONNECTED, int8 GATHER_ND/PACK/UNPACK, float and int8
UNIDIRECTIONAL_SEQUENCE_LSTM, int8 SVDF, and tensors without names."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tests.tflite_models import _buffer, _code, _finish, _int8_tensor, _typed

Op = schema.BuiltinOperator
INT32 = schema.TensorType.INT32


def _operator(opcode: int, inputs, outputs, options_type=0, options=None):
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = opcode, list(inputs), list(outputs)
    operator.builtinOptionsType, operator.builtinOptions = options_type, options
    return operator


def fully_connected_nd(path: Path, in_shape, weights: np.ndarray, params) -> Path:
    """An int8 FULLY_CONNECTED on an input of rank > 2 without keep_num_dims: TFLite
    multiplies the input flattened to [-1, in_features]. `params` are input, weight
    and output (scale, zero point); the bias is int32 at input x weight scale."""
    units, features = weights.shape
    batch = int(np.prod(in_shape)) // features
    bias = np.arange(units, dtype=np.int32) * 37 - 50
    tensors = [
        _int8_tensor("x", tuple(in_shape), params[0], 1),
        _int8_tensor("w", weights.shape, params[1], 2),
        _typed(_int8_tensor("b", (units,), (params[0][0] * params[1][0], 0), 3), INT32),
        _int8_tensor("y", (batch, units), params[2], 4),
    ]
    options = schema.FullyConnectedOptionsT()
    operator = _operator(0, [0, 1, 2], [3], schema.BuiltinOptions.FullyConnectedOptions, options)
    buffers = [_buffer(), _buffer(), _buffer(weights.astype(np.int8)), _buffer(bias), _buffer()]
    code = _code(Op.FULLY_CONNECTED, 4)
    return _finish(path, [code], [operator], tensors, buffers, [0], [3])


def gather_nd_int8(path: Path, shape, indices: np.ndarray, params) -> Path:
    """int8 GATHER_ND of `shape` data by constant int32 `indices`; `params` are the
    data's and the output's (scale, zero point)."""
    depth = indices.shape[-1]
    out_shape = tuple(indices.shape[:-1]) + tuple(shape[depth:])
    tensors = [
        _int8_tensor("x", tuple(shape), params[0], 0),
        _typed(_int8_tensor("i", indices.shape, (1.0, 0), 1), INT32),
        _int8_tensor("y", out_shape, params[1], 0),
    ]
    tensors[1].quantization = None
    operator = _operator(0, [0, 1], [2])
    buffers = [_buffer(), _buffer(indices.astype(np.int32))]
    return _finish(path, [_code(Op.GATHER_ND)], [operator], tensors, buffers, [0], [2])


def pack_int8(path: Path, shape, count: int, axis: int, params) -> Path:
    """int8 PACK of `count` inputs of `shape` along `axis`; `params` lists each
    input's then the output's (scale, zero point)."""
    out_shape = list(shape)
    out_shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, count)
    tensors = [_int8_tensor(f"x{i}", tuple(shape), params[i], 0) for i in range(count)]
    tensors.append(_int8_tensor("y", tuple(out_shape), params[count], 0))
    options = schema.PackOptionsT()
    options.valuesCount, options.axis = count, axis
    operator = _operator(0, range(count), [count], schema.BuiltinOptions.PackOptions, options)
    return _finish(
        path, [_code(Op.PACK, 2)], [operator], tensors, [_buffer()], list(range(count)), [count]
    )


def unpack_int8(path: Path, shape, axis: int, params: tuple[float, int]) -> Path:
    """int8 UNPACK of `shape` along `axis` into shape[axis] outputs."""
    count = shape[axis]
    out_shape = tuple(d for i, d in enumerate(shape) if i != axis)
    tensors = [_int8_tensor("x", tuple(shape), params, 0)]
    tensors += [_int8_tensor(f"y{i}", out_shape, params, 0) for i in range(count)]
    options = schema.UnpackOptionsT()
    options.num, options.axis = count, axis
    outputs = list(range(1, count + 1))
    operator = _operator(0, [0], outputs, schema.BuiltinOptions.UnpackOptions, options)
    return _finish(path, [_code(Op.UNPACK, 2)], [operator], tensors, [_buffer()], [0], outputs)


def _float_tensor(name: str, shape, buffer: int, variable: bool = False):
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.buffer = name, list(shape), buffer
    tensor.type, tensor.isVariable = schema.TensorType.FLOAT32, variable
    return tensor


def lstm_float(
    path: Path,
    shape: tuple[int, int, int],
    units: int,
    rng: np.random.Generator,
    coupled: bool = False,
    peephole: bool = False,
    time_major: bool = False,
    projection: bool = False,
) -> Path:
    """A float UNIDIRECTIONAL_SEQUENCE_LSTM with random weights on input `shape`
    ([batch, time, features], or [time, batch, features] when `time_major`), tanh
    activation and cell clip 3; `coupled` leaves out the input gate (CIFG), `projection`
    adds projection weights (which tvmq refuses)."""
    batch = shape[1] if time_major else shape[0]
    features = shape[2]
    out_shape = (*shape[:2], units)
    tensors = [_float_tensor("x", shape, 0)]
    buffers = [_buffer()]
    inputs = [0]

    def constant(name: str, tensor_shape) -> None:
        values = rng.uniform(-0.6, 0.6, tensor_shape).astype(np.float32)
        buffers.append(_buffer(values))
        tensors.append(_float_tensor(name, tensor_shape, len(buffers) - 1))
        inputs.append(len(tensors) - 1)

    gates = ("input", "forget", "cell", "output")
    for kind, tensor_shape in (("w", (units, features)), ("r", (units, units))):
        for gate in gates:
            if coupled and gate == "input":
                inputs.append(-1)
            else:
                constant(f"{kind}_{gate}", tensor_shape)
    for gate in ("input", "forget", "output"):
        if peephole and not (coupled and gate == "input"):
            constant(f"p_{gate}", (units,))
        else:
            inputs.append(-1)
    for gate in gates:
        if coupled and gate == "input":
            inputs.append(-1)
        else:
            constant(f"b_{gate}", (units,))
    if projection:
        constant("projection", (units, units))
        inputs.append(-1)
    else:
        inputs += [-1, -1]
    for name in ("h", "c"):
        buffers.append(_buffer())
        tensors.append(_float_tensor(name, (batch, units), len(buffers) - 1, variable=True))
        inputs.append(len(tensors) - 1)
    inputs += [-1] * 4  # no layer normalisation
    buffers.append(_buffer())
    tensors.append(_float_tensor("y", out_shape, len(buffers) - 1))
    options = schema.UnidirectionalSequenceLSTMOptionsT()
    options.fusedActivationFunction = schema.ActivationFunctionType.TANH
    options.cellClip, options.timeMajor = 3.0, time_major
    operator = _operator(
        0,
        inputs,
        [len(tensors) - 1],
        schema.BuiltinOptions.UnidirectionalSequenceLSTMOptions,
        options,
    )
    code = _code(Op.UNIDIRECTIONAL_SEQUENCE_LSTM, 1)
    return _finish(path, [code], [operator], tensors, buffers, [0], [len(tensors) - 1])


def lstm_int8(
    path: Path,
    shape: tuple[int, int, int],
    units: int,
    rng: np.random.Generator,
    params: dict,
    time_major: bool = False,
) -> Path:
    """An int8 UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite's 8x8_16 scheme (int8 input,
    hidden state and weights, int16 cell state) with random weights, per-gate weight
    scales and biases. `params` holds the input's and the hidden state's (scale, zero
    point), the cell state's scale and the cell clip (0: none)."""
    batch = shape[1] if time_major else shape[0]
    features = shape[2]
    int16 = schema.TensorType.INT16
    tensors = [_int8_tensor("x", shape, params["input"], 0)]
    buffers = [_buffer()]

    def add(tensor, values: np.ndarray | None = None) -> int:
        buffers.append(_buffer(values))
        tensor.buffer = len(buffers) - 1
        tensors.append(tensor)
        return len(tensors) - 1

    inputs = [0]
    for kind, tensor_shape in (("w", (units, features)), ("r", (units, units))):
        for gate in ("input", "forget", "cell", "output"):
            scale = float(np.float32(rng.uniform(0.002, 0.05)))
            values = rng.integers(-127, 128, tensor_shape).astype(np.int8)
            inputs.append(add(_int8_tensor(f"{kind}_{gate}", tensor_shape, (scale, 0), 0), values))
    inputs += [-1] * 3  # no peephole
    for gate in ("input", "forget", "cell", "output"):
        bias = rng.integers(-3000, 3000, units).astype(np.int32)
        inputs.append(add(_typed(_int8_tensor(f"b_{gate}", (units,), (1e-5, 0), 0), INT32), bias))
    inputs += [-1, -1]  # no projection
    hidden = _int8_tensor("h", (batch, units), params["hidden"], 0)
    cell = _typed(_int8_tensor("c", (batch, units), (params["cell"], 0), 0), int16)
    for state in (hidden, cell):
        state.isVariable = True
        inputs.append(add(state))
    inputs += [-1] * 4  # no layer normalisation
    out_shape = (*shape[:2], units)
    output = add(_int8_tensor("y", out_shape, params["hidden"], 0))
    options = schema.UnidirectionalSequenceLSTMOptionsT()
    options.fusedActivationFunction = schema.ActivationFunctionType.TANH
    options.cellClip, options.timeMajor = params["clip"], time_major
    operator = _operator(
        0, inputs, [output], schema.BuiltinOptions.UnidirectionalSequenceLSTMOptions, options
    )
    code = _code(Op.UNIDIRECTIONAL_SEQUENCE_LSTM, 1)
    return _finish(path, [code], [operator], tensors, buffers, [0], [output])


def unnamed(path: Path) -> Path:
    """`path`'s TFLite file with every tensor name removed (valid TFLite)."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    for tensor in model.subgraphs[0].tensors:
        tensor.name = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def svdf_int8(
    path: Path,
    features: int = 6,
    units: int = 4,
    memory: int = 3,
    rank: int = 1,
    batch: int = 1,
    state: tuple[str, float, int] = ("int16", 0.002, 0),
    seed: int = 0,
    scales: dict | None = None,
) -> Path:
    """An int8 SVDF as TFLite's integer SVDF takes it: int8 input, feature weights and
    output, time weights and state of `state`'s type (with its scale and zero point),
    an int32 bias at state x time weights scale. `scales` may replace the input's and
    output's (scale, zero point) and the feature and time weights' scales."""
    rng = np.random.default_rng(seed)
    state_type = {"int8": schema.TensorType.INT8, "int16": schema.TensorType.INT16}[state[0]]
    filters = units * rank
    scales = {
        "input": (0.05, 3),
        "output": (0.1, -4),
        "feature": 0.01,
        "time": 0.001 if state[0] == "int16" else 0.015,
    } | (scales or {})
    time_scale = scales["time"]
    time_range = 999 if state[0] == "int16" else 127
    tensors = [
        _int8_tensor("x", (batch, features), scales["input"], 0),
        _int8_tensor("w_feature", (filters, features), (scales["feature"], 0), 1),
        _typed(_int8_tensor("w_time", (filters, memory), (time_scale, 0), 2), state_type),
        _typed(_int8_tensor("b", (units,), (state[1] * time_scale, 0), 3), INT32),
        _typed(_int8_tensor("state", (batch, filters * memory), state[1:], 0), state_type),
        _int8_tensor("y", (batch, units), scales["output"], 0),
    ]
    tensors[4].isVariable = True
    buffers = [
        _buffer(),
        _buffer(rng.integers(-127, 128, (filters, features)).astype(np.int8)),
        _buffer(rng.integers(-time_range, time_range, (filters, memory)).astype(state[0])),
        _buffer(rng.integers(-3000, 3000, units).astype(np.int32)),
    ]
    options = schema.SVDFOptionsT()
    options.rank = rank
    options.fusedActivationFunction = schema.ActivationFunctionType.RELU
    operator = _operator(0, [0, 1, 2, 3, 4], [5], schema.BuiltinOptions.SVDFOptions, options)
    return _finish(path, [_code(Op.SVDF, 3)], [operator], tensors, buffers, [0], [5])


def elementwise_int8(path: Path, builtin: int, shapes, params, constant=None) -> Path:
    """An int8 ADD, SUB or MUL of x1 and x2 (broadcasting `shapes` of x1, x2, y;
    `params` their (scale, zero point)); x2 is a constant holding `constant` when
    given, as in ``x - 0.5``, else a second input."""
    tensors = [
        _int8_tensor(name, shape, p, 0)
        for name, shape, p in zip(("x1", "x2", "y"), shapes, params, strict=True)
    ]
    buffers = [_buffer()]
    if constant is not None:
        buffers.append(_buffer(np.asarray(constant, np.int8).reshape(shapes[1])))
        tensors[1].buffer = 1
    inputs = [0] if constant is not None else [0, 1]
    operator = _operator(0, [0, 1], [2])
    return _finish(path, [_code(builtin, 2)], [operator], tensors, buffers, inputs, [2])


def hybrid_conv2d(
    path: Path,
    shape,
    weights: np.ndarray,
    scale: float | np.ndarray,
    strides=(1, 1),
    same: bool = True,
    depthwise: bool = False,
) -> Path:
    """A hybrid CONV_2D: float input [N, H, W, C], int8 weights [O, KH, KW, C] with one
    scale or one per output channel, float bias, fused RELU6; or with `depthwise` a
    DEPTHWISE_CONV_2D, weights [1, KH, KW, C * multiplier]."""
    units = weights.shape[3] if depthwise else weights.shape[0]
    scales = [float(s) for s in np.ravel(scale)]
    tensors = [_float_tensor("x", shape, 0), _float_tensor("w", weights.shape, 1)]
    tensors[1].type = schema.TensorType.INT8
    tensors[1].quantization = schema.QuantizationParametersT()
    tensors[1].quantization.scale, tensors[1].quantization.zeroPoint = scales, [0] * len(scales)
    tensors[1].quantization.quantizedDimension = 3 if depthwise else 0
    tensors.append(_float_tensor("b", (units,), 2))
    height, width = (
        (-(-shape[1] // strides[0]), -(-shape[2] // strides[1]))
        if same
        else (
            (shape[1] - weights.shape[1]) // strides[0] + 1,
            (shape[2] - weights.shape[2]) // strides[1] + 1,
        )
    )
    tensors.append(_float_tensor("y", (shape[0], height, width, units), 0))
    bias = np.linspace(-0.5, 0.5, units).astype(np.float32)
    buffers = [_buffer(), _buffer(weights.astype(np.int8)), _buffer(bias)]
    if depthwise:
        options = schema.DepthwiseConv2DOptionsT()
        options.depthMultiplier = units // shape[3]
        kind, code = schema.BuiltinOptions.DepthwiseConv2DOptions, _code(Op.DEPTHWISE_CONV_2D, 6)
    else:
        options = schema.Conv2DOptionsT()
        kind, code = schema.BuiltinOptions.Conv2DOptions, _code(Op.CONV_2D, 2)
    options.padding = schema.Padding.SAME if same else schema.Padding.VALID
    options.strideH, options.strideW = strides
    options.dilationHFactor = options.dilationWFactor = 1
    options.fusedActivationFunction = schema.ActivationFunctionType.RELU6
    operator = _operator(0, [0, 1, 2], [3], kind, options)
    return _finish(path, [code], [operator], tensors, buffers, [0], [3])


def hybrid_fully_connected(path: Path, in_shape, weights: np.ndarray, scale: float) -> Path:
    """A hybrid FULLY_CONNECTED: float input (flattened to [-1, in]), int8 weights
    [units, in] with one scale, float bias, fused RELU."""
    units, features = weights.shape
    batch = int(np.prod(in_shape)) // features
    tensors = [_float_tensor("x", in_shape, 0), _float_tensor("w", weights.shape, 1)]
    tensors[1].type = schema.TensorType.INT8
    tensors[1].quantization = schema.QuantizationParametersT()
    tensors[1].quantization.scale, tensors[1].quantization.zeroPoint = [scale], [0]
    tensors += [_float_tensor("b", (units,), 2), _float_tensor("y", (batch, units), 0)]
    bias = np.linspace(-0.3, 0.3, units).astype(np.float32)
    buffers = [_buffer(), _buffer(weights.astype(np.int8)), _buffer(bias)]
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = schema.ActivationFunctionType.RELU
    operator = _operator(0, [0, 1, 2], [3], schema.BuiltinOptions.FullyConnectedOptions, options)
    return _finish(path, [_code(Op.FULLY_CONNECTED, 3)], [operator], tensors, buffers, [0], [3])


def hybrid_conv_dense(
    path: Path, shape, conv_weights: np.ndarray, dense_weights: np.ndarray, scales
) -> Path:
    """A hybrid model as TFLite's dynamic-range quantizer writes it (MLPerf Tiny's KWS
    hybrid file): float input [1, H, W, C] -> CONV_2D (SAME, RELU, int8 weights
    [O, KH, KW, C]) -> FULLY_CONNECTED (flattening, int8 weights [units, H*W*O]) ->
    float output; each weight with one scale (`scales`), float biases."""
    units, out_channels = dense_weights.shape[0], conv_weights.shape[0]
    conv_shape = (1, shape[1], shape[2], out_channels)
    tensors = [
        _float_tensor("x", shape, 0),
        _float_tensor("conv_w", conv_weights.shape, 1),
        _float_tensor("conv_b", (out_channels,), 2),
        _float_tensor("conv_y", conv_shape, 0),
        _float_tensor("dense_w", dense_weights.shape, 3),
        _float_tensor("dense_b", (units,), 4),
        _float_tensor("y", (1, units), 0),
    ]
    for index, scale in zip((1, 4), scales, strict=True):
        tensors[index].type = schema.TensorType.INT8
        tensors[index].quantization = schema.QuantizationParametersT()
        tensors[index].quantization.scale, tensors[index].quantization.zeroPoint = [scale], [0]
    buffers = [
        _buffer(),
        _buffer(conv_weights.astype(np.int8)),
        _buffer(np.linspace(-0.2, 0.3, out_channels).astype(np.float32)),
        _buffer(dense_weights.astype(np.int8)),
        _buffer(np.linspace(-0.1, 0.1, units).astype(np.float32)),
    ]
    conv = schema.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW = schema.Padding.SAME, 1, 1
    conv.dilationHFactor = conv.dilationWFactor = 1
    conv.fusedActivationFunction = schema.ActivationFunctionType.RELU
    dense = schema.FullyConnectedOptionsT()
    operators = [
        _operator(0, [0, 1, 2], [3], schema.BuiltinOptions.Conv2DOptions, conv),
        _operator(1, [3, 4, 5], [6], schema.BuiltinOptions.FullyConnectedOptions, dense),
    ]
    codes = [_code(Op.CONV_2D, 2), _code(Op.FULLY_CONNECTED, 3)]
    return _finish(path, codes, operators, tensors, buffers, [0], [6])


def resize_bilinear_int8(
    path: Path, shape, size, params, corners: bool = False, half_pixel: bool = False
) -> Path:
    """int8 RESIZE_BILINEAR of NHWC `shape` to `size` (height, width)."""
    out_shape = (shape[0], *size, shape[3])
    tensors = [
        _int8_tensor("x", tuple(shape), params, 0),
        _typed(_int8_tensor("size", (2,), (1.0, 0), 1), INT32),
        _int8_tensor("y", out_shape, params, 0),
    ]
    tensors[1].quantization = None
    options = schema.ResizeBilinearOptionsT()
    options.alignCorners, options.halfPixelCenters = corners, half_pixel
    operator = _operator(0, [0, 1], [2], schema.BuiltinOptions.ResizeBilinearOptions, options)
    buffers = [_buffer(), _buffer(np.array(size, np.int32))]
    return _finish(path, [_code(Op.RESIZE_BILINEAR, 4)], [operator], tensors, buffers, [0], [2])


def detection_postprocess(
    path: Path,
    num_classes_with_background: int,
    anchors: np.ndarray,
    options: dict,
    sized: bool = True,
) -> Path:
    """A float TFLite_Detection_PostProcess (custom op, flexbuffer options) on box
    encodings [1, boxes, 4] and class scores [1, boxes, classes]; its four outputs
    have the static shapes TFLite Micro needs (max_detections rows), or where not
    `sized` the shape [] that TFLite's converter writes (LiteRT sizes them at run
    time)."""
    from flatbuffers import flexbuffers

    boxes = len(anchors)
    rows = options["max_detections"] * options["max_classes_per_detection"]
    shapes = [
        ("box_encodings", [1, boxes, 4]),
        ("class_predictions", [1, boxes, num_classes_with_background]),
        ("anchors", [boxes, 4]),
        ("detection_boxes", [1, rows, 4]),
        ("detection_classes", [1, rows]),
        ("detection_scores", [1, rows]),
        ("num_detections", [1]),
    ]
    if not sized:
        shapes[3:] = [(name, []) for name, _ in shapes[3:]]
    tensors = [_float_tensor(name, shape, i + 1) for i, (name, shape) in enumerate(shapes)]
    buffers = [_buffer() for _ in range(len(shapes) + 1)]
    buffers[3] = _buffer(anchors.astype(np.float32))
    code = _code(Op.CUSTOM)
    code.customCode = "TFLite_Detection_PostProcess"
    operator = _operator(0, [0, 1, 2], [3, 4, 5, 6])
    operator.customOptions = list(flexbuffers.Dumps(options))
    return _finish(path, [code], [operator], tensors, buffers, [0, 1], [3, 4, 5, 6])


def split_detection_model(path: Path, head: Path, postprocess: Path) -> tuple[Path, Path]:
    """The SSD file at `path` cut before its last op, TFLite_Detection_PostProcess:
    `head` returns that op's box encodings and class scores, `postprocess` is the op
    alone (its anchors kept) with the static output shapes TFLite Micro needs."""
    from flatbuffers import flexbuffers

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = model.subgraphs[0]
    operator = graph.operators[-1]
    encodings, scores, _ = operator.inputs
    rows = flexbuffers.Loads(bytes(operator.customOptions))["max_detections"]
    for index, shape in zip(
        operator.outputs, [[1, rows, 4], [1, rows], [1, rows], [1]], strict=True
    ):
        graph.tensors[index].shape = shape
    for target, operators, inputs, outputs in (
        (head, graph.operators[:-1], graph.inputs, [encodings, scores]),
        (postprocess, [operator], [encodings, scores], operator.outputs),
    ):
        graph.operators, graph.inputs, graph.outputs = operators, inputs, outputs
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        target.write_bytes(builder.Output())
    return head, postprocess


def transpose_conv_bias(
    path: Path, in_shape, weights: np.ndarray, bias: np.ndarray, strides, same: bool
) -> Path:
    """MediaPipe's float Convolution2DTransposeBias (custom op): OHWI weights, a bias,
    raw TfLiteTransposeConvParams options (padding 1 same / 2 valid, stride width,
    stride height); the output shape as MediaPipe's Prepare computes it."""
    import struct

    out_channels, kernel_h, kernel_w, _ = weights.shape
    out_shape = [1, 0, 0, out_channels]
    for axis, (size, extent, stride) in enumerate(
        ((in_shape[1], kernel_h, strides[0]), (in_shape[2], kernel_w, strides[1])), start=1
    ):
        padding = max(0, extent - (size - 1) % stride - 1) if same else 0
        out_shape[axis] = stride * (size - 1) + extent - padding
    tensors = [
        _float_tensor("x", in_shape, 1),
        _float_tensor("w", weights.shape, 2),
        _float_tensor("b", bias.shape, 3),
        _float_tensor("y", out_shape, 4),
    ]
    buffers = [_buffer(), _buffer(), _buffer(weights.astype(np.float32))]
    buffers += [_buffer(bias.astype(np.float32)), _buffer()]
    code = _code(Op.CUSTOM)
    code.customCode = "Convolution2DTransposeBias"
    operator = _operator(0, [0, 1, 2], [3])
    operator.customOptions = list(struct.pack("<3i", 1 if same else 2, strides[1], strides[0]))
    return _finish(path, [code], [operator], tensors, buffers, [0], [3])


def streaming_state_int8(path: Path, initial: np.ndarray, params: tuple[float, int]) -> Path:
    """A streaming model's state as microWakeWord's models hold it: CALL_ONCE runs an
    init subgraph that assigns the resource variable `initial`; the main subgraph
    reads it, returns concat(state, x) along axis 1 and assigns x as the next state.
    int8 tensors share `params`."""
    shape = tuple(initial.shape)
    resource = schema.TensorT()
    resource.name, resource.shape, resource.buffer = "handle", [], 0
    resource.type = schema.TensorType.RESOURCE

    def handle_op(opcode: int, output: int):
        options = schema.VarHandleOptionsT()
        options.sharedName = "stream/state"
        return _operator(opcode, [], [output], schema.BuiltinOptions.VarHandleOptions, options)

    codes = [
        _code(Op.CALL_ONCE),
        _code(Op.VAR_HANDLE),
        _code(Op.READ_VARIABLE),
        _code(Op.CONCATENATION),
        _code(Op.ASSIGN_VARIABLE),
    ]
    once = schema.CallOnceOptionsT()
    once.initSubgraphIndex = 1
    concat = schema.ConcatenationOptionsT()
    concat.axis = 1
    main = schema.SubGraphT()
    main.name = "main"
    main.tensors = [
        _int8_tensor("x", shape, params, 0),
        resource,
        _int8_tensor("state", shape, params, 0),
        _int8_tensor("y", (shape[0], 2 * shape[1], *shape[2:]), params, 0),
    ]
    main.operators = [
        _operator(0, [], [], schema.BuiltinOptions.CallOnceOptions, once),
        handle_op(1, 1),
        _operator(2, [1], [2]),
        _operator(3, [2, 0], [3], schema.BuiltinOptions.ConcatenationOptions, concat),
        _operator(4, [1, 0], []),
    ]
    main.inputs, main.outputs = [0], [3]
    init = schema.SubGraphT()
    init.name = "init"
    init_handle = schema.TensorT()
    init_handle.name, init_handle.shape, init_handle.buffer = "handle", [], 0
    init_handle.type = schema.TensorType.RESOURCE
    init.tensors = [init_handle, _int8_tensor("initial", shape, params, 1)]
    init.operators = [handle_op(1, 0), _operator(4, [0, 1], [])]
    init.inputs, init.outputs = [], []
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [main, init]
    model.buffers = [_buffer(), _buffer(initial.astype(np.int8))]
    model.description = "tvmq test"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path
