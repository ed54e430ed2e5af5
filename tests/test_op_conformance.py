"""Per-op int8 conformance: every op kind tvmq imports on int8 graphs, as a one-op
model with drawn shapes and random scales and zero points, built for the host and
compared bit for bit with the TFLite Micro interpreter (with LiteRT's reference
kernels for the int8 math ops TFLite Micro has no kernel for)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from hypothesis import given
from hypothesis import strategies as st

from tests.micro_reference import micro_outputs, micro_run, random_int8
from tests.tflite_ops import BUILD_EXAMPLES, Operand, constant, quantized, single_op
from tvmq.frontend import load_model
from tvmq.quantize.realize import realize

OP = schema.BuiltinOperator
ACTIVATION = schema.ActivationFunctionType
PADDING = schema.Padding


@dataclass(frozen=True)
class OpCase:
    """One drawn single-op model."""

    builtin: int
    inputs: list[Operand | None]
    outputs: list[Operand]
    options: object = None
    version: int = 1


Draw = Callable[[st.SearchStrategy], object]


def _params(draw: Draw) -> tuple[float, int]:
    """A random per-tensor (scale, zero point): scales from 2**-10 to 4."""
    exponent = draw(st.floats(-10.0, 2.0, allow_nan=False))
    return float(np.float32(2.0**exponent)), draw(st.integers(-128, 127))


def _near(draw: Draw, params: tuple[float, int]) -> tuple[float, int]:
    """Parameters for an op's output: a scale within 4x of the input's (TFLite Micro
    refuses some activations whose scales are too far apart)."""
    scale = float(np.float32(params[0] * 2.0 ** draw(st.floats(-2.0, 2.0))))
    return scale, draw(st.integers(-128, 127))


def _shape(draw: Draw, rank: int, low: int = 1, high: int = 6) -> tuple[int, ...]:
    return tuple(draw(st.integers(low, high)) for _ in range(rank))


def _options(cls, **fields):
    options = cls()
    for name, value in fields.items():
        setattr(options, name, value)
    return options


def _weights(draw: Draw, shape) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    if padding == PADDING.SAME:
        return -(-size // stride)
    return (size - kernel) // stride + 1


def _activation(draw: Draw) -> int:
    return draw(st.sampled_from([ACTIVATION.NONE, ACTIVATION.RELU, ACTIVATION.RELU6]))


def _conv(draw: Draw, depthwise: bool) -> OpCase:
    height, width = draw(st.integers(3, 8)), draw(st.integers(3, 8))
    channels = draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    padding = draw(st.sampled_from([PADDING.SAME, PADDING.VALID]))
    in_params = _params(draw)
    if depthwise:
        multiplier = draw(st.integers(1, 2))
        out_channels = channels * multiplier
        weight_shape, weight_axis = (1, kh, kw, out_channels), 3
    else:
        out_channels = draw(st.integers(1, 4))
        weight_shape, weight_axis = (out_channels, kh, kw, channels), 0
    weight_scales = tuple(
        float(np.float32(2.0 ** draw(st.floats(-9.0, -4.0)))) for _ in range(out_channels)
    )
    weights = Operand(
        "w",
        weight_shape,
        "int8",
        weight_scales,
        (0,) * out_channels,
        weight_axis if out_channels > 1 else 0,
        _weights(draw, weight_shape),
    )
    bias_seed = draw(st.integers(0, 2**32 - 1))
    bias = Operand(
        "b",
        (out_channels,),
        "int32",
        tuple(float(np.float32(in_params[0] * s)) for s in weight_scales),
        (0,) * out_channels,
        0,
        np.random.default_rng(bias_seed).integers(-2000, 2000, out_channels).astype(np.int32),
    )
    out_shape = (
        1,
        _conv_out(height, kh, stride, padding),
        _conv_out(width, kw, stride, padding),
        out_channels,
    )
    common = {
        "padding": padding,
        "strideW": stride,
        "strideH": stride,
        "fusedActivationFunction": _activation(draw),
        "dilationWFactor": 1,
        "dilationHFactor": 1,
    }
    if depthwise:
        options = _options(schema.DepthwiseConv2DOptionsT, depthMultiplier=multiplier, **common)
        builtin = OP.DEPTHWISE_CONV_2D
    else:
        options = _options(schema.Conv2DOptionsT, **common)
        builtin = OP.CONV_2D
    x = quantized("x", (1, height, width, channels), in_params)
    y = quantized("y", out_shape, _params(draw))
    return OpCase(builtin, [x, weights, bias], [y], options, 3)


def _transpose_conv(draw: Draw) -> OpCase:
    height, width, channels = draw(st.integers(1, 4)), draw(st.integers(1, 4)), 2
    units, kernel, stride = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 2)),
    )
    padding = draw(st.sampled_from([PADDING.SAME, PADDING.VALID]))
    in_params = _params(draw)
    scales = tuple(float(np.float32(2.0 ** draw(st.floats(-9.0, -4.0)))) for _ in range(units))
    shape = (units, kernel, kernel, channels)
    weights = Operand("w", shape, "int8", scales, (0,) * units, 0, _weights(draw, shape))

    def size(n: int) -> int:
        return n * stride if padding == PADDING.SAME else (n - 1) * stride + kernel

    out_shape = (1, size(height), size(width), units)
    inputs = [
        constant("output_shape", np.array(out_shape, np.int32)),
        weights,
        quantized("x", (1, height, width, channels), in_params),
    ]
    options = _options(
        schema.TransposeConvOptionsT, padding=padding, strideW=stride, strideH=stride
    )
    return OpCase(OP.TRANSPOSE_CONV, inputs, [quantized("y", out_shape, _params(draw))], options, 3)


def _fully_connected(draw: Draw) -> OpCase:
    batch, depth, units = draw(st.integers(1, 3)), draw(st.integers(1, 16)), draw(st.integers(1, 8))
    in_params = _params(draw)
    weight_scale = float(np.float32(2.0 ** draw(st.floats(-9.0, -4.0))))
    weights = Operand(
        "w", (units, depth), "int8", (weight_scale,), (0,), 0, _weights(draw, (units, depth))
    )
    bias = None
    if draw(st.booleans()):
        values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(-2000, 2000, units)
        scale = float(np.float32(in_params[0] * weight_scale))
        bias = Operand("b", (units,), "int32", (scale,), (0,), 0, values.astype(np.int32))
    options = _options(schema.FullyConnectedOptionsT, fusedActivationFunction=_activation(draw))
    x = quantized("x", (batch, depth), in_params)
    y = quantized("y", (batch, units), _params(draw))
    return OpCase(OP.FULLY_CONNECTED, [x, weights, bias], [y], options, 4)


def _binary(builtin: int, options_class) -> Callable[[Draw], OpCase]:
    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, 4)
        other = tuple(d if draw(st.booleans()) else 1 for d in shape)
        shapes = [shape, other] if draw(st.booleans()) else [other, shape]
        activation = draw(st.sampled_from([ACTIVATION.NONE, ACTIVATION.RELU]))
        x1, x2 = (quantized(f"x{i}", s, _params(draw)) for i, s in enumerate(shapes))
        y = quantized("y", shape, _params(draw))
        options = _options(options_class, fusedActivationFunction=activation)
        return OpCase(builtin, [x1, x2], [y], options, 2)

    return case


def _same_params_binary(builtin: int) -> Callable[[Draw], OpCase]:
    """MAXIMUM / MINIMUM: TFLite requires one set of parameters for all three."""

    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, 4)
        params = _params(draw)
        x1, x2 = quantized("x1", shape, params), quantized("x2", shape, params)
        return OpCase(builtin, [x1, x2], [quantized("y", shape, params)], None, 2)

    return case


def _below_one(draw: Draw) -> tuple[float, int]:
    """Parameters with a scale below 1, as TFLite's int8 comparisons require (their
    Prepare aborts otherwise)."""
    exponent = draw(st.floats(-10.0, -0.1, allow_nan=False))
    return float(np.float32(2.0**exponent)), draw(st.integers(-128, 127))


def _comparison(builtin: int) -> Callable[[Draw], OpCase]:
    """EQUAL ... LESS_EQUAL: two int8 operands, each with its own parameters and
    broadcast either way, compared as real values (TFLite Micro rescales both)."""

    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, 4)
        other = tuple(d if draw(st.booleans()) else 1 for d in shape)
        shapes = [shape, other] if draw(st.booleans()) else [other, shape]
        x1, x2 = (quantized(f"x{i}", s, _below_one(draw)) for i, s in enumerate(shapes))
        return OpCase(builtin, [x1, x2], [Operand("y", shape, "bool")], None, 2)

    return case


def _pool(builtin: int) -> Callable[[Draw], OpCase]:
    def case(draw: Draw) -> OpCase:
        height, width, channels = draw(st.integers(2, 8)), draw(st.integers(2, 8)), 3
        fh, fw = draw(st.integers(1, min(3, height))), draw(st.integers(1, min(3, width)))
        stride = draw(st.integers(1, 2))
        padding = draw(st.sampled_from([PADDING.SAME, PADDING.VALID]))
        params = _params(draw)
        options = _options(
            schema.Pool2DOptionsT,
            padding=padding,
            strideW=stride,
            strideH=stride,
            filterWidth=fw,
            filterHeight=fh,
            fusedActivationFunction=ACTIVATION.NONE,
        )
        out_shape = (
            1,
            _conv_out(height, fh, stride, padding),
            _conv_out(width, fw, stride, padding),
            channels,
        )
        x = quantized("x", (1, height, width, channels), params)
        return OpCase(builtin, [x], [quantized("y", out_shape, params)], options, 2)

    return case


def _reduce(builtin: int, same_params: bool) -> Callable[[Draw], OpCase]:
    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, 4, high=5)
        axes = draw(st.sampled_from([(1, 2), (2, 1), (3,), (0, 1, 2, 3), (1,), (-1,)]))
        keep = draw(st.booleans())
        resolved = {a % 4 for a in axes}
        out_shape = tuple(
            1 if i in resolved else d for i, d in enumerate(shape) if keep or i not in resolved
        )
        in_params = _params(draw)
        out_params = in_params if same_params or draw(st.booleans()) else _params(draw)
        x = quantized("x", shape, in_params)
        axis = constant("axis", np.array(axes, np.int32))
        options = _options(schema.ReducerOptionsT, keepDims=keep)
        return OpCase(builtin, [x, axis], [quantized("y", out_shape, out_params)], options, 2)

    return case


def _softmax(draw: Draw) -> OpCase:
    shape = _shape(draw, 2, high=12)
    x = quantized("x", shape, _params(draw))
    y = quantized("y", shape, (1.0 / 256.0, -128))
    return OpCase(OP.SOFTMAX, [x], [y], _options(schema.SoftmaxOptionsT, beta=1.0), 2)


def _reshape(draw: Draw) -> OpCase:
    shape = _shape(draw, 4)
    new_shape = (shape[0], int(np.prod(shape[1:])))
    params = _params(draw)
    x = quantized("x", shape, params)
    target = constant("shape", np.array(new_shape, np.int32))
    options = _options(schema.ReshapeOptionsT, newShape=list(new_shape))
    return OpCase(OP.RESHAPE, [x, target], [quantized("y", new_shape, params)], options)


def _concatenation(draw: Draw) -> OpCase:
    shape = _shape(draw, 4)
    axis = draw(st.integers(0, 3))
    count = draw(st.integers(2, 3))
    params = _params(draw)
    shapes = [
        tuple(draw(st.integers(1, 4)) if i == axis else d for i, d in enumerate(shape))
        for _ in range(count)
    ]
    out_shape = tuple(sum(s[axis] for s in shapes) if i == axis else d for i, d in enumerate(shape))
    inputs = [quantized(f"x{i}", s, params) for i, s in enumerate(shapes)]
    options = _options(schema.ConcatenationOptionsT, axis=axis)
    return OpCase(OP.CONCATENATION, inputs, [quantized("y", out_shape, params)], options, 2)


def _pad(builtin: int) -> Callable[[Draw], OpCase]:
    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, 4, high=5)
        widths = np.array([[draw(st.integers(0, 2)) for _ in range(2)] for _ in shape], np.int32)
        params = _params(draw)
        out_shape = tuple(int(d + w.sum()) for d, w in zip(shape, widths, strict=True))
        inputs = [quantized("x", shape, params), constant("paddings", widths)]
        if builtin == OP.PADV2:
            value = np.array([draw(st.integers(-128, 127))], np.int8)
            inputs.append(Operand("value", (1,), "int8", (params[0],), (params[1],), 0, value))
        return OpCase(builtin, inputs, [quantized("y", out_shape, params)], None, 2)

    return case


def _transpose(draw: Draw) -> OpCase:
    rank = draw(st.integers(2, 4))
    shape = _shape(draw, rank)
    perm = draw(st.permutations(range(rank)))
    params = _params(draw)
    out_shape = tuple(shape[p] for p in perm)
    inputs = [quantized("x", shape, params), constant("perm", np.array(perm, np.int32))]
    return OpCase(OP.TRANSPOSE, inputs, [quantized("y", out_shape, params)], None, 2)


def _unary(
    builtin: int, out_params=None, options=None, version=2, same_params=False
) -> Callable[[Draw], OpCase]:
    """An elementwise op; `out_params` fixes the output's (scale, zero point),
    `same_params` gives it the input's (TFLite Micro's RELU6 ignores the output's)."""

    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, draw(st.integers(1, 4)))
        in_params = _params(draw)
        x = quantized("x", shape, in_params)
        params = in_params if same_params else out_params or _near(draw, in_params)
        y = quantized("y", shape, params)
        drawn = options(draw) if callable(options) else options
        return OpCase(builtin, [x], [y], drawn, version)

    return case


def _leaky_alpha(draw: Draw):
    return _options(schema.LeakyReluOptionsT, alpha=draw(st.sampled_from([0.01, 0.1, 0.2, 0.5])))


def _prelu(draw: Draw) -> OpCase:
    """A constant int8 slope of a shape that broadcasts: per channel ([C] or, as
    Keras's shared axes write it, [1, 1, C]) or one per element."""
    shape = _shape(draw, 4)
    slope_shape = draw(st.sampled_from([shape[-1:], (1, 1, shape[-1]), shape[1:]]))
    (scale, zero_point), values = _params(draw), _weights(draw, slope_shape)
    slope = Operand("alpha", slope_shape, "int8", (scale,), (zero_point,), 0, values)
    in_params = _params(draw)
    x, y = quantized("x", shape, in_params), quantized("y", shape, _near(draw, in_params))
    return OpCase(OP.PRELU, [x, slope], [y])


def _dequantize(draw: Draw) -> OpCase:
    shape = _shape(draw, 3)
    x = quantized("x", shape, _params(draw))
    return OpCase(OP.DEQUANTIZE, [x], [Operand("y", shape, "float32")], None, 2)


def _quantize_float(draw: Draw) -> OpCase:
    shape = _shape(draw, 3)
    x = Operand("x", shape, "float32")
    return OpCase(OP.QUANTIZE, [x], [quantized("y", shape, _params(draw))], None, 2)


def _strided_slice(draw: Draw) -> OpCase:
    shape = _shape(draw, 4, high=7)
    begin, end, strides, out_shape = [], [], [], []
    for size in shape:
        start = draw(st.integers(0, size - 1))
        stop = draw(st.integers(start + 1, size))
        step = draw(st.integers(1, 2))
        begin.append(start)
        end.append(stop)
        strides.append(step)
        out_shape.append(len(range(start, stop, step)))
    params = _params(draw)
    inputs = [
        quantized("x", shape, params),
        constant("begin", np.array(begin, np.int32)),
        constant("end", np.array(end, np.int32)),
        constant("strides", np.array(strides, np.int32)),
    ]
    options = _options(schema.StridedSliceOptionsT)
    return OpCase(OP.STRIDED_SLICE, inputs, [quantized("y", tuple(out_shape), params)], options, 2)


def _resize(builtin: int, options_class) -> Callable[[Draw], OpCase]:
    def case(draw: Draw) -> OpCase:
        height, width, channels = draw(st.integers(1, 5)), draw(st.integers(1, 5)), 2
        align = draw(st.booleans())
        size = (draw(st.integers(1, 10)), draw(st.integers(1, 10)))
        half_pixel = not align and draw(st.booleans())
        params = _params(draw)
        inputs = [
            quantized("x", (1, height, width, channels), params),
            constant("size", np.array(size, np.int32)),
        ]
        options = _options(options_class, alignCorners=align, halfPixelCenters=half_pixel)
        y = quantized("y", (1, *size, channels), params)
        return OpCase(builtin, inputs, [y], options, 3)

    return case


def _squeeze(draw: Draw) -> OpCase:
    shape = tuple(d if draw(st.booleans()) else 1 for d in _shape(draw, 4, low=2))
    ones = [i for i, d in enumerate(shape) if d == 1]
    dims = ones if not ones or draw(st.booleans()) else ones[:1]
    params = _params(draw)
    out_shape = tuple(d for i, d in enumerate(shape) if i not in dims)
    options = _options(schema.SqueezeOptionsT, squeezeDims=dims)
    x, y = quantized("x", shape, params), quantized("y", out_shape, params)
    return OpCase(OP.SQUEEZE, [x], [y], options)


def _slice(draw: Draw) -> OpCase:
    shape = _shape(draw, 3, high=6)
    begin = [draw(st.integers(0, d - 1)) for d in shape]
    size = [draw(st.integers(1, d - b)) for d, b in zip(shape, begin, strict=True)]
    params = _params(draw)
    inputs = [
        quantized("x", shape, params),
        constant("begin", np.array(begin, np.int32)),
        constant("size", np.array(size, np.int32)),
    ]
    return OpCase(OP.SLICE, inputs, [quantized("y", tuple(size), params)], None, 2)


def _depth_to_space(draw: Draw) -> OpCase:
    height, width, channels = _shape(draw, 3, high=4)
    params = _params(draw)
    x = quantized("x", (1, height, width, 4 * channels), params)
    y = quantized("y", (1, 2 * height, 2 * width, channels), params)
    options = _options(schema.DepthToSpaceOptionsT, blockSize=2)
    return OpCase(OP.DEPTH_TO_SPACE, [x], [y], options, 2)


def _space_to_depth(draw: Draw) -> OpCase:
    height, width, channels = _shape(draw, 3, high=4)
    params = _params(draw)
    x = quantized("x", (1, 2 * height, 2 * width, channels), params)
    y = quantized("y", (1, height, width, 4 * channels), params)
    options = _options(schema.SpaceToDepthOptionsT, blockSize=2)
    return OpCase(OP.SPACE_TO_DEPTH, [x], [y], options, 2)


def _expand_dims(draw: Draw) -> OpCase:
    shape = _shape(draw, draw(st.integers(1, 3)))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    position = axis if axis >= 0 else axis + len(shape) + 1
    params = _params(draw)
    inputs = [quantized("x", shape, params), constant("axis", np.array([axis], np.int32))]
    y = quantized("y", (*shape[:position], 1, *shape[position:]), params)
    return OpCase(OP.EXPAND_DIMS, inputs, [y], _options(schema.ExpandDimsOptionsT))


def _gather(draw: Draw) -> OpCase:
    rows, depth = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    indices = [draw(st.integers(0, rows - 1)) for _ in range(draw(st.integers(1, 6)))]
    params = _params(draw)
    inputs = [quantized("x", (rows, depth), params), constant("i", np.array(indices, np.int32))]
    y = quantized("y", (len(indices), depth), params)
    return OpCase(OP.GATHER, inputs, [y], _options(schema.GatherOptionsT, axis=0), 2)


def _split(draw: Draw) -> OpCase:
    count, axis = draw(st.integers(2, 3)), draw(st.integers(0, 2))
    shape = tuple(count * d if i == axis else d for i, d in enumerate(_shape(draw, 3, high=4)))
    params = _params(draw)
    part = tuple(d // count if i == axis else d for i, d in enumerate(shape))
    inputs = [constant("axis", np.array(axis, np.int32)), quantized("x", shape, params)]
    outputs = [quantized(f"y{i}", part, params) for i in range(count)]
    return OpCase(OP.SPLIT, inputs, outputs, _options(schema.SplitOptionsT, numSplits=count), 2)


def _split_v(draw: Draw) -> OpCase:
    """SPLIT_V: parts of drawn sizes along the axis, one of them given as -1."""
    sizes = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(2, 3)))]
    axis = draw(st.integers(0, 2))
    shape = tuple(sum(sizes) if i == axis else d for i, d in enumerate(_shape(draw, 3, high=4)))
    params = _params(draw)
    given_sizes = list(sizes)
    given_sizes[draw(st.integers(0, len(sizes) - 1))] = -1
    inputs = [
        quantized("x", shape, params),
        constant("sizes", np.array(given_sizes, np.int32)),
        constant("axis", np.array(axis, np.int32)),
    ]
    outputs = [
        quantized(f"y{i}", tuple(n if j == axis else d for j, d in enumerate(shape)), params)
        for i, n in enumerate(sizes)
    ]
    options = _options(schema.SplitVOptionsT, numSplits=len(sizes))
    return OpCase(OP.SPLIT_V, inputs, outputs, options, 2)


def _arg(builtin: int, options_class) -> Callable[[Draw], OpCase]:
    """ARG_MAX / ARG_MIN over a drawn axis into int32 (ties: the first index)."""

    def case(draw: Draw) -> OpCase:
        shape = _shape(draw, 3, high=5)
        axis = draw(st.integers(0, 2))
        out_shape = tuple(d for i, d in enumerate(shape) if i != axis)
        axes = constant("axis", np.array([axis], np.int32))
        inputs = [quantized("x", shape, _params(draw)), axes]
        output = Operand("y", out_shape, "int32")
        options = _options(options_class, outputType=schema.TensorType.INT32)
        return OpCase(builtin, inputs, [output], options, 2)

    return case


def _pack(draw: Draw) -> OpCase:
    count, shape = draw(st.integers(2, 3)), _shape(draw, 2)
    axis = draw(st.integers(0, 2))
    params = _params(draw)
    inputs = [quantized(f"x{i}", shape, params) for i in range(count)]
    out_shape = (*shape[:axis], count, *shape[axis:])
    options = _options(schema.PackOptionsT, valuesCount=count, axis=axis)
    return OpCase(OP.PACK, inputs, [quantized("y", out_shape, params)], options, 2)


CASES: dict[str, Callable[[Draw], OpCase]] = {
    "CONV_2D": lambda draw: _conv(draw, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda draw: _conv(draw, depthwise=True),
    "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _binary(OP.ADD, schema.AddOptionsT),
    "SUB": _binary(OP.SUB, schema.SubOptionsT),
    "MUL": _binary(OP.MUL, schema.MulOptionsT),
    "MAXIMUM": _same_params_binary(OP.MAXIMUM),
    "MINIMUM": _same_params_binary(OP.MINIMUM),
    "AVERAGE_POOL_2D": _pool(OP.AVERAGE_POOL_2D),
    "MAX_POOL_2D": _pool(OP.MAX_POOL_2D),
    "MEAN": _reduce(OP.MEAN, same_params=False),
    "SUM": _reduce(OP.SUM, same_params=False),
    "REDUCE_MAX": _reduce(OP.REDUCE_MAX, same_params=True),
    "SOFTMAX": _softmax,
    "RESHAPE": _reshape,
    "CONCATENATION": _concatenation,
    "PAD": _pad(OP.PAD),
    "PADV2": _pad(OP.PADV2),
    "TRANSPOSE": _transpose,
    "RELU": _unary(OP.RELU),
    "RELU6": _unary(OP.RELU6, same_params=True),
    "LOGISTIC": _unary(OP.LOGISTIC, (1.0 / 256.0, -128)),
    "TANH": _unary(OP.TANH, (1.0 / 128.0, 0)),
    "HARD_SWISH": _unary(OP.HARD_SWISH),
    "LEAKY_RELU": _unary(OP.LEAKY_RELU, options=_leaky_alpha),
    "PRELU": _prelu,
    "RELU_N1_TO_1": _unary(OP.RELU_N1_TO_1, same_params=True),
    "ABS": _unary(OP.ABS),
    "NEG": _unary(OP.NEG, same_params=True),
    "LOG_SOFTMAX": _unary(OP.LOG_SOFTMAX, (16.0 / 256.0, 127), _options(schema.LogSoftmaxOptionsT)),
    "SQUARED_DIFFERENCE": _binary(OP.SQUARED_DIFFERENCE, schema.SquaredDifferenceOptionsT),
    "REDUCE_MIN": _reduce(OP.REDUCE_MIN, same_params=True),
    "QUANTIZE": _unary(OP.QUANTIZE),
    "QUANTIZE_FLOAT": _quantize_float,
    "DEQUANTIZE": _dequantize,
    "STRIDED_SLICE": _strided_slice,
    "SLICE": _slice,
    "SQUEEZE": _squeeze,
    "DEPTH_TO_SPACE": _depth_to_space,
    "SPACE_TO_DEPTH": _space_to_depth,
    "GATHER": _gather,
    "EXPAND_DIMS": _expand_dims,
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "ARG_MAX": _arg(OP.ARG_MAX, schema.ArgMaxOptionsT),
    "ARG_MIN": _arg(OP.ARG_MIN, schema.ArgMinOptionsT),
    "PACK": _pack,
    "EQUAL": _comparison(OP.EQUAL),
    "NOT_EQUAL": _comparison(OP.NOT_EQUAL),
    "GREATER": _comparison(OP.GREATER),
    "GREATER_EQUAL": _comparison(OP.GREATER_EQUAL),
    "LESS": _comparison(OP.LESS),
    "LESS_EQUAL": _comparison(OP.LESS_EQUAL),
    "RESIZE_BILINEAR": _resize(OP.RESIZE_BILINEAR, schema.ResizeBilinearOptionsT),
    "RESIZE_NEAREST_NEIGHBOR": _resize(
        OP.RESIZE_NEAREST_NEIGHBOR, schema.ResizeNearestNeighborOptionsT
    ),
}
# Op kinds the TFLite importer accepts quantized that TFLite Micro has no int8 kernel for.
MICRO_LACKS: dict[str, str] = {
    "RELU_N1_TO_1": "TFLite Micro has no int8 RELU_N1_TO_1",
    "NEG": "TFLite Micro's NEG is float32 only",
}


def _values(operand: Operand, rng: np.random.Generator) -> np.ndarray:
    if operand.dtype == "float32":
        return rng.uniform(-3.0, 3.0, operand.shape).astype(np.float32)
    return random_int8(operand.shape, rng)


def _marks(kind: str) -> list:
    if kind in MICRO_LACKS:
        return [pytest.mark.skip(reason=MICRO_LACKS[kind])]
    return []


@pytest.mark.parametrize("kind", [pytest.param(k, marks=_marks(k)) for k in CASES])
@BUILD_EXAMPLES
@given(data=st.data())
def test_int8_op_matches_tflite_micro(kind, data):
    case = CASES[kind](data.draw)
    seed = data.draw(st.integers(0, 2**32 - 1), label="input seed")
    with tempfile.TemporaryDirectory() as folder:
        path = single_op(
            Path(folder) / f"{kind}.tflite",
            case.builtin,
            case.inputs,
            case.outputs,
            case.options,
            case.version,
        )
        rng = np.random.default_rng(seed)
        graph_inputs = [o for o in case.inputs if o is not None and o.data is None]
        inputs = [_values(o, rng) for o in graph_inputs]
        expected = micro_outputs(path, inputs, len(case.outputs))
        got = load_model(path).build("host")(*inputs)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize(
    ("kind", "options_class"),
    [
        ("RESIZE_NEAREST_NEIGHBOR", schema.ResizeNearestNeighborOptionsT),
        ("RESIZE_BILINEAR", schema.ResizeBilinearOptionsT),
    ],
)
@pytest.mark.parametrize("size", [(1, 4), (1, 1)])
def test_align_corners_resize_to_one_row(kind, options_class, size, tmp_path):
    """align_corners with an output size of 1 reads input index 0 there, as TFLite
    Micro does (TVM's align_corners formula divides by size - 1)."""
    rng = np.random.default_rng(12)
    shape, params = (1, 3, 5, 2), (0.1, 5)
    inputs = [quantized("x", shape, params), constant("size", np.array(size, np.int32))]
    path = single_op(
        tmp_path / f"{kind}.tflite",
        getattr(OP, kind),
        inputs,
        [quantized("y", (1, *size, 2), params)],
        _options(options_class, alignCorners=True),
        3,
    )
    values = rng.integers(-128, 128, shape).astype(np.int8)
    np.testing.assert_array_equal(
        load_model(path).build("host")(values)[0], micro_run(path, [values])
    )


@pytest.mark.parametrize("kind", ["PAD", "TRANSPOSE"])
def test_layout_ops_copy_integers(kind, tmp_path):
    """Quantized PAD and TRANSPOSE run as integer code. TFLite Micro copies the
    input's integers whatever the parameters and pads with the output's zero point:
    different input and output parameters show that tvmq does the same."""
    rng = np.random.default_rng(11)
    shape = (1, 3, 4, 2)
    x = quantized("x", shape, (0.1, 5))
    if kind == "PAD":
        widths = np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32)
        extra, out_shape = constant("paddings", widths), (1, 6, 5, 2)
    else:
        extra, out_shape = constant("perm", np.array([0, 3, 1, 2], np.int32)), (1, 2, 3, 4)
    y = quantized("y", out_shape, (0.3, -7))
    path = single_op(tmp_path / f"{kind}.tflite", getattr(OP, kind), [x, extra], [y], None, 2)
    values = rng.integers(-128, 128, shape).astype(np.int8)
    model = load_model(path)
    np.testing.assert_array_equal(model.build("host")(values)[0], micro_run(path, [values]))
    text = realize(model.mod).script(show_meta=False)
    assert "float32" not in text and "R.quantize(" not in text


@pytest.mark.parametrize(
    "kind",
    [
        "LOGISTIC",
        "TANH",
        "HARD_SWISH",
        "LEAKY_RELU",
        "RELU",
        "RELU6",
        "ABS",
    ],
)
def test_activations_on_every_int8_value(kind, tmp_path):
    """Elementwise activations on all 256 int8 inputs, for a few parameter sets: a
    float island is right on most values, so a handful of random ones can miss it."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    values = np.arange(-128, 128, dtype=np.int8)
    for scale, zero_point in [(0.02, 0), (0.0625, -17), (0.3, 90)]:
        out_scale = float(np.float32(scale * 2.0 ** rng.uniform(-2, 2)))
        out_params = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}.get(
            kind, (scale, zero_point) if kind == "RELU6" else (out_scale, -5)
        )
        options = _options(schema.LeakyReluOptionsT, alpha=0.2) if kind == "LEAKY_RELU" else None
        path = single_op(
            tmp_path / f"{kind}.tflite",
            getattr(OP, kind),
            [quantized("x", (256,), (scale, zero_point))],
            [quantized("y", (256,), out_params)],
            options,
            2,
        )
        got = load_model(path).build("host")(values)[0]
        np.testing.assert_array_equal(got, micro_run(path, [values]))


@pytest.mark.parametrize(
    ("shape", "axes", "params"),
    [
        ((1, 7, 5, 16), (1, 2), [(0.05, 3), (0.021, -9)]),
        ((2, 3, 9), (-1,), [(0.3, -100), (0.7, 20)]),
        ((1, 12, 12, 4), (1, 2), [(0.013, -128), (0.013, -128)]),
    ],
    ids=["new-scale", "last-axis", "same-parameters"],
)
def test_mean_rounds_once(tmp_path, shape, axes, params):
    """MEAN requantizes its sum once, 1/N folded into the multiplier, as TFLite
    Micro does: rounding the average first, then rescaling, is one step off on
    about a fifth of the outputs when the scales differ."""
    keep = len(shape) == 4
    out_shape = tuple(1 if i in {a % len(shape) for a in axes} else d for i, d in enumerate(shape))
    if not keep:
        out_shape = tuple(d for i, d in enumerate(shape) if i not in {a % len(shape) for a in axes})
    path = single_op(
        tmp_path / "mean.tflite",
        OP.MEAN,
        [quantized("x", shape, params[0]), constant("axis", np.array(axes, np.int32))],
        [quantized("y", out_shape, params[1])],
        _options(schema.ReducerOptionsT, keepDims=keep),
        2,
    )
    values = np.random.default_rng(2).integers(-128, 128, shape).astype(np.int8)
    model = load_model(path)
    np.testing.assert_array_equal(model.build("host")(values)[0], micro_run(path, [values]))
    assert "float32" not in realize(model.mod).script(show_meta=False)


def test_float_logistic_matches_tflite_micro(tmp_path):
    """Float LOGISTIC is TFLite's piecewise kernel, exp(x) below -9 and 1 above
    16.62: a plain 1 / (1 + exp(-x)) is an ulp or two off below -9, which flipped
    six int8 outputs of YOLOX-Nano through the QUANTIZE after it."""
    values = np.linspace(-40.0, 20.0, 4001, dtype=np.float32)
    path = single_op(
        tmp_path / "logistic.tflite",
        OP.LOGISTIC,
        [Operand("x", values.shape, "float32")],
        [Operand("y", values.shape, "float32")],
    )
    got = load_model(path).build("host")(values)[0]
    np.testing.assert_array_equal(got, micro_run(path, [values]))


@pytest.mark.parametrize(("kernel", "stride"), [(1, 2), (1, 3), (2, 3)])
def test_same_transpose_conv_with_a_kernel_below_its_stride(tmp_path, kernel, stride):
    """out = in * stride reaches past the kernel: the rows and columns no input
    reaches hold the bias alone in TFLite Micro (TVM's output stopped short)."""
    rng = np.random.default_rng(kernel * 10 + stride)
    shape, units, channels = (1, 3, 2), 2, 2
    out_shape = (1, 3 * stride, 2 * stride, units)
    kernel_shape = (units, kernel, kernel, channels)
    values = rng.integers(-127, 128, kernel_shape).astype(np.int8)
    weights = Operand("w", kernel_shape, "int8", (0.01, 0.02), (0, 0), 0, values)
    bias = Operand("b", (units,), "int32", (5e-4, 1e-3), (0, 0), 0, np.array([300, -200], np.int32))
    options = _options(
        schema.TransposeConvOptionsT, padding=PADDING.SAME, strideW=stride, strideH=stride
    )
    inputs = [
        constant("output_shape", np.array(out_shape, np.int32)),
        weights,
        quantized("x", (*shape, channels), (0.05, 3)),
        bias,
    ]
    output = quantized("y", out_shape, (0.1, -5))
    path = single_op(tmp_path / "t.tflite", OP.TRANSPOSE_CONV, inputs, [output], options, 3)
    x = random_int8((*shape, channels), rng)
    np.testing.assert_array_equal(load_model(path).build("host")(x)[0], micro_run(path, [x]))


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        # TFLite Micro divides by a fixed-point reciprocal; a float island missed it
        # by a step (and by 133 where the divisor is its zero point).
        ("DIV", "no exact integer kernel in tvmq"),
        ("FLOOR_DIV", "LiteRT's divides the stored integers"),
        ("POW", "neither TFLite Micro nor LiteRT has an int8 kernel"),
        ("EQUAL", "a scale of 1 or more"),
    ],
)
def test_quantized_ops_without_a_reference_are_refused_in_one_line(tmp_path, kind, reason):
    """Quantized ops with no int8 kernel to match (or none tvmq matches) are refused
    by node, before any build."""
    from tvmq.frontend import read_source

    shape = (1, 4, 4, 3)
    inputs = [quantized("a", shape, (0.02, -10)), quantized("b", shape, (1.5, 3))]
    output = Operand("y", shape, "bool") if kind == "EQUAL" else quantized("y", shape, (0.03, 5))
    path = single_op(tmp_path / f"{kind}.tflite", getattr(OP, kind), inputs, [output], None, 2)
    ((node, op, why),) = read_source(path).unsupported()
    assert (node, op) == ("y", kind) and reason in why and "\n" not in why


@pytest.mark.parametrize("kind", ["EXP", "LOG", "RSQRT", "SQRT"])
@pytest.mark.parametrize("seed", range(3))
def test_int8_math_matches_litert_reference_kernels(tmp_path, kind, seed):
    """int8 math ops TFLite Micro has no kernel for: their oracle is LiteRT's reference
    kernels, on inputs whose real values are positive (LOG and RSQRT's domain); SQRT
    truncates its quotient by the output scale there."""
    from tests.test_uint8 import reference_run

    rng = np.random.default_rng(seed)
    shape = (1, 6, 6, 4)
    zero_point = int(rng.integers(-128, -100))
    in_params = (float(np.float32(2.0 ** rng.uniform(-8, -2))), zero_point)
    out_params = (float(np.float32(2.0 ** rng.uniform(-8, 0))), int(rng.integers(-128, 127)))
    x, y = quantized("x", shape, in_params), quantized("y", shape, out_params)
    path = single_op(tmp_path / f"{kind}.tflite", getattr(OP, kind), [x], [y])
    values = rng.integers(zero_point + 1, 128, shape).astype(np.int8)
    got = load_model(path).build("host")(values)[0]
    np.testing.assert_array_equal(got, reference_run(path, [values])[0])
