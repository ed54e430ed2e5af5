"""Mixed precision (int8, codebook16 or int4 weights per layer) on MLPerf Tiny, on the M4.

Per task: tvmq optimize's search (:mod:`tvmq.optimize`) from the float model,
calibrated on the first --calib-samples even-indexed samples of the shared set and
scored on the first --eval-samples odd-indexed ones (the interleaved split every
command uses); every point of the front built and run on the emulated board
(untuned default schedules): instructions per inference (QEMU icount), firmware
flash and static RAM, weight bytes. Each row records the samples it used. The
issue's target: IC ResNet-8 at <= 60 % of its int8 flash for <= 0.5 points.
Writes bench/results/mixed_precision.json (rows of the tasks run replace theirs).

    python -m bench.mixed_precision [--tasks ic kws vww ad] [--eval-samples 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tvmq.data import calibration_inputs, open_data
from tvmq.evaluate import default_metric
from tvmq.frontend import load_model
from tvmq.optimize.budgets import Budgets
from tvmq.optimize.mixed import optimize
from tvmq.quantize.quantizer import calibrate_model
from tvmq.quantize.scheme import QuantConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models" / "mlperf-tiny"
RESULTS = Path(__file__).resolve().parent / "results" / "mixed_precision.json"
TASKS = {
    "ic": ("ic_resnet8_float.tflite", "ic01"),
    "kws": ("kws_dscnn_hybrid.tflite", "kws01"),
    "vww": ("vww_mobilenet_float.tflite", "vww01"),
    "ad": ("ad_autoencoder_float.tflite", "ad01"),
}
MAX_DROP = 0.5  # points
FLASH_TARGET = 0.6  # of the int8 flash


def measure(task: str, board: str, calib_samples: int, eval_samples: int) -> dict:
    file, folder = TASKS[task]
    model = load_model(MODELS / file)
    data = open_data(SHARED / "data" / folder, model.inputs[0])
    scored = data.split().evaluation[:eval_samples]
    metric = default_metric(data)
    samples, where = calibration_inputs(SHARED / "data" / folder, model, count=calib_samples)
    start = time.monotonic()
    calibrated = calibrate_model(model, samples, QuantConfig())
    result = optimize(calibrated, data, scored, metric, board, Budgets(MAX_DROP), print)
    int8 = result.front[0]
    front = [
        {**point.as_dict(), "flash_vs_int8": round(point.cost["flash"] / int8.cost["flash"], 4)}
        for point in result.front
    ]
    within = [row for row in front if row["drop_points"] <= MAX_DROP]
    best = min(within, key=lambda row: row["flash"])
    return {
        "task": task,
        "model": file,
        "board": board,
        "metric": metric,
        "int8_metric": result.baseline,
        "calibrated_on": where,
        "scored": result.scored,
        "front": front,
        "best_within_max_drop": best,
        "target": f"flash <= {FLASH_TARGET:.0%} of int8 for <= {MAX_DROP} points",
        "target_met": best["flash_vs_int8"] <= FLASH_TARGET,
        "search_seconds": round(time.monotonic() - start),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["ic"], choices=sorted(TASKS))
    parser.add_argument("--board", default="qemu-cortex-m4")
    parser.add_argument("--calib-samples", type=int, default=200)
    parser.add_argument("--eval-samples", type=int, default=200)
    args = parser.parse_args()
    missing = [TASKS[t][0] for t in args.tasks if not (MODELS / TASKS[t][0]).exists()]
    if missing:
        print(f"skipped: the shared models are absent ({', '.join(missing)})")
        return
    rows = []
    for task in args.tasks:
        rows.append(measure(task, args.board, args.calib_samples, args.eval_samples))
        best = rows[-1]["best_within_max_drop"]
        print(
            f"{task}: best within {MAX_DROP} pt: flash {best['flash']:,} B "
            f"(x{best['flash_vs_int8']:.3f} of int8), drop {best['drop_points']:.2f} pt "
            f"[{best['layers']}]; target met: {rows[-1]['target_met']}",
            flush=True,
        )
    RESULTS.parent.mkdir(exist_ok=True)
    fresh = {row["task"] for row in rows}
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = sorted([row for row in kept if row["task"] not in fresh] + rows, key=lambda r: r["task"])
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
