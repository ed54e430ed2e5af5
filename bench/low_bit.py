"""int8 against int4 weights (int8 activations) on the MLPerf Tiny IC and KWS models.

Each float model is quantized by tvmq's PTQ three ways: int8; ``--weight-bits 4``
(the first and last weighted layers kept int8, the default); every weighted layer
int4. Accuracy: top-1 on the host's integer model, calibrated on the even-indexed
and scored on the odd-indexed samples of the shared set (the interleaved split every
command uses). Cost on the emulated Cortex-M4 (untuned default schedules): exact
instructions per inference (QEMU icount), firmware flash, the model's weight bytes
and its activation arena; the board's outputs are checked equal to the host's on a
few samples. KWS starts from the shared hybrid file (int8 weights, float
activations), the only non-int8 KWS model there: its hybrid CONV_2D layers are
quantized on the file's own int8 weights (:mod:`tvmq.quantize.hybrid`; the KWS rows
in the results predate that, when they stayed float islands and the board differed
from the host); a board build that fails is recorded as such.
Writes bench/results/low_bit.json.

    python -m bench.low_bit [--tasks ic kws] [--board qemu-cortex-m4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tvmq.backend.mcu import elf_sizes
from tvmq.data import calibration_inputs, model_input, open_data
from tvmq.evaluate import evaluate
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.scheme import QuantConfig
from tvmq.targets import load_target
from tvmq.tune.apply import schedules_for

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models" / "mlperf-tiny"
RESULTS = Path(__file__).resolve().parent / "results" / "low_bit.json"
TASKS = {"ic": ("ic_resnet8_float.tflite", "ic01"), "kws": ("kws_dscnn_hybrid.tflite", "kws01")}
CHECKED_SAMPLES = 3


def _schemes(model, samples) -> dict[str, QuantConfig]:
    every = quantize_model(model, samples[:1], QuantConfig(weight_bits=4)).quantization
    all_layers = frozenset((layer, 4) for layer in every["weight_bits"])
    return {
        "int8": QuantConfig(),
        "int4 (first, last int8)": QuantConfig(weight_bits=4),
        "int4 (all)": QuantConfig(weight_bits=4, layer_bits=all_layers),
    }


def measure(task: str, board_name: str) -> list[dict]:
    file, folder = TASKS[task]
    model = load_model(MODELS / file)
    data = open_data(SHARED / "data" / folder, model.inputs[0])
    split = data.split()
    samples, _ = calibration_inputs(SHARED / "data" / folder, model)
    checked = [
        [model_input(value, model.inputs[0], data)] for value, _ in data.values(split.evaluation)
    ][:CHECKED_SAMPLES]
    rows = []
    for scheme, config in _schemes(model, samples).items():
        quantized = quantize_model(model, samples, config)
        host = quantized.build("host")
        accuracy = evaluate(quantized, host, data, "top1", split.evaluation, progress=False)
        row = {
            "task": task,
            "model": file,
            "scheme": scheme,
            "weight_bits": quantized.quantization.get("weight_bits", {}),
            "top1": accuracy,
            "evaluated_samples": len(split.evaluation),
            "board": board_name,
        }
        try:
            row.update(_board_cost(quantized, host, board_name, checked))
        except Exception as error:  # recorded, not hidden: the row says why it has no cost
            row["board_error"] = str(error).strip().splitlines()[-1][:300]
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for row in rows:
        for key in ("instructions", "weights_bytes", "flash", "arena_bytes"):
            if key in row and key in base:
                row[f"{key}_vs_int8"] = round(row[key] / base[key], 4)
        row["top1_drop_points"] = round(100 * (base["top1"] - row["top1"]), 2)
    return rows


def _board_cost(quantized, host, board_name: str, checked: list) -> dict:
    """Instructions, memory and host equality of `quantized` on the emulated board."""
    default = schedules_for(load_target(board_name), tuned=False)
    with quantized.build(board_name, default) as board:
        identical = all(
            all(np.array_equal(a, b) for a, b in zip(board(*x), host(*x), strict=True))
            for x in checked
        )
        return {
            "instructions": board.instructions,
            "weights_bytes": len(board.compiled.weights),
            "arena_bytes": board.compiled.plan.arena_bytes,
            "flash": elf_sizes(board.firmware)["flash"],
            "board_identical_to_host": identical,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=sorted(TASKS), choices=sorted(TASKS))
    parser.add_argument("--board", default="qemu-cortex-m4")
    args = parser.parse_args()
    missing = [f for f, _ in TASKS.values() if not (MODELS / f).exists()]
    if missing:
        print(f"skipped: the shared models are absent ({', '.join(missing)})")
        return
    rows = [row for task in args.tasks for row in measure(task, args.board)]
    for row in rows:
        head = f"{row['task']:4} {row['scheme']:24} top1 {row['top1']:.4f} "
        head += f"({row['top1_drop_points']:+.2f} pt)"
        if "board_error" in row:
            print(f"{head}  board: {row['board_error']}")
            continue
        print(
            f"{head}  instr {row['instructions']:>11,} "
            f"(x{row['instructions_vs_int8']:.3f})  weights {row['weights_bytes']:>7,} B "
            f"(x{row['weights_bytes_vs_int8']:.3f})  flash {row['flash']:>8,} B "
            f"(x{row['flash_vs_int8']:.3f})  arena {row['arena_bytes']:,} B"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
