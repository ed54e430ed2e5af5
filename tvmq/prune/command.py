"""`tvmq prune`: one command, two ways to prune (whole channels or single weights).

`--structured RATIO` removes output channels (tvmq/prune/structured_command.py);
`--sparsity S` / `--pattern N:M` zeros single weights (tvmq/prune/sparsity_command.py).
Both fine-tune with the training engine and write an int8 `.tvmq`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tvmq.prune.sparsity_command import add_sparsity_options, run_sparsity
from tvmq.prune.structured_command import add_structured_options, run_structured
from tvmq.train.optimizers import DEFAULT_OPTIMIZER, OPTIMIZERS


def add_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    """Registers `tvmq prune` on the CLI's subcommands."""
    prune = commands.add_parser(
        "prune", parents=parents, help="remove channels or weights, fine-tune, report (.tvmq)"
    )
    prune.add_argument("model", type=Path, help="float .onnx/.tflite, int8 .tflite, or a .tvmq")
    prune.add_argument(
        "--data", type=Path, required=True, help="labelled data (as for eval): x and y"
    )
    how = prune.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--structured", type=float, metavar="RATIO", help="share of channels to remove, in (0, 1)"
    )
    how.add_argument(
        "--sparsity", type=float, metavar="S", help="share of the weights to zero, over all layers"
    )
    how.add_argument("--pattern", metavar="N:M", help="N:M sparsity along input channels")
    prune.add_argument("-o", "--output", type=Path, required=True, help="output .tvmq file")
    prune.add_argument("--target", help="also measure the cost on this target")
    prune.add_argument(
        "--epochs",
        type=int,
        help="fine-tuning epochs (--structured: per round, default 3; else 10)",
    )
    prune.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate")
    prune.add_argument("--batch-size", type=int, default=32)
    prune.add_argument("--seed", type=int, default=0, help="shuffling seed")
    prune.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULT_OPTIMIZER)
    prune.add_argument("--force", action="store_true", help="replace an existing output")
    add_structured_options(prune)
    add_sparsity_options(prune)
    prune.set_defaults(handler=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    if args.structured is not None:
        return run_structured(args)
    return run_sparsity(args)
