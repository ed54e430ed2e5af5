"""bench.zoo's manifest, comparisons and failure lines (no model is downloaded here)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import zoo

TARGETS = zoo.REPO / "targets"


def test_the_corpus_covers_what_issue_19_asks():
    entries = zoo.read_manifest()
    assert len(entries) >= 20
    kinds = {word for e in entries for word in e.kind.split()}
    assert {"float", "int8", "uint8", "fp16", "qdq", "qoperator", "dynamic"} <= kinds
    assert {"tflite", "onnx"} == {e.format for e in entries}
    for entry in entries:
        assert entry.board is None or (TARGETS / f"{entry.board}.toml").is_file()
        if "dynamic" in entry.kind:
            assert entry.shape, f"{entry.name} has free dims and no shape"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[model]]\nname="a"\nformat="onnx"\ntask="t"\nkind="float"\nreference="x"\nshared="a"',
         "unknown reference"),
        ('[[model]]\nname="a"\nformat="onnx"\ntask="t"\nkind="float"\nreference="litert"',
         "give one of path, shared, derive"),
        ('[[model]]\nname="a"\nformat="onnx"\ntask="t"\nkind="float"\nreference="litert"\n'
         'shared="a"\ncolour="red"', "unknown keys"),
        ('[[model]]\nname="a"\nformat="onnx"\ntask="t"\nkind="qdq"\nreference="litert"\n'
         'derive="b"', "derives from unknown b"),
    ],
)  # fmt: skip
def test_manifest_mistakes_are_named(tmp_path, text, message):
    path = tmp_path / "zoo.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        zoo.read_manifest(path)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_a_photograph_becomes_an_image_input_of_any_size_and_range(tmp_path, layout):
    """A 96x96 RGB file resized to the input's height and width, channels where the
    input has them, pixels mapped onto the entry's range (or kept, less 128 for int8)."""
    pixels = np.zeros((96, 96, 3), np.uint8)
    pixels[:, 48:, 0] = 255  # right half red
    path = tmp_path / "photo.bin"
    pixels.tofile(path)
    shape = [1, 3, 40, 64] if layout == "NCHW" else [1, 40, 64, 3]
    image = zoo._image_input(path, shape, np.dtype(np.float32), (-1.0, 1.0))
    assert image.shape == tuple(shape) and image.dtype == np.float32
    red = image[0, 0] if layout == "NCHW" else image[0, ..., 0]
    assert red[:, 0].tolist() == [-1.0] * 40 and red[:, -1].tolist() == [1.0] * 40
    assert image.min() == -1.0 and image.max() == 1.0
    signed = zoo._image_input(path, shape, np.dtype(np.int8), (0.0, 1.0))
    assert signed.dtype == np.int8 and (signed.min(), signed.max()) == (-128, 127)


def test_integers_must_be_identical_floats_close():
    ints = np.array([[1, 2, 3]], np.int8)
    assert zoo.max_difference([ints], [ints.copy()])[:3] == (True, 0.0, 0.0)
    ok, worst, allowed, notes = zoo.max_difference([ints + np.int8(1)], [ints])
    assert not ok and (worst, allowed) == (1.0, 0.0) and "3 of 3 differ" in notes
    floats = np.array([100.0, -50.0], np.float32)
    assert zoo.max_difference([floats + np.float32(0.005)], [floats])[0]
    ok, worst, allowed, notes = zoo.max_difference([floats + np.float32(0.02)], [floats])
    assert not ok and worst == pytest.approx(0.02, rel=1e-3)
    assert allowed == pytest.approx(0.01 + 1e-6) and "allowed 0.01" in notes
    assert not zoo.max_difference([floats], [floats, floats])[0]


def test_the_table_shows_absolute_differences_with_their_allowance():
    """A saturated map's 1e-6 difference reads as the absolute number it is, next to
    what its tolerance allows."""
    within = zoo._stage("pass", max_diff=3e-7, allowed=1.0001e-6)
    assert zoo._diff(within) == "3e-07 (1e-06)"
    assert zoo._diff(zoo._stage("pass", max_diff=0.0, allowed=0.0)) == "0 (0)"
    assert zoo._diff(zoo._stage("pass", max_diff=0.5)) == "0.5 rel."
    assert zoo._diff(zoo._stage("pass", max_diff=0.0)) == "0"


def test_a_traceback_becomes_its_exception_and_frames():
    stderr = (
        "Traceback (most recent call last):\n"
        '  File "/x/tvmq/quantize/fixed_point.py", line 317, in element\n'
        "    return a + b\n"
        '  File "/v/site-packages/tvm/te/tensor.py", line 261, in __call__\n'
        "    raise ValueError(\n\n"
        "ValueError: Need to provide 0 index\n"
        "[01:24:14] block_builder.cc:67: Warning: BlockBuilder destroyed with remaining blocks!\n"
    )
    reason, traced = zoo._reason(1, "", stderr)
    assert traced
    assert reason == (
        "TRACEBACK ValueError: Need to provide 0 index "
        "[at tvmq/quantize/fixed_point.py:317 element -> tvm/te/tensor.py:261 __call__]"
    )
    assert zoo._reason(2, "", "tvmq: error: m.onnx: bad\n") == ("tvmq: error: m.onnx: bad", False)
    assert zoo._reason(-11, "", "")[0] == "killed by signal 11"


def test_a_git_lfs_pointer_is_not_taken_for_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "SHARED", tmp_path / "shared")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "m.tflite").write_text("version https://git-lfs.github.com/spec/v1\n")
    entry = zoo.Entry("m", "tflite", "t", "int8", "tflite-micro", shared="m.tflite")
    path, why = zoo.obtain(entry, {"m": entry}, tmp_path / "cache")
    assert path is None and "Git LFS pointer" in why
    assert not (tmp_path / "cache" / "m.tflite").exists()


def test_sqnr_measures_all_outputs_together():
    want = [np.array([3.0, 4.0]), np.array([0.0])]
    assert zoo.sqnr_db([w.copy() for w in want], want) == zoo.SQNR_IDENTICAL
    got = [np.array([3.0, 4.0]), np.array([0.5])]  # noise 0.25 against a signal of 25
    assert zoo.sqnr_db(got, want) == 20.0
    assert zoo.sqnr_db([np.zeros(3)], want) is None
