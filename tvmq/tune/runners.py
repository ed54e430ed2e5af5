"""How candidates are built and measured: on this host, over TVM RPC, or on the board.

For the host, ``local`` and ``rpc`` are MetaSchedule's own. For tvmq's C
backend each candidate kernel is built as the target builds it
(:mod:`tvmq.tune.board`); ``board`` runs it emulated: a measurement firmware
through the hardware-in-the-loop harness for a microcontroller (seconds at the
board's clock; instructions under QEMU's -icount), a one-kernel library and
runner under QEMU user mode for Cortex-A (instructions executed, as
nanoseconds). ``rpc`` times a Cortex-A candidate on a real board: the one-kernel
library as a TVM module, uploaded to the TVM RPC server the board registered
at a tracker, timed there by TVM's time evaluator.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvmq.backend.registry import backend_for
from tvmq.errors import TvmqError
from tvmq.targets import Target
from tvmq.tune.tasks import WORKLOAD_ATTR, Task

RUNNERS = ("local", "rpc", "board")
MEASURE = {"local": "wall-time", "rpc": "wall-time", "board": "qemu-instructions"}
EVALUATOR = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0)
BOARD_EVALUATOR = {"number": 8, "repeat": 3, "min_repeat_ms": 50}  # a real board is noisy
TASK_FILE = "task"  # beside a candidate's program: the workload tag of its kernel


EMULATED_HZ = 1e9  # candidates on a board without a clock: instructions counted, reported as ns
RUNNER_MEANING = {
    "local": "this machine",
    "rpc": "a TVM RPC server",
    "board": "the emulated board",
}


def default_runner(target: Target) -> str:
    return _runners(target)[0]


def check_runner(runner: str, target: Target) -> None:
    """Refuse a runner that cannot measure `target`'s code, before any work."""
    if runner not in RUNNERS:
        raise TvmqError(f"unknown runner '{runner}' (known: {', '.join(RUNNERS)})")
    fitting = _runners(target)
    if runner not in fitting:
        choices = " or ".join(f"--runner {r} ({RUNNER_MEANING[r]})" for r in fitting)
        raise TvmqError(
            f"target '{target.name}' ({target.kind}) is not measured with --runner {runner}: "
            f"use {choices}"
        )


def _runners(target: Target) -> tuple[str, ...]:
    """The runners that measure `target`'s code, its backend's default first."""
    runners = backend_for(target).runners
    if not runners:
        raise TvmqError(f"target '{target.name}' ({target.kind}): tuning is not available yet")
    return runners


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


def tracker_address(tracker: str | None) -> tuple[str, int]:
    """HOST and PORT of ``--tracker HOST:PORT``."""
    if tracker is None:
        raise TvmqError("--runner rpc needs --tracker HOST:PORT")
    host, _, port = tracker.rpartition(":")
    if not host or not port.isdigit():
        raise TvmqError(f"--tracker {tracker}: expected HOST:PORT")
    return host, int(port)


def rpc_runner(tracker: str | None, key: str) -> ms.runner.RPCRunner:
    """MetaSchedule's RPC runner through the tracker at HOST:PORT, for devices under `key`."""
    host, port = tracker_address(tracker)
    config = ms.runner.RPCConfig(
        tracker_host=host, tracker_port=port, tracker_key=key, session_timeout_sec=60
    )
    return ms.runner.RPCRunner(
        config, EVALUATOR, max_workers=2, initializer=without_builtin_intrinsics
    )


def builder_and_runner(
    runner: str, target: Target, tasks: list[Task], tracker: str | None, key: str, scratch: Path
) -> tuple[ms.builder.Builder, ms.runner.Runner]:
    """Every candidate is built in `scratch`, which the caller removes after tuning."""
    if backend_for(target).emits_c:
        if runner == "rpc":
            measurer = BoardRpcRunner(tasks, tracker, key)
            return BoardBuilder(target, tasks, scratch, tvm_module=True), measurer
        return BoardBuilder(target, tasks, scratch), BoardRunner(target, tasks)
    builder = ms.builder.LocalBuilder(
        max_workers=1,
        initializer=without_builtin_intrinsics,
        f_export=functools.partial(export_into, str(scratch)),
    )
    if runner == "rpc":
        return builder, rpc_runner(tracker, key)
    return builder, ms.runner.LocalRunner(EVALUATOR, initializer=without_builtin_intrinsics)


def export_into(directory: str, mod) -> str:
    """MetaSchedule's default export, into `directory` instead of a new directory
    in /tmp per candidate that nothing removes (run in the builder's worker)."""
    from tvm.support.tar import tar

    artifact = Path(tempfile.mkdtemp(dir=directory)) / f"tvm_tmp_mod.{tar.output_format}"
    mod.export_library(str(artifact), fcompile=tar)
    return str(artifact)


def _task_of(tasks: dict[str, Task], mod) -> Task:
    return tasks[str(mod["main"].attrs[WORKLOAD_ATTR])]


@derived_object
class BoardBuilder(ms.builder.PyBuilder):
    """Each candidate kernel as a one-kernel program for the target's board (with
    `tvm_module`, a Cortex-A library as a TVM module, for a board's RPC server)."""

    def __init__(self, target: Target, tasks: list[Task], scratch: Path, tvm_module: bool = False):
        super().__init__()
        self.target, self.tvm_module = target, tvm_module
        self.tasks = {t.key: t for t in tasks}
        self.scratch = scratch
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
                program = build_kernel_program(
                    task, func, self.target, directory, tvm_module=self.tvm_module
                )
                (directory / TASK_FILE).write_text(task.key)
                results.append(ms.builder.BuilderResult(str(program), None))
            except Exception as error:  # a candidate that does not build is a failed trial
                shutil.rmtree(directory, ignore_errors=True)
                results.append(ms.builder.BuilderResult(None, f"{type(error).__name__}: {error}"))
        return results


@derived_object
class BoardRunner(ms.runner.PyRunner):
    """Runs each candidate on the (emulated) board: seconds at its clock."""

    def __init__(self, target: Target, tasks: list[Task]):
        super().__init__()
        self.target = target
        self.clock_hz = target.clock_hz or EMULATED_HZ
        self.tasks = {t.key: t for t in tasks}

    def run(self, runner_inputs):
        from tvmq.tune.board import measure_instructions, random_inputs

        def on_board(program: Path, task: Task) -> list[float]:
            instructions = measure_instructions(program, self.target, random_inputs(task))
            return [instructions / self.clock_hz]

        return _measure_each(runner_inputs, self.tasks, on_board)


@derived_object
class BoardRpcRunner(ms.runner.PyRunner):
    """Times each candidate's TVM module on a board's TVM RPC server (seconds).

    The tracker is asked for the board under `key` once per round of
    candidates, so a farm of boards shares the work between tuning runs.
    """

    def __init__(self, tasks: list[Task], tracker: str | None, key: str):
        super().__init__()
        self.address, self.key = tracker_address(tracker), key
        self.tasks = {t.key: t for t in tasks}

    def run(self, runner_inputs):
        from tvmq.hil.rpc import open_session, time_module
        from tvmq.tune.board import random_inputs

        session = None

        def on_board(module: Path, task: Task) -> list[float]:
            nonlocal session
            session = session or open_session(self.address, self.key)
            output = task.arguments[-1]
            try:
                return time_module(
                    session, module, random_inputs(task), (output.shape, output.dtype),
                    BOARD_EVALUATOR,
                )  # fmt: skip
            except Exception:  # a candidate that faults, or a lost board: a new session
                session = None
                raise

        return _measure_each(runner_inputs, self.tasks, on_board)


def _measure_each(runner_inputs, tasks: dict[str, Task], measure) -> list:
    """`measure(program, task)` (seconds) for each candidate, in turn; a candidate
    whose measurement fails is a failed trial. Each candidate's directory goes after."""
    futures = []
    for runner_input in runner_inputs:
        program = Path(runner_input.artifact_path)
        directory = program.parent.parent
        task = tasks[(directory / TASK_FILE).read_text()]
        try:
            result = ms.runner.RunnerResult(measure(program, task), None)
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
