"""Building with tuned records: each kernel with a record gets the record's schedule.

A record's trace is replayed on the kernel (same workload: same structure and
shapes), which repeats the SIMD tensorization with the tuned decisions; kernels
without a record keep the default schedule. The weights are relaid out as the
default schedule relays them: every point of the space uses the same layout,
and a record whose kernel signature disagrees is not applied.
"""

from __future__ import annotations

from pathlib import Path

import tvm
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms

from tvmq.backend.intrinsics import DENSE_KERNEL
from tvmq.backend.registry import backend_for
from tvmq.backend.schedule import (
    ScheduledKernel,
    calls_micro_kernel,
    core_schedule,
    extern_calls,
    is_row_kernel,
)
from tvmq.errors import TvmqError
from tvmq.targets import Target
from tvmq.tune import OBJECTIVES
from tvmq.tune.database import (
    KERNELS,
    ROW_KERNELS,
    RecordReader,
    default_directory,
    load_records,
    lookup_directories,
    tuning_target,
)
from tvmq.tune.space import offers_mmla, variants
from tvmq.tune.tasks import WORKLOAD_ATTR, workload

FLASH_TOLERANCE = 0.05  # the flash objective: a kernel's code at most 5 % over the default's


def schedules_for(
    target: Target, directory: Path | None = None, *, tuned: bool = True, objective: str = "flash"
) -> TunedSchedules:
    """The schedules every build uses: tuned records where a database has them
    (`directory`, else the user's then the shipped database), defaults elsewhere.

    `tuned` False builds with the default schedules only; `objective` ``flash``
    (the default) applies a record only if its kernel's code is within
    ``FLASH_TOLERANCE`` of the default schedule's, ``speed`` the fastest record.
    """
    check_options(directory, objective)
    if not tuned:
        return TunedSchedules(target, [], objective, note="off (--no-tuned)")
    if not backend_for(target).emits_c:
        return TunedSchedules(target, [], objective, note=f"not used for {target.kind} targets")
    directories = [Path(directory)] if directory is not None else lookup_directories(target)
    schedules = TunedSchedules(target, directories, objective)
    if directory is not None and not schedules.readers:
        raise TvmqError(f"--schedules {directory}: no tvmq schedule database in it")
    return schedules


def check_options(directory: Path | None, objective: str) -> None:
    """Refuse an unknown objective or a --schedules directory that is not there."""
    if objective not in OBJECTIVES:
        raise TvmqError(f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}")
    if directory is not None and not Path(directory).is_dir():
        raise TvmqError(f"--schedules {directory}: no such directory")


class TunedSchedules:
    """A scheduler for :func:`tvmq.backend.aot.lower_model` that applies records.

    Each kernel takes its records from the first of `directories` holding its
    workload; the fastest record that replays, and under the flash objective
    whose code fits, is applied.
    """

    def __init__(
        self,
        target: Target,
        directories: list[Path] | Path | None = None,
        objective: str = "flash",
        note: str | None = None,
    ):
        if directories is None:
            directories = lookup_directories(target)
        elif isinstance(directories, (str, Path)):
            directories = [Path(directories)]
        self.target, self.objective, self.note = target, objective, note
        self.mmla_choice = offers_mmla(target) if backend_for(target).emits_c else False
        self.directories = [Path(d) for d in directories]
        readers = (RecordReader(d, target) for d in self.directories)
        self.readers = [reader for reader in readers if reader.exists]
        self.kernels = 0
        self.applied = 0
        self.kept_small = 0  # kernels whose faster records the flash objective refused
        self.default = core_schedule(target.tvm.get("mcpu"))

    def __call__(self, func: tvm.tirx.PrimFunc) -> ScheduledKernel:
        self.kernels += 1
        default = self.default(func)
        if calls_micro_kernel(func) or not self.readers:
            return default
        tuned = self._tuned(func, default.func)
        if tuned is None or not _same_signature(tuned, default.func):
            return default
        self.applied += 1
        return ScheduledKernel(tuned, default.weight_layouts)

    def _tuned(
        self, func: tvm.tirx.PrimFunc, default: tvm.tirx.PrimFunc
    ) -> tvm.tirx.PrimFunc | None:
        mod = workload(func)
        reader = next((r for r in self.readers if r.has(mod)), None)
        if reader is None or reader.kernels < _generation_needed(default):
            return None  # records from before the default's kernels never weighed them
        candidates = [r for r in reader.records(mod) if not unrolls_a_reduction(r.trace)]
        record = next((r for r in candidates if self._fits(reader, r)), None)
        if candidates and record is not candidates[0]:
            self.kept_small += 1
        if record is None:
            return None
        variants(func, self.mmla_choice)  # registers the intrinsics the trace may name
        sch = s_tir.Schedule(mod)
        record.trace.apply_to_schedule(sch, remove_postproc=True)
        return sch.mod["main"].without_attr(WORKLOAD_ATTR)

    def _fits(self, reader: RecordReader, record) -> bool:
        """Whether the objective allows `record`: any under ``speed``; under ``flash``
        one whose code is measured and within the tolerance of the default's."""
        if self.objective == "speed":
            return True
        return within_flash(
            reader.code.of_record(record), reader.code.of_default(record.workload.mod)
        )

    def summary(self) -> str:
        """One line: how many kernels got tuned records, from where."""
        if self.note is not None:
            return f"tuned schedules: {self.note}; default schedules"
        if not self.readers:
            where = " or ".join(str(d) for d in self.directories)
            return f"tuned schedules: none in {where}; default schedules"
        where = ", ".join(str(r.directory) for r in self.readers)
        line = f"tuned schedules: {self.applied} of {self.kernels} kernels from {where}"
        if self.objective == "speed":
            return line + " (objective speed)"
        if self.kept_small:
            line += (
                f" (objective flash: {self.kept_small} without their fastest record, whose "
                f"code is not measured or over {FLASH_TOLERANCE:.0%} larger; "
                "--objective speed takes it)"
            )
        return line


def within_flash(size: int | None, default: int | None) -> bool:
    """The flash objective: code measured, and at most FLASH_TOLERANCE over the default's."""
    return size is not None and default is not None and size <= default * (1 + FLASH_TOLERANCE)


def unrolls_a_reduction(trace) -> bool:
    """Whether the trace unrolls a loop that it did not split off the output's loop.

    Such traces (a reduction's innermost loops unrolled, sampled by earlier
    versions of the space) miscompile in the ahead-of-time C build: TVM reuses
    the accumulator's first load across the unrolled read-modify-writes. They
    are never applied.
    """
    split_off = [rv for inst in trace.insts if inst.kind.name == "Split" for rv in inst.outputs]
    return any(
        inst.kind.name == "Unroll" and not any(inst.inputs[0].same_as(rv) for rv in split_off)
        for inst in trace.insts
    )


def _generation_needed(default: tvm.tirx.PrimFunc) -> int:
    """The micro-kernel generation (database KERNELS) a record must come from to be
    weighed against the `default` schedule's kernels."""
    calls = extern_calls(default)  # prints the kernel's script: once
    if DENSE_KERNEL in calls:
        return KERNELS
    return ROW_KERNELS if any(is_row_kernel(name) for name in calls) else 1


def _same_signature(a: tvm.tirx.PrimFunc, b: tvm.tirx.PrimFunc) -> bool:
    """Same parameters, dtypes and shapes (after the weight relayout)."""

    def signature(func):
        return [(str(p.ty.dtype), [int(d) for d in p.ty.shape]) for p in func.params]

    return signature(a) == signature(b)


def build_host_tuned(model, target: Target, directory: Path | None = None):
    """The host build (Relax VM) with the target's records applied by MetaSchedule;
    (executable, number of records loaded)."""
    from tvm import relax

    from tvmq.backend.host import HostExecutable
    from tvmq.tune.tasks import host_module

    if directory is None:
        found = [d for d in lookup_directories(target) if RecordReader(d, target).exists]
        directory = found[0] if found else default_directory(target)
    records = load_records(Path(directory), target)
    database = ms.database.MemoryDatabase()
    for record in records:
        database.commit_workload(record.workload.mod)
        database.commit_tuning_record(record)
    executable = ms.relax_integration.compile_relax(
        database, host_module(model), tuning_target(target), params=None
    )
    return HostExecutable(model, relax.VirtualMachine(executable, tvm.cpu())), len(records)
