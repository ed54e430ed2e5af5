"""The command line: real processes, exit codes, one-line errors, no partial output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests import onnx_models
from tests.shared_assets import shared_model
from tvmq.examples import DIGITS_MODEL, digits_split

EXIT_USER_ERROR = 2


def tvmq(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "tvmq", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def assert_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tvmq: error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture
def digits_input(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, digits_split("test")[0][0])
    return path


def test_run_writes_output_matching_the_python_api(tmp_path, digits_input):
    output = tmp_path / "y.npy"
    result = tvmq("run", DIGITS_MODEL, "--input", digits_input, "--output", output)
    assert result.returncode == 0, result.stderr
    from tvmq.frontend import load_model

    expected = load_model(DIGITS_MODEL).build("host")(np.load(digits_input))[0]
    np.testing.assert_array_equal(np.load(output), expected)
    assert "probabilities: float32[1, 10]" in result.stdout


def test_run_accepts_a_batch_along_a_new_first_axis(tmp_path):
    batch = tmp_path / "batch.npy"
    np.save(batch, digits_split("test")[0][:5])
    output = tmp_path / "y.npy"
    assert tvmq("run", DIGITS_MODEL, "--input", batch, "--output", output).returncode == 0
    predictions = np.load(output).argmax(axis=-1).ravel()
    assert predictions.shape == (5,)
    assert (predictions == digits_split("test")[1][:5]).sum() >= 4


def test_inspect_reports_operators_and_quantization(tmp_path):
    path = shared_model("ic_resnet8_int8")
    result = tvmq("inspect", path, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["operators"]["CONV_2D"] == 9
    assert info["inputs"][0]["quantization"] == {"scale": [1.0], "zero_point": [-128], "axis": None}
    assert info["unsupported"] == []
    assert info["parameter_bytes"] > 70_000


def inspect_not_importing(proto: onnx.ModelProto, path: Path) -> str:
    """`tvmq inspect`'s report on `proto` saved at `path`, which must exit 1 (the
    model does not import as it stands)."""
    onnx.save(proto, path)
    result = tvmq("inspect", path)
    assert result.returncode == 1, result.stderr
    return result.stdout


def test_inspect_lists_unsupported_operators_by_node(tmp_path):
    report = inspect_not_importing(onnx_models.with_unsupported_op(), tmp_path / "custom.onnx")
    assert "fancy1 (com.example.FancyActivation): no converter" in report


def test_inspect_names_nodes_the_importer_fails_on_and_run_refuses_them(tmp_path):
    """LRN has a converter in TVM's map, which rejects 5-D inputs: inspect must not say
    "none", and run fails in one line naming the nodes."""
    path = tmp_path / "lrn.onnx"
    report = inspect_not_importing(onnx_models.failing_conversion(), path)
    assert "unsupported operators (2)" in report
    assert "lrn_a (LRN): LRN only supports 3D or 4D input, got 5D" in report
    assert "lrn_b (LRN)" in report
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4, 3, 5, 5), np.float32))
    output = tmp_path / "y.npy"
    result = tvmq("run", path, "--input", x, "--output", output)
    assert_user_error(result, "2 node(s) cannot be imported", "lrn_a (LRN)", "5D")
    assert not output.exists()


def test_inspect_shows_free_dims_and_imports_with_shape(tmp_path):
    path = tmp_path / "free.onnx"
    report = inspect_not_importing(onnx_models.free_dims_conv(), path)
    assert "x: float32[N, 3, H, W]" in report
    assert "parameters: 4 tensors" in report
    assert "import not tried: free input dims x (N, H, W)" in report
    result = tvmq("inspect", path, "--shape", "x=1,3,40,56", "--target", "host", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["inputs"][0]["shape"] == [1, 3, 40, 56]
    assert info["outputs"][0]["shape"] == [1, 6, 10, 14]
    assert (info["imports"], info["lowers"], info["unsupported"]) == (True, True, [])


def test_inspect_target_checks_the_lowering_against_the_board(tmp_path):
    """At 160x160 the free-dims net's activations outgrow the Cortex-M4 board's RAM;
    at 16x16 it lowers. An unknown target is the user's mistake (exit 2)."""
    path = tmp_path / "free.onnx"
    onnx.save(onnx_models.free_dims_conv(), path)
    result = tvmq("inspect", path, "--shape", "x=1,3,160,160", "--target", "qemu-cortex-m4")
    assert result.returncode == 1, result.stderr
    assert "unsupported operators: none" in result.stdout
    assert "lowering for qemu-cortex-m4: fails: activation arena" in result.stdout
    assert "exceed the RAM of qemu-cortex-m4 (655,360 B)" in result.stdout
    result = tvmq("inspect", path, "--shape", "x=1,3,16,16", "--target", "qemu-cortex-m4")
    assert result.returncode == 0, result.stderr
    assert "lowering for qemu-cortex-m4: ok" in result.stdout
    assert_user_error(tvmq("inspect", path, "--target", "no-such-board"), "no-such-board")


def test_inspect_target_names_the_node_the_lowering_fails_at(tmp_path):
    from tvmq.describe import format_summary

    path = tmp_path / "cumsum.onnx"
    onnx.save(onnx_models.cumulative_sum(), path)
    result = tvmq("inspect", path, "--target", "qemu-cortex-m4", "--json")
    assert result.returncode == 1, result.stderr
    info = json.loads(result.stdout)
    assert (info["imports"], info["lowers"]) == (True, False)
    assert info["lowering_node"] == {"node": "running_total", "op": "relax.cumsum"}
    line = "lowering for qemu-cortex-m4: fails at running_total (relax.cumsum): "
    assert line in format_summary(info)


def test_run_with_shape_matches_onnxruntime_and_refuses_free_dims(tmp_path):
    import onnxruntime

    path = tmp_path / "free.onnx"
    onnx.save(onnx_models.free_dims_conv(), path)
    x = np.random.default_rng(5).standard_normal((1, 3, 40, 56)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    output = tmp_path / "y.npy"
    result = tvmq("run", path, "--input", tmp_path / "x.npy", "--output", output)
    assert_user_error(result, "'x' float32[N, 3, H, W]", "--shape x=N,3,H,W")
    assert not output.exists()
    assert_user_error(
        tvmq("run", path, "--shape", "x=1,3,40", "--input", tmp_path / "x.npy"), "rank 3"
    )
    assert_user_error(
        tvmq("run", path, "--shape", "x=1,3,a,b", "--input", tmp_path / "x.npy"),
        "--shape x=1,3,a,b",
    )
    result = tvmq(
        "run", path, "--shape", "x=1,3,40,56", "--input", tmp_path / "x.npy", "--output", output
    )
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        np.load(output), session.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4
    )


def test_every_command_that_imports_takes_shape():
    from tvmq.cli import parser

    for argv in (
        ["inspect", "m.onnx"],
        ["run", "m.onnx", "--input", "x.npy"],
        ["quantize", "m.onnx", "-o", "q.tvmq"],
        ["debug", "m.onnx", "q.tvmq", "--data", "d.npy", "-o", "report"],
        ["eval", "m.onnx", "--data", "d.npz"],
        ["compile", "m.onnx", "--target", "rpi4", "-o", "out"],
        ["bench", "m.onnx", "--target", "qemu-cortex-m4"],
        ["tune", "m.onnx", "--target", "host", "--trials", "1"],
    ):
        args = parser().parse_args([*argv, "--shape", "x=1,3", "--shape", "y=2"])
        assert args.shape == ["x=1,3", "y=2"], argv


def test_truncated_model(tmp_path, digits_input):
    for source in (DIGITS_MODEL, shared_model("kws_dscnn_int8")):
        path = tmp_path / f"truncated{source.suffix}"
        path.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
        output = tmp_path / "y.npy"
        assert_user_error(tvmq("run", path, "--input", digits_input, "--output", output), str(path))
        assert not output.exists()


def test_random_bytes(tmp_path, digits_input):
    rng = np.random.default_rng(3)
    for suffix in (".onnx", ".tflite"):
        path = tmp_path / f"random{suffix}"
        path.write_bytes(rng.bytes(4096))
        assert_user_error(tvmq("inspect", path), str(path))


def test_unknown_extension(tmp_path):
    path = tmp_path / "model.pb"
    path.write_bytes(b"\x00" * 16)
    assert_user_error(tvmq("inspect", path), "unknown model extension", ".pb")


def test_unsupported_operator_names_node_and_op(tmp_path, digits_input):
    path = tmp_path / "custom.onnx"
    onnx.save(onnx_models.with_unsupported_op(), path)
    output = tmp_path / "y.npy"
    result = tvmq("run", path, "--input", digits_input, "--output", output)
    assert_user_error(result, "fancy1", "FancyActivation")
    assert not output.exists()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.zeros((1, 1, 9, 9), np.float32), ("shape [1, 1, 9, 9]", "'input'")),
        (np.zeros((1, 1, 8, 8), np.int8), ("dtype int8", "'input'")),
        (None, ()),  # not NumPy at all: the message names the file
    ],
    ids=["shape", "dtype", "not-numpy"],
)
def test_input_with_wrong_shape_or_dtype(tmp_path, values, expected):
    source = tmp_path / "x.npy"
    if values is None:
        source.write_text("hello")
    else:
        np.save(source, values)
    output = tmp_path / "y.npy"
    result = tvmq("run", DIGITS_MODEL, "--input", source, "--output", output)
    assert_user_error(result, *(expected or (str(source),)))
    assert not output.exists()


def test_unknown_target(digits_input):
    assert_user_error(
        tvmq("run", DIGITS_MODEL, "--input", digits_input, "--target", "pdp11"), "pdp11"
    )


def test_profile_needs_an_emulated_cortex_m(digits_input):
    result = tvmq("run", DIGITS_MODEL, "--input", digits_input, "--profile")
    assert_user_error(result, "--profile", "host")


def test_doctor_lists_tools():
    result = tvmq("doctor")
    for tool in ("apache-tvm", "arm-none-eabi-gcc", "qemu-system-arm", "qemu-aarch64"):
        assert tool in result.stdout


def test_doctor_names_apt_packages_for_missing_tools(tmp_path):
    script = Path(__file__).resolve().parents[1] / "tvmq" / "doctor.py"
    env = {"PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(script), "--missing-apt"], capture_output=True, text=True, env=env
    )
    assert result.stdout.split() == [
        "gcc-arm-none-eabi",
        "libnewlib-arm-none-eabi",
        "qemu-system-arm",
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
        "gcc-arm-linux-gnueabihf",
        "libc6-dev-armhf-cross",
        "qemu-user",
    ]


def test_compile_writes_a_firmware_project_that_builds_on_its_own(tmp_path):
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is needed (make toolchains)")
    out = tmp_path / "fw"
    result = tvmq("compile", DIGITS_MODEL, "--target", "qemu-cortex-m4", "-o", out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["board"] == "mps2-an386"
    assert manifest["inputs"][0]["shape"] == [1, 1, 8, 8]
    assert (out / "build" / "firmware.elf").is_file()
    rebuilt = subprocess.run(
        ["make", "-s", "-C", out, "BOARD=mps2-an386", f"MODEL_DIR={out / 'model'}",
         f"OUT={tmp_path / 'again'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "again" / "firmware.elf").is_file()
    again = tvmq("compile", DIGITS_MODEL, "--target", "qemu-cortex-m4", "-o", out)
    assert_user_error(again, str(out), "already exists")


def test_compile_refuses_a_target_that_is_not_a_microcontroller(tmp_path):
    result = tvmq("compile", DIGITS_MODEL, "--target", "host", "-o", tmp_path / "fw")
    assert_user_error(result, "host", "Cortex-M")
    assert not (tmp_path / "fw").exists()
    assert list(tmp_path.iterdir()) == []
