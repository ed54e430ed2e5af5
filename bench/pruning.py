"""Structured pruning of MLPerf Tiny int8 models: MACs, accuracy, cost on the M4.

Each model is pruned (`tvmq.prune.structured`), fine-tuned as int8 with the training
engine on the even-indexed samples of its MLPerf Tiny data set, and scored on the
odd-indexed ones (the interleaved split every command shares) through the host
build, before and after fine-tuning; the unpruned int8 model is scored the same way.
Instructions per inference, flash and arena come from the emulated Cortex-M4
(default schedules for both). Models or data missing from ../shared are skipped.

Writes bench/results/pruning.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tvmq.data import open_data
from tvmq.evaluate import evaluate
from tvmq.frontend import load_model
from tvmq.prune.cost import board_cost
from tvmq.prune.iterative import prune_and_finetune
from tvmq.train.loop import TrainOptions

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results" / "pruning.json"
# model file, data set, ratio of channels removed per layer (>= 40 % fewer MACs)
CASES = {
    "kws_dscnn_int8": ("kws01", 0.3),
    "ic_resnet8_int8": ("ic01", 0.27),
    "vww_mobilenet_int8": ("vww01", 0.27),
}


def run_case(name: str, args: argparse.Namespace) -> dict | None:
    data_name, ratio = CASES[name]
    path = SHARED / "models" / "mlperf-tiny" / f"{name}.tflite"
    folder = SHARED / "data" / data_name
    if not path.exists() or not folder.exists():
        print(f"{name}: skipped, {path} or {folder} is absent")
        return None
    model = load_model(path)
    data = open_data(folder, model.inputs[0])
    held_out = data.split().evaluation
    began = time.perf_counter()
    options = TrainOptions(args.epochs, args.lr, args.batch_size, args.seed)
    result = prune_and_finetune(
        model,
        data,
        args.ratio or ratio,
        options,
        rounds=args.rounds,
        criterion=args.criterion,
        scope=args.scope,
        compensate=args.compensate,
    )
    tuned = result.model
    accuracy = {
        "unpruned": evaluate(model, model.build("host"), data, "top1", held_out),
        "pruned": result.pruned_accuracy,  # the training engine's integer model
        "finetuned": evaluate(tuned, tuned.build("host"), data, "top1", held_out),
    }
    cost = {"unpruned": board_cost(model, args.target), "pruned": board_cost(tuned, args.target)}
    fewer = {
        key: 1 - cost["pruned"][key] / cost["unpruned"][key]
        for key in ("instructions", "flash", "arena_bytes", "weights_bytes")
    }
    return {
        "model": name,
        "data": f"{data_name}: {data.describe(held_out)} scored, the even-indexed ones train",
        "ratio": args.ratio or ratio,
        "criterion": args.criterion,
        "scope": args.scope,
        "bias_compensation": args.compensate,
        "finetune": {
            "rounds": args.rounds,
            "epochs_per_round": args.epochs,
            "lr": args.lr,
            "batch": args.batch_size,
        },
        "rounds": result.history,
        "macs": {"unpruned": result.macs_before, "pruned": result.macs_after},
        "macs_fewer": 1 - result.macs_after / result.macs_before,
        "layers": [
            {**vars(layer), "kept": len(layer.kept), "kept_channels": list(layer.kept)}
            for layer in result.layers
        ],
        "notes": result.notes,
        "top1": accuracy,
        "top1_loss_points": 100 * (accuracy["unpruned"] - accuracy["finetuned"]),
        "target": args.target,
        "cost": cost,
        "fewer": fewer,
        "seconds": time.perf_counter() - began,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES))
    parser.add_argument("--ratio", type=float, help="override each model's ratio")
    parser.add_argument("--criterion", default="l1", choices=["l1", "l2", "activation"])
    parser.add_argument("--rounds", type=int, default=1, help="cuts, each then fine-tuned")
    parser.add_argument("--scope", default="layer", choices=["layer", "global"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="qemu-cortex-m4")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-compensate",
        dest="compensate",
        action="store_false",
        help="no bias compensation of the removed input channels' means",
    )
    args = parser.parse_args()
    for name in args.models:
        row = run_case(name, args)
        if row is None:
            continue
        rows = json.loads(args.output.read_text()) if args.output.exists() else []
        rows = [r for r in rows if r["model"] != name] + [row]
        args.output.parent.mkdir(exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
        print(
            f"{name}: MACs -{row['macs_fewer']:.1%}, top1 {row['top1']['unpruned']:.4f} -> "
            f"{row['top1']['pruned']:.4f} pruned -> {row['top1']['finetuned']:.4f} fine-tuned; "
            f"M4 instructions -{row['fewer']['instructions']:.1%}, flash "
            f"-{row['fewer']['flash']:.1%}, arena -{row['fewer']['arena_bytes']:.1%}"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
