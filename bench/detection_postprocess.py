"""TFLite_Detection_PostProcess: the corpus SSD model end to end, and the op alone on
the emulated Cortex-M4.

- ssd: ssd_mobilenet_v2_fpnlite (cached by ``python -m bench.zoo``) built for the
  host: its outputs against LiteRT's (default kernels, as the zoo's host stage, and
  the reference kernels), the same for the network before the op (box encodings,
  class scores), whether its detections equal TFLite Micro's op run on the scores
  the same build computes, and whether it fits the qemu-cortex-m4 board.
- op_on_m4: single-op models (random anchors, encodings and scores) on
  qemu-cortex-m4: instructions of one inference and equality with TFLite Micro.

Writes bench/results/detection_postprocess.json.

    python -m bench.detection_postprocess
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.zoo import provenance
from tests.micro_reference import micro_outputs
from tests.tflite_op_models import detection_postprocess, split_detection_model
from tvmq.errors import TvmqError
from tvmq.frontend import load_model

RESULTS = Path(__file__).resolve().parent / "results" / "detection_postprocess.json"
SSD_MODEL = Path.home() / ".cache" / "tvmq-zoo" / "ssd_mobilenet_v2_fpnlite.tflite"
BOARD = "qemu-cortex-m4"
SEED = 5
# (anchors, classes with background) of the single-op models on the board.
OP_SIZES = [(256, 11), (1024, 11), (1024, 41)]
OPTIONS = {
    "max_detections": 10,
    "max_classes_per_detection": 1,
    "detections_per_class": 100,
    "nms_score_threshold": 0.3,
    "nms_iou_threshold": 0.5,
    "y_scale": 10.0,
    "x_scale": 10.0,
    "h_scale": 5.0,
    "w_scale": 5.0,
    "use_regular_nms": False,
}


def same_detections(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    """Equal counts, and equal boxes, classes and scores up to the count (TFLite
    Micro leaves the later rows unwritten)."""
    count = int(want[3][0])
    return bool(np.array_equal(got[3], want[3])) and all(
        np.array_equal(ours[0, :count], theirs[0, :count])
        for ours, theirs in zip(got[:3], want[:3], strict=True)
    )


def _differences(got: list[np.ndarray], want: list[np.ndarray]) -> list[float]:
    return [float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)]


def ssd(work: Path) -> dict:
    """The SSD model on the host against LiteRT and TFLite Micro; its fit on the M4."""
    from bench.zoo_reference import run as reference_run
    from tvmq.backend import check_lowering

    head, postprocess = split_detection_model(
        SSD_MODEL, work / "head.tflite", work / "postprocess.tflite"
    )
    x = np.random.default_rng(SEED).uniform(0.0, 1.0, (1, 320, 320, 3)).astype(np.float32)
    start = time.perf_counter()
    model = load_model(SSD_MODEL)
    host = model.build("host")
    build_seconds = time.perf_counter() - start
    got = host(x)
    scores = load_model(head).build("host")(x)
    micro = micro_outputs(postprocess, scores, 4, arena=128 << 20)
    reference = {
        name: (reference_run(engine, SSD_MODEL, [x]), reference_run(engine, head, [x]))
        for name, engine in (("litert", "litert"), ("litert_reference_kernels", "litert-ref"))
    }
    try:
        check_lowering(model, BOARD)
        fits = "fits"
    except TvmqError as error:
        fits = str(error)
    return {
        "input": f"uniform [0, 1), seed {SEED}",
        "host_build_seconds": round(build_seconds, 1),
        "num_detections": int(got[3][0]),
        "detections_equal_tflite_micro_on_own_scores": same_detections(got, micro),
        "outputs_max_abs_diff": {
            name: dict(
                zip(["boxes", "classes", "scores", "count"], _differences(got, r[0]), strict=True)
            )
            for name, r in reference.items()
        },
        "network_max_abs_diff": {
            name: dict(
                zip(["box_encodings", "class_scores"], _differences(scores, r[1]), strict=True)
            )
            for name, r in reference.items()
        },
        "litert_kernels_vs_reference_kernels_network_max_abs_diff": dict(
            zip(
                ["box_encodings", "class_scores"],
                _differences(reference["litert"][1], reference["litert_reference_kernels"][1]),
                strict=True,
            )
        ),
        BOARD: fits,
    }


def op_on_board(work: Path, anchors: int, classes: int) -> dict:
    """One single-op model on the board: instructions and equality with TFLite Micro."""
    rng = np.random.default_rng(SEED)
    boxes = np.concatenate(
        [rng.uniform(0.0, 1.0, (anchors, 2)), rng.uniform(0.05, 0.5, (anchors, 2))], 1
    )
    options = {**OPTIONS, "num_classes": classes - 1}
    path = detection_postprocess(work / f"op{anchors}x{classes}.tflite", classes, boxes, options)
    inputs = [
        rng.normal(0.0, 1.5, (1, anchors, 4)).astype(np.float32),
        rng.uniform(0.0, 1.0, (1, anchors, classes)).astype(np.float32),
    ]
    with load_model(path).build(BOARD) as board:
        got = board(*inputs)
        instructions = board.instructions
    return {
        "anchors": anchors,
        "classes_with_background": classes,
        "max_detections": OPTIONS["max_detections"],
        "num_detections": int(got[3][0]),
        "instructions": instructions,
        "equal_to_tflite_micro": same_detections(got, micro_outputs(path, inputs, 4)),
    }


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="tvmq-detection-") as scratch:
        work = Path(scratch)
        result: dict = {key: provenance()[key] for key in ("commit", "tools")}
        result["ssd"] = ssd(work) if SSD_MODEL.is_file() else f"{SSD_MODEL} is not cached"
        result["op_on_m4"] = [op_on_board(work, *size) for size in OP_SIZES]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.output.write_text(json.dumps(run(), indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
