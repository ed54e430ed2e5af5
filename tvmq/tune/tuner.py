"""A tuning run: tasks, MetaSchedule's search with a cost model, records, progress.

``--trials N`` is the budget for the model, over all its tasks: the records
already in the database for the model's kernels count against it, so a run
that was killed continues with what is left when started again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvmq.backend.registry import backend_for
from tvmq.backend.schedule import has_reduction
from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.scratch import scratch_directory
from tvmq.targets import Target
from tvmq.tune.database import ScheduleDatabase, tuning_target
from tvmq.tune.runners import (
    MEASURE,
    builder_and_runner,
    check_runner,
    default_runner,
    tracker_address,
    without_builtin_intrinsics,
)
from tvmq.tune.space import has_choices, mcu_space, offers_mmla
from tvmq.tune.tasks import Task, extract_tasks

# Small spaces, expensive measurements: a small population searched by the cost model.
POPULATION = 64
TRIALS_PER_ROUND = 4  # candidates measured per task before the scheduler picks again


@dataclass
class TuneResult:
    tasks: list[Task]
    trials_before: int  # records the database already had for these tasks
    trials_run: int
    best_seconds: dict[str, float]  # task name -> best cost recorded
    errors: list[str] = field(default_factory=list)  # why failed candidates failed


def tunable_tasks(model: Model, target: Target) -> list[Task]:
    """The tasks worth a search: kernels with a reduction (convolutions, dense layers,
    pooling, sums) and, of tvmq's C kernels, those whose space has choices.

    Element-wise chains (requantization, the integer softmax) only stream data:
    on the host MetaSchedule's inlining rule makes their long expressions grow
    without bound (minutes per candidate), on a board the space only unrolls
    their outer loop; neither has anything to find.
    """
    tasks = [t for t in extract_tasks(model, target) if has_reduction(t.mod["main"])]
    if backend_for(target).emits_c:
        tasks = [t for t in tasks if has_choices(t.mod)]
    if not tasks:
        raise TvmqError(f"{model.name}: no kernel to tune for {target.name}")
    return tasks


def open_tuning(
    target: Target, work_dir: Path | None = None, runner: str | None = None
) -> tuple[str, Path, ScheduleDatabase]:
    """The runner (the target's default if None), the database directory (the user's
    for the target if None) and the database a tuning writes; an unfit runner or an
    unusable, damaged or foreign database is refused before any work."""
    from tvmq.fileio import check_directory_writable
    from tvmq.tune.database import default_directory

    runner = runner or default_runner(target)
    check_runner(runner, target)
    directory = Path(work_dir) if work_dir is not None else default_directory(target)
    check_directory_writable(directory)
    return runner, directory, ScheduleDatabase(directory, target)


def tune(
    model: Model,
    target: Target,
    trials: int,
    database: ScheduleDatabase,
    runner: str | None = None,
    *,
    tracker: str | None = None,
    key: str = "tvmq",
    cost_model: str = "xgb",
    seed: int | None = None,
    progress: bool = True,
) -> TuneResult:
    """Tune `model`'s kernels for `target` until `trials` records cover them."""
    runner = runner or default_runner(target)
    check_runner(runner, target)
    return tune_tasks(
        tunable_tasks(model, target), target, trials, database, runner,
        tracker=tracker, key=key, cost_model=cost_model, seed=seed, progress=progress,
    )  # fmt: skip


def tune_tasks(
    tasks: list[Task],
    target: Target,
    trials: int,
    database: ScheduleDatabase,
    runner: str,
    *,
    tracker: str | None = None,
    key: str = "tvmq",
    cost_model: str = "xgb",
    seed: int | None = None,
    progress: bool = True,
    from_default: bool = True,
) -> TuneResult:
    """Tune `tasks` until `trials` records cover them (those already recorded count).
    Boards' searches start from the default schedule unless `from_default` is False."""
    if trials < 1:
        raise TvmqError(f"--trials {trials}: must be at least 1")
    database.claim(MEASURE[runner])
    if runner == "rpc":  # before the search's minutes of set-up
        from tvmq.hil.rpc import check_registered

        check_registered(tracker_address(tracker), key)
    done = sum(database.count(t.mod) for t in tasks)
    remaining = trials - done
    result = TuneResult(tasks, done, 0, {})
    if remaining > 0:
        result.trials_run, result.errors = _search(
            tasks, target, remaining, database, runner, tracker, key, cost_model, seed, progress,
            from_default,
        )  # fmt: skip
    for task in tasks:
        best = _best(database, task)
        if best is not None:
            result.best_seconds[task.name] = best
    return result


def search_strategy() -> ms.search_strategy.EvolutionarySearch:
    """MetaSchedule's evolutionary search, sized for small spaces."""
    return ms.search_strategy.EvolutionarySearch(
        population_size=POPULATION,
        init_min_unmeasured=POPULATION // 2,
        genetic_num_iters=2,
        genetic_max_fail_count=4,
    )


def _search(
    tasks, target, trials, database, runner, tracker, key, cost_model, seed, progress, from_default
):
    without_builtin_intrinsics()
    tvm_target = tuning_target(target)
    contexts = [
        ms.TuneContext(
            mod=task.mod,
            target=tvm_target,
            space_generator=(
                mcu_space(from_default, offers_mmla(target))
                if backend_for(target).emits_c
                else "post-order-apply"
            ),
            search_strategy=search_strategy(),
            task_name=task.name,
            num_threads=1,
            rand_state=-1 if seed is None else seed,
        )
        for task in tasks
    ]
    bar = tqdm(total=trials, desc=f"tuning {len(tasks)} tasks", unit="trial", disable=not progress)
    counter = _Progress(bar, tasks)
    callbacks = [
        *([_RecordCodeBytes(database, target, tasks)] if backend_for(target).emits_c else []),
        ms.measure_callback.AddToDatabase(),
        ms.measure_callback.UpdateCostModel(),
        counter,
    ]
    try:
        with scratch_directory("tvmq-tune-") as scratch:
            builder, measurer = builder_and_runner(runner, target, tasks, tracker, key, scratch)
            ms.tune.tune_tasks(
                tasks=contexts,
                task_weights=[float(t.weight) for t in tasks],
                work_dir=str(scratch / "logs"),
                max_trials_global=trials,
                num_trials_per_iter=min(TRIALS_PER_ROUND, trials),
                builder=builder,
                runner=measurer,
                database=database,
                cost_model=cost_model,
                measure_callbacks=callbacks,
                task_scheduler="gradient",
            )
    finally:
        bar.close()
    return counter.trials, counter.errors


def _best(database: ScheduleDatabase, task: Task) -> float | None:
    if not database.has_workload(task.mod):
        return None
    top = database.get_top_k(database.commit_workload(task.mod), 1)
    if not top or not top[0].run_secs:
        return None
    return float(min(float(s) for s in top[0].run_secs))


@derived_object
class _RecordCodeBytes(ms.measure_callback.PyMeasureCallback):
    """Notes in the database the code bytes of each measured candidate (and of its
    kernel's default schedule) before AddToDatabase commits the record, so that a
    record on disk has its size (:mod:`tvmq.tune.code_size`)."""

    def __init__(self, database: ScheduleDatabase, target: Target, tasks: list[Task]):
        super().__init__()
        self.database, self.target, self.tasks = database, target, tasks

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
        from tvmq.tune.code_size import default_code_bytes, kernel_code_bytes

        mod, code = self.tasks[task_id].mod, self.database.code
        if code.of_default(mod) is None:
            code.note_default(mod, default_code_bytes(mod, self.target))
        for candidate, result in zip(measure_candidates, runner_results, strict=True):
            if result.error_msg is None and result.run_secs:
                size = kernel_code_bytes(candidate.sch.mod["main"], self.target)
                code.note_record(mod, candidate.sch.trace, size)


@derived_object
class _Progress(ms.measure_callback.PyMeasureCallback):
    """Trials done, the task being tuned and its best time so far, on a tqdm bar."""

    def __init__(self, bar: tqdm, tasks: list[Task]):
        super().__init__()
        self.bar, self.tasks, self.trials = bar, tasks, 0
        self.best: dict[int, float] = {}
        self.errors: list[str] = []  # why candidates failed, first line each

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
        costs = [
            min(float(s) for s in r.run_secs)
            for r in runner_results
            if r.error_msg is None and r.run_secs
        ]
        for result in [*builder_results, *runner_results]:
            if result.error_msg:
                self.errors.append(str(result.error_msg).strip().splitlines()[-1][:200])
        if costs:
            self.best[task_id] = min([*costs, self.best.get(task_id, float("inf"))])
        self.trials += len(measure_candidates)
        self.bar.update(len(measure_candidates))
        name = self.tasks[task_id].name
        best = self.best.get(task_id)
        self.bar.set_postfix_str(
            f"{name} best {best * 1e6:.2f} us" if best is not None else f"{name} (no valid run)"
        )
