"""What the shared MLPerf Tiny int8 models cost on the emulated Cortex-M boards.

Per model and board: instructions per inference (exact under QEMU's icount,
untuned default schedules), the activation arena, weights and firmware sizes,
next to TFLite Micro with CMSIS-NN measured on the same emulated boards
(../shared/docs/references.md). Writes bench/results/mcu_cost.json (the rows of the
models and boards measured; the file's other rows stay).

    python -m bench.mcu_cost [--models ic_resnet8_int8 ...] [--boards qemu-cortex-m4 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tvmq.backend.mcu import elf_sizes
from tvmq.frontend import load_model
from tvmq.targets import load_target
from tvmq.tune.apply import schedules_for

MODELS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf-tiny"
RESULTS = Path(__file__).resolve().parent / "results" / "mcu_cost.json"
BOARDS = ("qemu-cortex-m4", "qemu-cortex-m7", "qemu-cortex-m55")
# TFLite Micro + CMSIS-NN on the same QEMU boards: instructions per Invoke() and arena bytes.
TFLM_CMSIS_NN = {
    "ic_resnet8_int8": {
        "m4": 29_863_887,
        "m7": 30_023_775,
        "m55": 4_913_715,
        "arena": 54_996,
        "arena_m55": 55_028,
    },
    "vww_mobilenet_int8": {
        "m4": 24_101_962,
        "m7": 24_025_587,
        "m55": 6_558_336,
        "arena": 100_708,
        "arena_m55": 100_772,
    },
    "kws_dscnn_int8": {
        "m4": 7_701_393,
        "m7": 7_647_240,
        "m55": 1_817_389,
        "arena": 22_820,
        "arena_m55": 27_348,
    },
    "ad_autoencoder_int8": {
        "m4": 582_894,
        "m7": 583_220,
        "m55": 149_995,
        "arena": 2_580,
        "arena_m55": 9_268,
    },
}
TFLM_REFERENCE_M4 = {
    "ic_resnet8_int8": 107_312_603,
    "vww_mobilenet_int8": 100_163_074,
    "kws_dscnn_int8": 43_019_676,
    "ad_autoencoder_int8": 1_951_900,
}


def measure(name: str, target: str) -> dict:
    model = load_model(MODELS_DIR / f"{name}.tflite")
    rng = np.random.default_rng(0)
    spec = model.inputs[0]
    x = rng.integers(-128, 128, size=spec.shape).astype(spec.dtype)
    default = schedules_for(load_target(target), tuned=False)  # the figures of untuned code
    with model.build(target, default) as board:
        board(x)
        core = target.rsplit("-", 1)[1]
        tflm = TFLM_CMSIS_NN[name]
        return {
            "model": name,
            "target": target,
            "instructions": board.instructions,
            "tflm_cmsis_nn_instructions": tflm[core],
            "tflm_reference_instructions": TFLM_REFERENCE_M4[name] if core == "m4" else None,
            "arena_bytes": board.compiled.plan.arena_bytes,
            "tflm_arena_bytes": tflm["arena_m55" if core == "m55" else "arena"],
            "weights_bytes": len(board.compiled.weights),
            **elf_sizes(board.firmware),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=sorted(TFLM_CMSIS_NN))
    parser.add_argument("--boards", nargs="+", default=list(BOARDS))
    args = parser.parse_args()
    rows = []
    for name in args.models:
        for target in args.boards:
            row = measure(name, target)
            rows.append(row)
            print(
                f"{name:22} {target:16} {row['instructions']:>12,} instr "
                f"(TFLM+CMSIS-NN {row['tflm_cmsis_nn_instructions']:>11,})  "
                f"arena {row['arena_bytes']:>7,} B (TFLM {row['tflm_arena_bytes']:,})"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(_merged(rows), indent=2) + "\n")
    print(f"wrote {RESULTS}")


def _merged(rows: list[dict]) -> list[dict]:
    """The rows measured now in place of the same (model, target) rows of the results
    file, whose other rows stay: a run of some models or boards updates only those."""
    new = {(row["model"], row["target"]): row for row in rows}
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    kept = [new.pop((row["model"], row["target"]), row) for row in old]
    return kept + list(new.values())


if __name__ == "__main__":
    main()
