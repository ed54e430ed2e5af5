"""Sensitivity search: layers fall back to float, most harmful first, until the
loss is within budget."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_cli import tvmq
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import calibrate_model
from tvmq.quantize.scheme import QuantConfig
from tvmq.quantize.sensitivity import output_error_loss, search

SAMPLES = [[x] for x in digits_split("train")[0][:40]]
# A coarse scheme, so that the full int8 model misses a tight budget.
COARSE = QuantConfig(calibrator="minmax", per_channel=False, power_of_two=True)
BUDGET = 0.3


def test_fallback_follows_ranking_until_within_budget():
    float_model = load_model(DIGITS_MODEL)
    calibrated = calibrate_model(float_model, SAMPLES, COARSE)
    loss = output_error_loss(float_model, SAMPLES)
    model, result = search(calibrated, loss, BUDGET)

    assert result.losses[0] > BUDGET, "precondition: the full int8 model misses the budget"
    assert set(result.alone) == set(calibrated.op_names)
    ranked = sorted(result.alone, key=result.alone.get, reverse=True)
    assert list(result.fallback) == ranked[: len(result.fallback)]
    assert result.final_loss <= BUDGET
    assert all(value > BUDGET for value in result.losses[:-1])
    assert loss(model) == pytest.approx(result.final_loss)
    skipped = {s["name"]: s["reason"] for s in model.quantization["skipped_ops"]}
    assert all("above budget" in skipped[name] for name in result.fallback)
    kept = {op["name"] for op in model.quantization["quantized_ops"]}
    assert kept == set(calibrated.op_names) - set(result.fallback)


def test_cli_sensitivity_with_task_metric(tmp_path):
    calibration, output = tmp_path / "calib.npy", tmp_path / "digits.tvmq"
    x, y = digits_split("test")
    np.save(calibration, x[:30])
    labelled = tmp_path / "test.npz"
    np.savez(labelled, x=x[:120], y=y[:120])
    result = tvmq(
        "quantize", DIGITS_MODEL, "--calib", calibration, "-o", output, "--sensitivity",
        "--eval", labelled, "--calib-fraction", "0.25", "--budget", "2", "--report", tmp_path / "r",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "float top1" in result.stdout
    assert "within the budget of 2 %" in result.stdout
    assert "sensitivity" in (tmp_path / "r" / "report.json").read_text()
