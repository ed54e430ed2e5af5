"""What tuning buys, and what the XGBoost cost model buys over random search.

1. Per model (the bundled example and the shared MLPerf Tiny int8 models) and
   target with a database in ``schedules/<target>/``: instructions per inference
   on the emulated boards (exact under QEMU's -icount) or median latency on the
   host, untuned (default schedules) vs tuned (records applied), and whether the
   outputs are identical on five real samples.
2. Cost model: for a few kernels (two of the example's on the emulated Cortex-M4,
   two on the host), the same budget of trials from an empty database with
   MetaSchedule's XGBoost model and with random search (the same evolutionary
   search, a random cost model); the trials each needed to come within 95 % of
   the best either found.

Writes bench/results/tune_cost.json.

    python -m bench.tune_cost [--budget 24] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.targets import load_target
from tvmq.tune.database import RECORDS, SCHEDULES_DIR, ScheduleDatabase, load_records

RESULTS = Path(__file__).resolve().parent / "results" / "tune_cost.json"
COST_MODEL_TASKS = {
    "qemu-cortex-m4": ["k4_conv2d1", "k2_conv2d"],
    "host": ["fused_conv2d1_requantize1", "fused_conv2d2_requantize2"],
}


def example_model():
    calibration, _ = digits_split("train")
    return quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:50]])


def compare_mcu(model, target_name: str, inputs) -> dict:
    from tvmq.backend.mcu import build_mcu
    from tvmq.tune.apply import TunedSchedules

    target = load_target(target_name)
    schedules = TunedSchedules(target)
    with build_mcu(model, target) as plain, build_mcu(model, target, schedules) as tuned:
        identical = all(
            np.array_equal(a, b) for x in inputs for a, b in zip(plain(x), tuned(x), strict=True)
        )
        before, after = plain.instructions, tuned.instructions
    return {
        "target": target_name,
        "metric": "instructions per inference",
        "untuned": before,
        "tuned": after,
        "speedup": before / after,
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
                       cost_model=cost_model, seed=seed, progress=False)  # fmt: skip
            costs = [min(float(s) for s in r.run_secs) for r in load_records(Path(scratch), target)]
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=24, help="trials per cost-model run")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    from bench.cuda_vs_torch import networks

    model = example_model()
    shipped = sorted(p.name for p in SCHEDULES_DIR.iterdir() if (p / RECORDS).is_file())
    tuned = []
    for network, int8_model, _, samples in networks():
        inputs = samples[:5]
        for name in shipped:
            if name == "host":
                row = compare_host(int8_model, inputs)
            else:
                row = compare_mcu(int8_model, name, inputs)
            tuned.append({"model": network, **row})
            print(json.dumps(tuned[-1]), flush=True)
    races = []
    for target_name, task_names in COST_MODEL_TASKS.items():
        for task_name in task_names:
            for seed in range(1, args.seeds + 1):
                races.append(cost_model_race(model, target_name, task_name, args.budget, seed))
                print(json.dumps(races[-1]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"tuned_vs_untuned": tuned, "cost_model": races}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
