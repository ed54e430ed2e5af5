"""ONNX models quantized by onnxruntime in its operator format (QLinearConv,
com.microsoft QLinearAdd...) or dynamically (MatMulInteger) run as onnxruntime runs
them, bit for bit: on the host and in the emitted C."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests import onnx_models
from tests.test_aot import native
from tests.test_onnx_import import ort_run
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


def _feeds(proto: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        value.name: rng.integers(
            0, 256, [d.dim_value for d in value.type.tensor_type.shape.dim]
        ).astype(np.uint8)
        for value in proto.graph.input
    }


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
        feeds = _feeds(proto, rng)
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
    feeds = _feeds(proto, rng)
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
    feeds = _feeds(proto, rng)
    (want,) = ort_run(proto, feeds)
    np.testing.assert_array_equal(executable(*feeds.values())[0], want)


def test_channels_last_pooling_is_refused_in_one_line(tmp_path):
    proto = onnx_models.qoperator("global_average_pool", np.random.default_rng(0))
    proto.graph.node[0].attribute.append(onnx.helper.make_attribute("channels_last", 1))
    onnx.save(proto, tmp_path / "model.onnx")
    with pytest.raises(TvmqError, match=r"QLinearGlobalAveragePool\): channels_last=1$"):
        load_model(tmp_path / "model.onnx")


def test_dynamically_quantized_matmuls_match_onnxruntime(tmp_path):
    """onnxruntime's `quantize_dynamic` (DynamicQuantizeLinear, MatMulInteger, then a
    float rescale: transformers and RNNs get it) runs as onnxruntime computes it."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(11)
    weights = [
        numpy_helper.from_array((rng.standard_normal(s) * 0.1).astype(np.float32), name)
        for name, s in (("w1", (32, 48)), ("b1", (48,)), ("w2", (48, 10)))
    ]
    nodes = [
        onnx.helper.make_node("MatMul", ["x", "w1"], ["h"]),
        onnx.helper.make_node("Add", ["h", "b1"], ["biased"]),
        onnx.helper.make_node("Relu", ["biased"], ["active"]),
        onnx.helper.make_node("MatMul", ["active", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, tmp_path / "float.onnx")
    quantize_dynamic(
        tmp_path / "float.onnx", tmp_path / "dynamic.onnx", weight_type=QuantType.QInt8
    )
    proto = onnx.load(tmp_path / "dynamic.onnx")
    proto.ir_version = 8  # what the installed onnxruntime reads
    onnx.save(proto, tmp_path / "dynamic.onnx")
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    executable = load_model(tmp_path / "dynamic.onnx").build("host")
    for _ in range(3):
        x = rng.standard_normal((4, 32)).astype(np.float32)
        (want,) = ort_run(proto, {"x": x})
        np.testing.assert_array_equal(executable(x)[0], want)
