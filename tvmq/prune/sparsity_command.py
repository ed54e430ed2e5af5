"""`tvmq prune MODEL --data DATA --sparsity S [--pattern N:M | --block RxC] -o OUT`.

Prunes weights (unstructured, N:M or blocks), fine-tunes with the masks held, and
writes the int8 model; prints per layer the weights kept and the validation
accuracy dense, pruned before fine-tuning and after; with --target the weight flash.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tvmq.errors import TvmqError

SPARSITY_EPOCHS = 10  # the polynomial schedule ramps over half of them

if TYPE_CHECKING:  # the parser is built without importing TVM
    from tvmq.prune.sparse_training import SparsityResult


def add_sparsity_options(parser: argparse.ArgumentParser) -> None:
    """The options only `--sparsity` / `--pattern` read (the shared ones: command.py)."""
    group = parser.add_argument_group("--sparsity / --pattern")
    group.add_argument("--block", help="zero blocks of ROWSxCOLS output x input channels")
    group.add_argument(
        "--per-layer",
        choices=["sensitivity", "uniform"],
        default="sensitivity",
        help="how the global sparsity is shared among the layers",
    )
    group.add_argument(
        "--all-layers",
        action="store_true",
        help="also prune the first layer, depthwise layers and the classifier",
    )
    group.add_argument(
        "--distill",
        action="store_true",
        help="fine-tune on the unpruned model's softened outputs instead of the labels",
    )


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
        SPARSITY_EPOCHS if args.epochs is None else args.epochs,
        args.lr,
        args.batch_size,
        args.seed,
        args.optimizer,
        all_layers=args.all_layers,
        distill=args.distill,
    )
    check_options(options)
    check_output_file(args.output, args.force)
    if args.target:
        check_flash_target(args.target)  # before the training, not after
    model = load_model(args.model, parse_shape_options(args.shape or []))
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
            f"({nonzero:,} nonzero weights)"
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
    pruned = [layer for layer in result.layers if not layer.note]
    for label, chosen in (("pruned layers", pruned), ("all", result.layers)):
        weights = sum(layer.weights for layer in chosen)
        kept = sum(layer.kept for layer in chosen)
        rows.append(f"  {label:<24}{weights:>9,}{kept:>9,}{1 - kept / weights:>9.1%}")
    return "\n".join(rows)


def weight_flash(model, target_name: str) -> int:
    """The bytes of weights an ahead-of-time build for the target places in flash
    (sparse layers stored compressed where the target's cost model picks them)."""
    from tvmq.backend.aot import lower_model
    from tvmq.targets import load_target

    return len(lower_model(model, core=load_target(target_name).tvm.get("mcpu")).weights)


def check_flash_target(target_name: str) -> None:
    from tvmq.backend.registry import backend_for
    from tvmq.targets import load_target

    if not backend_for(load_target(target_name)).emits_c:
        raise TvmqError(f"--target {target_name}: weight flash is measured on Cortex-M or -A")
