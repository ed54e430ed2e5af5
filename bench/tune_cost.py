"""What tuning buys, and what the XGBoost cost model buys over random search.

1. Per model (the bundled example and the shared MLPerf Tiny int8 models) and
   target with a database in ``schedules/<target>/``: instructions per inference
   on the emulated boards (exact under QEMU's -icount) or median latency on the
   host, untuned vs tuned (records applied), and whether the outputs are
   identical on five real samples. On the boards "untuned" is measured twice:
   TVM's kernels without a schedule (scalar C as legalized, only fitted into
   the board's memory: what AutoTVM started microTVM from) and tvmq's default
   schedules (the hand-written SIMD heuristics every untuned build gets).
2. Cost model: for a few kernels (:data:`COST_MODEL_TASKS`), the same budget
   of trials from an empty database with MetaSchedule's XGBoost model and with
   random search (the same evolutionary search, a random cost model), the
   boards' searches without the default schedule as a free first point; the
   trials each needed to come within 95 % of the best either found.

Writes bench/results/tune_cost.json.

    python -m bench.tune_cost [--budget 24] [--seeds 2] [--only tuned|cost-model]
                              [--target NAME ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tvmq.targets import load_target
from tvmq.tune.database import RECORDS, SCHEDULES_DIR, ScheduleDatabase, shipped_directory

RESULTS = Path(__file__).resolve().parent / "results" / "tune_cost.json"
# (network, target, task): the example's two heaviest convolutions on the board (a
# space of a few points), and on the host two of ic_resnet8's 3x3 convolutions, long
# enough (~0.1-1 ms) for the timing noise of a shared machine to stay small.
COST_MODEL_TASKS = [
    ("digits_cnn", "qemu-cortex-m4", "k4_conv2d1"),
    ("digits_cnn", "qemu-cortex-m4", "k2_conv2d"),
    ("ic_resnet8", "host", "fused_conv2d1_requantize"),
    ("ic_resnet8", "host", "fused_conv2d3_requantize1"),
]


def scalar_schedule(func):
    """TVM's kernel without a schedule, only fitted into a board's memory (one-element
    intermediates, :func:`tvmq.backend.schedule.small_schedule`): no SIMD."""
    from tvmq.backend.schedule import (
        ScheduledKernel,
        calls_micro_kernel,
        default_schedule,
        small_schedule,
    )

    if calls_micro_kernel(func):  # hand-written C already (residual adds): as built
        return default_schedule(func)
    return ScheduledKernel(small_schedule(func))


def compare_mcu(model, target_name: str, inputs) -> dict:
    from tvmq.backend.mcu import build_mcu
    from tvmq.backend.schedule import default_schedule
    from tvmq.tune.apply import TunedSchedules

    target = load_target(target_name)
    # The shipped records as they are (what tuning finds), not cut to the flash objective.
    schedules = TunedSchedules(target, shipped_directory(target), objective="speed")
    builds = {"default": default_schedule, "tuned": schedules, "scalar": scalar_schedule}
    counts, identical, expected = {}, True, None
    for name, schedule in builds.items():
        with build_mcu(model, target, schedule) as build:
            outputs = [build(x) for x in inputs]
            counts[name] = build.instructions
        expected = expected or outputs
        identical &= all(
            np.array_equal(a, b) for got, want in zip(outputs, expected, strict=True)
            for a, b in zip(got, want, strict=True)
        )  # fmt: skip
    return {
        "target": target_name,
        "metric": "instructions per inference",
        "untuned": counts["scalar"],
        "untuned_tvmq_default": counts["default"],
        "tuned": counts["tuned"],
        "speedup": counts["scalar"] / counts["tuned"],
        "speedup_over_tvmq_default": counts["default"] / counts["tuned"],
        "tuned_kernels": f"{schedules.applied} of {schedules.kernels}",
        "outputs_identical": identical,
    }


def _latency(executable, x, runs: int = 200) -> float:
    for _ in range(20):
        executable(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        executable(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_host(model, inputs) -> dict:
    from tvmq.tune.apply import build_host_tuned

    target = load_target("host")
    plain = model.build("host")
    tuned, records = build_host_tuned(model, target)
    identical = all(
        np.array_equal(a, b) for x in inputs for a, b in zip(plain(x), tuned(x), strict=True)
    )
    before, after = _latency(plain, inputs[0]), _latency(tuned, inputs[0])
    return {
        "target": "host",
        "metric": "median latency, seconds (shared 2-core machine)",
        "untuned": before,
        "tuned": after,
        "speedup": before / after,
        "records": records,
        "outputs_identical": identical,
    }


def cost_model_race(model, target_name: str, task_name: str, budget: int, seed: int) -> dict:
    """Trials to reach 95 % of the best cost found by either model, same budget."""
    from tvmq.tune.runners import default_runner
    from tvmq.tune.tasks import extract_tasks
    from tvmq.tune.tuner import tune_tasks

    target = load_target(target_name)
    task = next(t for t in extract_tasks(model, target) if t.name == task_name)
    curves = {}
    for cost_model in ("xgb", "random"):
        with tempfile.TemporaryDirectory() as scratch:
            database = ScheduleDatabase(Path(scratch), target)
            tune_tasks([task], target, budget, database, default_runner(target),
                       cost_model=cost_model, seed=seed, progress=False,
                       from_default=False)  # fmt: skip
            # In measurement order: MetaSchedule's own databases list records by cost.
            costs = [
                min(float(s) for s in r.run_secs) if r.run_secs else float("inf")  # failed
                for r in database.records
            ]
        curves[cost_model] = [min(costs[: i + 1]) for i in range(len(costs))]
    best = min(min(c) for c in curves.values())

    def trials_to_95(curve):
        return next((i + 1 for i, c in enumerate(curve) if best / c >= 0.95), None)

    return {
        "target": target_name,
        "task": task_name,
        "seed": seed,
        "budget": budget,
        "best_seconds": best,
        **{f"{m}_trials_to_95pct": trials_to_95(c) for m, c in curves.items()},
        **{f"{m}_best_seconds": min(c) for m, c in curves.items()},
        **{f"{m}_trials_run": len(c) for m, c in curves.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=24, help="trials per cost-model run")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--only", choices=["tuned", "cost-model"], help="one half (the other is kept from the JSON)"
    )
    parser.add_argument(
        "--target", action="append", help="measure these targets only (other rows are kept)"
    )
    args = parser.parse_args()
    from bench.cuda_vs_torch import networks

    kept = args.only or args.target
    results = json.loads(RESULTS.read_text()) if kept and RESULTS.is_file() else {}
    models = {}
    shipped = sorted(p.name for p in SCHEDULES_DIR.iterdir() if (p / RECORDS).is_file())
    shipped = [name for name in shipped if name in (args.target or shipped)]
    tuned = [r for r in results.get("tuned_vs_untuned", []) if r["target"] not in shipped]
    for network, int8_model, _, samples in networks():
        models[network] = int8_model
        if args.only == "cost-model":
            continue
        for name in shipped:
            if name == "host":
                row = compare_host(int8_model, samples[:5])
            else:
                row = compare_mcu(int8_model, name, samples[:5])
            tuned.append({"model": network, **row})
            print(json.dumps(tuned[-1]), flush=True)
    if args.only != "cost-model":
        results["tuned_vs_untuned"] = tuned
    races = results.get("cost_model", []) if args.target else []
    races = [r for r in races if r["target"] not in (args.target or [])]
    for network, target_name, task_name in COST_MODEL_TASKS:
        if args.only == "tuned" or network not in models:
            continue
        if target_name not in (args.target or [target_name]):
            continue
        for seed in range(1, args.seeds + 1):
            race = cost_model_race(models[network], target_name, task_name, args.budget, seed)
            races.append({"model": network, **race})
            print(json.dumps(races[-1]), flush=True)
    if args.only != "tuned":
        results["cost_model"] = races
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
