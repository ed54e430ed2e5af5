"""`tvmq finetune`'s options beyond the basics and the run of the chosen mode.

The parser imports nothing heavy from here: the training modules load when the
command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tvmq.data import LabelledData
from tvmq.errors import TvmqError
from tvmq.model import Model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--distill",
        action="store_true",
        help="label-free: learn the float teacher's outputs (the data needs no labels)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="the float model to distil from (default: MODEL itself when it is float)",
    )
    parser.add_argument(
        "--temperature", type=float, default=2.0, help="softmax temperature of distillation"
    )
    parser.add_argument(
        "--validate-every", type=int, default=0, metavar="N", help="validate every N steps"
    )
    parser.add_argument(
        "--patience", type=int, default=0, help="stop after this many validations without gain"
    )
    parser.add_argument(
        "--checkpoint", type=Path, metavar="DIR", help="save a resumable checkpoint every epoch"
    )
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="training curve")
    parser.add_argument(
        "--adaround",
        action="store_true",
        help="learned rounding, layer by layer, on unlabelled samples (no epochs)",
    )
    parser.add_argument(
        "--weight-bits", type=int, default=8, help="with --adaround: 8, or 4 (int8 storage)"
    )
    parser.add_argument(
        "--adaround-samples", type=int, default=256, help="even-indexed samples to reconstruct"
    )
    parser.add_argument("--adaround-iterations", type=int, default=1000, help="per layer")


def run_finetune(
    args: argparse.Namespace, model: Model, data: LabelledData, teacher: Model | None
) -> Model:
    """Run the mode `args` choose, print its figures, and return the model to write."""
    from tvmq.train.distill import distill, distillation_split
    from tvmq.train.finetune import finetune
    from tvmq.train.loop import TrainOptions

    if teacher is not None and not (args.distill or args.adaround):
        raise TvmqError("--teacher is only used with --distill or --adaround")
    if args.distill and args.adaround:
        raise TvmqError("--distill and --adaround are separate modes: choose one")
    if args.weight_bits != 8 and not args.adaround:
        raise TvmqError("--weight-bits needs --adaround (learned rounding onto that grid)")
    if args.adaround:
        return _adaround(args, model, data, teacher)
    options = TrainOptions(
        args.epochs,
        args.lr,
        args.batch_size,
        args.seed,
        args.optimizer,
        args.validate_every,
        args.patience,
        args.checkpoint,
        args.resume,
        args.plot,
    )
    if args.distill:
        result = distill(model, data, options, teacher, args.temperature)
        evaluation = distillation_split(data).evaluation
    else:
        result = finetune(model, data, options)
        evaluation = data.split().evaluation
    where = data.describe(evaluation)
    print(f"validation {result.metric} on {where}: {result.start_accuracy:.4f} before")
    if args.distill:
        before, after = result.start_loss, result.best_loss
        print(f"divergence from the teacher: {before:.4f} before, {after:.4f} after")
    if result.note:
        print(result.note)
    if result.best_epoch:
        print(f"best: {result.best_accuracy:.4f} after epoch {result.best_epoch}")
    else:
        print("no epoch improved on it: the model is written as calibrated")
    print(f"{result.seconds_per_step * 1000:.1f} ms per training step")
    if args.plot is not None and result.history:
        print(f"training curve: {args.plot}")
    return result.model


def _adaround(
    args: argparse.Namespace, model: Model, data: LabelledData, teacher: Model | None
) -> Model:
    from tvmq.train.adaround import AdaroundOptions, learned_rounding

    options = AdaroundOptions(
        args.weight_bits, args.adaround_samples, args.adaround_iterations, batch=args.batch_size
    )
    rounded, report, scored = learned_rounding(model, data, teacher, options)
    print(f"{'layer':<12} {'nearest':>12} {'learned':>12} {'flipped':>9}")
    for layer in report:
        flipped = f"{layer.flipped}/{layer.weights}"
        print(f"{layer.name:<12} {layer.nearest:>12.5g} {layer.learned:>12.5g} {flipped:>9}")
    if scored is not None:
        where = data.describe(range(1, data.size, 2))
        print(f"accuracy on {where}: {scored[0]:.4f} nearest, {scored[1]:.4f} learned rounding")
    return rounded
