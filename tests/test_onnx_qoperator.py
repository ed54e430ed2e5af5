"""ONNX models quantized by onnxruntime in its operator format (QLinearConv,
com.microsoft QLinearAdd...) or dynamically (MatMulInteger, ConvInteger,
DynamicQuantizeLSTM) run as onnxruntime runs them, bit for bit (the LSTM to its
gates' last float bits): on the host and in the emitted C."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests import onnx_models
from tests.test_aot import native
from tests.test_onnx_import import _uint8_feeds, ort_run, random_feeds
from tests.test_onnx_rnn import lstm_model
from tvmq.errors import TvmqError
from tvmq.frontend import load_model

KINDS = (
    "conv",
    "depthwise",
    "matmul",
    "gemm",
    "add",
    "mul",
    "sigmoid",
    "leaky_relu",
    "global_average_pool",
    "average_pool",
    "softmax",
    "softmax_opset11",
    "concat",
)


@pytest.mark.parametrize("kind", KINDS)
def test_qoperator_matches_onnxruntime_bit_for_bit(kind, tmp_path):
    """Random scales and zero points (a different draw per op), three random inputs:
    every output byte equals onnxruntime's kernel's (leaky ReLU and global average
    pooling and softmax need onnxruntime's own arithmetic, not TFLite's)."""
    rng = np.random.default_rng(KINDS.index(kind))
    proto = onnx_models.qoperator(kind, rng)
    onnx.save(proto, tmp_path / "model.onnx")
    model = load_model(tmp_path / "model.onnx")
    assert model.operators  # the report names the QOperator ops as the file has them
    executable = model.build("host")
    for _ in range(3):
        feeds = _uint8_feeds(proto, rng)
        (want,) = ort_run(proto, feeds)
        np.testing.assert_array_equal(executable(*feeds.values())[0], want)


@pytest.mark.parametrize("kind", ["conv", "leaky_relu", "global_average_pool", "softmax"])
def test_qoperator_in_c_matches_onnxruntime(kind, tmp_path):
    """The emitted C (the Cortex-M path): the float32 requantization, the lookup
    table and the pooled sums round as onnxruntime does."""
    rng = np.random.default_rng(7)
    proto = onnx_models.qoperator(kind, rng)
    onnx.save(proto, tmp_path / "model.onnx")
    _, library = native(load_model(tmp_path / "model.onnx"), tmp_path)
    feeds = _uint8_feeds(proto, rng)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_array_equal(library(*feeds.values())[0], want)


def test_opset_12_qoperator_model_is_converted(tmp_path):
    """The ONNX Model Zoo's int8 models are opset 12; per-channel DequantizeLinear
    needs 13, so the model is converted first."""
    rng = np.random.default_rng(3)
    proto = onnx_models.qoperator("conv", rng)
    proto.opset_import[0].version = 12
    onnx.save(proto, tmp_path / "model.onnx")
    executable = load_model(tmp_path / "model.onnx").build("host")
    feeds = _uint8_feeds(proto, rng)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_array_equal(executable(*feeds.values())[0], want)


def test_channels_last_pooling_is_refused_in_one_line(tmp_path):
    proto = onnx_models.qoperator("global_average_pool", np.random.default_rng(0))
    proto.graph.node[0].attribute.append(onnx.helper.make_attribute("channels_last", 1))
    onnx.save(proto, tmp_path / "model.onnx")
    with pytest.raises(TvmqError, match=r"QLinearGlobalAveragePool\): channels_last=1$"):
        load_model(tmp_path / "model.onnx")


def _dynamically_quantized(tmp_path, nodes, inputs, output, weights, **options):
    """onnxruntime's `quantize_dynamic` of a float graph, loadable by the installed
    onnxruntime (IR version 8)."""
    from onnx import TensorProto, helper
    from onnxruntime.quantization import quantize_dynamic

    graph = helper.make_graph(
        nodes,
        "float",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, tmp_path / "float.onnx")
    quantize_dynamic(tmp_path / "float.onnx", tmp_path / "dynamic.onnx", **options)
    proto = onnx.load(tmp_path / "dynamic.onnx")
    proto.ir_version = 8
    onnx.save(proto, tmp_path / "dynamic.onnx")
    return proto


def _weights(rng, **shapes) -> list:
    from onnx import numpy_helper

    return [
        numpy_helper.from_array((rng.standard_normal(s) * 0.2).astype(np.float32), name)
        for name, s in shapes.items()
    ]


def test_dynamically_quantized_matmuls_match_onnxruntime(tmp_path):
    """onnxruntime's `quantize_dynamic` (DynamicQuantizeLinear, MatMulInteger, then a
    float rescale: transformers and RNNs get it) runs as onnxruntime computes it."""
    from onnxruntime.quantization import QuantType

    rng = np.random.default_rng(11)
    nodes = [
        onnx.helper.make_node("MatMul", ["x", "w1"], ["h"]),
        onnx.helper.make_node("Add", ["h", "b1"], ["biased"]),
        onnx.helper.make_node("Relu", ["biased"], ["active"]),
        onnx.helper.make_node("MatMul", ["active", "w2"], ["y"]),
    ]
    weights = _weights(rng, w1=(32, 48), b1=(48,), w2=(48, 10))
    proto = _dynamically_quantized(
        tmp_path, nodes, {"x": [4, 32]}, ("y", [4, 10]), weights, weight_type=QuantType.QInt8
    )
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    executable = load_model(tmp_path / "dynamic.onnx").build("host")
    for _ in range(3):
        x = rng.standard_normal((4, 32)).astype(np.float32)
        (want,) = ort_run(proto, {"x": x})
        np.testing.assert_array_equal(executable(x)[0], want)


@pytest.mark.parametrize("weight_type", ["QUInt8", "QInt8"])
def test_dynamically_quantized_convolutions_match_onnxruntime(tmp_path, weight_type):
    """Its ConvInteger (padded, strided SAME_UPPER, weights with a zero point when
    uint8) sums exactly what onnxruntime sums."""
    from onnxruntime.quantization import QuantType

    rng = np.random.default_rng(12)
    nodes = [
        onnx.helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("Relu", ["h"], ["r"]),
        onnx.helper.make_node("Conv", ["r", "w2"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER"),
    ]
    weights = _weights(rng, w1=(8, 3, 3, 3), b1=(8,), w2=(4, 8, 3, 3))
    proto = _dynamically_quantized(
        tmp_path,
        nodes,
        {"x": [1, 3, 9, 9]},
        ("y", [1, 4, 5, 5]),
        weights,
        weight_type=getattr(QuantType, weight_type),
        op_types_to_quantize=["Conv"],
    )
    assert "ConvInteger" in {n.op_type for n in proto.graph.node}
    executable = load_model(tmp_path / "dynamic.onnx").build("host")
    for _ in range(3):
        x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
        (want,) = ort_run(proto, {"x": x})
        np.testing.assert_array_equal(executable(x)[0], want)


def test_dynamically_quantized_1d_convolution_matches_onnxruntime(tmp_path):
    """A 1-D ConvInteger (a dynamically quantized 1-D CNN) is widened to 2-D at
    import like a float Conv, and sums what onnxruntime sums."""
    from onnxruntime.quantization import QuantType

    rng = np.random.default_rng(13)
    nodes = [onnx.helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[2, 1], strides=[2])]
    weights = _weights(rng, w=(5, 3, 4), b=(5,))
    proto = _dynamically_quantized(
        tmp_path,
        nodes,
        {"x": [1, 3, 17]},
        ("y", [1, 5, 9]),
        weights,
        weight_type=QuantType.QUInt8,
        op_types_to_quantize=["Conv"],
    )
    assert "ConvInteger" in {n.op_type for n in proto.graph.node}
    executable = load_model(tmp_path / "dynamic.onnx").build("host")
    for _ in range(3):
        x = rng.standard_normal((1, 3, 17)).astype(np.float32)
        (want,) = ort_run(proto, {"x": x})
        np.testing.assert_array_equal(executable(x)[0], want)


def test_an_op_reading_one_value_twice_imports(tmp_path):
    """QLinearAdd(x, x): each operand gets a DequantizeLinear of its own name."""
    rng = np.random.default_rng(5)
    proto = onnx_models.qoperator("add", rng)
    node = proto.graph.node[0]
    node.input[3:6] = node.input[0:3]
    del proto.graph.input[1]
    onnx.save(proto, tmp_path / "model.onnx")
    executable = load_model(tmp_path / "model.onnx").build("host")
    x = rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
    (want,) = ort_run(proto, {"x": x})
    np.testing.assert_array_equal(executable(x)[0], want)


def test_a_malformed_microsoft_op_is_refused_by_node(tmp_path):
    proto = onnx_models.qoperator("mul", np.random.default_rng(0))
    del proto.graph.node[0].input[4:]  # no b scale, zero point or output parameters
    onnx.save(proto, tmp_path / "model.onnx")
    with pytest.raises(TvmqError, match=r"node '.*' \(QLinearMul\): "):
        load_model(tmp_path / "model.onnx")


def _dynamic_lstm(tmp_path, rng, direction="forward", per_channel=False, unsigned=False):
    """`quantize_dynamic` of one LSTM: com.microsoft DynamicQuantizeLSTM with int8 W
    and R; `unsigned` shifts them to uint8 with zero point 128 (older onnxruntime
    releases wrote uint8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    optional = ("B", "initial_h", "initial_c")
    onnx.save(lstm_model(rng, 7, 1, 12, 24, direction, optional=optional), tmp_path / "f.onnx")
    quantize_dynamic(
        tmp_path / "f.onnx",
        tmp_path / "dynamic.onnx",
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
    )
    proto = onnx.load(tmp_path / "dynamic.onnx")
    assert [n.op_type for n in proto.graph.node] == ["DynamicQuantizeLSTM"]
    if unsigned:
        tensors = {t.name: t for t in proto.graph.initializer}
        for position in (1, 2, 9, 11):  # W, R and their zero points
            tensor = tensors[proto.graph.node[0].input[position]]
            shifted = onnx.numpy_helper.to_array(tensor).astype(np.int32) + 128
            tensor.CopyFrom(onnx.numpy_helper.from_array(shifted.astype(np.uint8), tensor.name))
    onnx.save(proto, tmp_path / "dynamic.onnx")
    return proto


@pytest.mark.parametrize(
    ("direction", "per_channel", "unsigned"),
    [("forward", False, False), ("bidirectional", True, False), ("reverse", True, True)],
)
def test_dynamically_quantized_lstm_matches_onnxruntime(direction, per_channel, unsigned, tmp_path):
    """DynamicQuantizeLSTM (the input quantized once, h at every step, int32 sums
    scaled back): Y, Y_h and Y_c as onnxruntime computes them, but for its sigmoid
    and tanh's last bits."""
    rng = np.random.default_rng(21)
    proto = _dynamic_lstm(tmp_path, rng, direction, per_channel, unsigned)
    executable = load_model(tmp_path / "dynamic.onnx").build("host")
    for _ in range(3):
        feeds = random_feeds(proto, rng)
        for got, want in zip(executable(*feeds.values()), ort_run(proto, feeds), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_dynamically_quantized_lstm_with_zero_points_per_column_is_refused(tmp_path):
    """onnxruntime takes one zero point per direction for uint8 weights; a model with
    several is named."""
    proto = _dynamic_lstm(tmp_path, np.random.default_rng(22), per_channel=True, unsigned=True)
    zero_point = next(t for t in proto.graph.initializer if t.name == proto.graph.node[0].input[9])
    values = onnx.numpy_helper.to_array(zero_point).copy()
    values.flat[0] -= 1
    zero_point.CopyFrom(onnx.numpy_helper.from_array(values, zero_point.name))
    onnx.save(proto, tmp_path / "dynamic.onnx")
    with pytest.raises(TvmqError, match=r"DynamicQuantizeLSTM\): W's zero point must be one"):
        load_model(tmp_path / "dynamic.onnx")


def test_sigmoid_before_a_run_time_quantizer_is_onnxruntimes(tmp_path):
    """A graph that quantizes at run time rounds its float activations to steps: its
    Sigmoid must be onnxruntime's to the last bit (TVM's exact sigmoid differs from
    MLAS's polynomial in about half of all values), the quantized bytes then agree."""
    from onnx import TensorProto, helper

    size = 20000
    graph = helper.make_graph(
        [
            helper.make_node("Sigmoid", ["x"], ["s"]),
            helper.make_node("DynamicQuantizeLinear", ["s"], ["q", "scale", "zero_point"]),
        ],
        "sigmoid",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [size]),
            helper.make_tensor_value_info("q", TensorProto.UINT8, [size]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, tmp_path / "model.onnx")
    loaded = load_model(tmp_path / "model.onnx")
    x = (np.random.default_rng(23).standard_normal(size) * 8).astype(np.float32)
    want = ort_run(model, {"x": x})
    for executable in (loaded.build("host"), native(loaded, tmp_path)[1]):  # the C too
        for got, expected in zip(executable(x), want, strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("constant_first", [False, True])
def test_qdq_add_of_a_single_value_is_onnxruntimes_scalar_form(constant_first, tmp_path):
    """x + 3 in a QDQ graph (hard-swish's first step in PAN segmentation, with its
    scales): onnxruntime fuses it into QLinearAdd, whose kernel adds a single-value
    operand into its fixed part by a separate multiply and add. Computed as the
    two-tensor form, a tie at x = 0 rounds the other way (68 of 1,024 here)."""
    from onnx import TensorProto, helper, numpy_helper

    def constant(name, value, dtype):
        return numpy_helper.from_array(np.array(value, dtype), name)

    initializers = [
        constant("x_scale", 0.06783652305603027, np.float32),
        constant("x_zp", -114, np.int8),
        constant("three", 127, np.int8),
        constant("three_scale", 0.0117647061124444, np.float32),
        constant("three_zp", -128, np.int8),
        constant("y_scale", 0.0235294122248888, np.float32),
        constant("y_zp", -128, np.int8),
    ]
    operands = ["three_dq", "x_dq"] if constant_first else ["x_dq", "three_dq"]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["three", "three_scale", "three_zp"], ["three_dq"]),
        helper.make_node("Add", operands, ["sum"]),
        helper.make_node("QuantizeLinear", ["sum", "y_scale", "y_zp"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "add",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 16, 8, 8])],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(proto, tmp_path / "add.onnx")
    x = np.random.default_rng(24).integers(-128, 128, (1, 16, 8, 8)).astype(np.int8)
    x.ravel()[:64] = -114  # the input's zero: 0 + 3 is a tie at the output's steps
    (want,) = ort_run(proto, {"x": x})
    np.testing.assert_array_equal(load_model(tmp_path / "add.onnx").build("host")(x)[0], want)
