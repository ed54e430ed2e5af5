"""uint8 asymmetric TFLite models (TF1 quantization-aware training) run as integer
code, bit-exact with TFLite's reference kernels (LiteRT's BUILTIN_REF resolver;
TFLite Micro has no uint8 kernels)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from tests.tflite_graphs import GraphBuilder, uint8_weights
from tvmq.frontend import load_model
from tvmq.quantize.realize import realize

SAME, VALID = schema.Padding.SAME, schema.Padding.VALID
RELU, RELU6 = schema.ActivationFunctionType.RELU, schema.ActivationFunctionType.RELU6


def reference_run(path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    for detail, values in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], values)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def assert_matches_reference(path, seed: int = 0, runs: int = 4, integer: bool = True) -> None:
    """Host build equals LiteRT's reference kernels on random uint8 inputs (the
    extremes included), and runs without a float op when `integer`."""
    model = load_model(path)
    text = realize(model.mod).script(show_meta=False)
    float_ops = "R.quantize(" in text or "R.dequantize(" in text or 'dtype="float32"' in text
    assert float_ops != integer
    executable = model.build("host")
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        inputs = [rng.integers(0, 256, spec.shape).astype(np.uint8) for spec in model.inputs]
        for values in inputs:
            values.flat[:2] = [0, 255]
        for ours, theirs in zip(executable(*inputs), reference_run(path, inputs), strict=True):
            np.testing.assert_array_equal(ours, theirs)


def _conv(
    g: GraphBuilder, rng, x: int, shape, out_channels, kernel, stride, padding, act, name="y"
):
    batch, height, _, channels = shape
    weights, w_quant = uint8_weights(rng, (out_channels, kernel, kernel, channels))
    in_scale = g.tensors[x].quantization.scale[0]
    bias = rng.integers(-3000, 3000, out_channels).astype(np.int32)
    w = g.tensor(f"{name}_w", weights.shape, "uint8", w_quant, weights)
    b = g.tensor(f"{name}_b", bias.shape, "int32", (in_scale * w_quant[0], 0), bias)
    size = -(-height // stride) if padding == SAME else (height - kernel) // stride + 1
    y = g.tensor(name, (batch, size, size, out_channels), "uint8", (0.05, 7))
    g.op(
        "CONV_2D",
        [x, w, b],
        [y],
        padding=padding,
        strideH=stride,
        strideW=stride,
        fusedActivationFunction=act,
    )
    return y


def conv(path, rng):
    g = GraphBuilder()
    x = g.tensor("x", (1, 9, 9, 5), "uint8", (0.02, 131))
    y = _conv(g, rng, x, (1, 9, 9, 5), 6, 3, 2, SAME, RELU6)
    return g.write(path, [x], [y])


def conv_valid(path, rng):
    g = GraphBuilder()
    x = g.tensor("x", (2, 7, 7, 3), "uint8", (0.5, 0))
    y = _conv(g, rng, x, (2, 7, 7, 3), 4, 3, 1, VALID, 0)
    return g.write(path, [x], [y])


def _depthwise(path, rng, x_shape, y_shape, y_quant, **options):
    """A 3x3 DEPTHWISE_CONV_2D graph with random uint8 weights and int32 bias."""
    g = GraphBuilder()
    x = g.tensor("x", x_shape, "uint8", (0.03, 120))
    channels = y_shape[-1]
    weights, w_quant = uint8_weights(rng, (1, 3, 3, channels))
    bias = rng.integers(-2000, 2000, channels).astype(np.int32)
    w = g.tensor("w", weights.shape, "uint8", w_quant, weights)
    b = g.tensor("b", (channels,), "int32", (0.03 * w_quant[0], 0), bias)
    y = g.tensor("y", y_shape, "uint8", y_quant)
    g.op("DEPTHWISE_CONV_2D", [x, w, b], [y], **options)
    return g.write(path, [x], [y])


def depthwise(path, rng):
    return _depthwise(
        path, rng, (1, 8, 8, 6), (1, 4, 4, 6), (0.02, 0),
        padding=SAME, strideH=2, strideW=2, depthMultiplier=1, fusedActivationFunction=RELU,
    )  # fmt: skip


def depthwise_multiplier(path, rng):
    """Two output channels per input channel, dilated, VALID."""
    return _depthwise(
        path, rng, (1, 9, 9, 3), (1, 5, 5, 6), (0.05, 100),
        padding=VALID, strideH=1, strideW=1, depthMultiplier=2, dilationHFactor=2,
        dilationWFactor=2,
    )  # fmt: skip


def fully_connected(path, rng):
    g = GraphBuilder()
    x = g.tensor("x", (2, 20), "uint8", (0.04, 100))
    weights, w_quant = uint8_weights(rng, (7, 20))
    bias = rng.integers(-2000, 2000, 7).astype(np.int32)
    w = g.tensor("w", weights.shape, "uint8", w_quant, weights)
    b = g.tensor("b", (7,), "int32", (0.04 * w_quant[0], 0), bias)
    y = g.tensor("y", (2, 7), "uint8", (0.1, 140))
    g.op("FULLY_CONNECTED", [x, w, b], [y])
    return g.write(path, [x], [y])


def add(path, rng):
    g = GraphBuilder()
    a = g.tensor("a", (1, 4, 4, 3), "uint8", (0.05, 128))
    b = g.tensor("b", (1, 4, 4, 3), "uint8", (0.031, 77))
    y = g.tensor("y", (1, 4, 4, 3), "uint8", (0.07, 120))
    g.op("ADD", [a, b], [y], fusedActivationFunction=RELU6)
    return g.write(path, [a, b], [y])


def _pool(g: GraphBuilder, kind: str, x: int, y: int, padding, stride: int, size: int) -> None:
    g.op(
        kind, [x], [y], padding=padding, strideH=stride, strideW=stride, filterHeight=size,
        filterWidth=size,
    )  # fmt: skip


def pools(path, rng):
    """Average pooling (exact halves: TFLite's uint8 kernel rounds them up) and
    max pooling, both SAME-padded."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 7, 7, 4), "uint8", (0.1, 3))
    avg = g.tensor("avg", (1, 4, 4, 4), "uint8", (0.1, 3))
    big = g.tensor("max", (1, 3, 3, 4), "uint8", (0.1, 3))
    _pool(g, "AVERAGE_POOL_2D", x, avg, SAME, stride=2, size=2)
    _pool(g, "MAX_POOL_2D", x, big, VALID, stride=2, size=3)
    return g.write(path, [x], [avg, big])


def concat_softmax(path, rng):
    """Inputs with other parameters than the output (TFLite's float rescale), a
    RESHAPE, and a uint8 SOFTMAX."""
    g = GraphBuilder()
    a = g.tensor("a", (1, 2, 5), "uint8", (0.08, 100))
    b = g.tensor("b", (1, 2, 3), "uint8", (0.15, 30))
    c = g.tensor("c", (1, 2, 8), "uint8", (0.1, 128))
    shape = g.tensor("shape", (2,), "int32", data=np.array([2, 8], np.int32))
    flat = g.tensor("flat", (2, 8), "uint8", (0.1, 128))
    y = g.tensor("y", (2, 8), "uint8", (1 / 256, 0))
    g.op("CONCATENATION", [a, b], [c], axis=2)
    g.op("RESHAPE", [c, shape], [flat])
    g.op("SOFTMAX", [flat], [y], beta=1.0)
    return g.write(path, [a, b], [y])


def network(path, rng):
    """conv -> depthwise -> add (residual) -> average pool -> fully connected."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 6, 6, 4), "uint8", (0.02, 128))
    h = _conv(g, rng, x, (1, 6, 6, 4), 4, 1, 1, VALID, RELU6, name="h")
    g.tensors[h].quantization.scale, g.tensors[h].quantization.zeroPoint = [0.03], [0]
    weights, w_quant = uint8_weights(rng, (1, 3, 3, 4))
    w = g.tensor("dw", weights.shape, "uint8", w_quant, weights)
    bias = g.tensor("db", (4,), "int32", (0.03 * w_quant[0], 0), np.zeros(4, np.int32))
    d = g.tensor("d", (1, 6, 6, 4), "uint8", (0.04, 10))
    g.op(
        "DEPTHWISE_CONV_2D",
        [h, w, bias],
        [d],
        padding=SAME,
        strideH=1,
        strideW=1,
        depthMultiplier=1,
    )
    s = g.tensor("s", (1, 6, 6, 4), "uint8", (0.05, 60))
    g.op("ADD", [d, h], [s])
    p = g.tensor("p", (1, 1, 1, 4), "uint8", (0.05, 60))
    _pool(g, "AVERAGE_POOL_2D", s, p, VALID, stride=6, size=6)
    weights, w_quant = uint8_weights(rng, (3, 4))
    fw = g.tensor("fw", weights.shape, "uint8", w_quant, weights)
    fb = g.tensor("fb", (3,), "int32", (0.05 * w_quant[0], 0), np.array([5, -9, 40], np.int32))
    y = g.tensor("y", (1, 3), "uint8", (0.2, 128))
    g.op("FULLY_CONNECTED", [p, fw, fb], [y])
    return g.write(path, [x], [y])


def mul_quantize(path, rng):
    """MUL (TFLite's uint8 multiplier is float32 arithmetic), then QUANTIZE to other
    uint8 parameters and to int8."""
    g = GraphBuilder()
    a = g.tensor("a", (1, 3, 8), "uint8", (0.037, 128))
    b = g.tensor("b", (1, 3, 8), "uint8", (0.011, 33))
    m = g.tensor("m", (1, 3, 8), "uint8", (0.013, 100))
    u = g.tensor("u", (1, 3, 8), "uint8", (0.021, 90))
    s = g.tensor("s", (1, 3, 8), "int8", (0.017, -5))
    g.op("MUL", [a, b], [m])
    g.op("QUANTIZE", [m], [u])
    g.op("QUANTIZE", [m], [s])
    return g.write(path, [a, b], [u, s])


def means(path, rng):
    """MEAN over height and width (dims kept, new parameters) and over one axis."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 5, 7, 3), "uint8", (0.1, 30))
    spatial = g.tensor("spatial", (2,), "int32", data=np.array([1, 2], np.int32))
    width = g.tensor("width", (1,), "int32", data=np.array([2], np.int32))
    pooled = g.tensor("pooled", (1, 1, 1, 3), "uint8", (0.07, 100))
    rows = g.tensor("rows", (1, 5, 3), "uint8", (0.1, 30))
    g.op("MEAN", [x, spatial], [pooled], keepDims=True)
    g.op("MEAN", [x, width], [rows], keepDims=False)
    return g.write(path, [x], [pooled, rows])


def activations(path, rng):
    """RELU, RELU6, RELU_N1_TO_1 and LEAKY_RELU as ops of their own (new output
    parameters: a rescale, then the clamp)."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 16, 16), "uint8", (0.05, 120))
    outputs = []
    for name, params in [
        ("RELU", (0.04, 90)),
        ("RELU6", (0.031, 7)),
        ("RELU_N1_TO_1", (0.013, 128)),
        ("LEAKY_RELU", (0.045, 200)),
    ]:
        outputs.append(g.tensor(name.lower(), (1, 16, 16), "uint8", params))
        g.op(name, [x], [outputs[-1]], **({"alpha": 0.2} if name == "LEAKY_RELU" else {}))
    return g.write(path, [x], outputs)


def argmax(path, rng):
    """ARG_MAX of a uint8 tensor, into int32."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 4, 5, 6), "uint8", (0.1, 128))
    axis = g.tensor("axis", (1,), "int32", data=np.array([3], np.int32))
    y = g.tensor("y", (1, 4, 5), "int32")
    g.op("ARG_MAX", [x, axis], [y], outputType=schema.TensorType.INT32)
    return g.write(path, [x], [y])


CASES = [
    conv,
    conv_valid,
    depthwise,
    depthwise_multiplier,
    fully_connected,
    add,
    pools,
    concat_softmax,
    mul_quantize,
    means,
    activations,
    argmax,
    network,
]


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
def test_uint8_matches_tflite_reference(tmp_path, build):
    path = build(tmp_path / f"{build.__name__}.tflite", np.random.default_rng(7))
    assert_matches_reference(path)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_uint8_multiplier_product_as_tflite(tmp_path, op):
    """TFLite's uint8 convolutions take input scale x weight scale in float32, its
    fully connected in doubles. With these scales the two multipliers differ, and
    biases of +-97993 (weights all at their zero point, so each sum is its bias)
    land on either side of a rounding boundary: only the right product matches."""
    from tvmq.quantize.fixed_point import quantize_multiplier
    from tvmq.quantize.legacy import product_scale

    in_scale, weight_scale, out_scale = (0.010661105625331402, 0.00831943191587925, 0.1869133413)
    output = np.float64(np.float32(out_scale))
    doubles = np.float64(np.float32(in_scale)) * np.float64(np.float32(weight_scale))
    floats = product_scale(in_scale, np.array([weight_scale]))[0]
    assert quantize_multiplier(floats / output) != quantize_multiplier(doubles / output)
    g = GraphBuilder()
    flat = op == "FULLY_CONNECTED"
    x = g.tensor("x", (1, 4) if flat else (1, 1, 1, 4), "uint8", (in_scale, 128))
    shape = {"CONV_2D": (4, 1, 1, 4), "DEPTHWISE_CONV_2D": (1, 1, 1, 4)}.get(op, (4, 4))
    w = g.tensor("w", shape, "uint8", (weight_scale, 100), np.full(shape, 100, np.uint8))
    bias = np.array([-97993, 97993, 12345, -5], np.int32)
    b = g.tensor("b", (4,), "int32", (float(np.float32(floats)), 0), bias)
    y = g.tensor("y", (1, 4) if flat else (1, 1, 1, 4), "uint8", (out_scale, 128))
    options = {} if flat else {"padding": VALID, "strideH": 1, "strideW": 1}
    if op == "DEPTHWISE_CONV_2D":
        options["depthMultiplier"] = 1
    g.op(op, [x, w, b], [y], **options)
    assert_matches_reference(g.write(tmp_path / "product.tflite", [x], [y]), runs=1)


def test_uint8_mul_multiplier_as_tflite(tmp_path):
    """TFLite's uint8 MUL computes s_a * s_b / s_out in float32: with these scales
    the multiplier differs from the one from doubles, and 7 x 237 lands on the other
    side of a rounding boundary (found by search)."""
    from tvmq.quantize.fixed_point import quantize_multiplier
    from tvmq.quantize.legacy import mul_multiplier

    scales = (0.09827517718076706, 0.07169877737760544, 2.126148223876953)
    doubles = np.float64(np.float32(scales[0])) * np.float64(np.float32(scales[1]))
    real = doubles / np.float64(np.float32(scales[2]))
    assert quantize_multiplier(mul_multiplier(*scales)) != quantize_multiplier(real)
    g = GraphBuilder()
    a = g.tensor("a", (1, 3), "uint8", (scales[0], 0))
    b = g.tensor("b", (1, 3), "uint8", (scales[1], 0))
    y = g.tensor("y", (1, 3), "uint8", (scales[2], 0))
    g.op("MUL", [a, b], [y])
    path = g.write(tmp_path / "mul.tflite", [a, b], [y])
    inputs = [np.array([[7, 200, 13]], np.uint8), np.array([[237, 3, 90]], np.uint8)]
    got = load_model(path).build("host")(*inputs)[0]
    np.testing.assert_array_equal(got, reference_run(path, inputs)[0])


@pytest.mark.parametrize(
    ("align_corners", "half_pixel"), [(True, False), (False, False), (False, True)]
)
def test_uint8_resize_bilinear_matches_tflite_reference(tmp_path, align_corners, half_pixel):
    """TFLite's uint8 RESIZE_BILINEAR interpolates in float: a float island there too."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 5, 7, 3), "uint8", (0.1, 30))
    size = g.tensor("size", (2,), "int32", data=np.array([13, 11], np.int32))
    y = g.tensor("y", (1, 13, 11, 3), "uint8", (0.1, 30))
    g.op(
        "RESIZE_BILINEAR",
        [x, size],
        [y],
        alignCorners=align_corners,
        halfPixelCenters=half_pixel,
    )
    assert_matches_reference(g.write(tmp_path / "resize.tflite", [x], [y]), integer=False)


@pytest.mark.parametrize(
    ("x_params", "y_params"),
    [((0.05, 128), (0.04, 20)), ((0.021, 3), (0.033, 250)), ((0.11, 200), (0.09, 64))],
)
def test_uint8_hard_swish_is_integer_and_exact_on_every_input(tmp_path, x_params, y_params):
    """uint8 HARD_SWISH runs TFLite's int16 fixed-point kernel, equal to LiteRT's
    reference kernel on all 256 input values (a float island misses some by one)."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 256), "uint8", x_params)
    y = g.tensor("y", (1, 256), "uint8", y_params)
    g.op("HARD_SWISH", [x], [y])
    path = g.write(tmp_path / "hard_swish.tflite", [x], [y])
    model = load_model(path)
    assert 'dtype="float32"' not in realize(model.mod).script(show_meta=False)
    every = np.arange(256, dtype=np.uint8).reshape(1, 256)
    got = model.build("host")(every)[0]
    np.testing.assert_array_equal(got, reference_run(path, [every])[0])


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
@pytest.mark.parametrize("build", [network, concat_softmax], ids=["network", "concat-softmax"])
def test_uint8_on_board_is_identical_to_host(tmp_path, build):
    """The integer uint8 graph (lookup table and softmax included) builds for a
    Cortex-M board and runs there as on the host."""
    model = load_model(build(tmp_path / "model.tflite", np.random.default_rng(7)))
    host = model.build("host")
    rng = np.random.default_rng(1)
    with model.build("qemu-cortex-m4") as board:
        for _ in range(2):
            inputs = [rng.integers(0, 256, spec.shape).astype(np.uint8) for spec in model.inputs]
            for got, expected in zip(board(*inputs), host(*inputs), strict=True):
                np.testing.assert_array_equal(got, expected)
