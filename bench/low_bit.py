"""int8 against int4 and codebook weights (int8 activations) on MLPerf Tiny IC and KWS.

Each float model is quantized by tvmq's PTQ six ways: int8; ``--weight-bits 4``
(the first and last weighted layers kept int8, the default); every weighted layer
int4; ``--codebook 16`` (16 int8 centroids per inner layer, 4-bit indices looked up
in the kernels; first and last layers int8), built as tvmq builds it (the 1 KiB pair
table only in layers of 16,384 weights or more) and with pair tables in every
codebook layer (fewer instructions, more flash); and ``--codebook 16
--codebook-per-channel`` (a 16-entry table per output channel where a channel has
33 weights or more, one per layer below). Accuracy: top-1 on the host's
integer model, calibrated on the even-indexed and scored on the odd-indexed
samples of the shared set (the interleaved split every command uses). Cost on the
emulated Cortex-M4 (untuned default schedules): exact instructions per inference
(QEMU icount), firmware flash, the model's weight bytes and its activation arena;
the board's outputs are checked equal to the host's on a few samples. KWS starts
from the shared hybrid file (int8 weights, float activations), the only non-int8
KWS model there: its hybrid CONV_2D layers are quantized on the file's own int8
weights (:mod:`tvmq.quantize.hybrid`; KWS rows measured before that kept them as
float islands, and the board differed from the host); a board build that fails is
recorded as such.
Writes bench/results/low_bit.json.

    python -m bench.low_bit [--tasks ic kws] [--schemes int8 codebook16] [--board B]

Rows of the schemes run replace those of the same task and scheme in the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tvmq.backend import codebook
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
DEFAULT_PAIRS_FROM = codebook.PAIRS_FROM


def _schemes(model, samples) -> dict[str, QuantConfig]:
    every = quantize_model(model, samples[:1], QuantConfig(weight_bits=4)).quantization
    all_layers = frozenset((layer, 4) for layer in every["weight_bits"])
    return {
        "int8": QuantConfig(),
        "int4 (first, last int8)": QuantConfig(weight_bits=4),
        "int4 (all)": QuantConfig(weight_bits=4, layer_bits=all_layers),
        "codebook16": QuantConfig(codebook=16),
        "codebook16 (pair tables)": QuantConfig(codebook=16),
        "codebook16 (per-channel tables)": QuantConfig(codebook=16, codebook_per_channel=True),
    }


SCHEMES = (
    "int8",
    "int4 (first, last int8)",
    "int4 (all)",
    "codebook16",
    "codebook16 (pair tables)",
    "codebook16 (per-channel tables)",
)
# The build's threshold for the codebook pair form, by scheme (tvmq.backend.codebook).
PAIRS_FROM = {"codebook16 (pair tables)": 0}


def measure(task: str, board_name: str, schemes: tuple[str, ...] = SCHEMES) -> list[dict]:
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
        if scheme not in schemes:
            continue
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
            codebook.PAIRS_FROM = PAIRS_FROM.get(scheme, DEFAULT_PAIRS_FROM)
            row.update(_board_cost(quantized, host, board_name, checked))
            if config.codebook:
                row["codebook_pairs_from"] = codebook.PAIRS_FROM
        except Exception as error:  # recorded, not hidden: the row says why it has no cost
            row["board_error"] = str(error).strip().splitlines()[-1][:300]
        finally:
            codebook.PAIRS_FROM = DEFAULT_PAIRS_FROM
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
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    args = parser.parse_args()
    if "int8" not in args.schemes:
        parser.error("--schemes: int8 is the baseline every row is compared with")
    missing = [f for f, _ in TASKS.values() if not (MODELS / f).exists()]
    if missing:
        print(f"skipped: the shared models are absent ({', '.join(missing)})")
        return
    rows = [row for task in args.tasks for row in measure(task, args.board, tuple(args.schemes))]
    for row in rows:
        head = f"{row['task']:4} {row['scheme']:31} top1 {row['top1']:.4f} "
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
    fresh = {(row["task"], row["scheme"]) for row in rows}
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = [row for row in kept if (row["task"], row["scheme"]) not in fresh] + rows
    rows.sort(key=lambda row: (row["task"], SCHEMES.index(row["scheme"])))
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
