"""The Python API: the README's example runs as printed, and gives what the commands give."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import tvmq
from tvmq.cli import main
from tvmq.examples import DIGITS_DATA, DIGITS_MODEL, digits_split
from tvmq.targets import load_target

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the Python API section has no python example"
    return match.group(1)


def test_readme_example_gives_what_the_commands_give(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    example: dict = {}
    exec(compile(readme_example(), str(README), "exec"), example)
    capsys.readouterr()

    # The saved model, run by `tvmq run` on the whole test split, gives the example's
    # host outputs bit for bit, and their accuracy is the example's score.
    images, labels = digits_split("test")
    np.save("images.npy", images)
    assert main(["run", "digits_int8.tvmq", "--input", "images.npy", "--output", "y.npy"]) == 0
    from_cli = np.load("y.npy")[:, 0]
    from_api = np.stack([example["run"](image)[0][0] for image in images])
    np.testing.assert_array_equal(from_cli, from_api)
    score = example["score"]
    assert score.metric == "top1"
    assert score.value == np.mean(from_cli.argmax(axis=1) == labels)
    assert score.value >= 0.95  # the float model's 98.3 %, give or take a sample or two
    assert str(score).startswith(f"top1 {score.value:.4f} on the 360 test samples (x_test)")

    # Calibrating on an array is calibrating on the same samples read from the file.
    from_array = tvmq.quantize_model(DIGITS_MODEL, digits_split("train")[0][:200])
    assert from_array.quantization["tensors"] == example["int8"].quantization["tensors"]

    # The firmware project the example compiled is whole and its report is the ELF's.
    from tvmq.backend.mcu import elf_sizes

    compiled = example["compiled"]
    firmware = compiled.directory / "build" / "firmware.elf"
    assert compiled.directory == Path("digits_m4") and firmware.is_file()
    assert compiled.report["flash"] == elf_sizes(firmware)["flash"]
    assert compiled.report["flash"] <= compiled.report["flash_limit"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fast"}, "--mode fast: expected one of static, dynamic, weight-only"),
        ({"calibrator": "max"}, "--calibrator max: expected one of minmax"),
        ({"colour": "red"}, "unknown quantize option 'colour' (known: mode, calibrator"),
        ({"mode": "dynamic", "sensitivity": True}, "need --mode static, not dynamic"),
        ({"budget": -1}, "--budget -1: a loss budget cannot be negative"),
        ({"weight_bits": 3}, "--weight-bits 3: supported are 4 and 8"),
        ({"bits": ["conv2d#1:4"]}, "--bits conv2d#1:4: expected LAYER=BITS"),
        ({"bits": {"conv9": 4}}, "no layer named 'conv9' for --bits"),
        ({"codebook_per_channel": True}, "--codebook-per-channel: give --codebook K"),
    ],
)
def test_bad_quantize_options_are_one_line_errors(options, message):
    with pytest.raises(tvmq.TvmqError) as error:
        tvmq.quantize_model(DIGITS_MODEL, DIGITS_DATA, **options)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_other_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(tvmq.TvmqError, match="--mode static calibrates: give --calib DATA"):
        tvmq.quantize_model(DIGITS_MODEL)
    with pytest.raises(tvmq.TvmqError, match="shapes apply to a model file"):
        tvmq.build_model(tvmq.load_model(DIGITS_MODEL), shapes={"input": (1, 1, 8, 8)})
    output = tmp_path / "fw"
    with pytest.raises(tvmq.TvmqError, match="--arena-section and --weights-section"):
        tvmq.compile_model(DIGITS_MODEL, "rpi5", output, arena_section=".sram2")
    assert not output.exists()


def test_import_tvmq_imports_no_tvm():
    code = "import sys, tvmq; print(sorted(m for m in sys.modules if m.split('.')[0] == 'tvm'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def digits_float():
    return tvmq.load_model(DIGITS_MODEL)


def test_evaluate_model_on_arrays_scores_as_on_the_file(digits_float):
    model = digits_float
    images, labels = digits_split("test")
    from_file = tvmq.evaluate_model(model, DIGITS_DATA, progress=False)
    from_arrays = tvmq.evaluate_model(model, (images, labels), progress=False)
    assert from_arrays.value == from_file.value >= 0.95
    assert from_arrays.scored == "samples [0, 360) of 360 in the arrays (x, y)"
    # A leading fraction is skipped as in a file: the score of the rest (the target
    # may be given loaded, as tune_model's result and compile_model's hold it).
    host = load_target("host")
    rest = tvmq.evaluate_model(
        model, (images, labels), skip_fraction=0.5, target=host, progress=False
    )
    with tvmq.build_model(model, host) as run:
        hits = [np.argmax(run(x)[0]) == y for x, y in zip(images, labels, strict=True)][180:]
    assert rest.value == np.mean(hits)


@pytest.mark.parametrize(
    ("data", "metric", "message"),
    [
        ("x", None, "the array x: no labels (y) to score top1 against"),
        ("x,y", "auc", "output 'probabilities' [1, 10] does not reconstruct input"),
        ("x,y+10", None, "the arrays (x, y): label 19 is beyond the 10 classes"),
        ("x,y-1", None, "labels y: -1 is not a class index"),
        ("x,onehot", None, "labels y: expected one class index per sample"),
        ("x,y[:9]", None, "360 samples in x but 9 labels in y"),
        ("x,y,y", None, "expected a data path or arrays (x, y), got tuple"),
        ("x[:,:4],y", None, "the arrays (x, y): a sample of shape [1, 1, 4, 8] does not fit"),
    ],
)
def test_arrays_that_do_not_fit_are_one_line_errors(digits_float, data, metric, message):
    images, labels = digits_split("test")
    arrays = {
        "x": images,
        "x,y": (images, labels),
        "x,y+10": (images, labels + 10),
        "x,y-1": (images, labels - 1),
        "x,onehot": (images, np.eye(10, dtype=np.int64)[labels]),
        "x,y[:9]": (images, labels[:9]),
        "x,y,y": (images, labels, labels),
        "x[:,:4],y": (images[..., :4, :], labels),
    }[data]
    with pytest.raises(tvmq.TvmqError) as error:
        tvmq.evaluate_model(digits_float, arrays, metric=metric)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_commands_choices_are_the_librarys_constants():
    from tvmq.cli import parser
    from tvmq.data import INPUT_FORMATS
    from tvmq.evaluate import METRICS
    from tvmq.quantize.calibrators import CALIBRATORS
    from tvmq.quantize.options import ACTIVATIONS, MODES
    from tvmq.train.optimizers import OPTIMIZERS
    from tvmq.tune import OBJECTIVES

    library = {
        "mode": MODES,
        "calibrator": tuple(CALIBRATORS),
        "activations": ACTIVATIONS,
        "metric": METRICS,
        "input_format": INPUT_FORMATS,
        "optimizer": tuple(OPTIMIZERS),
        "objective": OBJECTIVES,
    }
    commands = parser()._subparsers._group_actions[0].choices
    seen = set()
    for command in commands.values():
        for action in command._actions:
            if action.choices is not None and action.dest in library:
                assert tuple(action.choices) == library[action.dest], action.dest
                seen.add(action.dest)
    assert seen == set(library)


def test_demo_on_host_scores_as_evaluate_model(digits_float, capsys):
    from tvmq.demo import run_demo

    results = run_demo("host")
    printed = capsys.readouterr().out
    int8 = tvmq.quantize_model(digits_float, DIGITS_DATA, calib_samples=200)
    for name, model in (("float32", digits_float), ("int8", int8)):
        score = tvmq.evaluate_model(model, DIGITS_DATA, progress=False)
        assert results[name]["accuracy"] == score.value
        assert re.search(rf"^{name} +{score.value:8.2%} ", printed, re.M)
    assert "360 test images on 'host'" in printed


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_tune_model_records_are_what_compile_model_applies(digits_float, tmp_path):
    """Two trials on the emulated M4 write records into work_dir; a compile with
    schedules_for(work_dir) takes them, and its summary counts the kernels that did."""
    from tvmq.tune.database import load_records

    int8 = tvmq.quantize_model(digits_float, DIGITS_DATA, calib_samples=50)
    tuning = tvmq.tune_model(int8, "qemu-cortex-m4", 2, work_dir=tmp_path / "db", seed=1)
    records = load_records(tmp_path / "db", tuning.target)
    assert tuning.directory == tmp_path / "db" and tuning.runner == "board"
    assert tuning.result.trials_run >= 1 and records
    schedules = tvmq.schedules_for(tuning.target, tmp_path / "db", objective="speed")
    compiled = tvmq.compile_model(int8, tuning.target, tmp_path / "fw", schedules=schedules)
    assert compiled.schedules is schedules
    tuned = {record.workload.mod for record in records}
    assert 1 <= schedules.applied <= len(tuned) < schedules.kernels
    assert schedules.summary().startswith(
        f"tuned schedules: {schedules.applied} of {schedules.kernels} kernels from "
        f"{tmp_path / 'db'}"
    )
    untuned = tvmq.schedules_for(tuning.target, tmp_path / "db", tuned=False)
    tvmq.compile_model(int8, tuning.target, tmp_path / "plain", schedules=untuned)
    assert untuned.applied == 0


def test_autoencoder_auc_on_arrays(tmp_path):
    """AUC of an autoencoder on arrays (x, y) with y 0 (normal) or 1 (anomalous): a
    sample's score is its mean squared reconstruction error, and the AUC is the
    chance an anomaly scores above a normal sample. AUC is the default for a model
    whose output has its input's shape; labels other than 0/1 are refused."""
    from onnx import helper, numpy_helper

    from tests.onnx_models import graph_model

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 8)).astype(np.float32)  # normal samples span 3 dims
    encode, decode = np.linalg.pinv(basis).astype(np.float32), basis
    nodes = [
        helper.make_node("MatMul", ["x", "encode"], ["code"]),
        helper.make_node("MatMul", ["code", "decode"], ["y"]),
    ]
    weights = [numpy_helper.from_array(encode, "encode"), numpy_helper.from_array(decode, "decode")]
    onnx.save(graph_model(nodes, {"x": (1, 8)}, (1, 8), weights), tmp_path / "ae.onnx")
    normal = rng.normal(size=(30, 1, 3)).astype(np.float32) @ basis
    anomalous = normal[:10] + rng.normal(0, 0.3, (10, 1, 8)).astype(np.float32)
    x = np.concatenate([normal, anomalous])
    y = np.array([0] * len(normal) + [1] * len(anomalous))
    score = tvmq.evaluate_model(tmp_path / "ae.onnx", (x, y), progress=False)
    with tvmq.build_model(tmp_path / "ae.onnx") as run:
        errors = np.array([np.mean((run(sample)[0] - sample) ** 2) for sample in x])
    positive, negative = errors[y == 1], errors[y == 0]
    expected = np.mean(positive[:, None] > negative[None, :])
    assert score.metric == "auc" and score.value == pytest.approx(expected) and expected > 0.9
    with pytest.raises(tvmq.TvmqError, match="metric auc needs labels 0"):
        tvmq.evaluate_model(tmp_path / "ae.onnx", (x, y * 2), progress=False)
