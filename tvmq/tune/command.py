"""``tvmq tune MODEL --target T --trials N [--runner ...] [--work-dir DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands, parents=()) -> None:
    tune = commands.add_parser(
        "tune",
        parents=list(parents),
        help="tune a model's kernels for a target (MetaSchedule, XGBoost cost model)",
    )
    tune.add_argument("model", type=Path, help=".onnx, .tflite or .tvmq")
    tune.add_argument("--target", required=True, help="target name or .toml")
    tune.add_argument(
        "--trials", type=int, required=True, help="measurements for the model, all tasks together"
    )
    tune.add_argument(
        "--runner",
        choices=["local", "rpc", "board"],
        help="where candidates run: local (the host), board (emulated Cortex-M/-A: the "
        "default for them), rpc (a TVM RPC server: the host's code, or a real Cortex-A board)",
    )
    tune.add_argument(
        "--work-dir",
        type=Path,
        help="database directory (default: $TVMQ_SCHEDULES/T, else ./schedules/T if the "
        "current directory has schedules/, else ~/.cache/tvmq/schedules/T)",
    )
    tune.add_argument("--tracker", help="RPC tracker HOST:PORT (--runner rpc)")
    tune.add_argument(
        "--key", default="tvmq", help="device key at the RPC tracker (the server's --key)"
    )
    tune.add_argument("--seed", type=int, help="random seed of the search")
    tune.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tvmq.frontend import load_model
    from tvmq.frontend.shapes import parse_shape_options
    from tvmq.targets import load_target
    from tvmq.tune.runners import EMULATED_HZ
    from tvmq.tune.tuner import open_tuning, tune

    target = load_target(args.target)
    runner, directory, database = open_tuning(target, args.work_dir, args.runner)
    model = load_model(args.model, parse_shape_options(args.shape))
    result = tune(
        model, target, args.trials, database, runner,
        tracker=args.tracker, key=args.key, seed=args.seed,
    )  # fmt: skip
    print(
        f"{model.name} on {target.name}: {len(result.tasks)} tasks, "
        f"{result.trials_before} trials already recorded, {result.trials_run} run now"
    )
    for name, seconds in result.best_seconds.items():
        if runner == "board" and target.clock_hz is None:  # counted under QEMU, no clock
            print(f"  {name:<24} best {seconds * EMULATED_HZ:12,.0f} instructions")
        else:
            print(f"  {name:<24} best {seconds * 1e6:12.2f} us")
    if database.dropped:
        print(
            f"  {database.dropped} records not kept: their traces name the blocks of an "
            "equal kernel of another model, which the stored kernel lacks"
        )
    print(f"records in {directory}")
    return 0
