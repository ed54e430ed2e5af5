"""`tvmq prune MODEL --data DATA --sparsity S [--pattern N:M | --block RxC] -o OUT`.

Prunes weights (unstructured, N:M or blocks), fine-tunes with the masks held, and
writes the int8 model; prints per layer the weights kept and the validation
accuracy dense, pruned before fine-tuning and after; with --target the weight flash.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tvmq.errors import TvmqError

if TYPE_CHECKING:  # the parser is built without importing TVM
    from tvmq.prune.sparse_training import SparsityResult


def add_sparsity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="float .onnx/.tflite, int8 .tflite, or a .tvmq")
    parser.add_argument(
        "--data", type=Path, required=True, help=".npz with x and y, or an MLPerf Tiny folder"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .tvmq file")
    parser.add_argument(
        "--sparsity", type=float, help="fraction of the weights to zero, over all layers"
    )
    parser.add_argument("--pattern", help="N:M semi-structured sparsity along input channels")
    parser.add_argument("--block", help="zero blocks of ROWSxCOLS output x input channels")
    parser.add_argument(
        "--per-layer",
        choices=["sensitivity", "uniform"],
        default="sensitivity",
        help="how the global sparsity is shared among the layers",
    )
    parser.add_argument("--target", help="also report the weight flash on this target")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="shuffling seed")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--force", action="store_true", help="replace an existing output")


def run_sparsity(args: argparse.Namespace) -> int:
    from tvmq.data import open_data
    from tvmq.fileio import check_output_file
    from tvmq.frontend import load_model
    from tvmq.frontend.saved import save_model
    from tvmq.frontend.shapes import parse_shape_options
    from tvmq.prune.masks import parse_pattern
    from tvmq.prune.sparse_training import SparsityOptions, check_options, prune

    if args.output.suffix != ".tvmq":
        raise TvmqError(f"{args.output}: the pruned model is written as .tvmq")
    options = SparsityOptions(
        args.sparsity,
        parse_pattern(args.pattern, args.block),
        args.per_layer,
        args.epochs,
        args.lr,
        args.batch_size,
        args.seed,
        args.optimizer,
    )
    check_options(options)
    check_output_file(args.output, args.force)
    if args.target:
        check_flash_target(args.target)  # before the training, not after
    model = load_model(args.model, parse_shape_options(getattr(args, "shape", None) or []))
    data = open_data(args.data, model.inputs[0])
    result = prune(model, data, options)
    print(layer_table(result))
    validation = data.describe(data.split().evaluation)
    print(
        f"validation accuracy on {validation}: {result.dense_accuracy:.4f} dense int8, "
        f"{result.pruned_accuracy:.4f} pruned before fine-tuning, {result.accuracy:.4f} "
        f"after (epoch {result.best_epoch})"
    )
    if args.target:
        before = weight_flash(result.dense_model, args.target)
        after = weight_flash(result.model, args.target)
        nonzero = sum(layer.kept for layer in result.layers)
        print(
            f"weight flash on {args.target}: {before:,} B dense int8, {after:,} B pruned "
            f"(dense kernels store the zeros; {nonzero:,} nonzero weights)"
        )
    save_model(result.model, args.output)
    print(f"wrote {args.output}")
    return 0


def layer_table(result: SparsityResult) -> str:
    rows = [f"  {'layer':<24}{'weights':>9}{'kept':>9}{'sparsity':>10}"]
    for layer in result.layers:
        sparsity = 1 - layer.kept / layer.weights
        rows.append(
            f"  {layer.name:<24}{layer.weights:>9,}{layer.kept:>9,}{sparsity:>9.1%}"
            + (f"  {layer.note}" if layer.note else "")
        )
    weights = sum(layer.weights for layer in result.layers)
    kept = sum(layer.kept for layer in result.layers)
    rows.append(f"  {'all':<24}{weights:>9,}{kept:>9,}{1 - kept / weights:>9.1%}")
    return "\n".join(rows)


def weight_flash(model, target_name: str) -> int:
    """The bytes of weights an ahead-of-time build for the target places in flash."""
    from tvmq.backend.aot import lower_model

    return len(lower_model(model).weights)


def check_flash_target(target_name: str) -> None:
    from tvmq.targets import load_target

    if load_target(target_name).kind not in ("cortex-m", "cortex-a"):
        raise TvmqError(f"--target {target_name}: weight flash is measured on Cortex-M or -A")
