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

from tvmq.backend.schedule import ScheduledKernel, calls_micro_kernel, default_schedule
from tvmq.targets import Target
from tvmq.tune.database import default_directory, load_records, tuning_target
from tvmq.tune.space import offers_mmla, variants
from tvmq.tune.tasks import WORKLOAD_ATTR, workload


class TunedSchedules:
    """A scheduler for :func:`tvmq.backend.aot.lower_model` that applies records."""

    def __init__(self, target: Target, directory: Path | None = None):
        self.directory = Path(directory) if directory else default_directory(target)
        self.target = tuning_target(target)
        self.mmla_choice = offers_mmla(target)
        self.database = ms.database.MemoryDatabase()
        self.records = load_records(self.directory, target)
        for record in self.records:
            self.database.commit_workload(record.workload.mod)
            self.database.commit_tuning_record(record)
        self.kernels = 0
        self.applied = 0

    def __call__(self, func: tvm.tirx.PrimFunc) -> ScheduledKernel:
        self.kernels += 1
        default = default_schedule(func)
        if calls_micro_kernel(func):
            return default
        tuned = self._tuned(func)
        if tuned is None or not _same_signature(tuned, default.func):
            return default
        self.applied += 1
        return ScheduledKernel(tuned, default.weight_layouts)

    def _tuned(self, func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc | None:
        mod = workload(func)
        if not self.database.has_workload(mod):
            return None
        candidates = self.database.get_top_k(self.database.commit_workload(mod), 1 << 16)
        record = next((r for r in candidates if not unrolls_a_reduction(r.trace)), None)
        if record is None:
            return None
        variants(func, self.mmla_choice)  # registers the intrinsics the trace may name
        sch = s_tir.Schedule(mod)
        record.trace.apply_to_schedule(sch, remove_postproc=True)
        return sch.mod["main"].without_attr(WORKLOAD_ATTR)

    def summary(self) -> str:
        """One line: how many kernels got tuned records, from where."""
        if not self.records:
            return f"tuned schedules: none in {self.directory}; default schedules"
        return f"tuned schedules: {self.applied} of {self.kernels} kernels from {self.directory}"


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

    records = load_records(Path(directory) if directory else default_directory(target), target)
    database = ms.database.MemoryDatabase()
    for record in records:
        database.commit_workload(record.workload.mod)
        database.commit_tuning_record(record)
    executable = ms.relax_integration.compile_relax(
        database, host_module(model), tuning_target(target), params=None
    )
    return HostExecutable(model, relax.VirtualMachine(executable, tvm.cpu())), len(records)
