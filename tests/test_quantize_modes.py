"""Dynamic and weight-only quantization: checked against ONNX Runtime and numpy."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
import tvm
from onnx import numpy_helper
from tvm import relax

from tests.test_cli import assert_user_error, tvmq
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize
from tvmq.quantize.scheme import QuantConfig, quantize_weight

TEST_INPUTS, TEST_LABELS = digits_split("test")


@pytest.fixture(scope="module")
def float_model():
    return load_model(DIGITS_MODEL)


def accuracy(model) -> float:
    executable = model.build("host")
    predictions = [executable(x)[0].argmax() for x in TEST_INPUTS]
    return float(np.mean(np.array(predictions) == TEST_LABELS))


def constant_bytes(mod) -> int:
    """Bytes of every constant in the module: what a build carries as weights."""
    total = []

    def visit(expr):
        if isinstance(expr, tvm.ir.expr.Constant) and hasattr(expr.value, "numpy"):
            total.append(expr.value.numpy().nbytes)

    relax.analysis.post_order_visit(mod["main"], visit)
    return sum(total)


def test_dynamic_matches_onnxruntime_quantize_dynamic(tmp_path, float_model):
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reference = tmp_path / "digits_dynamic.onnx"
    quantize_dynamic(str(DIGITS_MODEL), str(reference), weight_type=QuantType.QInt8)
    session = onnxruntime.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    model = quantize_model(float_model, config=QuantConfig(mode="dynamic", per_channel=False))
    executable, float_executable = model.build("host"), float_model.build("host")
    for x in TEST_INPUTS[:40]:
        (expected,) = session.run(None, {"input": x})
        (got,) = executable(x)
        # Same integers, same float rescale: only float rounding of the softmax may differ,
        # while one quantization step anywhere moves probabilities by about 1e-3.
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert max(np.abs(float_executable(x)[0] - session.run(None, {"input": x})[0]).max()
               for x in TEST_INPUTS[:40]) > 1e-5  # fmt: skip


def test_dynamic_runs_weighted_ops_on_integers(float_model):
    model = quantize_model(float_model, config=QuantConfig(mode="dynamic"))
    text = realize(model.mod).script(show_meta=False)
    assert text.count('out_dtype="int32"') == 5  # four convolutions and the dense layer
    assert text.count("R.quantize(") == 5  # each weighted op's input, at run time
    assert "R.dequantize(" not in text
    assert model.quantization["mode"] == "dynamic" and model.quantization["tensors"] == []


def test_weight_only_equals_float_model_with_fake_quantized_weights(tmp_path, float_model):
    """The float model whose ONNX weights are replaced by their int8 values times
    scale is what weight-only mode must compute."""
    proto = onnx.load(str(DIGITS_MODEL))
    for initializer in proto.graph.initializer:
        if initializer.name.endswith(".w"):  # conv OIHW and Gemm (transB) weights: axis 0
            values = numpy_helper.to_array(initializer)
            weight = quantize_weight(values, 0, QuantConfig())
            shape = [-1] + [1] * (values.ndim - 1)
            fake = (weight.values.astype(np.float32) * weight.scale.reshape(shape)).astype(
                np.float32
            )
            initializer.CopyFrom(numpy_helper.from_array(fake, initializer.name))
    fake_path = tmp_path / "fake_quantized.onnx"
    onnx.save(proto, str(fake_path))
    reference = load_model(fake_path).build("host")
    model = quantize_model(float_model, config=QuantConfig(mode="weight-only"))
    executable = model.build("host")
    for x in TEST_INPUTS[:20]:
        np.testing.assert_allclose(executable(x)[0], reference(x)[0], rtol=0, atol=1e-6)
    text = realize(model.mod).script(show_meta=False)
    assert "R.quantize(" not in text and text.count("R.dequantize(") == 5


@pytest.mark.parametrize("mode", ["dynamic", "weight-only"])
def test_modes_keep_accuracy_and_shrink_weights(float_model, mode):
    model = quantize_model(float_model, config=QuantConfig(mode=mode))
    assert accuracy(model) >= accuracy(float_model) - 0.01
    assert constant_bytes(model.mod) < 0.35 * constant_bytes(float_model.mod)


def test_cli_modes_need_no_calibration(tmp_path):
    output = tmp_path / "digits_w8.tvmq"
    result = tvmq("quantize", DIGITS_MODEL, "--mode", "weight-only", "-o", output)
    assert result.returncode == 0, result.stderr
    assert "quantized 5 ops (weight-only)" in result.stdout
    manifest = json.loads(zipfile.ZipFile(output).read("manifest.json"))
    assert manifest["quantization"]["mode"] == "weight-only"
    x = TEST_INPUTS[3]
    reloaded = load_model(output).build("host")(x)[0]
    expected = quantize_model(load_model(DIGITS_MODEL), config=QuantConfig(mode="weight-only"))
    np.testing.assert_array_equal(reloaded, expected.build("host")(x)[0])

    missing = tmp_path / "static.tvmq"
    assert_user_error(tvmq("quantize", DIGITS_MODEL, "-o", missing), "--calib")
    assert_user_error(
        tvmq("quantize", DIGITS_MODEL, "--mode", "dynamic", "--report", tmp_path, "-o", missing),
        "--mode static",
    )
    assert not missing.exists()
