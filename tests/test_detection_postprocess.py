"""TFLite_Detection_PostProcess (SSD decoding, fast and regular NMS) against TFLite
Micro's kernel: single-op models with random anchors, encodings and scores, ties included,
on the host build, its emitted C, a Cortex-M4 board and a Cortex-A (rpi4) build;
the corpus SSD model's detections against the op on the scores its network computes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.micro_reference import micro_outputs
from tests.test_aot import native
from tests.tflite_op_models import detection_postprocess, split_detection_model
from tvmq.errors import TvmqError
from tvmq.frontend import load_model

SSD_MODEL = Path.home() / ".cache" / "tvmq-zoo" / "ssd_mobilenet_v2_fpnlite.tflite"
OPTIONS = {
    "max_detections": 6,
    "max_classes_per_detection": 1,
    "detections_per_class": 100,
    "nms_score_threshold": 0.25,
    "nms_iou_threshold": 0.5,
    "num_classes": 3,
    # Stored as 64-bit floats; TFLite Micro reads float32 (10.1 is not one).
    "y_scale": 10.1,
    "x_scale": 9.7,
    "h_scale": 5.3,
    "w_scale": 4.9,
    "use_regular_nms": False,
}
# (anchors, classes with background, score threshold, IoU threshold, score levels):
# few levels make equal scores within an anchor and across anchors.
CASES = [
    (40, 4, 0.25, 0.5, 8),
    (64, 3, 0.0, 0.3, 4),
    (30, 5, 0.9, 0.6, 0),  # fewer than max_detections above the threshold
]
# The regular (per-class) NMS: the cases above with detections_per_class.
REGULAR = [2, 3, 100]


def _model(tmp_path: Path, case, seed: int, **extra) -> tuple[Path, list[np.ndarray]]:
    """The single-op file of `case` (options changed by `extra`) and random inputs for it."""
    anchors, classes, score_threshold, iou, levels = case
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.0, 1.0, (anchors, 2))
    sizes = rng.uniform(0.05, 0.6, (anchors, 2))
    options = {**OPTIONS, "nms_score_threshold": score_threshold, "nms_iou_threshold": iou}
    options.update(extra)
    options["num_classes"] = classes - (seed % 2)  # with and without a background class
    path = detection_postprocess(
        tmp_path / f"dp{seed}.tflite", classes, np.concatenate([centers, sizes], 1), options
    )
    encodings = rng.normal(0.0, 1.5, (1, anchors, 4)).astype(np.float32)
    scores = rng.uniform(0.0, 1.0, (1, anchors, classes))
    if levels:
        scores = np.round(scores * levels) / levels
    return path, [encodings, scores.astype(np.float32)]


def assert_matches_micro(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    """Same count, then identical boxes, classes and scores up to it (TFLite Micro
    leaves the later rows unwritten; tvmq zeroes them)."""
    count = int(want[3][0])
    np.testing.assert_array_equal(got[3], want[3])
    for ours, theirs in zip(got[:3], want[:3], strict=True):
        np.testing.assert_array_equal(ours[0, :count], theirs[0, :count])
        assert not ours[0, count:].any()


@pytest.mark.parametrize("seed", range(len(CASES)))
def test_host_and_c_match_tflite_micro(seed, tmp_path):
    path, inputs = _model(tmp_path, CASES[seed], seed)
    model = load_model(path)
    assert [s.shape for s in model.outputs] == [(1, 6, 4), (1, 6), (1, 6), (1,)]
    want = micro_outputs(path, inputs, 4)
    assert_matches_micro(model.build("host")(*inputs), want)
    _, library = native(model, tmp_path)
    assert_matches_micro(library(*inputs), want)


@pytest.mark.parametrize("seed", range(len(CASES)))
def test_regular_nms_matches_tflite_micro(seed, tmp_path):
    """Per-class NMS, at most detections_per_class (fewer than max_detections in the
    first two cases) a class, merged across classes by score."""
    regular = {"use_regular_nms": True, "detections_per_class": REGULAR[seed]}
    path, inputs = _model(tmp_path, CASES[seed], seed, **regular)
    assert_matches_micro(load_model(path).build("host")(*inputs), micro_outputs(path, inputs, 4))


def test_outputs_sized_at_run_time_get_their_shapes_at_import(tmp_path):
    """TFLite's converter writes the op's outputs with shape []: the import and
    inspect give the shapes the op produces."""
    from tvmq.describe import summary
    from tvmq.frontend import read_source

    anchors = np.tile([0.5, 0.5, 0.2, 0.2], (8, 1))
    path = detection_postprocess(tmp_path / "dp.tflite", 4, anchors, OPTIONS, sized=False)
    shapes = [(1, 6, 4), (1, 6), (1, 6), (1,)]
    assert [s.shape for s in load_model(path).outputs] == shapes
    info = summary(read_source(path))
    assert [tuple(o["shape"]) for o in info["outputs"]] == shapes


@pytest.mark.parametrize("regular", [False, True])
def test_equal_scores_keep_tflite_micros_order(regular, tmp_path):
    """Every anchor has the same best score and classes tie within anchors: the
    lower anchor and the lower class come first, as TFLite Micro sorts them."""
    extra = {"use_regular_nms": regular, "detections_per_class": 4}
    path, (encodings, scores) = _model(tmp_path, (24, 4, 0.1, 0.5, 2), 0, **extra)
    scores[...] = 0.5
    want = micro_outputs(path, [encodings, scores], 4)
    assert_matches_micro(load_model(path).build("host")(encodings, scores), want)


@pytest.mark.parametrize(
    ("target", "tools"),
    [
        ("qemu-cortex-m4", ("arm-none-eabi-gcc", "qemu-system-arm")),
        ("rpi4", ("aarch64-linux-gnu-gcc", "qemu-aarch64")),
    ],
)
def test_cortex_m_and_a_builds_match_tflite_micro(target, tools, tmp_path):
    if not all(shutil.which(tool) for tool in tools):
        pytest.skip(f"{' and '.join(tools)} are needed (make toolchains)")
    for seed in range(2):  # the fast NMS, then the regular one
        regular = {"use_regular_nms": seed == 1, "detections_per_class": REGULAR[seed]}
        path, inputs = _model(tmp_path, CASES[seed], seed, **regular)
        built = load_model(path).build(target)
        if target.startswith("qemu-cortex-m"):
            with built as board:
                got = board(*inputs)
        else:
            got = built(*inputs)
        assert_matches_micro(got, micro_outputs(path, inputs, 4))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"use_regular_nms": True, "detections_per_class": 0},
            "detections_per_class must be positive",
        ),
        ({"max_classes_per_detection": 2}, "max_classes_per_detection other than 1"),
        ({"nms_iou_threshold": 0.0}, "nms_iou_threshold 0.0 is not in (0, 1]"),
        ({"x_scale": None}, "custom options lack x_scale"),
    ],
)
def test_unsupported_options_are_refused_in_one_line(change, message, tmp_path):
    anchors = np.tile([0.5, 0.5, 0.2, 0.2], (8, 1))
    options = {k: v for k, v in {**OPTIONS, **change}.items() if v is not None}
    path = detection_postprocess(tmp_path / "dp.tflite", 4, anchors, options)
    with pytest.raises(TvmqError) as error:
        load_model(path)
    assert message in str(error.value)
    assert "TFLite_Detection_PostProcess" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not SSD_MODEL.is_file(), reason="the corpus SSD model is not cached")
def test_the_ssd_models_detections_match_tflite_micro_on_its_own_scores(tmp_path):
    """The whole SSD model on the host: its detections equal TFLite Micro's op run
    on the box encodings and scores the same build's network computes. (Against
    LiteRT end to end, the network's float rounding decides: LiteRT's own XNNPACK
    and reference kernels differ by up to 2 on its box encodings; see
    bench/results/detection_postprocess.json.)"""
    head, postprocess = split_detection_model(
        SSD_MODEL, tmp_path / "head.tflite", tmp_path / "postprocess.tflite"
    )
    x = np.random.default_rng(5).uniform(0.0, 1.0, (1, 320, 320, 3)).astype(np.float32)
    got = load_model(SSD_MODEL).build("host")(x)
    encodings, scores = load_model(head).build("host")(x)
    # TFLite Micro's scratch for 12,804 anchors x 91 classes: ~90 MB.
    want = micro_outputs(postprocess, [encodings, scores], 4, arena=128 << 20)
    assert int(want[3][0]) == 10
    assert_matches_micro(got, want)


def test_mutated_custom_options_import_or_are_refused_in_one_line(tmp_path):
    """Random bytes flipped in the flexbuffer: an import or one TvmqError line, never
    a traceback."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    rng = np.random.default_rng(1)
    anchors = np.tile([0.5, 0.5, 0.2, 0.2], (8, 1))
    data = detection_postprocess(tmp_path / "dp.tflite", 4, anchors, OPTIONS).read_bytes()
    mutant = tmp_path / "mutant.tflite"
    for _ in range(60):
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        operator = model.subgraphs[0].operators[0]
        raw = bytearray(operator.customOptions)
        for _ in range(int(rng.integers(1, 4))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
        operator.customOptions = list(raw)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        mutant.write_bytes(builder.Output())
        try:
            load_model(mutant)
        except TvmqError as error:
            assert "\n" not in str(error)
