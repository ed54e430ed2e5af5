"""PTQ vs label-free distillation vs learned rounding on MLPerf Tiny KWS and IC.

Each float model (IC ResNet-8 float; KWS DS-CNN hybrid, whose float graph carries
its dequantized int8 weights) is calibrated by tvmq on the even-indexed samples of
its evaluation set (the interleaved split: the leading samples are biased) and
every row is top-1 on the odd-indexed samples through the host build of the
written model:

- float; PTQ int8 (tvmq's calibration, nearest rounding);
- distillation int8: `finetune --distill` (no labels; best epoch chosen on the odd half);
- AdaRound int8 and 4-bit (per-channel 4-bit weights, int8 activations), nearest
  4-bit beside it; reconstruction on the first --samples even-indexed samples.

Writes bench/results/qat_mlperf.json. Skips a model whose files are absent.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tvmq.data import model_inputs, open_data
from tvmq.frontend import load_model
from tvmq.train.adaround import AdaroundOptions, learned_rounding, with_weight_bits
from tvmq.train.distill import distill
from tvmq.train.finetune import calibrated, labelled_arrays
from tvmq.train.loop import TrainOptions

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results" / "qat_mlperf.json"
MODELS = {"kws": ("kws_dscnn_hybrid", "kws01"), "ic": ("ic_resnet8_float", "ic01")}


def top1(model, data, indices: range) -> float:
    executable = model.build("host")
    hits = [
        int(np.argmax(executable(*inputs)[0]) == label)
        for inputs, (_, label) in zip(
            model_inputs(data, model.inputs[0], indices), data.values(indices), strict=True
        )
    ]
    return float(np.mean(hits))


def run(name: str, args: argparse.Namespace) -> dict | None:
    file, dataset = MODELS[name]
    path, folder = SHARED / "models" / "mlperf-tiny" / f"{file}.tflite", SHARED / "data" / dataset
    if not path.is_file() or not (folder / "y_labels.csv").is_file():
        print(f"skip {name}: ../shared is absent")
        return None
    float_model = load_model(path)
    data = open_data(folder, float_model.inputs[0])
    even, odd = range(0, data.size, 2), range(1, data.size, 2)
    x_train, _ = labelled_arrays(float_model, data, even)
    _, ptq = calibrated(float_model, x_train, data.source)
    rows: dict[str, dict] = {}

    def row(label: str, model, began: float) -> None:
        rows[label] = {"top1": top1(model, data, odd), "seconds": time.perf_counter() - began}
        print(f"{name} {label}: {rows[label]}")

    row("float", float_model, time.perf_counter())
    row("ptq_int8", ptq, time.perf_counter())
    began = time.perf_counter()
    options = TrainOptions(epochs=args.epochs, lr=args.lr, batch=args.batch_size)
    row("distill_int8", distill(float_model, data, options).model, began)
    for bits in (8, 4):
        if bits == 4:
            row("ptq_4bit_nearest", with_weight_bits(ptq, float_model, 4), time.perf_counter())
        began = time.perf_counter()
        ada = AdaroundOptions(bits, args.samples, args.iterations, batch=args.batch_size)
        rounded, report, _ = learned_rounding(float_model, data, None, ada)
        row(f"adaround_{bits}bit" if bits == 4 else "adaround_int8", rounded, began)
        rows[f"adaround_{bits}bit_layers" if bits == 4 else "adaround_int8_layers"] = [
            vars(layer) for layer in report
        ]
    return {
        "model": path.name,
        "split": f"calibrate and train on the {len(even)} even-indexed samples of {dataset}, "
        f"top-1 on the {len(odd)} odd-indexed ones",
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=1, help="distillation epochs")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=256, help="AdaRound samples")
    parser.add_argument("--iterations", type=int, default=500, help="AdaRound, per layer")
    args = parser.parse_args()
    for name in args.models:
        result = run(name, args)
        if result is not None:  # a run of one model keeps the other model's entry
            report = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
            report[name] = {**result, "options": vars(args)}
            RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
