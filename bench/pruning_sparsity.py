"""Unstructured and N:M pruning of MLPerf Tiny KWS DS-CNN (int8), with fine-tuning.

Every configuration starts from the int8 TFLite model, prunes with
`tvmq.prune.sparse_training.prune` (sparsity rising during sparsity-preserving QAT,
per-layer sparsity by sensitivity) on the even-indexed kws01 samples and scores the
odd-indexed ones (tvmq/data.py's interleaved split): accuracy dense, pruned at once
(before fine-tuning) and after fine-tuning, the latter also through the host build.
Sparsity is reported over the pruned layers (the target's) and over all weights
(the first layer, depthwise layers and the classifier stay dense unless --all-layers).
The weight flash is that of the Cortex-M4 build with dense kernels only (zeros
stored) and as the M4 build picks dense or sparse kernels per layer.

Writes bench/results/pruning_sparsity.json (or --results).
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
from tvmq.prune.sparsity_command import weight_flash
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
    parser.add_argument("--all-layers", action="store_true")
    parser.add_argument("--distill", action="store_true")
    parser.add_argument("--no-bias-correction", dest="correct_bias", action="store_false")
    parser.add_argument("--results", type=Path, default=RESULTS)
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
        dense_m4_flash = weight_flash(model, "qemu-cortex-m4")
        for config in args.configs:
            sparsity, pattern = CONFIGS[config]
            options = SparsityOptions(
                sparsity,
                parse_pattern(pattern, None),
                args.per_layer,
                epochs=args.epochs,
                lr=args.lr,
                ramp=args.ramp,
                all_layers=args.all_layers,
                distill=args.distill,
                correct_bias=args.correct_bias,
            )
            began = time.perf_counter()
            result = prune(model, data, options)
            seconds = time.perf_counter() - began
            weights = sum(layer.weights for layer in result.layers)
            kept = sum(layer.kept for layer in result.layers)
            pruned = [layer for layer in result.layers if not layer.note]
            pruned_weights = sum(layer.weights for layer in pruned)
            pruned_kept = sum(layer.kept for layer in pruned)
            run = {
                "model": name,
                "config": config,
                "options": {
                    "epochs": args.epochs,
                    "lr": args.lr,
                    "ramp": args.ramp,
                    "per_layer": args.per_layer,
                    "all_layers": args.all_layers,
                    "distill": args.distill,
                    "correct_bias": args.correct_bias,
                },
                "accuracy": {
                    "dense_int8": result.dense_accuracy,
                    "pruned_before_finetuning": result.pruned_accuracy,
                    "after_finetuning": result.accuracy,
                    "after_finetuning_host_build": _host_accuracy(result.model, x_val, y_val),
                },
                "loss_points": 100 * (result.dense_accuracy - result.accuracy),
                "layers_pruned": len(pruned),
                "sparsity_pruned_layers": 1 - pruned_kept / pruned_weights,
                "sparsity": 1 - kept / weights,
                "layers": [vars(layer) for layer in result.layers],
                "weight_flash_m4_bytes": {
                    "dense": dense_flash,
                    "pruned_dense_kernels": len(lower_model(result.model).weights),
                    "nonzero_int8_weights": kept,
                    "dense_sparse_kernels": dense_m4_flash,
                    "pruned_sparse_kernels": weight_flash(result.model, "qemu-cortex-m4"),
                },
                "best_epoch": result.best_epoch,
                "history": result.history,
                "seconds": seconds,
            }
            shown = ("model", "config", "accuracy", "sparsity_pruned_layers", "sparsity")
            print(json.dumps({k: run[k] for k in shown}))
            _record(run, args.results)


def _record(run: dict, results: Path) -> None:
    """Adds `run` to the results, replacing an earlier run of the same model and config
    (configurations may run in separate processes)."""
    runs = json.loads(results.read_text())["runs"] if results.exists() else []
    runs = [r for r in runs if (r["model"], r["config"]) != (run["model"], run["config"])]
    report = {
        "split": "train: even-indexed samples; scored: odd-indexed samples (tvmq/data.py)",
        "target": "<= 0.5 points top-1 loss at 75 % sparsity (issue 22)",
        "runs": sorted([*runs, run], key=lambda r: (r["model"], r["config"])),
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
