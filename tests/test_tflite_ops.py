"""TFLite ops TVM's importer gets wrong or refuses (tvmq.frontend.tflite_ops): int8
ones bit-exact with TFLite Micro, float LSTM within 1e-4 of LiteRT, and the ops tvmq
cannot run exactly refused by node."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import tflite_op_models as models
from tests.micro_reference import micro_outputs, micro_run, random_int8
from tests.test_uint8 import reference_run
from tests.tflite_ops import BUILD_EXAMPLES
from tvmq.frontend import load_model, read_source

RNG = np.random.default_rng(19)
ZOO = Path.home() / ".cache" / "tvmq-zoo"


def assert_matches_micro(path: Path, shapes, count: int = 1, runs: int = 3) -> None:
    executable = load_model(path).build("host")
    for _ in range(runs):
        inputs = [random_int8(shape) for shape in shapes]
        got = executable(*inputs)
        expected = micro_outputs(path, inputs, count)
        assert len(got) == count
        for ours, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("in_shape", "units", "params"),
    [
        ((1, 5, 4, 3), 6, [(0.05, 3), (0.01, 0), (0.2, -7)]),
        ((2, 3, 8), 5, [(0.1, -128), (0.02, 0), (0.5, 20)]),
    ],
    ids=["4d-batch1", "3d-batch6"],
)
def test_fully_connected_flattens_nd_input(tmp_path, in_shape, units, params):
    features = in_shape[-1] if len(in_shape) == 3 else int(np.prod(in_shape[1:]))
    weights = RNG.integers(-127, 128, (units, features)).astype(np.int8)
    path = models.fully_connected_nd(tmp_path / "fc.tflite", in_shape, weights, params)
    assert_matches_micro(path, [in_shape])


@pytest.mark.parametrize(
    ("shape", "indices", "params"),
    [
        ((1, 4, 5, 3), [[[0, 1], [0, 3]], [[0, 2], [0, 0]]], [(0.05, 3), (0.05, 3)]),
        ((6, 4), [[5], [0], [2]], [(0.1, -2), (0.3, 7)]),
    ],
    ids=["pairs", "rows-new-params"],
)
def test_gather_nd_int8_matches_tflite_micro(tmp_path, shape, indices, params):
    path = models.gather_nd_int8(tmp_path / "g.tflite", shape, np.array(indices), params)
    assert_matches_micro(path, [shape])


@pytest.mark.parametrize(
    ("shape", "count", "axis", "params"),
    [
        ((2, 3), 3, 1, [(0.05, 3)] * 4),
        ((4,), 2, 0, [(0.05, 3), (0.1, -1), (0.2, 0)]),
        ((1, 2, 3), 2, -1, [(0.5, 0)] * 3),
    ],
    ids=["middle", "first-new-params", "last"],
)
def test_pack_int8_matches_tflite_micro(tmp_path, shape, count, axis, params):
    path = models.pack_int8(tmp_path / "p.tflite", shape, count, axis, params)
    assert_matches_micro(path, [shape] * count)


@pytest.mark.parametrize(("shape", "axis"), [((3, 2, 4), 0), ((2, 3, 2), 2)])
def test_unpack_int8_matches_tflite_micro(tmp_path, shape, axis):
    path = models.unpack_int8(tmp_path / "u.tflite", shape, axis, (0.07, -9))
    assert_matches_micro(path, [shape], count=shape[axis])


@pytest.mark.parametrize(
    ("shape", "variant"),
    [
        ((2, 5, 3), {}),
        ((1, 4, 6), {"coupled": True}),
        ((4, 2, 3), {"peephole": True, "time_major": True}),
    ],
    ids=["full", "coupled", "peephole-time-major"],
)
def test_float_lstm_matches_litert(tmp_path, shape, variant):
    from ai_edge_litert.interpreter import Interpreter

    path = models.lstm_float(tmp_path / "lstm.tflite", shape, 4, RNG, **variant)
    executable = load_model(path).build("host")
    for _ in range(3):
        x = RNG.uniform(-2, 2, shape).astype(np.float32)
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(executable(x)[0], expected, rtol=1e-4, atol=1e-5)


def test_unnamed_tensors_get_stable_names(tmp_path):
    path = models.unnamed(models.pack_int8(tmp_path / "p.tflite", (2,), 2, 0, [(0.1, 0)] * 3))
    source = read_source(path)
    assert [s.name for s in source.inputs] == ["tvmgen_tensor_0", "tvmgen_tensor_1"]
    assert source.nodes == [("tvmgen_tensor_2", "PACK")]
    assert_matches_micro(path, [(2,), (2,)])


@pytest.mark.parametrize(
    "svdf",
    [
        {},
        {"rank": 2, "batch": 3, "memory": 5},
        {"state": ("int8", 0.8, -50), "units": 6, "memory": 8},
        {"state": ("int16", 0.004, 7), "rank": 3, "seed": 5},
    ],
    ids=["int16-state", "rank-2-three-batches", "int8-state", "int16-state-zero-point"],
)
def test_quantized_svdf_matches_tflite_micro(tmp_path, svdf):
    """TFLite Micro's integer SVDF on its first invocation (the state reset): the
    newest feature column only, older ones at their reset value; no fused ReLU."""
    from tests.test_mul_concat import assert_integer_only

    path = models.svdf_int8(tmp_path / "svdf.tflite", **svdf)
    batch = svdf.get("batch", 1)
    assert_matches_micro(path, [(batch, 6)])
    assert_integer_only(load_model(path))


@BUILD_EXAMPLES
@given(data=st.data())
def test_quantized_svdf_with_drawn_scales_matches_tflite_micro(data):
    """Drawn scales, zero points, state type, rank and sizes."""

    def scale(low: float, high: float) -> float:
        return float(np.float32(2.0 ** data.draw(st.floats(low, high))))

    state_type = data.draw(st.sampled_from(["int8", "int16"]))
    limit = 127 if state_type == "int8" else 300
    svdf = {
        "units": data.draw(st.integers(1, 5)),
        "memory": data.draw(st.integers(1, 6)),
        "rank": data.draw(st.integers(1, 3)),
        "batch": data.draw(st.integers(1, 3)),
        "state": (state_type, scale(-12.0, 0.0), data.draw(st.integers(-limit, limit))),
        "seed": data.draw(st.integers(0, 2**32 - 1)),
        "scales": {
            "input": (scale(-8.0, 0.0), data.draw(st.integers(-128, 127))),
            "output": (scale(-8.0, 0.0), data.draw(st.integers(-128, 127))),
            "feature": scale(-9.0, -4.0),
            "time": scale(-12.0, -4.0),
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        path = models.svdf_int8(Path(folder) / "svdf.tflite", **svdf)
        assert_matches_micro(path, [(svdf["batch"], 6)], runs=2)


@pytest.mark.parametrize(
    ("shape", "params"),
    [((1, 2), (0.07, 2)), ((3, 10), (0.5, -20)), ((2, 5, 7), (0.02, 100))],
    ids=["two-classes", "wide-scale", "3d"],
)
def test_int8_softmax_into_int16_matches_tflite_micro(tmp_path, shape, params):
    """TFLite Micro's 8-to-16 softmax (keyword_scrambled's), output at 1/65536."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.test_mul_concat import assert_integer_only
    from tests.tflite_ops import quantized, single_op

    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    path = single_op(
        tmp_path / "s.tflite",
        models.Op.SOFTMAX,
        [quantized("x", shape, params)],
        [quantized("y", shape, (1 / 65536, -32768), "int16")],
        options,
    )
    assert_matches_micro(path, [shape])
    assert_integer_only(load_model(path))


@pytest.mark.parametrize(
    ("dtype", "params"),
    [
        ("int16", [(1 / 65536, -32768), (1 / 32768, 0)]),
        ("int8", [(0.05, 3), (0.0007, -9)]),
        ("int16", [(0.002, 0), (0.03, 100)]),
    ],
    ids=["int16-softmax-output", "int8-left-shift", "int16-right-shift"],
)
def test_quantize_into_int32_matches_tflite_micro(tmp_path, dtype, params):
    """TFLite's Requantize into int32 (TVM's quantize has no int32 output)."""
    from tests.tflite_ops import quantized, single_op

    path = single_op(
        tmp_path / "q.tflite",
        models.Op.QUANTIZE,
        [quantized("x", (2, 9), params[0], dtype)],
        [quantized("y", (2, 9), params[1], "int32")],
    )
    executable = load_model(path).build("host")
    info = np.iinfo(dtype)
    for _ in range(3):
        x = RNG.integers(info.min, info.max + 1, (2, 9)).astype(dtype)
        np.testing.assert_array_equal(executable(x)[0], micro_outputs(path, [x])[0])


ZOO_MODELS = ["micro_speech", "mnist_lstm_float", "movenet_lightning_int8", "keyword_scrambled"]


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_model_matches_its_reference(name):
    """The real models these converters were written for, when the zoo cache has them."""
    work = ZOO / "work" / name
    if not (ZOO / f"{name}.tflite").is_file() or not (work / "reference.npz").is_file():
        pytest.skip(f"{name} is not in {ZOO}")
    inputs = [np.load(p) for p in sorted(work.glob("input*.npy"))]
    reference = np.load(work / "reference.npz")
    got = load_model(ZOO / f"{name}.tflite").build("host")(*inputs)
    for ours, theirs in zip(got, (reference[k] for k in reference.files), strict=True):
        if theirs.dtype == np.float32:
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize(
    ("shapes", "constant"),
    [
        ([(1, 4, 4, 3), (1, 4, 4, 3), (1, 4, 4, 3)], None),
        ([(1, 4, 4, 3), (), (1, 4, 4, 3)], 127),
        ([(1, 4, 4, 3), (1, 1, 1, 3), (1, 4, 4, 3)], [-128, 5, 99]),
    ],
    ids=["inputs", "scalar-constant", "channel-constant"],
)
def test_elementwise_power_of_two_scales_match_tflite_micro(tmp_path, op, shapes, constant):
    """Scales in a ratio of 2 (movenet's input normalisation: 2/255 and 1/255) make
    ties frequent, where a float island rounds one step off TFLite Micro; constant
    operands are read as activations."""
    from tests.test_mul_concat import assert_integer_only

    params = [(2 / 255, -128), (1 / 255, -128), (2 / 255, -1)]
    builtin = getattr(models.Op, op)
    path = models.elementwise_int8(tmp_path / "e.tflite", builtin, shapes, params, constant)
    assert_matches_micro(path, shapes[:1] if constant is not None else shapes[:2])
    assert_integer_only(load_model(path))


@pytest.mark.parametrize(
    ("shape", "kernel", "strides", "same"),
    [((1, 9, 6, 3), (5, 3, 2), (2, 2), True), ((2, 5, 5, 4), (3, 1, 1), (1, 1), False)],
    ids=["same-strided", "valid-two-batches"],
)
def test_hybrid_conv2d_matches_litert_bit_for_bit(tmp_path, shape, kernel, strides, same):
    """Hybrid CONV_2D quantizes its input per batch at run time, as LiteRT does."""
    units, kh, kw = kernel
    weights = RNG.integers(-127, 128, (units, kh, kw, shape[3])).astype(np.int8)
    path = models.hybrid_conv2d(tmp_path / "h.tflite", shape, weights, 0.02, strides, same)
    executable = load_model(path).build("host")
    for _ in range(3):
        x = RNG.normal(0, 1, shape).astype(np.float32)
        x[0, 0, 0, 0] = 0.0
        np.testing.assert_array_equal(executable(x)[0], reference_run(path, [x])[0])


@pytest.mark.parametrize(
    ("shape", "kernel", "strides", "same", "depthwise"),
    [((1, 9, 6, 3), (5, 3, 2), (2, 2), True, False),
     ((2, 5, 5, 4), (3, 1, 1), (1, 1), False, False),
     ((1, 8, 7, 4), (8, 3, 3), (1, 1), True, True),
     ((2, 6, 6, 3), (3, 3, 3), (2, 2), True, True)],
    ids=["conv-same-strided", "conv-valid-two-batches", "depthwise-multiplier-2",
         "depthwise-strided-two-batches"],
)  # fmt: skip
def test_per_channel_hybrid_convolutions_match_litert_bit_for_bit(
    tmp_path, shape, kernel, strides, same, depthwise
):
    """Per-channel hybrid CONV_2D and DEPTHWISE_CONV_2D (what dynamic-range quantization
    of a float model writes) as LiteRT's reference kernels run them: the input
    quantized asymmetrically per batch, ties on x / scale rounded away from zero
    before the offset is added, then the per-channel float rescale in their order."""
    units, kh, kw = kernel
    weight_shape = (1, kh, kw, units) if depthwise else (units, kh, kw, shape[3])
    weights = RNG.integers(-127, 128, weight_shape).astype(np.int8)
    scales = RNG.uniform(0.005, 0.05, units).astype(np.float32)
    path = models.hybrid_conv2d(
        tmp_path / "h.tflite", shape, weights, scales, strides, same, depthwise
    )
    executable = load_model(path).build("host")
    for index in range(3):
        x = RNG.normal(0.5, 1, shape).astype(np.float32)
        if index == 0:  # values on multiples of the step, where rounding ties sit
            x = np.round(x * 8) / 8
        np.testing.assert_array_equal(executable(x)[0], reference_run(path, [x])[0])


@pytest.mark.parametrize("in_shape", [(1, 12), (3, 2, 5)], ids=["flat", "3d-three-batches"])
def test_hybrid_fully_connected_matches_litert_bit_for_bit(tmp_path, in_shape):
    features = in_shape[-1] if len(in_shape) == 3 else in_shape[1]
    weights = RNG.integers(-127, 128, (7, features)).astype(np.int8)
    path = models.hybrid_fully_connected(tmp_path / "h.tflite", in_shape, weights, 0.01)
    executable = load_model(path).build("host")
    for _ in range(3):
        x = RNG.normal(0, 1, in_shape).astype(np.float32)
        np.testing.assert_array_equal(executable(x)[0], reference_run(path, [x])[0])


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_hybrid_conv2d_and_lstm_run_on_a_cortex_m_board(tmp_path):
    """The run-time quantization of hybrid ops and the unrolled LSTM build for the
    MCU's C backend (no abs/round intrinsics there) and agree with the host (float
    rounding of the library functions aside)."""
    weights = RNG.integers(-127, 128, (5, 3, 2, 3)).astype(np.int8)
    conv = models.hybrid_conv2d(tmp_path / "h.tflite", (1, 9, 6, 3), weights, 0.02, (2, 2))
    lstm = models.lstm_float(tmp_path / "l.tflite", (1, 4, 3), 4, RNG)
    for path, shape in ((conv, (1, 9, 6, 3)), (lstm, (1, 4, 3))):
        model = load_model(path)
        x = RNG.normal(0, 1, shape).astype(np.float32)
        with model.build("qemu-cortex-m4") as board:
            np.testing.assert_allclose(board(x)[0], model.build("host")(x)[0], atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "size", "corners", "half_pixel"),
    [
        ((1, 6, 6, 5), (12, 12), False, True),
        ((1, 4, 5, 3), (7, 9), False, False),
        ((2, 5, 3, 2), (9, 4), True, False),
        ((1, 8, 8, 2), (3, 5), False, True),
    ],
    ids=["half-pixel-x2", "plain", "align-corners", "half-pixel-down"],
)
def test_resize_bilinear_int8_matches_tflite_micro(tmp_path, shape, size, corners, half_pixel):
    path = models.resize_bilinear_int8(
        tmp_path / "r.tflite", shape, size, (0.3, 7), corners, half_pixel
    )
    assert_matches_micro(path, [shape])


def test_lstm_with_projection_is_refused_by_node(tmp_path):
    path = models.lstm_float(tmp_path / "lstm.tflite", (1, 3, 2), 4, RNG, projection=True)
    reason = "projection or layer normalisation is not supported"
    assert read_source(path).unsupported() == [("y", "UNIDIRECTIONAL_SEQUENCE_LSTM", reason)]


def test_float_lstm_quantizes_and_runs(tmp_path):
    """tvmq's PTQ of an imported LSTM (no constant state left for it to observe)."""
    from tvmq.quantize.quantizer import quantize_model

    model = load_model(models.lstm_float(tmp_path / "lstm.tflite", (1, 4, 3), 4, RNG))
    calibration = [[RNG.uniform(-2, 2, (1, 4, 3)).astype(np.float32)] for _ in range(16)]
    quantized = quantize_model(model, calibration)
    assert quantized.quantization["quantized_ops"]
    run_float, run_int = model.build("host"), quantized.build("host")
    for (x,) in calibration[:4]:
        np.testing.assert_allclose(run_int(x)[0], run_float(x)[0], atol=0.1)


def mediapipe_transpose_conv_bias(x, weights, bias, strides, same: bool) -> np.ndarray:
    """MediaPipe's reference loop (transpose_conv_bias.cc), in float64: each input
    pixel adds its kernel-weighted values into the output, starting P // 2 before
    stride * index, where P = max(0, kernel - (in - 1) % stride - 1) for SAME."""
    _, height, width, _ = x.shape
    out_channels, kernel_h, kernel_w, _ = weights.shape
    sizes, starts = [], []
    for size, extent, stride in ((height, kernel_h, strides[0]), (width, kernel_w, strides[1])):
        padding = max(0, extent - (size - 1) % stride - 1) if same else 0
        sizes.append(stride * (size - 1) + extent - padding)
        starts.append(padding // 2)
    out = np.zeros(
        (1, sizes[0] + kernel_h + 2 * starts[0], sizes[1] + kernel_w + 2 * starts[1], out_channels)
    )
    for in_y in range(height):
        for in_x in range(width):
            y, x0 = in_y * strides[0], in_x * strides[1]
            patch = np.einsum("c,ohwc->hwo", x[0, in_y, in_x].astype(np.float64), weights)
            out[0, y : y + kernel_h, x0 : x0 + kernel_w] += patch
    cropped = out[:, starts[0] : starts[0] + sizes[0], starts[1] : starts[1] + sizes[1]]
    return cropped + bias


@pytest.mark.parametrize(
    ("in_hw", "kernel", "strides", "same"),
    [((5, 6), 3, (2, 2), True), ((4, 4), 2, (2, 2), True), ((3, 5), 4, (2, 1), False),
     ((4, 3), 3, (1, 1), True)],
)  # fmt: skip
def test_mediapipe_transpose_conv_bias_matches_its_kernel(tmp_path, in_hw, kernel, strides, same):
    """MediaPipe's custom op (selfie and hair segmentation): the output size and the
    cropped padding of its Prepare and Eval, within float32 rounding of its loop."""
    rng = np.random.default_rng(sum(in_hw) + kernel)
    x = rng.standard_normal((1, *in_hw, 3)).astype(np.float32)
    weights = rng.standard_normal((4, kernel, kernel, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    path = models.transpose_conv_bias(tmp_path / "m.tflite", x.shape, weights, bias, strides, same)
    model = load_model(path)
    want = mediapipe_transpose_conv_bias(x, weights, bias, strides, same)
    got = model.build("host")(x)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_resource_variables_read_their_initial_values(tmp_path):
    """A streaming model's state (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and a
    CALL_ONCE init subgraph, as in microWakeWord's models) reads the values the init
    subgraph assigns: every call gives TFLite Micro's first invocation."""
    rng = np.random.default_rng(4)
    initial = rng.integers(-128, 128, (1, 2, 4)).astype(np.int8)
    path = models.streaming_state_int8(tmp_path / "m.tflite", initial, (0.5, 3))
    executable = load_model(path).build("host")
    for _ in range(2):
        x = random_int8((1, 2, 4), rng)
        got = executable(x)[0]
        np.testing.assert_array_equal(got, micro_outputs(path, [x])[0])
        np.testing.assert_array_equal(got[:, :2], initial)


@pytest.mark.parametrize("slope_shape", [(1, 1, 16), (16,), (6, 5, 16)])
def test_float_prelu_matches_tflite_micro_with_its_slope_unbroadcast(tmp_path, slope_shape):
    """MediaPipe's landmark models: TVM stored the slope at the activation's size."""
    from tests.tflite_ops import float_prelu
    from tvmq.backend.aot import lower_model

    rng = np.random.default_rng(len(slope_shape))
    shape = (1, 6, 5, 16)
    slope = rng.uniform(-0.5, 0.5, slope_shape).astype(np.float32)
    path = float_prelu(tmp_path / "prelu.tflite", shape, slope)
    model = load_model(path)
    assert len(lower_model(model).weights) == slope.nbytes
    inputs = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(model.build("host")(inputs)[0], micro_run(path, [inputs]))


@pytest.mark.parametrize(
    ("shape_a", "shape_b", "adjoint", "constant_b"),
    [((2, 3, 4), (4, 5), (False, False), True), ((1, 2, 3, 4), (2, 5, 4), (False, True), False),
     ((2, 4, 3), (2, 4, 5), (True, False), True)],
)  # fmt: skip
def test_float_batch_matmul_broadcasts_and_takes_constants(
    tmp_path, shape_a, shape_b, adjoint, constant_b
):
    """tf2onnx's MatMul with a weight (openWakeWord's mel spectrogram): TVM's failed on
    a constant operand and on batch dims of different ranks."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.tflite_ops import Operand, single_op

    rng = np.random.default_rng(len(shape_a) + len(shape_b))
    b = rng.standard_normal(shape_b).astype(np.float32)
    out = np.matmul(
        np.swapaxes(np.zeros(shape_a), -1, -2) if adjoint[0] else np.zeros(shape_a),
        np.swapaxes(b, -1, -2) if adjoint[1] else b,
    ).shape
    operand_b = Operand("b", shape_b, "float32", data=b if constant_b else None)
    options = schema.BatchMatMulOptionsT()
    options.adjX, options.adjY = adjoint
    path = single_op(
        tmp_path / "bmm.tflite", schema.BuiltinOperator.BATCH_MATMUL,
        [Operand("a", shape_a, "float32"), operand_b], [Operand("y", out, "float32")], options,
    )  # fmt: skip
    inputs = [rng.standard_normal(shape_a).astype(np.float32)] + ([] if constant_b else [b])
    got = load_model(path).build("host")(*inputs)[0]
    np.testing.assert_allclose(got, micro_run(path, inputs), rtol=1e-5, atol=1e-5)
