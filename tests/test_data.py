"""Data sets: every format opens, every command splits them alike, eval feeds and scores
them as the model needs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from tests import onnx_models, tflite_models
from tests.test_cli import assert_user_error, tvmq
from tvmq.data import calibration_inputs, open_data, read_raw
from tvmq.datasets import as_model_input
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_DATA, DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.model import TensorSpec

SPEC = TensorSpec("input", (1, 1, 8, 8), "float32")


def _digits_set(path, count: int = 40, labelled: bool = True):
    x, y = digits_split("test")
    arrays = {"x": x[:count]} | ({"y": y[:count]} if labelled else {})
    np.savez(path, **arrays)
    return path


def test_labelled_sets_split_interleaved_and_unlabelled_sets_calibrate_whole(tmp_path):
    data = open_data(_digits_set(tmp_path / "d.npz", 9))
    assert data.split() == (range(0, 9, 2), range(1, 9, 2))
    assert data.describe(data.split().evaluation).startswith("the 4 odd-indexed samples of 9")
    assert data.split(0.5) == (range(0, 4), range(4, 9))  # a leading fraction when asked
    unlabelled = open_data(_digits_set(tmp_path / "x.npz", 9, labelled=False))
    assert unlabelled.labels is None and unlabelled.split() == (range(9), range(0))
    np.testing.assert_array_equal(unlabelled.sample(3), digits_split("test")[0][3])


def test_the_bundled_digits_calibrate_on_train_and_score_on_test():
    data = open_data(DIGITS_DATA)
    train, test = digits_split("train"), digits_split("test")
    assert data.split() == (range(len(train[0])), range(len(train[0]), data.size))
    index = len(train[0]) + 5  # its `scale` makes pixels the model's 0..1
    np.testing.assert_array_equal(as_model_input(data.sample(index), SPEC), test[0][5])
    assert int(data.labels[index]) == test[1][5]


def test_raw_bytes_hold_samples_of_the_input_type(tmp_path):
    samples = digits_split("test")[0][:3]
    raw = tmp_path / "x.bin"
    raw.write_bytes(samples.tobytes())
    np.testing.assert_array_equal(read_raw(raw, SPEC), samples)
    model = load_model(DIGITS_MODEL)
    inputs, where = calibration_inputs(raw, model, input_format="raw")
    assert len(inputs) == 3 and where == f"samples [0, 3) of 3 in {raw}"
    raw.write_bytes(samples.tobytes()[:-4])
    with pytest.raises(TvmqError, match="not a whole number of input 'input' samples"):
        read_raw(raw, SPEC)


def test_a_folder_with_y_labels_under_any_name(tmp_path):
    """MLPerf Tiny sets are recognised by their samples' size, others read as raw bytes."""
    kws = tmp_path / "speech_commands"
    kws.mkdir()
    clip = np.arange(490, dtype=np.int64).astype(np.int8)
    (kws / "a.bin").write_bytes(clip.tobytes())
    (kws / "y_labels.csv").write_text("a.bin,12,7\n")
    data = open_data(kws)
    assert data.size == 1 and data.labels.tolist() == [7] and data.sample(0).shape == (49, 10, 1)
    digits = tmp_path / "my_digits"
    digits.mkdir()
    x, y = digits_split("test")
    lines = []
    for index in range(4):
        (digits / f"{index}.bin").write_bytes(x[index].tobytes())
        lines.append(f"{index}.bin,10,{y[index]}")
    (digits / "y_labels.csv").write_text("\n".join(lines))
    with pytest.raises(TvmqError, match="raw data needs the model's input type"):
        open_data(digits)
    data = open_data(digits, SPEC)
    np.testing.assert_array_equal(data.sample(2), x[2])
    (digits / "3.bin").unlink()
    with pytest.raises(TvmqError, match="1 listed sample"):
        open_data(digits, SPEC)


def test_int8_data_is_fed_as_is(tmp_path):
    """int8 data for an int8 model is the model's input already: quantizing it again
    saturated the KWS set (91 % -> 8.5 %)."""
    model = tflite_models.resize_bilinear_int8(
        tmp_path / "resize.tflite", (1, 2, 2, 1), (4, 4), (0.05, -3), False, True
    )
    x = np.random.default_rng(0).integers(-128, 128, (30, 1, 2, 2, 1), dtype=np.int8)
    host = load_model(model).build("host")
    y = np.array([int(np.argmax(host(sample)[0])) for sample in x])
    np.savez(tmp_path / "int8.npz", x=x, y=y)
    result = tvmq("eval", model, "--data", tmp_path / "int8.npz")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        f"top1 1.0000 on the 15 odd-indexed samples of 30 in {tmp_path / 'int8.npz'}"
    )


def test_quantize_and_eval_share_the_split_and_say_which_samples(tmp_path):
    data, output = _digits_set(tmp_path / "d.npz"), tmp_path / "q.tvmq"
    result = tvmq("quantize", DIGITS_MODEL, "--calib", data, "-o", output)
    assert result.returncode == 0, result.stderr
    assert f"calibrating on the 20 even-indexed samples of 40 in {data}" in result.stdout
    result = tvmq("eval", output, "--data", data)
    assert result.returncode == 0, result.stderr
    assert f"on the 20 odd-indexed samples of 40 in {data}" in result.stdout
    assert float(result.stdout.strip().splitlines()[-1].split()[1]) >= 0.9
    result = tvmq("eval", output, "--data", data, "--skip-fraction", "0.25")
    assert f"on samples [10, 40) of 40 in {data}" in result.stdout
    bundled = tmp_path / "b.tvmq"
    result = tvmq("quantize", DIGITS_MODEL, "--calib", DIGITS_DATA, "--calib-samples", "64",
                  "-o", bundled)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "the 1437 training samples (x_train)" in result.stdout


def _relu_autoencoder(path):
    """Output shaped as its input, as an anomaly detector's reconstruction is."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    onnx.save(onnx_models.graph_model(nodes, {"x": [1, 640]}, [1, 640]), path)
    return path


def _anomaly_folder(folder):
    """Two clips, one normal (non-negative) and one anomalous (negative values the
    relu cannot reconstruct), under a name that is not ad01."""
    folder.mkdir()
    for name, sign in (("normal.bin", 1.0), ("anomaly.bin", -1.0)):
        values = sign * np.random.default_rng(0).random((200, 128), np.float32)
        (folder / name).write_bytes(values.astype("<f4").tobytes())
    (folder / "y_labels.csv").write_text("normal.bin,2,0\nanomaly.bin,2,1\n")
    return folder


def test_a_metric_that_does_not_fit_is_refused(tmp_path):
    model, clips = _relu_autoencoder(tmp_path / "ae.onnx"), _anomaly_folder(tmp_path / "clips")
    assert_user_error(
        tvmq("eval", model, "--data", clips, "--metric", "top1"), "anomaly-detection set", "auc"
    )
    result = tvmq("eval", model, "--data", clips, "--skip-fraction", "0")  # auc by default
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split()[:2] == ["auc", "1.0000"]
    labelled = tmp_path / "l.npz"
    np.savez(labelled, x=np.ones((4, 1, 640), np.float32), y=np.zeros(4, np.int64))
    assert_user_error(
        tvmq("eval", model, "--data", labelled, "--metric", "top1"),
        "top1 needs one score per class",
        "'y' [1, 640]",
    )
    assert_user_error(  # auc by default on an autoencoder: both classes needed
        tvmq("eval", model, "--data", labelled), "auc needs labels 0 (normal) and 1"
    )
    assert_user_error(tvmq("eval", DIGITS_MODEL, "--data", DIGITS_DATA, "--metric", "auc"),
                      "does not reconstruct input")  # fmt: skip
    unlabelled = _digits_set(tmp_path / "x.npz", labelled=False)
    assert_user_error(tvmq("eval", DIGITS_MODEL, "--data", unlabelled), "no labels")
    wrong = tmp_path / "w.npz"
    np.savez(wrong, x=digits_split("test")[0][:4], y=np.array([0, 1, 2, 10]))
    assert_user_error(tvmq("eval", DIGITS_MODEL, "--data", wrong), "label 10", "10 classes")


def test_run_takes_raw_bytes(tmp_path):
    samples = digits_split("test")[0][:2]
    raw, output = tmp_path / "x.bin", tmp_path / "y.npy"
    raw.write_bytes(samples.tobytes())
    result = tvmq("run", DIGITS_MODEL, "--input", raw, "--input-format", "raw", "--output", output)
    assert result.returncode == 0, result.stderr
    host = load_model(DIGITS_MODEL).build("host")
    np.testing.assert_array_equal(np.load(output), np.stack([host(x)[0] for x in samples]))


@pytest.mark.shared
def test_kws_int8_data_keeps_the_int8_models_accuracy(tmp_path):
    """The issue's case: the KWS set as int8 (its .bin bytes) for the int8 DS-CNN
    scored 8.5 % when quantized a second time; fed as is, it scores as the folder."""
    from tests.shared_assets import shared_data, shared_model

    model, folder = shared_model("kws_dscnn_int8"), shared_data("kws01")
    rows = (folder / "y_labels.csv").read_text().split()[:200]
    x = np.stack([np.fromfile(folder / row.split(",")[0], np.int8) for row in rows])
    y = np.array([int(row.split(",")[2]) for row in rows])
    np.savez(tmp_path / "kws.npz", x=x, y=y)
    result = tvmq("eval", model, "--data", tmp_path / "kws.npz")
    assert result.returncode == 0, result.stderr
    assert "on the 100 odd-indexed samples of 200" in result.stdout
    assert float(result.stdout.strip().splitlines()[-1].split()[1]) >= 0.85
