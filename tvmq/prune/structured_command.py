"""`tvmq prune MODEL --structured RATIO`: prune channels, quantize, fine-tune, report.

The flow is prune-then-quantize: a float model is pruned, then `tvmq finetune`'s
engine calibrates the pruned model on the training half and fine-tunes it as int8
(an int8 model is pruned and fine-tuned as int8). Accuracy is always the integer
model's on the held-out half (the interleaved split every command shares).
"""

from __future__ import annotations

import argparse

from tvmq.errors import TvmqError

STRUCTURED_EPOCHS = 3  # per round: each cut is small, so short fine-tuning suffices


def add_structured_options(parser: argparse.ArgumentParser) -> None:
    """The options only `--structured` reads (the shared ones are in command.py)."""
    group = parser.add_argument_group("--structured")
    group.add_argument("--criterion", choices=["l1", "l2", "activation"], default="l1")
    group.add_argument(
        "--scope", choices=["layer", "global"], default="layer", help="ratio per layer or overall"
    )
    group.add_argument("--keep", action="append", default=[], help="a layer to leave whole")
    group.add_argument(
        "--multiple", type=int, default=4, help="keep a multiple of M channels per layer"
    )
    group.add_argument(
        "--no-compensate",
        dest="compensate",
        action="store_false",
        help="do not fold removed input channels' mean values into the next biases",
    )
    group.add_argument("--rounds", type=int, default=1, help="cuts, each then fine-tuned")


def run_structured(args: argparse.Namespace) -> int:
    from tvmq.data import model_inputs, open_data
    from tvmq.evaluate import evaluate
    from tvmq.fileio import check_output_file
    from tvmq.frontend import load_model
    from tvmq.frontend.saved import save_model
    from tvmq.frontend.shapes import parse_shape_options
    from tvmq.prune.iterative import prune_and_finetune
    from tvmq.prune.structured import check_ratio
    from tvmq.quantize.quantizer import quantize_model
    from tvmq.train.finetune import CALIBRATION_SAMPLES
    from tvmq.train.loop import TrainOptions

    check_ratio(args.structured)
    if args.output.suffix != ".tvmq":
        raise TvmqError(f"{args.output}: the pruned model is written as .tvmq")
    if args.rounds < 1:
        raise TvmqError(f"--rounds {args.rounds}: at least 1")
    epochs = STRUCTURED_EPOCHS if args.epochs is None else args.epochs
    options = TrainOptions(epochs, args.lr, args.batch_size, args.seed, args.optimizer)
    options.check()  # before the model is loaded and pruned
    check_output_file(args.output, args.force)
    model = load_model(args.model, parse_shape_options(args.shape or []))
    data = open_data(args.data, model.inputs[0])
    held_out = data.split().evaluation
    baseline = model
    if not model.is_quantized:
        split = data.split()
        samples = model_inputs(data, model.inputs[0], split.calibration[:CALIBRATION_SAMPLES])
        baseline = quantize_model(model, list(samples), origin=data.source)
    result = prune_and_finetune(
        model,
        data,
        args.structured,
        options,
        rounds=args.rounds,
        criterion=args.criterion,
        scope=args.scope,
        keep=tuple(args.keep),
        multiple=args.multiple,
        compensate=args.compensate,
    )
    for note in result.notes:
        print(f"note: {note}")
    print(f"{'layer':12} {'op':16} {'channels kept':>14} {'MACs before':>12} {'MACs after':>12}")
    for layer in result.layers:
        kept = f"{len(layer.kept)}/{layer.channels}"
        print(
            f"{layer.name:12} {layer.op:16} {kept:>14} "
            f"{layer.macs_before:>12,} {layer.macs_after:>12,}"
        )
    saved = 1 - result.macs_after / result.macs_before
    print(f"MACs: {result.macs_before:,} -> {result.macs_after:,} ({saved:.1%} fewer)")
    before = evaluate(baseline, baseline.build("host"), data, "top1", held_out)
    print(
        f"int8 top1 on {data.describe(held_out)}: {before:.4f} unpruned, "
        f"{result.pruned_accuracy:.4f} pruned, {result.finetuned_accuracy:.4f} fine-tuned"
    )
    if args.target:
        from tvmq.prune.cost import board_cost

        costs = board_cost(baseline, args.target), board_cost(result.model, args.target)
        for key in ("instructions", "flash", "arena_bytes"):
            old, new = costs[0][key], costs[1][key]
            print(f"{args.target} {key}: {old:,} -> {new:,} ({1 - new / old:.1%} fewer)")
    save_model(result.model, args.output)
    print(f"wrote {args.output}")
    return 0
