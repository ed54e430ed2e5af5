"""Per-layer error report: figures checked against numpy, files, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tvm
from tvm import relax

from tests import onnx_models
from tests.test_cli import assert_user_error, tvmq
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.debug import layer_errors, write_report
from tvmq.quantize.quantizer import quantize_model

SAMPLES = [[x] for x in digits_split("train")[0][:24]]


@pytest.fixture(scope="module")
def models():
    float_model = load_model(DIGITS_MODEL)
    return float_model, quantize_model(float_model, SAMPLES)


def snr(real: np.ndarray, approx: np.ndarray) -> float:
    real, approx = real.astype(np.float64), approx.astype(np.float64)
    return 10 * np.log10(np.sum(real**2) / np.sum((real - approx) ** 2))


def test_rows_match_numpy_at_both_ends(models):
    float_model, quantized = models
    rows = layer_errors(float_model, quantized, SAMPLES)
    tensors = quantized.quantization["tensors"]
    assert [r.tensor for r in rows] == [t["name"] for t in tensors]
    assert [r.layer for r in rows][:3] == ["input", "conv2d#0", "conv2d#1"]
    # Source names are the ONNX nodes' (tvmq/examples/digits_cnn.onnx): a conv's tensor
    # is named after the conv, even with its relu fused.
    assert [r.source for r in rows] == [
        "input", "conv1", "conv2", "dwconv", "pwconv", "gap", "fc", "softmax"
    ]  # fmt: skip

    # The input row: plain rounding to the input's scale and zero point.
    first = rows[0]
    x = np.stack([s[0] for s in SAMPLES]).astype(np.float64)
    q = np.clip(np.round(x / first.scale) + first.zero_point, -128, 127)
    approx = (q - first.zero_point) * first.scale
    assert first.sqnr_db == pytest.approx(snr(x, approx), abs=1e-3)
    assert first.max_abs_error == pytest.approx(np.abs(x - approx).max(), rel=1e-5)
    assert first.max_abs_error <= first.scale / 2 + 1e-7

    # The output row: the two graphs' own outputs.
    run_float = float_model.build("host")
    executable = tvm.compile(quantized.mod, tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    real = np.stack([run_float(s[0])[0] for s in SAMPLES])
    approx = np.stack([vm["main"](tvm.runtime.tensor(s[0])).numpy() for s in SAMPLES])
    assert rows[-1].layer == "softmax#0"
    assert rows[-1].sqnr_db == pytest.approx(snr(real, approx), abs=1e-3)
    assert rows[-1].max_abs_error == pytest.approx(np.abs(real - approx).max(), rel=1e-5)


def test_report_files(tmp_path, models):
    float_model, quantized = models
    rows = layer_errors(float_model, quantized, SAMPLES[:4])
    paths = write_report(tmp_path / "report", "digits", rows, ["note"])
    document = json.loads(paths[1].read_text())
    assert [layer["tensor"] for layer in document["layers"]] == [r.tensor for r in rows]
    assert "| conv2d#0 | lv3 | conv1 |" in paths[0].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_report_and_debug(tmp_path):
    calibration, output = tmp_path / "calib.npy", tmp_path / "digits.tvmq"
    np.save(calibration, digits_split("train")[0][:20])
    result = tvmq(
        "quantize", DIGITS_MODEL, "--calib", calibration, "-o", output, "--report", tmp_path / "q"
    )
    assert result.returncode == 0, result.stderr
    assert "| softmax#0 | gv | softmax |" in result.stdout
    result = tvmq("debug", DIGITS_MODEL, output, "--data", calibration, "-o", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    for directory in ("q", "d"):
        names = sorted(p.name for p in (tmp_path / directory).iterdir())
        assert names == ["per_layer.png", "report.json", "report.md"]
    layers = json.loads((tmp_path / "d" / "report.json").read_text())["layers"]
    assert len(layers) == 8 and all(layer["sqnr_db"] > 20 for layer in layers)

    other, other_calibration = tmp_path / "conv.onnx", tmp_path / "conv.npy"
    other.write_bytes(onnx_models.conv().SerializeToString())
    np.save(other_calibration, np.random.default_rng(0).random((8, 1, 3, 16, 16), np.float32))
    other_output = tmp_path / "conv.tvmq"
    assert tvmq("quantize", other, "--calib", other_calibration, "-o", other_output).returncode == 0
    assert_user_error(
        tvmq("debug", DIGITS_MODEL, other_output, "--data", calibration, "-o", tmp_path / "e"),
        "was not quantized from",
    )
    assert not (tmp_path / "e").exists()


def test_report_directory_refused_before_work(tmp_path):
    calibration, output = tmp_path / "calib.npy", tmp_path / "digits.tvmq"
    np.save(calibration, digits_split("train")[0][:20])
    (tmp_path / "file").write_text("")
    result = tvmq(
        "quantize",
        DIGITS_MODEL,
        "--calib",
        calibration,
        "-o",
        output,
        "--report",
        tmp_path / "file",
    )
    assert_user_error(result, "is not a directory")
    assert not output.exists()


@pytest.mark.shared
def test_cli_report_and_debug_on_the_float_resnet(tmp_path):
    """Weight dequantizes carry their own names: an automatic lvN took a graph
    tensor's name (lv32) and the report did not find that tensor's dequantize."""
    from tests.shared_assets import shared_data, shared_model

    model, data = shared_model("ic_resnet8_float"), shared_data("ic01")
    output, report = tmp_path / "ic.tvmq", tmp_path / "report"
    result = tvmq("quantize", model, "--calib", data, "--calib-samples", "4", "-o", output,
                  "--report", report, "--report-samples", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| matmul#0 |" in (report / "report.md").read_text()
    result = tvmq("debug", model, output, "--data", data, "--samples", "2", "-o", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    layers = json.loads((tmp_path / "d" / "report.json").read_text())["layers"]
    assert len(layers) == 16  # the input (exact at scale 1: no SQNR) and 15 ops
    assert all(layer["sqnr_db"] > 10 for layer in layers[1:])
