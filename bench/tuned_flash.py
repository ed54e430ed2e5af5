"""What the flash objective keeps of tuning: flash and instructions per build.

Per model and board: the firmware built with the default schedules
(``--no-tuned``), with the shipped records under the flash objective (the
default) and under ``--objective speed``; flash bytes, instructions per
inference (exact under QEMU's icount) and whether the three compute the same
outputs. Writes bench/results/tuned_flash.json.

    python -m bench.tuned_flash [--rows vww_mobilenet_int8@qemu-cortex-m7 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.mcu_cost import MODELS_DIR
from tvmq.backend.mcu import build_mcu, elf_sizes
from tvmq.frontend import load_model
from tvmq.targets import load_target
from tvmq.tune.apply import schedules_for

RESULTS = Path(__file__).resolve().parent / "results" / "tuned_flash.json"
ROWS = [
    f"{model}@{board}"
    for model in ("vww_mobilenet_int8", "ic_resnet8_int8", "kws_dscnn_int8")
    for board in ("qemu-cortex-m4", "qemu-cortex-m7", "qemu-cortex-m55")
]
BUILDS = {"default": {"tuned": False}, "flash": {}, "speed": {"objective": "speed"}}


def measure(name: str, board: str) -> dict:
    model = load_model(MODELS_DIR / f"{name}.tflite")
    target = load_target(board)
    spec = model.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, size=spec.shape).astype(spec.dtype)
    row: dict = {"model": name, "target": board}
    outputs = []
    for build, options in BUILDS.items():
        schedules = schedules_for(target, **options)
        with build_mcu(model, target, schedules) as firmware:
            outputs.append(firmware(x))
            row[build] = {
                "flash": elf_sizes(firmware.firmware)["flash"],
                "instructions": firmware.instructions,
                "tuned_kernels": schedules.applied,
                "kernels": schedules.kernels,
            }
    row["identical"] = all(
        np.array_equal(a, b) for out in outputs[1:] for a, b in zip(out, outputs[0], strict=True)
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=ROWS, metavar="MODEL@TARGET")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for row in args.rows:
        name, board = row.split("@")
        measured = measure(name, board)
        print(json.dumps(measured), flush=True)
        results = [r for r in results if (r["model"], r["target"]) != (name, board)]
        results.append(measured)
        results.sort(key=lambda r: (r["model"], r["target"]))
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
