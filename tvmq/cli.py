"""The ``tvmq`` command line.

User mistakes (TvmqError) end in one line on stderr and exit status 2, with no
traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError

EXIT_USER_ERROR = 2


def _inspect(args: argparse.Namespace) -> int:
    from tvmq.describe import format_summary, summary
    from tvmq.frontend import read_source

    info = summary(read_source(args.model))
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0


def _samples(array: np.ndarray, spec, origin: str) -> tuple[list[np.ndarray], bool]:
    """An input file holds one input, or a batch of them along a new first axis."""
    if array.shape != spec.shape and array.shape[1:] == spec.shape:
        return [spec.check(sample, origin) for sample in array], True
    return [spec.check(array, origin)], False


def _run(args: argparse.Namespace) -> int:
    from tvmq.fileio import read_array, write_arrays
    from tvmq.frontend import load_model

    model = load_model(args.model)
    if len(args.input) != len(model.inputs):
        names = ", ".join(s.name for s in model.inputs)
        raise TvmqError(
            f"{args.model}: expects {len(model.inputs)} input file(s) ({names}), "
            f"got {len(args.input)}"
        )
    loaded = [
        _samples(read_array(path), spec, str(path))
        for path, spec in zip(args.input, model.inputs, strict=True)
    ]
    batches = [samples for samples, _ in loaded]
    if len({len(b) for b in batches}) != 1:
        raise TvmqError("input files hold different numbers of samples")
    executable = model.build(args.target)
    results = [executable(*sample) for sample in zip(*batches, strict=True)]
    batched = any(flag for _, flag in loaded)
    outputs = {
        spec.name: np.stack([r[i] for r in results]) if batched else results[0][i]
        for i, spec in enumerate(model.outputs)
    }
    for name, array in outputs.items():
        print(f"{name}: {array.dtype}{list(array.shape)}")
        print(np.array2string(array, threshold=64, precision=6))
    if args.output:
        write_arrays(args.output, outputs)
        print(f"wrote {args.output}")
    return 0


def _doctor(_: argparse.Namespace) -> int:
    from tvmq.doctor import report

    text, healthy = report()
    print(text)
    return 0 if healthy else 1


def _demo(args: argparse.Namespace) -> int:
    from tvmq.demo import run_demo

    run_demo(args.target)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tvmq", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    inspect = commands.add_parser("inspect", help="describe a model file")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(handler=_inspect)

    run = commands.add_parser("run", help="compile a model and run it on inputs")
    run.add_argument("model", type=Path)
    run.add_argument(
        "--input",
        type=Path,
        action="append",
        required=True,
        help=".npy file per model input, one sample or a batch along axis 0",
    )
    run.add_argument("--target", default="host", help="target name or .toml (default: host)")
    run.add_argument("--output", type=Path, help="write outputs to .npy (or .npz)")
    run.set_defaults(handler=_run)

    doctor = commands.add_parser("doctor", help="check toolchains and emulators")
    doctor.set_defaults(handler=_doctor)

    demo = commands.add_parser("demo", help="compile and evaluate the bundled example model")
    demo.add_argument("--target", default="host")
    demo.set_defaults(handler=_demo)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except TvmqError as error:
        print(f"tvmq: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("tvmq: interrupted", file=sys.stderr)
        return 130
