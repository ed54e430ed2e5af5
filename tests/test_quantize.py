"""Post-training quantization of float models into integer code."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import assert_user_error, tvmq
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.frontend.saved import save_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize
from tvmq.quantize.scheme import QuantConfig

CALIBRATION = [[x] for x in digits_split("train")[0][:100]]


@pytest.fixture(scope="module")
def float_model():
    return load_model(DIGITS_MODEL)


@pytest.fixture(scope="module")
def int8_model(float_model):
    return quantize_model(float_model, CALIBRATION)


def accuracy(model) -> float:
    inputs, labels = digits_split("test")
    executable = model.build("host")
    return float(
        np.mean([executable(x)[0].argmax() == y for x, y in zip(inputs, labels, strict=True)])
    )


def test_bundled_model_keeps_its_accuracy_within_one_point(float_model, int8_model):
    assert accuracy(int8_model) >= accuracy(float_model) - 0.01


def assert_integer_between_input_and_output(text: str) -> None:
    """No float tensor between the first quantize and the first dequantize."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if "R.quantize(" in line)
    last = next(i for i, line in enumerate(lines) if "R.dequantize(" in line)
    assert not any('dtype="float32"' in line for line in lines[first + 1 : last])


def test_quantized_region_is_integer_only(int8_model):
    """Only the model's float boundary is left: the input quantize and the dequantize
    of the integer softmax's output."""
    text = realize(int8_model.mod).script(show_meta=False)
    assert "R.nn.softmax" not in text
    assert text.count("R.quantize(") == 1
    assert text.count("R.dequantize(") == 1
    assert text.count('out_dtype="int32"') == 5  # four convolutions and the dense layer
    assert_integer_between_input_and_output(text)


def _tflite_prelu(path: Path) -> tuple[Path, tuple[int, ...]]:
    from tests.tflite_ops import float_prelu

    shape = (1, 4, 4, 8)
    slope = np.random.default_rng(5).uniform(-0.3, 0.6, (1, 1, 8)).astype(np.float32)
    return float_prelu(path / "prelu.tflite", shape, slope), shape


def _onnx_conv_prelu(path: Path) -> tuple[Path, tuple[int, ...]]:
    import onnx

    from tests import onnx_models

    onnx.save(onnx_models.conv_prelu(), path / "prelu.onnx")
    return path / "prelu.onnx", (1, 3, 8, 8)


@pytest.mark.parametrize("make", [_tflite_prelu, _onnx_conv_prelu], ids=["tflite", "onnx"])
def test_float_prelu_quantizes_to_the_integer_kernel(tmp_path, make):
    """A PReLU (an ONNX one behind an NCHW conv, which channels_last turns to NHWC)
    runs as integers, within a few output steps of the float model (the input's and
    the conv's rounding add up)."""
    path, shape = make(tmp_path)
    model = load_model(path)
    rng = np.random.default_rng(5)
    samples = [[rng.standard_normal(shape).astype(np.float32)] for _ in range(8)]
    quantized = quantize_model(model, samples)
    assert_integer_between_input_and_output(realize(quantized.mod).script(show_meta=False))
    want = model.build("host")(samples[0][0])[0]
    got = quantized.build("host")(samples[0][0])[0]
    assert np.abs(got - want).max() <= 4 * (want.max() - want.min()) / 255


def test_saved_model_reloads_with_identical_outputs(tmp_path, int8_model):
    path = tmp_path / "digits.tvmq"
    save_model(int8_model, path)
    reloaded = load_model(path)
    assert reloaded.quantization == json.loads(json.dumps(int8_model.quantization))
    assert reloaded.inputs == int8_model.inputs
    x = digits_split("test")[0][7]
    np.testing.assert_array_equal(reloaded.build("host")(x)[0], int8_model.build("host")(x)[0])
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "module.json", "params.npz"]


def test_same_calibration_gives_byte_identical_files(tmp_path, float_model):
    paths = [tmp_path / "a.tvmq", tmp_path / "b.tvmq"]
    for path in paths:
        save_model(
            quantize_model(float_model, CALIBRATION, QuantConfig(calibrator="entropy")), path
        )
    manifests = [zipfile.ZipFile(p).read("manifest.json") for p in paths]
    assert manifests[0] == manifests[1]


def test_scheme_options(float_model):
    symmetric = quantize_model(
        float_model, CALIBRATION, QuantConfig(symmetric_activations=True, power_of_two=True)
    )
    for tensor in symmetric.quantization["tensors"]:
        assert tensor["zero_point"] == 0
        assert np.log2(tensor["scale"]) == np.round(np.log2(tensor["scale"]))
    per_tensor = quantize_model(float_model, CALIBRATION, QuantConfig(per_channel=False))
    assert accuracy(per_tensor) > 0.9
    assert accuracy(symmetric) > 0.9


def test_skipped_ops_stay_float(float_model):
    model = quantize_model(float_model, CALIBRATION, QuantConfig(skip_ops=frozenset({"matmul"})))
    assert [s["kind"] for s in model.quantization["skipped_ops"]] == ["matmul"]
    assert "R.matmul" in realize(model.mod).script(show_meta=False)
    assert accuracy(model) > 0.95


def test_skip_and_int16_take_every_name_quantize_prints(float_model, int8_model):
    """The layer label, its tensor, its op and their source nodes all name one layer;
    labels stay put when a layer is skipped."""
    report = int8_model.quantization
    (op,) = [op for op in report["quantized_ops"] if op["layer"] == "conv2d#1"]
    (tensor,) = [t for t in report["tensors"] if t["layer"] == "conv2d#1"]
    aliases = {"conv2d#1", op["name"], tensor["name"], tensor["source"]}
    assert len(aliases) == 4 and "" not in aliases
    for alias in sorted(aliases):
        skipped = quantize_model(float_model, CALIBRATION, QuantConfig(skip_names={alias}))
        assert [s["name"] for s in skipped.quantization["skipped_ops"]] == [op["name"]]
        layers = [t["layer"] for t in skipped.quantization["tensors"]]
        assert "conv2d#1" not in layers and "conv2d#2" in layers
    wide = quantize_model(float_model, CALIBRATION, QuantConfig(int16_names={tensor["source"]}))
    dtypes = {t["layer"]: t["dtype"] for t in wide.quantization["tensors"]}
    assert dtypes["conv2d#1"] == "int16" and dtypes["conv2d#2"] == "int8"


def test_an_unknown_layer_name_is_refused(tmp_path):
    calibration, output = tmp_path / "calib.npy", tmp_path / "out.tvmq"
    np.save(calibration, digits_split("train")[0][:8])
    for option in ("--skip", "--int16"):
        result = tvmq(
            "quantize", DIGITS_MODEL, "--calib", calibration, option, "conv9", "-o", output
        )
        assert_user_error(result, "no layer named 'conv9'", "conv2d#0", "matmul#0")
    assert not output.exists()


def test_cli_quantize_and_eval(tmp_path):
    calibration, output = tmp_path / "calib.npy", tmp_path / "digits.tvmq"
    np.save(calibration, digits_split("train")[0][:50])
    test_set = tmp_path / "test.npz"
    np.savez(test_set, x=digits_split("test")[0], y=digits_split("test")[1])
    result = tvmq(
        "quantize", DIGITS_MODEL, "--calib", calibration, "--calibrator", "percentile", "-o", output
    )
    assert result.returncode == 0, result.stderr
    assert "quantized 7 ops" in result.stdout  # 5 conv/dense, mean, softmax
    result = tvmq("eval", output, "--data", test_set, "--metric", "top1")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1].split()[1]) >= 0.96


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), ["NaN or Inf"]),
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x), ["NaN or Inf"]),
        (lambda x: x[:, :, :, :4], ["shape", "input"]),
        (lambda x: x.astype(np.float64), ["dtype float64"]),
        (lambda x: x[:0], ["no calibration samples"]),
    ],
    ids=["nan", "inf", "shape", "dtype", "empty"],
)
def test_bad_calibration_data_is_refused(tmp_path, make, words):
    calibration, output = tmp_path / "calib.npy", tmp_path / "out.tvmq"
    np.save(calibration, make(digits_split("train")[0][:20]))
    assert_user_error(tvmq("quantize", DIGITS_MODEL, "--calib", calibration, "-o", output), *words)
    assert not output.exists()


def test_fewer_samples_than_asked(tmp_path):
    calibration, output = tmp_path / "calib.npy", tmp_path / "out.tvmq"
    np.save(calibration, digits_split("train")[0][:20])
    result = tvmq(
        "quantize", DIGITS_MODEL, "--calib", calibration, "--calib-samples", "50", "-o", output
    )
    assert_user_error(result, "fewer than the 50 asked")
    assert not output.exists()


def test_a_model_with_an_empty_constant_is_not_saved(tmp_path):
    """TVM writes a constant with no elements but cannot read it back: saving such a
    model is refused in one line and leaves no file, instead of a .tvmq that no
    command can load."""
    from tvm import relax

    from tvmq.errors import TvmqError
    from tvmq.model import Model, TensorSpec

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 2), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            empty = relax.const(np.zeros((1, 0), np.float32))
            y = builder.emit_output(relax.op.concat([x, empty], axis=1))
        builder.emit_func_output(y)
    spec = TensorSpec("x", (1, 2), "float32")
    model = Model("empty", tmp_path / "empty.onnx", "onnx", builder.get(), [spec], [spec])
    with pytest.raises(TvmqError, match=r"a constant with no elements \(shape \[1, 0\]\)"):
        save_model(model, tmp_path / "empty.tvmq")
    assert not (tmp_path / "empty.tvmq").exists()
