"""Bad input on the command line: one line on stderr, exit status 2, nothing written."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests import tflite_models
from tests.test_cli import assert_user_error, tvmq
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model


def _sample() -> np.ndarray:
    return digits_split("test")[0][0]


def test_run_takes_one_npz_holding_the_inputs_by_name(tmp_path):
    inputs, output = tmp_path / "x.npz", tmp_path / "y.npy"
    np.savez(inputs, input=_sample())
    result = tvmq("run", DIGITS_MODEL, "--input", inputs, "--output", output)
    assert result.returncode == 0, result.stderr
    expected = load_model(DIGITS_MODEL).build("host")(_sample())[0]
    np.testing.assert_array_equal(np.load(output), expected)
    output.unlink()
    misnamed = tmp_path / "misnamed.npz"
    np.savez(misnamed, image=_sample(), label=np.int64(3))  # a lone array would feed it
    result = tvmq("run", DIGITS_MODEL, "--input", misnamed, "--output", output)
    assert_user_error(result, str(misnamed), "no array named input", "image")
    assert not output.exists()


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    sample, directory, regular = tmp_path / "x.npy", tmp_path / "out", tmp_path / "file"
    np.save(sample, _sample())
    directory.mkdir()
    regular.write_text("not a directory")
    result = tvmq("run", DIGITS_MODEL, "--input", sample, "--output", directory)
    assert_user_error(result, str(directory), "is a directory")
    # Under a regular file: unwritable even for root, who ignores permission bits.
    result = tvmq("run", DIGITS_MODEL, "--input", sample, "--output", regular / "y.npy")
    assert_user_error(result, str(regular / "y.npy"), "not a directory")
    model = tmp_path / "q.tvmq"
    model.mkdir()
    result = tvmq("quantize", DIGITS_MODEL, "--calib", sample, "-o", model)
    assert_user_error(result, str(model), "is a directory")
    result = tvmq("tune", DIGITS_MODEL, "--target", "host", "--trials", "1",
                  "--work-dir", regular / "db")  # fmt: skip
    assert_user_error(result, str(regular / "db"), "not a directory")
    assert list(directory.iterdir()) == [] and list(model.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out", "q.tvmq", "x.npy"]


def test_data_that_does_not_fit_the_model(tmp_path):
    data, output = tmp_path / "wrong.npz", tmp_path / "q.tvmq"
    np.savez(data, x=np.zeros((6, 7), np.float32), y=np.zeros(6, np.int64))
    result = tvmq("quantize", DIGITS_MODEL, "--calib", data, "-o", output)
    assert_user_error(result, str(data), "shape [7]", "does not fit input 'input'")
    assert not output.exists()
    result = tvmq("eval", DIGITS_MODEL, "--data", data)
    assert_user_error(result, str(data), "shape [7]", "does not fit input 'input'")


def test_a_model_tvm_cannot_import_gives_one_line_naming_the_op(tmp_path):
    """TVM's importers print their own line and leave a BlockBuilder scope open (it
    warns on stderr when collected), with the failing operator printed whole in the
    error: none of it reaches the user."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add0")],
        "unbroadcastable",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 5]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
    )
    model = tmp_path / "add.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    result = tvmq("inspect", model)  # reports the node that fails, exit 1, nothing on stderr
    assert (result.returncode, result.stderr) == (1, ""), result.stderr
    assert "add0" in result.stdout and "In ir.Op" not in result.stdout
    result = tvmq("run", model, "--input", tmp_path / "a.npy", "--input", tmp_path / "b.npy")
    assert_user_error(result, str(model), "add0", "relax.add", "broadcastable")
    assert result.stdout == ""
    mul = tflite_models.mul_int8(
        tmp_path / "mul.tflite", [(1, 4), (1, 3), (1, 4)], [(0.1, 0), (0.1, 0), (0.1, 0)]
    )
    result = tvmq("run", mul, "--input", tmp_path / "a.npy", "--input", tmp_path / "b.npy")
    assert_user_error(result, str(mul), "relax.multiply", "broadcastable")
    assert "In ir.Op" not in result.stderr


@pytest.mark.parametrize("dims", ["1,-3,8,8", "0,3", "65536,65536", "1,2147483648"])
def test_shape_options_refuse_dims_no_tensor_can_have(dims):
    from tvmq.errors import TvmqError
    from tvmq.frontend.shapes import parse_shape_options

    with pytest.raises(TvmqError, match=rf"^--shape x={dims}: tensor 'x': "):
        parse_shape_options([f"x={dims}"])


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_outputs_are_refused_when_they_exist_unless_forced_and_get_usual_permissions(tmp_path):
    """One rule for every command: existing output refused unless --force, files and
    directories made as open() and mkdir() would (0666/0777 less the umask)."""
    sample, output, report = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "report"
    np.save(sample, _sample())
    batch = tmp_path / "b.npy"
    np.save(batch, digits_split("train")[0][:8])
    quantized = tmp_path / "q.tvmq"
    for path in (output, quantized):
        path.write_text("kept")
    report.mkdir()
    (report / "old.txt").write_text("kept")
    for command in (
        ["run", DIGITS_MODEL, "--input", sample, "--output", output],
        ["quantize", DIGITS_MODEL, "--calib", batch, "-o", quantized],
        ["debug", DIGITS_MODEL, quantized, "--data", batch, "-o", report],
        ["compile", DIGITS_MODEL, "--target", "qemu-cortex-m4", "-o", report],
    ):
        assert_user_error(tvmq(*command), "already exists; use --force to replace it")
    assert output.read_text() == quantized.read_text() == "kept"
    # A forced compile that fails leaves the old directory whole and nothing beside it.
    result = tvmq("compile", DIGITS_MODEL, "--target", "host", "-o", report, "--force")
    assert_user_error(result, "target 'host'")
    assert [p.name for p in report.iterdir()] == ["old.txt"]
    before = os.umask(0o027)
    try:
        result = tvmq("run", DIGITS_MODEL, "--input", sample, "--output", output, "--force")
        assert result.returncode == 0, result.stderr
        result = tvmq("quantize", DIGITS_MODEL, "--calib", batch, "-o", quantized, "--force")
        assert result.returncode == 0, result.stderr
        result = tvmq("debug", DIGITS_MODEL, quantized, "--data", batch, "-o", report, "--force")
        assert result.returncode == 0, result.stderr
    finally:
        os.umask(before)
    np.testing.assert_array_equal(
        np.load(output), load_model(DIGITS_MODEL).build("host")(_sample())[0]
    )
    assert _mode(output) == _mode(quantized) == 0o640
    assert _mode(report) == 0o750 and _mode(report / "report.md") == 0o640
    assert sorted(p.name for p in report.iterdir()) == ["per_layer.png", "report.json", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "b.npy",
        "q.tvmq",
        "report",
        "x.npy",
        "y.npy",
    ]


def test_a_reader_that_stops_early_gets_no_traceback():
    """`tvmq inspect MODEL | head -1`: the pipe closes under the summary; the command
    stops quietly with SIGPIPE's status, as Unix tools do."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "tvmq", "inspect", str(DIGITS_MODEL)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader leaves before the first line
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141, stderr
    assert stderr == ""
