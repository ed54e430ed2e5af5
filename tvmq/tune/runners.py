"""How candidates are built and measured: on this host, over TVM RPC, or on the board.

``local`` and ``rpc`` are MetaSchedule's own (host code); ``board`` builds each
candidate kernel of tvmq's C backend as the target builds it
(:mod:`tvmq.tune.board`): a measurement firmware run through the
hardware-in-the-loop harness for a microcontroller (seconds at the board's
clock; instructions under QEMU's -icount), a one-kernel library and runner
under QEMU user mode for Cortex-A (instructions executed, as nanoseconds).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvmq.errors import TvmqError
from tvmq.targets import Target
from tvmq.tune.tasks import WORKLOAD_ATTR, Task

RUNNERS = ("local", "rpc", "board")
EVALUATOR = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0)
TASK_FILE = "task"  # beside a candidate's program: the workload tag of its kernel


BOARD_KINDS = ("cortex-m", "cortex-a")  # targets built by tvmq's C backend
EMULATED_HZ = 1e9  # Cortex-A candidates: instructions counted, reported as ns


def default_runner(target: Target) -> str:
    return "board" if target.kind in BOARD_KINDS else "local"


def check_runner(runner: str, target: Target) -> None:
    """Refuse a runner that cannot measure `target`'s code, before any work."""
    if runner not in RUNNERS:
        raise TvmqError(f"unknown runner '{runner}' (known: {', '.join(RUNNERS)})")
    if target.kind not in ("host", *BOARD_KINDS):
        raise TvmqError(f"target '{target.name}' ({target.kind}): tuning is not available yet")
    if target.kind in BOARD_KINDS and runner != "board":
        raise TvmqError(
            f"target '{target.name}' runs tvmq's C kernels ({target.kind}): use --runner board"
        )
    if target.kind not in BOARD_KINDS and runner == "board":
        raise TvmqError(
            f"--runner board measures microcontrollers and Cortex-A; '{target.name}' is neither"
        )


def without_builtin_intrinsics() -> None:
    """Keep TuneContext from importing all of TVM's own tensor intrinsics.

    ``tvm.s_tir.tensor_intrin`` parses every CUDA, ARM and x86 intrinsic as
    TVMScript on import: minutes on a loaded 2-core machine. The kernels tuned
    here use tvmq's own intrinsics (registered by the schedules) and the host
    space none, so the package is registered empty, its submodules still
    importable on demand. Also the initializer of MetaSchedule's build and run
    worker processes, which would import it too.
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules[name] = package


def rpc_runner(tracker: str, key: str) -> ms.runner.RPCRunner:
    """MetaSchedule's RPC runner through the tracker at HOST:PORT, for devices under `key`."""
    host, _, port = tracker.rpartition(":")
    if not host or not port.isdigit():
        raise TvmqError(f"--tracker {tracker}: expected HOST:PORT")
    config = ms.runner.RPCConfig(
        tracker_host=host, tracker_port=int(port), tracker_key=key, session_timeout_sec=60
    )
    return ms.runner.RPCRunner(
        config, EVALUATOR, max_workers=2, initializer=without_builtin_intrinsics
    )


def builder_and_runner(
    runner: str, target: Target, tasks: list[Task], tracker: str | None, key: str
) -> tuple[ms.builder.Builder, ms.runner.Runner]:
    if runner == "board":
        board = BoardBuilder(target, tasks)
        return board, BoardRunner(target, tasks)
    builder = ms.builder.LocalBuilder(max_workers=1, initializer=without_builtin_intrinsics)
    if runner == "rpc":
        if tracker is None:
            raise TvmqError("--runner rpc needs --tracker HOST:PORT")
        return builder, rpc_runner(tracker, key)
    return builder, ms.runner.LocalRunner(EVALUATOR, initializer=without_builtin_intrinsics)


def _task_of(tasks: dict[str, Task], mod) -> Task:
    return tasks[str(mod["main"].attrs[WORKLOAD_ATTR])]


@derived_object
class BoardBuilder(ms.builder.PyBuilder):
    """Each candidate kernel as a one-kernel program for the target's board."""

    def __init__(self, target: Target, tasks: list[Task]):
        super().__init__()
        self.target = target
        self.tasks = {t.key: t for t in tasks}
        self.scratch = Path(tempfile.mkdtemp(prefix="tvmq-tune-"))
        self.count = 0

    def build(self, build_inputs):
        from tvmq.tune.board import build_kernel_program

        results = []
        for build_input in build_inputs:
            self.count += 1
            directory = self.scratch / f"c{self.count}"
            try:
                func = build_input.mod["main"].without_attr(WORKLOAD_ATTR)
                task = _task_of(self.tasks, build_input.mod)
                program = build_kernel_program(task, func, self.target, directory)
                (directory / TASK_FILE).write_text(task.key)
                results.append(ms.builder.BuilderResult(str(program), None))
            except Exception as error:  # a candidate that does not build is a failed trial
                shutil.rmtree(directory, ignore_errors=True)
                results.append(ms.builder.BuilderResult(None, f"{type(error).__name__}: {error}"))
        return results

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


@derived_object
class BoardRunner(ms.runner.PyRunner):
    """Runs each candidate on the (emulated) board: seconds at its clock."""

    def __init__(self, target: Target, tasks: list[Task]):
        super().__init__()
        self.target = target
        board = target.board
        self.clock_hz = board.get("real_clock_hz") or board.get("clock_hz") or EMULATED_HZ
        self.tasks = {t.key: t for t in tasks}

    def run(self, runner_inputs):
        from tvmq.tune.board import measure_instructions, random_inputs

        futures = []
        for runner_input in runner_inputs:
            program = Path(runner_input.artifact_path)
            directory = program.parent.parent
            task = self.tasks[(directory / TASK_FILE).read_text()]
            try:
                instructions = measure_instructions(program, self.target, random_inputs(task))
                result = ms.runner.RunnerResult([instructions / self.clock_hz], None)
            except Exception as error:  # a candidate that faults is a failed trial
                result = ms.runner.RunnerResult(None, f"{type(error).__name__}: {error}")
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            futures.append(_Done(result))
        return futures


@derived_object
class _Done(ms.runner.PyRunnerFuture):
    def __init__(self, result: ms.runner.RunnerResult):
        super().__init__()
        self._result = result

    def done(self) -> bool:
        return True

    def result(self) -> ms.runner.RunnerResult:
        return self._result
