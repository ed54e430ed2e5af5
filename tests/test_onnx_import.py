"""ONNX graphs built here agree with onnxruntime after import and host build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from tests import onnx_models
from tests.test_aot import native
from tvmq.examples import DIGITS_MODEL
from tvmq.frontend import load_model

CASES = [
    onnx_models.conv,
    onnx_models.depthwise_conv,
    onnx_models.gemm,
    onnx_models.pooling,
    onnx_models.add_concat_softmax,
    onnx_models.batch_norm,
    onnx_models.conv_prelu,
    onnx_models.conv_max_min_clamp,
]


def test_float_convolutions_are_imported_channels_last():
    """The NCHW digits CNN comes in as NHWC convolutions with OHWI weights (what the int8
    kernels read), its bindings still uniquely named and traced to their ONNX nodes."""
    model = load_model(DIGITS_MODEL)
    bindings = [b for block in model.mod["main"].body.blocks for b in block.bindings]
    convs = [b.value for b in bindings if getattr(b.value.op, "name", "") == "relax.nn.conv2d"]
    assert len(convs) == 4
    assert {(str(c.attrs.data_layout), str(c.attrs.kernel_layout)) for c in convs} == {
        ("NHWC", "OHWI")
    }
    names = [b.var.name for b in bindings]
    assert len(set(names)) == len(names)
    conv_nodes = {model.source_names[b.var.name] for b in bindings if b.value in convs}
    assert conv_nodes == {"conv1", "conv2", "dwconv", "pwconv"}


def ort_run(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], optimize=True
) -> list[np.ndarray]:
    options = onnxruntime.SessionOptions()
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def random_feeds(model: onnx.ModelProto, rng) -> dict[str, np.ndarray]:
    return {
        value.name: rng.standard_normal(
            [d.dim_value for d in value.type.tensor_type.shape.dim]
        ).astype(np.float32)
        for value in model.graph.input
    }


@pytest.mark.parametrize("make", CASES, ids=lambda f: f.__name__)
def test_float_graph_matches_onnxruntime(make, tmp_path):
    proto = make()
    path = tmp_path / f"{make.__name__}.onnx"
    onnx.save(proto, path)
    executable = load_model(path).build("host")
    rng = np.random.default_rng(0)
    for _ in range(3):
        feeds = random_feeds(proto, rng)
        (got,) = executable(*feeds.values())
        (want,) = ort_run(proto, feeds)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_arg_extremes_where_every_value_is_the_types_extreme(tmp_path, op, last, dtype):
    """Rows whose values all equal the type's lowest (highest) value: TVM's argmax
    (argmin) returned -1 there (the axis' extent with select_last_index)."""
    extreme = {"float32": np.inf, "int8": 127}[dtype] * (1 if op == "ArgMin" else -1)
    data = np.random.default_rng(3).integers(-100, 100, (3, 5)).astype(dtype)
    data[0] = extreme
    data[1, [1, 3]] = extreme
    tensor_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ["x"], ["y"], axis=1, keepdims=0, select_last_index=last)],
        "arg",
        [onnx.helper.make_tensor_value_info("x", tensor_type, data.shape)],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT64, (3,))],
    )
    opset = [onnx.helper.make_opsetid("", 13)]
    proto = onnx.helper.make_model(graph, opset_imports=opset, ir_version=8)
    onnx.save(proto, tmp_path / "arg.onnx")
    (got,) = load_model(tmp_path / "arg.onnx").build("host")(data)
    np.testing.assert_array_equal(got, ort_run(proto, {"x": data})[0])


SPATIAL_PADS, CHANNEL_PADS = [0, 0, 1, 2, 0, 0, 2, 1], [0, 1, 0, 0, 0, 3, 0, 0]


@pytest.mark.parametrize(
    ("mode", "pads"),
    [
        ("constant", SPATIAL_PADS),
        ("reflect", SPATIAL_PADS),
        ("edge", SPATIAL_PADS),
        ("constant", CHANNEL_PADS),  # BlazeFace's residual blocks widen channels so
    ],
    ids=["constant", "reflect", "edge", "constant-channels"],
)
def test_pad_between_convolutions_stays_channels_last(tmp_path, mode, pads):
    """Pad imports as nn.pad and sinks through the transposes ConvertLayout leaves
    around it: between two NCHW convolutions it stays NHWC with them (TVM's TE pad
    went back to NCHW, a transpose before and after it, each a copy in the arena),
    and every mode agrees with onnxruntime."""
    from onnx import helper, numpy_helper

    channels = 4 + pads[1] + pads[5]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Pad", ["a", "pads", "value"], ["b"], mode=mode),
        helper.make_node("Conv", ["b", "w2"], ["y"]),
    ]
    height, width = 6 + pads[2] + pads[6], 6 + pads[3] + pads[7]
    constants = [
        onnx_models.weight("w1", 4, 3, 3, 3),
        onnx_models.weight("w2", 2, channels, 1, 1),
        numpy_helper.from_array(np.array(pads, np.int64), "pads"),
        numpy_helper.from_array(np.array(0.5, np.float32), "value"),
    ]
    proto = onnx_models.graph_model(nodes, {"x": (1, 3, 6, 6)}, (1, 2, height, width), constants)
    onnx.save(proto, tmp_path / "pad.onnx")
    model = load_model(tmp_path / "pad.onnx")
    assert model.mod.script(show_meta=False).count("R.permute_dims") <= 2  # input, output
    feeds = random_feeds(proto, np.random.default_rng(1))
    (got,) = model.build("host")(feeds["x"])
    np.testing.assert_allclose(got, ort_run(proto, feeds)[0], rtol=1e-5, atol=1e-5)


def test_float16_graph_computes_in_float32_and_quantizes(tmp_path):
    """A model computed in float16 (float16 weights, activations, input and output):
    imported as float32 computation with float16 kept at its boundary, within a
    float16 step of onnxruntime's float16 kernels, and quantizable (float16 ops
    were not)."""
    from onnx import helper, numpy_helper

    from tvmq.quantize.quantizer import quantize_model

    weights = np.random.default_rng(4).normal(0, 0.3, (8, 3, 3, 3)).astype(np.float16)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "half",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, (1, 3, 6, 6))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, (1, 8, 6, 6))],
        [numpy_helper.from_array(weights, "w")],
    )
    opset = [helper.make_opsetid("", 13)]
    proto = helper.make_model(graph, opset_imports=opset, ir_version=8)
    onnx.save(proto, tmp_path / "half.onnx")
    model = load_model(tmp_path / "half.onnx")
    assert [s.dtype for s in (*model.inputs, *model.outputs)] == ["float16", "float16"]
    x = np.random.default_rng(5).normal(size=(1, 3, 6, 6)).astype(np.float16)
    (got,) = model.build("host")(x)
    want = ort_run(proto, {"x": x})[0]
    assert got.dtype == np.float16
    step = 2.0**-10 * float(np.abs(want).max())
    assert np.abs(got.astype(np.float32) - want.astype(np.float32)).max() <= step
    quantized = quantize_model(model, [[x]])
    assert quantized.quantization is not None


def test_concat_with_an_empty_constant_quantizes_and_reloads(tmp_path):
    """Concat(x, an initializer with no elements) (brainmaze's spindle detector):
    the empty operand is dropped at import, so the quantized model saves and loads
    back (TVM's module serialization cannot read an empty constant)."""
    from onnx import helper, numpy_helper

    from tvmq.api import save_model
    from tvmq.quantize.quantizer import quantize_model

    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Concat", ["r", "empty"], ["joined"], axis=1),
        helper.make_node("Add", ["joined", "joined"], ["y"]),
    ]
    empty = numpy_helper.from_array(np.zeros((1, 0, 1), np.float32), "empty")
    proto = onnx_models.graph_model(nodes, {"x": (1, 5, 1)}, (1, 5, 1), [empty])
    onnx.save(proto, tmp_path / "empty.onnx")
    model = load_model(tmp_path / "empty.onnx")
    x = np.random.default_rng(0).normal(size=(1, 5, 1)).astype(np.float32)
    quantized = quantize_model(model, [[x]])
    save_model(quantized, tmp_path / "empty.tvmq")
    reloaded = load_model(tmp_path / "empty.tvmq")
    np.testing.assert_array_equal(reloaded.build("host")(x)[0], quantized.build("host")(x)[0])


@pytest.mark.parametrize("rank", [4, 3], ids=["conv2d", "conv1d"])
def test_batch_norms_fold_into_convolutions_and_scale_shifts(tmp_path, rank):
    """BatchNormalization after a Conv folds into its weights and bias, one after an
    activation into a Mul and an Add: nn.batch_norm (no gradient, no integer kernel,
    a float island in every quantized layer) is gone, the values are onnxruntime's,
    and fine-tuning's gradient check accepts the graph."""
    from onnx import helper, numpy_helper

    from tvmq.train.gradients import check_differentiable

    rng = np.random.default_rng(6)
    spatial = (6, 6) if rank == 4 else (10,)
    kernel = (3, 3) if rank == 4 else (3,)

    def norm(name: str, channels: int) -> list[onnx.TensorProto]:
        values = [rng.uniform(0.5, 1.5, channels), rng.normal(size=channels)]
        values += [rng.normal(size=channels), rng.uniform(0.2, 2.0, channels)]
        return [
            numpy_helper.from_array(v.astype(np.float32), f"{name}_{part}")
            for v, part in zip(values, ("scale", "shift", "mean", "var"), strict=True)
        ]

    def bn(source: str, name: str, out: str):
        parts = [f"{name}_{p}" for p in ("scale", "shift", "mean", "var")]
        return helper.make_node("BatchNormalization", [source, *parts], [out], name, epsilon=1e-3)

    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1] * (2 * len(kernel))),
        bn("c", "bn1", "n"),
        helper.make_node("Relu", ["n"], ["r"], "relu"),
        bn("r", "bn2", "y"),
    ]
    weights = rng.normal(0, 0.3, (4, 3, *kernel)).astype(np.float32)
    constants = [numpy_helper.from_array(weights, "w"), *norm("bn1", 4), *norm("bn2", 4)]
    proto = onnx_models.graph_model(nodes, {"x": (1, 3, *spatial)}, (1, 4, *spatial), constants)
    onnx.save(proto, tmp_path / "bn.onnx")
    model = load_model(tmp_path / "bn.onnx")
    assert "batch_norm" not in model.mod.script(show_meta=False)
    feeds = random_feeds(proto, rng)
    (got,) = model.build("host")(feeds["x"])
    np.testing.assert_allclose(got, ort_run(proto, feeds)[0], rtol=1e-5, atol=1e-5)
    if rank == 4:  # (conv1d itself has no gradient yet)
        check_differentiable(model.mod["main"], model.source_names)


@pytest.mark.parametrize(
    "bounds", [("zero", "six"), ("zero", ""), ("", "six")], ids=["relu6", "min", "max"]
)
def test_clip_between_convolutions_is_relax_clip(tmp_path, bounds):
    """Clip with constant bounds (ReLU6, hard-sigmoid's clamp) imports as relax clip:
    TVM's TE maximum/minimum had no layout rule (NCHW and two transposes around every
    one), no gradient and no quantized kernel."""
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["a", *bounds], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["y"]),
    ]
    constants = [
        onnx_models.weight("w1", 4, 3, 3, 3, scale=2.0),
        onnx_models.weight("w2", 2, 4, 1, 1),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
    ]
    proto = onnx_models.graph_model(nodes, {"x": (1, 3, 6, 6)}, (1, 2, 6, 6), constants)
    onnx.save(proto, tmp_path / "clip.onnx")
    model = load_model(tmp_path / "clip.onnx")
    text = model.mod.script(show_meta=False)
    assert "call_tir" not in text and text.count("R.permute_dims") <= 2
    feeds = random_feeds(proto, np.random.default_rng(3))
    (got,) = model.build("host")(feeds["x"])
    np.testing.assert_allclose(got, ort_run(proto, feeds)[0], rtol=1e-5, atol=1e-5)


def _gated_model(clash: bool = False) -> onnx.ModelProto:
    """A second stage run only when the first fires (openWakeWord's verifier): If on
    a computed condition, both branches giving a [1, 4] float tensor."""
    h = onnx.helper
    weights = np.random.default_rng(5).normal(size=(4, 4)).astype(np.float32)
    then = h.make_graph(
        [h.make_node("MatMul", ["first", "w"], ["t"]), h.make_node("Tanh", ["t"], ["y_then"])],
        "then",
        [],
        [h.make_tensor_value_info("y_then", onnx.TensorProto.FLOAT, (1, 4))],
        [onnx.numpy_helper.from_array(weights, "w")],
    )
    inner = "t" if clash else "u"
    other = h.make_graph(
        [h.make_node("Neg", ["first"], [inner]), h.make_node("Identity", [inner], ["y_else"])],
        "else",
        [],
        [h.make_tensor_value_info("y_else", onnx.TensorProto.FLOAT, (1, 4))],
    )
    nodes = [
        h.make_node("Sigmoid", ["x"], ["first"]),
        h.make_node("ReduceMax", ["first"], ["peak"], keepdims=0),
        h.make_node("Greater", ["peak", "threshold"], ["fires"]),
        h.make_node("If", ["fires"], ["y"], then_branch=then, else_branch=other),
    ]
    graph = h.make_graph(
        nodes,
        "gated",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, 4))],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, (1, 4))],
        [onnx.numpy_helper.from_array(np.array(0.8, np.float32), "threshold")],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)], ir_version=8)


def _has_if(mod) -> bool:
    from tvm import relax

    blocks = mod["main"].body.blocks
    return any(isinstance(b.value, relax.If) for block in blocks for b in block.bindings)


def test_if_on_a_computed_condition_runs_ahead_of_time(tmp_path):
    """Ahead-of-time code has no control flow: both branches and a select, equal to
    onnxruntime whichever branch the data takes, on the host and in emitted C."""
    proto = _gated_model()
    onnx.save(proto, tmp_path / "gated.onnx")
    model = load_model(tmp_path / "gated.onnx")
    assert not _has_if(model.mod)
    executable = model.build("host")
    _, library = native(model, tmp_path)
    rng = np.random.default_rng(0)
    taken = set()
    for offset in (-2.0, -1.0, 2.0, 3.0):
        x = rng.normal(size=(1, 4)).astype(np.float32) + np.float32(offset)
        (want,) = ort_run(proto, {"x": x})
        taken.add(bool((1 / (1 + np.exp(-x))).max() > 0.8))
        np.testing.assert_allclose(executable(x)[0], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(library(x)[0], want, rtol=1e-5, atol=1e-6)
    assert taken == {True, False}


def test_if_whose_branches_clash_stays_an_if(tmp_path):
    """Branches that give a value the same name are not inlined side by side."""
    onnx.save(_gated_model(clash=True), tmp_path / "clash.onnx")
    assert _has_if(load_model(tmp_path / "clash.onnx").mod)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, samples):
        self._samples = iter(samples)

    def get_next(self):
        return next(self._samples, None)


def quantize_with_onnxruntime(
    float_path: Path, qdq_path: Path, samples: list[dict[str, np.ndarray]]
) -> tuple[onnx.ModelProto, float]:
    """onnxruntime's static QDQ quantization (int8, per channel) of `float_path`, and
    the scale of its output `y` (one step of the outputs compared)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(float_path),
        str(qdq_path),
        _Calibration(samples),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    qdq = onnx.load(qdq_path)
    output_scale = next(
        onnx.numpy_helper.to_array(t).item()
        for node in qdq.graph.node
        if node.op_type == "DequantizeLinear" and node.output[0] == "y"
        for t in qdq.graph.initializer
        if t.name == node.input[1]
    )
    return qdq, output_scale


def test_qdq_model_from_quantize_static_matches_within_one_step(tmp_path):
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    proto = onnx_models.conv_relu_gemm()
    onnx.save(proto, float_path)
    rng = np.random.default_rng(1)
    calibration = [{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(32)]
    qdq, output_scale = quantize_with_onnxruntime(float_path, qdq_path, calibration)
    model = load_model(qdq_path)
    assert model.is_quantized
    executable = model.build("host")
    for _ in range(8):
        feeds = {"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)}
        (got,) = executable(feeds["x"])
        # The graph's own QDQ semantics: ORT's graph optimizer swaps in fused
        # integer kernels whose rounding drifts by several steps on this model.
        (want,) = ort_run(qdq, feeds, optimize=False)
        assert np.abs(got - want).max() <= output_scale * 1.001


QDQ_CASES = {
    "conv": onnx_models.qdq_conv,
    "depthwise": lambda rng: onnx_models.qdq_conv(rng, group=4),
    "matmul": onnx_models.qdq_matmul,
    "add": onnx_models.qdq_binary,
    "mul": lambda rng: onnx_models.qdq_binary(rng, "Mul"),
}


def _uint8_feeds(proto: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random uint8 values for every graph input, by name."""
    return {
        value.name: rng.integers(
            0, 256, [d.dim_value for d in value.type.tensor_type.shape.dim]
        ).astype(np.uint8)
        for value in proto.graph.input
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", QDQ_CASES)
def test_qdq_op_matches_onnxruntime_bit_for_bit(kind, seed, tmp_path):
    """A QDQ convolution (per-channel weights, int32 bias), matmul, add or mul with
    random scales runs as onnxruntime runs it with its default optimizations
    (QLinearConv, QLinearMatMul, QLinearAdd, QLinearMul: float32 arithmetic rounded
    half to even), not with TFLite's
    fixed-point multipliers, which land one step off at some elements."""
    rng = np.random.default_rng(seed)
    proto = QDQ_CASES[kind](rng)
    path = tmp_path / "qdq.onnx"
    onnx.save(proto, path)
    executable = load_model(path).build("host")
    for _ in range(3):
        feeds = _uint8_feeds(proto, rng)
        (want,) = ort_run(proto, feeds)
        np.testing.assert_array_equal(executable(*feeds.values())[0], want)


@pytest.mark.parametrize("kind", QDQ_CASES)
def test_qdq_op_in_c_matches_onnxruntime_bit_for_bit(kind, tmp_path):
    """The emitted C (the Cortex-M path) rounds onnxruntime's float32 arithmetic as
    the host build does: floor and an odd-tie correction, no libm rounding mode."""
    rng = np.random.default_rng(0)  # add: input scales with ties to round
    proto = QDQ_CASES[kind](rng)
    onnx.save(proto, tmp_path / "qdq.onnx")
    _, library = native(load_model(tmp_path / "qdq.onnx"), tmp_path)
    feeds = _uint8_feeds(proto, rng)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_array_equal(library(*feeds.values())[0], want)


@pytest.mark.parametrize("opset", [10, 13])  # Unsqueeze's axes: an attribute, an input
def test_1d_convolutions_run_and_quantize_as_2d_ones(opset, tmp_path):
    """A Conv over [N, C, W] (pads, stride, dilation, groups, a bias), then a Clip
    with only a lower bound: widened to a 2-D convolution at import, it equals
    onnxruntime and quantizes to an int8 conv2d (as nn.conv1d it stayed float;
    the widened mel front end then reached an infinite Clip bound in realize)."""
    from onnx import TensorProto, helper, numpy_helper

    from tvmq.quantize.quantizer import quantize_model
    from tvmq.quantize.realize import realize
    from tvmq.quantize.scheme import QuantConfig

    rng = np.random.default_rng(31)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.3, (6, 2, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b"),
    ]
    conv = helper.make_node(
        "Conv", ["x", "w", "b"], ["c"], group=2, pads=[1, 2], strides=[2], dilations=[2]
    )
    if opset >= 13:
        weights.append(numpy_helper.from_array(np.array(-0.2, np.float32), "low"))
        clip = helper.make_node("Clip", ["c", "low"], ["y"])
    else:
        clip = helper.make_node("Clip", ["c"], ["y"], min=-0.2)
    graph = helper.make_graph(
        [conv, clip],
        "conv1d",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 10])],
        weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save(proto, tmp_path / "conv1d.onnx")
    model = load_model(tmp_path / "conv1d.onnx")
    assert "conv1d" not in model.mod.script(show_meta=False)
    assert [a.size for a in model.params.values()].count(36) == 1  # the weights once
    samples = [[rng.normal(size=(1, 4, 20)).astype(np.float32)] for _ in range(8)]
    (want,) = ort_run(proto, {"x": samples[0][0]})
    np.testing.assert_allclose(model.build("host")(*samples[0])[0], want, rtol=1e-5, atol=1e-5)
    quantized = quantize_model(model, samples, QuantConfig())
    script = realize(quantized.mod).script(show_meta=False)
    assert "R.nn.conv2d" in script and 'out_dtype="int32"' in script
    got = quantized.build("host")(*samples[0])[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


@pytest.mark.parametrize("opset", [10, 13])
def test_clip_without_an_upper_bound_quantizes(opset, tmp_path):
    """ONNX Clip with a lower bound and an infinite upper one (a log-mel front end's
    floor; exporters write Clip-6's max as inf) after a Conv: the infinite bound is
    float32's largest at import (realize took inf for a bound and crashed: "cannot
    convert float infinity to integer"; TVM's C prints it as an undeclared "inff")."""
    from onnx import TensorProto, helper, numpy_helper

    from tvmq.quantize.quantizer import quantize_model
    from tvmq.quantize.scheme import QuantConfig

    rng = np.random.default_rng(32)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 1, 1)).astype(np.float32), "v"),
    ]
    if opset >= 13:
        weights.append(numpy_helper.from_array(np.array(0.01, np.float32), "low"))
        weights.append(numpy_helper.from_array(np.array(np.inf, np.float32), "high"))
        clip = helper.make_node("Clip", ["c", "low", "high"], ["floored"])
    else:
        clip = helper.make_node("Clip", ["c"], ["floored"], min=0.01, max=float("inf"))
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            clip,
            helper.make_node("Conv", ["floored", "v"], ["y"]),
        ],
        "floor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save(proto, tmp_path / "floor.onnx")
    model = load_model(tmp_path / "floor.onnx")
    samples = [[rng.normal(size=(1, 3, 8, 8)).astype(np.float32)] for _ in range(8)]
    got = quantize_model(model, samples, QuantConfig()).build("host")(*samples[0])[0]
    (want,) = ort_run(proto, {"x": samples[0][0]})
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
