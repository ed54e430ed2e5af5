"""tvmq optimize: mixed precision chosen under budgets measured on the emulated board."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from tests import kernel_checks
from tests.onnx_models import graph_model, weight
from tests.test_cli import assert_user_error, tvmq
from tvmq.api import load_model, optimize_model, quantize_model
from tvmq.examples import DIGITS_DATA, DIGITS_MODEL
from tvmq.optimize.budgets import BYTE_UNITS, COUNT_UNITS, Budgets, parse_amount

# Two layers searched (the others int8) and few samples: a front of a few points.
LAYERS = ("conv2d#1", "matmul#0")
SMALL = {"calib_samples": 50, "eval_samples": 60}


def test_budget_units():
    assert parse_amount("64KiB", BYTE_UNITS, "--flash-budget") == 65536
    assert parse_amount("1.5MiB", BYTE_UNITS, "--flash-budget") == 1572864
    assert parse_amount("4096", BYTE_UNITS, "--ram-budget") == 4096
    assert parse_amount("250k", COUNT_UNITS, "--instructions-budget") == 250_000
    budgets = Budgets.parse(0.5, "30KiB", None, "1.2M")
    assert budgets.limits() == {"drop": 0.5, "flash": 30720, "instructions": 1_200_000}
    assert budgets.met({"drop": 0.4, "flash": 30000, "ram": 1 << 30, "instructions": 10})
    assert not budgets.met({"drop": 0.6, "flash": 30000, "ram": 0, "instructions": 10})


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--flash-budget", "64KB", ("--flash-budget 64KB", "KiB")),
        ("--ram-budget", "-3KiB", ("--ram-budget -3KiB",)),
        ("--instructions-budget", "2G", ("--instructions-budget 2G", "k, M")),
        ("--flash-budget", "0", ("--flash-budget 0", "positive")),
        ("--max-drop", "-1", ("--max-drop -1",)),
    ],
)
def test_bad_budget_is_one_line(tmp_path, flag, value, words):
    output = tmp_path / "out.tvmq"
    result = tvmq(
        "optimize", DIGITS_MODEL, "--calib", DIGITS_DATA, "--eval", DIGITS_DATA,
        "--target", "qemu-cortex-m4", f"{flag}={value}", "-o", output,
    )  # fmt: skip
    assert_user_error(result, *words)
    assert not output.exists()


def test_target_must_be_an_emulated_board(tmp_path):
    result = tvmq(
        "optimize", DIGITS_MODEL, "--calib", DIGITS_DATA, "--eval", DIGITS_DATA,
        "--target", "host", "-o", tmp_path / "out.tvmq",
    )  # fmt: skip
    assert_user_error(result, "--target host", "emulated Cortex-M")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """A two-conv, one-Gemm CNN on 8x8 inputs and labelled samples: the layers the
    search walks (conv2d#1, matmul#0) as the digits CNN has them, with host builds
    several times quicker, so each real build of the searches below costs seconds."""
    directory = tmp_path_factory.mktemp("small")
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    model = graph_model(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], **conv),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], **conv),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("Flatten", ["r2"], ["f"]),
            helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
        ],
        {"x": [1, 1, 8, 8]}, [1, 4],
        [weight("w1", 4, 1, 3, 3), weight("b1", 4), weight("w2", 8, 4, 3, 3),
         weight("b2", 8), weight("w3", 4, 512, scale=0.05), weight("b3", 4)],
    )  # fmt: skip
    x = np.random.default_rng(0).random((120, 1, 8, 8), dtype=np.float32)
    labels = np.arange(len(x)) % 4  # the metric's value is not what is checked
    onnx.save(model, directory / "small.onnx")
    np.savez(directory / "small.npz", x=x, y=labels.astype(np.int64))
    return directory / "small.onnx", directory / "small.npz"


@pytest.fixture(scope="module")
def optimized(tmp_path_factory, small):
    directory = tmp_path_factory.mktemp("optimize")
    model, data = small
    result = optimize_model(
        model, data, data, target="qemu-cortex-m4", max_drop=2.0,
        flash_budget="64KiB", instructions_budget="2M", layers=LAYERS,
        output=directory / "small.tvmq", report=directory / "report", **SMALL,
    )  # fmt: skip
    return result, directory


@kernel_checks.needs_cortex_m
def test_chosen_point_meets_the_budgets(optimized):
    result, directory = optimized
    chosen = result.chosen
    assert result.met
    assert chosen.drop <= 2.0
    assert chosen.cost["flash"] <= 65536 and chosen.cost["instructions"] <= 2_000_000
    meeting = [p for p in result.front if result.budgets.met(p.figures)]
    assert chosen.cost["flash"] == min(p.cost["flash"] for p in meeting)
    # All int8 first (the reference), the walk's end last: every searched layer int4.
    assert result.front[0].description == "all int8"
    assert result.front[-1].description == " ".join(f"{layer}=int4" for layer in LAYERS)
    assert result.front[-1].cost["weights_bytes"] < result.front[0].cost["weights_bytes"]
    saved = load_model(directory / "small.tvmq")
    assert saved.quantization["quantized_ops"] == result.model.quantization["quantized_ops"]
    for name in ("front.md", "front.json", "front.png"):
        assert (directory / "report" / name).stat().st_size > 0
    assert "| * |" in (directory / "report" / "front.md").read_text()


@kernel_checks.needs_cortex_m
def test_mixed_point_on_board_is_identical_to_host(optimized, small):
    """A front point with int4 or codebook layers next to int8 ones, rebuilt by
    quantize's flags, runs bit-exactly on the M4."""
    result, _ = optimized
    model_path, data = small
    point = next(
        (p for p in result.front if "codebook16" in p.description and "int4" in p.description),
        result.front[-1],
    )
    chosen = dict(item.split("=") for item in point.description.split())
    x_test = np.load(data)["x"][-4:, None]
    model = quantize_model(
        model_path, data, calib_samples=SMALL["calib_samples"],
        bits={layer: 4 for layer, choice in chosen.items() if choice == "int4"},
        codebook_layers={layer: 16 for layer, c in chosen.items() if c == "codebook16"},
    )  # fmt: skip
    host = model.build("host")
    with model.build("qemu-cortex-m4") as board:
        for x in x_test[:4]:
            for got, expected in zip(board(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)


@kernel_checks.needs_cortex_m
def test_impossible_budget_exits_1_with_the_closest_point(tmp_path, small):
    model, data = small
    output = tmp_path / "out.tvmq"
    result = tvmq(
        "optimize", model, "--calib", data, "--eval", data,
        "--target", "qemu-cortex-m4", "--flash-budget", "1KiB", "--layer", "matmul#0",
        "--calib-samples", "30", "--eval-samples", "40", "-o", output,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    # One line (after the progress bars): the closest point, each figure and its budget.
    lines = [line for line in result.stderr.splitlines() if line.startswith("tvmq:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(lines[0])
    assert "no point of the front meets the budgets; closest [" in lines[0]
    assert "flash" in lines[0] and "(budget 1,024)" in lines[0]
    assert not output.exists()


def test_existing_outputs_are_refused_before_any_work(tmp_path):
    output, report = tmp_path / "out.tvmq", tmp_path / "front"
    output.write_text("kept")
    arguments = [
        "optimize", DIGITS_MODEL, "--calib", DIGITS_DATA, "--eval", DIGITS_DATA,
        "--target", "qemu-cortex-m4",
    ]  # fmt: skip
    assert_user_error(tvmq(*arguments, "-o", output), "already exists; use --force")
    assert output.read_text() == "kept"
    report.mkdir()
    result = tvmq(*arguments, "-o", tmp_path / "new.tvmq", "--report", report)
    assert_user_error(result, "front: already exists")
    result = tvmq(*arguments, "-o", tmp_path / "new.tvmq", "--eval-samples", "0")
    assert_user_error(result, "--eval-samples 0")
