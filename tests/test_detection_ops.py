"""Ops of detection and segmentation CNNs (transposed convolution, resize, clipping
with input bounds): built for the host and as C, quantized, against the references."""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import onnx
import pytest

from tests import onnx_models
from tests.micro_reference import micro_run, random_int8
from tests.test_aot import native
from tests.test_mul_concat import assert_integer_only
from tests.test_onnx_import import ort_run, quantize_with_onnxruntime, random_feeds
from tests.tflite_models import resize_bilinear_int8, transpose_conv_int8
from tvmq.frontend import load_model, read_source
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize

RNG = np.random.default_rng(11)


def assert_host_and_c_match_onnxruntime(proto, tmp_path):
    """The float model's host build and its emitted C agree with onnxruntime on
    random inputs; returns the loaded model."""
    model = load_model(saved(proto, tmp_path))
    host = model.build("host")
    _, library = native(model, tmp_path)
    feeds = random_feeds(proto, RNG)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_allclose(host(*feeds.values())[0], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(library(*feeds.values())[0], want, rtol=1e-4, atol=1e-5)
    return model


def assert_host_and_c_match_tflite_micro(path, in_shape, tmp_path) -> None:
    """The int8 model's host build and its emitted C equal tflite-micro's outputs
    on random inputs, with no float op left."""
    model = load_model(path)
    host = model.build("host")
    _, library = native(model, tmp_path)
    for _ in range(3):
        x = random_int8(in_shape)
        want = micro_run(path, [x])
        np.testing.assert_array_equal(host(x)[0], want)
        np.testing.assert_array_equal(library(x)[0], want)
    assert_integer_only(model)


def ops(model) -> set[str]:
    bindings = [b for block in model.mod["main"].body.blocks for b in block.bindings]
    return {getattr(getattr(b.value, "op", None), "name", None) for b in bindings}


def saved(proto: onnx.ModelProto, tmp_path, name: str = "model"):
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, path)
    return path


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"group": 2},
        {"pads": (1, 1, 1, 1), "output_padding": (1, 1)},
        {"stride": 1, "pads": (1, 0, 1, 0)},
        {"stride": 3, "pads": (2, 2, 2, 2)},
    ],
    ids=["stride2", "groups", "output-padding", "stride1-asymmetric", "cropped"],
)
def test_conv_transpose_matches_onnxruntime_on_host_and_in_c(options, tmp_path):
    """ONNX ConvTranspose, channels-last: no conv2d_transpose left for a backend to
    refuse; the host build and the emitted C agree with onnxruntime."""
    proto = onnx_models.conv_transpose(**options)
    model = assert_host_and_c_match_onnxruntime(proto, tmp_path)
    assert "relax.nn.conv2d_transpose" not in ops(model)


@pytest.mark.parametrize(
    ("stride", "same", "kernel"),
    [(2, False, 3), (2, True, 4), (1, True, 3), (3, False, 2)],
    ids=["valid", "same", "stride1", "cropped"],
)
def test_int8_transpose_conv_is_bit_exact_with_tflite_micro(stride, same, kernel, tmp_path):
    out_channels, in_shape = 5, (1, 4, 5, 3)
    weights = RNG.integers(-127, 128, (out_channels, kernel, kernel, in_shape[-1]))
    bias = RNG.integers(-3000, 3000, out_channels)
    params = ((0.05, 3), (0.1, -7), RNG.uniform(0.001, 0.01, out_channels))
    path = transpose_conv_int8(
        tmp_path / "tconv.tflite", in_shape, weights, bias, params, stride, same
    )
    assert_host_and_c_match_tflite_micro(path, in_shape, tmp_path)


def test_int8_transpose_conv_without_bias_imports_bit_exact(tmp_path):
    """TRANSPOSE_CONV's bias is optional: an absent one (input index -1) imports, and
    the result is tflite-micro's."""
    in_shape = (1, 4, 5, 3)
    weights = RNG.integers(-127, 128, (5, 3, 3, in_shape[-1]))
    params = ((0.05, 3), (0.1, -7), RNG.uniform(0.001, 0.01, 5))
    path = transpose_conv_int8(tmp_path / "tconv.tflite", in_shape, weights, None, params, 2, True)
    host = load_model(path).build("host")
    for _ in range(3):
        x = random_int8(in_shape)
        np.testing.assert_array_equal(host(x)[0], micro_run(path, [x]))


def test_quantized_conv_transpose_is_integer_and_close_to_float(tmp_path):
    proto = onnx_models.conv_transpose(pads=(1, 1, 1, 1), output_padding=(1, 1))
    model = load_model(saved(proto, tmp_path))
    samples = [list(random_feeds(proto, RNG).values()) for _ in range(16)]
    quantized = quantize_model(model, samples)
    text = quantized.mod.script(show_meta=False)
    assert text.count("R.quantize(") >= 2  # both convolutions run on integers
    host = quantized.build("host")
    for sample in samples[:4]:
        (want,) = ort_run(proto, dict(zip(("x",), sample, strict=True)))
        (got,) = host(*sample)
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()


def test_qdq_conv_transpose_runs_on_integers_within_one_step(tmp_path):
    """onnxruntime's QDQ ConvTranspose: realized as an integer conv2d, within one
    output step of the graph's own QDQ semantics."""
    proto = onnx_models.conv_transpose(pads=(1, 1, 1, 1), output_padding=(1, 1))
    samples = [{"x": RNG.uniform(-1, 1, (1, 3, 5, 5)).astype(np.float32)} for _ in range(16)]
    qdq_path = tmp_path / "qdq.onnx"
    qdq, output_scale = quantize_with_onnxruntime(saved(proto, tmp_path), qdq_path, samples)
    model = load_model(qdq_path)
    convs = [
        b.var
        for b in main_bindings(realize(model.mod))
        if getattr(getattr(b.value, "op", None), "name", None) == "relax.nn.conv2d"
    ]
    assert [str(var.ty.dtype) for var in convs] == ["int32", "int32"]  # integer sums
    host = model.build("host")
    for sample in samples[:4]:
        (want,) = ort_run(qdq, sample, optimize=False)
        assert np.abs(host(sample["x"])[0] - want).max() <= output_scale * 1.001


def test_clip_with_input_bounds_quantizes(tmp_path):
    """Clip's bounds as inputs (opset 13, constants): the quantized model runs close
    to float."""
    proto = onnx_models.clip_inputs()
    model = load_model(saved(proto, tmp_path))
    samples = [list(random_feeds(proto, RNG).values()) for _ in range(16)]
    host = quantize_model(model, samples).build("host")
    for sample in samples[:4]:
        (want,) = ort_run(proto, {"x": sample[0]})
        (got,) = host(*sample)
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()


def test_shape_computed_reshape_imports_with_static_dims(tmp_path):
    """A Reshape whose target comes from Shape -> Slice -> Concat is folded to a
    constant at import (the dims are static) and matches onnxruntime."""
    proto = onnx_models.shape_reshape()
    executable = load_model(saved(proto, tmp_path)).build("host")
    feeds = random_feeds(proto, RNG)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_allclose(executable(*feeds.values())[0], want, rtol=1e-4, atol=1e-5)


def test_if_on_static_shapes_keeps_the_taken_branch(tmp_path):
    """An `If` whose condition folds (batch size 1, from Shape -> Gather -> Equal) is
    replaced by its taken branch, nested `If`s included: the model imports, matches
    onnxruntime and quantizes, as torch.onnx's batch guards in Silero VAD need."""
    proto = onnx_models.shape_if()
    path = saved(proto, tmp_path)
    assert "If" not in {node.op_type for node in read_source(path).proto.graph.node}
    model = load_model(path)
    feeds = random_feeds(proto, RNG)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_allclose(model.build("host")(*feeds.values())[0], want, rtol=1e-4, atol=1e-5)
    samples = [list(random_feeds(proto, RNG).values()) for _ in range(8)]
    host = quantize_model(model, samples).build("host")
    for sample in samples[:3]:
        (want,) = ort_run(proto, {"x": sample[0]})
        (got,) = host(*sample)
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()


def test_weights_computed_from_constants_are_parameters(tmp_path):
    """fp16 weights Cast (and transposed) to float32 are folded to float32 initializers:
    they count as the model's parameters, once, and the model matches onnxruntime."""
    proto = onnx_models.fp16_weights()
    path = saved(proto, tmp_path)
    params = read_source(path).params
    assert sorted(params) == ["g", "w"]
    assert params["w"].dtype == np.float32 and params["g"].shape == (4, 8)
    feeds = random_feeds(proto, RNG)
    (want,) = ort_run(proto, feeds)
    got = load_model(path).build("host")(*feeds.values())[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("mode", "transform"),
    [("nearest", "asymmetric"), ("linear", "half_pixel"), ("linear", "align_corners")],
)
def test_resize_matches_onnxruntime_on_host_and_in_c(mode, transform, tmp_path):
    assert_host_and_c_match_onnxruntime(onnx_models.conv_resize(mode, transform), tmp_path)


@pytest.mark.parametrize(
    ("mode", "transform"), [("nearest", "asymmetric"), ("linear", "half_pixel")]
)
def test_quantized_resize_runs_on_integers(mode, transform, tmp_path):
    """Nearest resize copies the integers; bilinear interpolates them with ONNX's
    exact taps, then requantizes to its own output parameters."""
    proto = onnx_models.conv_resize(mode, transform)
    model = load_model(saved(proto, tmp_path))
    samples = [list(random_feeds(proto, RNG).values()) for _ in range(8)]
    quantized = quantize_model(model, samples)
    realized = {
        (getattr(getattr(b.value, "op", None), "name", None), str(getattr(b.var.ty, "dtype", "")))
        for b in main_bindings(realize(quantized.mod))
    }
    integer = ("relax.image.resize2d", "int8") if mode == "nearest" else ("relax.take", "int32")
    assert integer in realized and ("relax.image.resize2d", "float32") not in realized
    host = quantized.build("host")
    _, library = native(quantized, tmp_path)
    for sample in samples[:3]:
        (want,) = ort_run(proto, {"x": sample[0]})
        got = host(*sample)[0]
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
        np.testing.assert_allclose(library(*sample)[0], got, rtol=1e-6)  # the float dequantize


def exact_resize(x: np.ndarray, out_size: int, transform: str, zero_point: int) -> np.ndarray:
    """What an ONNX QDQ Resize means, computed exactly: each source coordinate a
    Fraction, the weighted sum of the centred neighbours rounded half to even."""
    size = x.shape[-1]
    weights = np.zeros((out_size, size), dtype=object)
    for o in range(out_size):
        if transform == "align_corners":
            coordinate = Fraction(o * (size - 1), out_size - 1)
        else:  # half_pixel
            coordinate = (o + Fraction(1, 2)) * Fraction(size, out_size) - Fraction(1, 2)
        coordinate = min(max(coordinate, Fraction(0)), Fraction(size - 1))
        low = int(coordinate)
        weights[o, low] += 1 - (coordinate - low)
        weights[o, min(low + 1, size - 1)] += coordinate - low
    denominator = int(np.lcm.reduce([w.denominator for w in weights.ravel()]))
    integer = (weights * denominator).astype(np.int64)
    centred = x.astype(np.int64) - zero_point
    total = np.einsum("yi,ncij,xj->ncyx", integer, centred, integer)
    quotient, remainder = np.divmod(total, denominator**2)
    up = 2 * remainder + quotient % 2 > denominator**2
    info = np.iinfo(x.dtype)
    return np.clip(quotient + up + zero_point, info.min, info.max).astype(x.dtype)


@pytest.mark.parametrize(
    ("in_size", "out_size", "transform", "dtype", "zero_point"),
    [(128, 512, "align_corners", "int8", 94), (20, 80, "half_pixel", "uint8", 131)],
)
def test_onnx_qdq_resize_is_the_exact_float_resize_within_one_step_of_onnxruntime(
    in_size, out_size, transform, dtype, zero_point, tmp_path
):
    """An ONNX QDQ Resize means dequantize -> float resize -> quantize, not TFLite's
    integer kernel (whose 1/1024 taps put align_corners' last output a quarter pixel
    off): integers only, equal to the exact value, and within one step of
    onnxruntime's float32 arithmetic (off only where that rounds across a half)."""
    proto = onnx_models.qdq_resize(in_size, out_size, transform, dtype, 0.1256779, zero_point)
    model = load_model(saved(proto, tmp_path))
    realized = {
        (getattr(getattr(b.value, "op", None), "name", None), str(getattr(b.var.ty, "dtype", "")))
        for b in main_bindings(realize(model.mod))
    }
    assert ("relax.image.resize2d", "float32") not in realized
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, (1, 2, in_size, in_size), endpoint=True).astype(dtype)
    got = model.build("host")(x)[0]
    np.testing.assert_array_equal(got, exact_resize(x, out_size, transform, zero_point))
    (want,) = ort_run(proto, {"x": x}, optimize=False)
    steps = np.abs(got.astype(int) - want.astype(int))
    assert steps.max() <= 1 and np.count_nonzero(steps) <= 0.01 * steps.size


@pytest.mark.parametrize(
    ("size", "align_corners", "half_pixel"),
    [((8, 10), False, False), ((8, 10), False, True), ((7, 9), True, False), ((3, 2), False, True)],
    ids=["asymmetric", "half-pixel", "align-corners", "downscale"],
)
def test_int8_resize_bilinear_is_bit_exact_with_tflite_micro(
    size, align_corners, half_pixel, tmp_path
):
    in_shape = (1, 4, 5, 3)
    path = resize_bilinear_int8(
        tmp_path / "resize.tflite", in_shape, size, (0.05, -3), align_corners, half_pixel
    )
    assert_host_and_c_match_tflite_micro(path, in_shape, tmp_path)


def int8_detection_ops(tmp_path) -> list:
    """A TRANSPOSE_CONV and a RESIZE_BILINEAR model (int8, TFLite)."""
    weights = RNG.integers(-127, 128, (5, 3, 3, 3))
    bias = RNG.integers(-3000, 3000, 5)
    params = ((0.05, 3), (0.1, -7), RNG.uniform(0.001, 0.01, 5))
    shape = (1, 4, 5, 3)
    return [
        transpose_conv_int8(tmp_path / "tconv.tflite", shape, weights, bias, params, 2, True),
        resize_bilinear_int8(tmp_path / "resize.tflite", shape, (8, 10), (0.05, -3), False, True),
    ]


@pytest.mark.parametrize(
    ("target", "tools"),
    [
        ("qemu-cortex-m4", ("arm-none-eabi-gcc", "qemu-system-arm")),
        ("rpi4", ("aarch64-linux-gnu-gcc", "qemu-aarch64")),
    ],
)
def test_int8_detection_ops_on_cortex_m_and_a_are_bit_exact(target, tools, tmp_path):
    if not all(shutil.which(tool) for tool in tools):
        pytest.skip(f"{' and '.join(tools)} are needed (make toolchains)")
    for path in int8_detection_ops(tmp_path):
        x = random_int8((1, 4, 5, 3))
        built = load_model(path).build(target)
        if target.startswith("qemu-cortex-m"):
            with built as board:
                got = board(x)[0]
        else:
            got = built(x)[0]
        np.testing.assert_array_equal(got, micro_run(path, [x]))
