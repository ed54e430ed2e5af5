"""Unstructured and N:M pruning of MLPerf Tiny KWS DS-CNN (int8), with fine-tuning.

Every configuration starts from the int8 TFLite model, prunes with
`tvmq.prune.sparse_training.prune` (sparsity rising during sparsity-preserving QAT,
per-layer sparsity by sensitivity) on the even-indexed kws01 samples and scores the
odd-indexed ones (tvmq/data.py's interleaved split): accuracy dense, pruned at once
(before fine-tuning) and after fine-tuning, the latter also through the host build.
The weight flash is that of the Cortex-M4 build (dense kernels: zeros are stored).

Writes bench/results/pruning_sparsity.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tvmq.backend.aot import lower_model
from tvmq.data import open_data
from tvmq.frontend import load_model
from tvmq.prune.masks import parse_pattern
from tvmq.prune.sparse_training import SparsityOptions, prune
from tvmq.train.finetune import labelled_arrays

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results" / "pruning_sparsity.json"
MODELS = {"kws_dscnn": ("kws_dscnn_int8.tflite", "kws01")}
CONFIGS = {"50%": (0.5, None), "75%": (0.75, None), "2:4": (None, "2:4")}


def _host_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    executable = model.build("host")
    return float(
        np.mean([int(np.argmax(executable(s)[0])) == t for s, t in zip(x, y, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--ramp", type=float, default=0.5)
    parser.add_argument("--per-layer", default="sensitivity")
    args = parser.parse_args()
    for name, (model_file, data_dir) in MODELS.items():
        model_path = args.shared / "models" / "mlperf-tiny" / model_file
        data_path = args.shared / "data" / data_dir
        if not model_path.exists() or not data_path.exists():
            print(f"skipped {name}: {model_path} or {data_path} absent")
            continue
        model = load_model(model_path)
        data = open_data(data_path, model.inputs[0])
        x_val, y_val = labelled_arrays(model, data, data.split().evaluation)
        dense_flash = len(lower_model(model).weights)
        for config in args.configs:
            sparsity, pattern = CONFIGS[config]
            options = SparsityOptions(
                sparsity,
                parse_pattern(pattern, None),
                args.per_layer,
                epochs=args.epochs,
                lr=args.lr,
                ramp=args.ramp,
            )
            began = time.perf_counter()
            result = prune(model, data, options)
            seconds = time.perf_counter() - began
            weights = sum(layer.weights for layer in result.layers)
            kept = sum(layer.kept for layer in result.layers)
            run = {
                "model": name,
                "config": config,
                "options": {
                    "epochs": args.epochs,
                    "lr": args.lr,
                    "ramp": args.ramp,
                    "per_layer": args.per_layer,
                },
                "accuracy": {
                    "dense_int8": result.dense_accuracy,
                    "pruned_before_finetuning": result.pruned_accuracy,
                    "after_finetuning": result.accuracy,
                    "after_finetuning_host_build": _host_accuracy(result.model, x_val, y_val),
                },
                "loss_points": 100 * (result.dense_accuracy - result.accuracy),
                "sparsity": 1 - kept / weights,
                "layers": [vars(layer) for layer in result.layers],
                "weight_flash_m4_bytes": {
                    "dense": dense_flash,
                    "pruned_dense_kernels": len(lower_model(result.model).weights),
                    "nonzero_int8_weights": kept,
                },
                "best_epoch": result.best_epoch,
                "history": result.history,
                "seconds": seconds,
            }
            print(json.dumps({k: run[k] for k in ("model", "config", "accuracy", "sparsity")}))
            _record(run)


def _record(run: dict) -> None:
    """Adds `run` to the results, replacing an earlier run of the same model and config
    (configurations may run in separate processes)."""
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    runs = [r for r in runs if (r["model"], r["config"]) != (run["model"], run["config"])]
    report = {
        "split": "train: even-indexed samples; scored: odd-indexed samples (tvmq/data.py)",
        "target": "<= 0.5 points top-1 loss at 75 % sparsity (issue 22)",
        "runs": sorted([*runs, run], key=lambda r: (r["model"], r["config"])),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
