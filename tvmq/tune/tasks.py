"""What to tune in a model: its kernels, once per distinct workload.

For a microcontroller the kernels are those of the ahead-of-time flow
(:func:`tvmq.backend.aot.model_graph`), each tuned from its unscheduled form;
for the host they are the PrimFuncs of TVM's Relax pipeline, which the host
build compiles. Identical kernels (same structure, shapes and constants inside)
are one task, within a model and across the models merged into one database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tvm
import tvm_ffi

from tvmq.backend.graph import Tensor
from tvmq.backend.registry import backend_for
from tvmq.model import Model
from tvmq.targets import Target

WORKLOAD_ATTR = "tvmq.workload"


@dataclass
class Task:
    """One kernel to tune: MetaSchedule's workload, and how the model calls it."""

    name: str
    mod: tvm.IRModule  # {"main": the unscheduled kernel}, MetaSchedule's workload
    weight: int  # calls per inference
    arguments: list[Tensor] = field(default_factory=list)  # one call's (MCU), output last
    weight_layouts: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The workload tag of a microcontroller kernel (see :func:`workload`)."""
        return str(self.mod["main"].attrs[WORKLOAD_ATTR])


def workload(func: tvm.tirx.PrimFunc) -> tvm.IRModule:
    """The kernel as a MetaSchedule workload, tagged with its own structural hash.

    The tag survives scheduling, so the board builder knows which kernel a
    candidate is; being a function of the kernel it keeps equal kernels equal.
    """
    tag = f"{tvm_ffi.structural_hash(func) & 0xFFFFFFFFFFFFFFFF:016x}"
    return tvm.IRModule({"main": func.with_attr(WORKLOAD_ATTR, tag)})


def extract_tasks(model: Model, target: Target) -> list[Task]:
    """The distinct kernels of `model` for `target`, heaviest-called first."""
    if not backend_for(target).emits_c:  # TVM's own pipeline: MetaSchedule's tasks
        return _host_tasks(model, target)
    return _kernel_tasks(model)


def _kernel_tasks(model: Model) -> list[Task]:
    from tvmq.backend.aot import model_graph
    from tvmq.backend.schedule import calls_micro_kernel, default_schedule

    graph = model_graph(model)
    tasks: dict[str, Task] = {}
    for step in graph.steps:
        if calls_micro_kernel(graph.kernels[step.kernel]):
            continue
        mod = workload(graph.kernels[step.kernel])
        key = str(mod["main"].attrs[WORKLOAD_ATTR])
        if key in tasks:
            tasks[key].weight += 1
            continue
        arguments = [graph.tensors[name] for name in step.args]
        layouts = default_schedule(graph.kernels[step.kernel]).weight_layouts
        tasks[key] = Task(step.kernel, mod, 1, arguments, layouts)
    return list(tasks.values())


def host_module(model: Model) -> tvm.IRModule:
    """The Relax module the host build compiles (integer-only once realized)."""
    from tvmq.quantize.realize import realize

    return realize(model.mod) if model.is_quantized else model.mod


def _host_tasks(model: Model, target: Target) -> list[Task]:
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    lowered = relax.get_pipeline("zero")(host_module(model))
    extracted = ms.relax_integration.extract_tasks(lowered, target.tvm_target())
    tasks = []
    for task in extracted:
        mod = task.dispatched[0]
        tasks.append(Task(task.task_name, mod, int(task.weight)))
    return tasks
