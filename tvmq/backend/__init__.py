"""Code generation: one module per kind of target, found through tvmq.backend.registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tvmq.errors import MemoryBudgetError
from tvmq.targets import load_target

if TYPE_CHECKING:
    from tvmq.backend.aot import Scheduler
    from tvmq.backend.executable import Executable
    from tvmq.model import Model


def build(model: Model, target_name: str, schedule: Scheduler | None = None) -> Executable:
    """Compile `model` for the named target with the backend of its kind; `schedule`
    schedules the kernels of ahead-of-time targets (Cortex-M, Cortex-A; default
    schedules when None)."""
    from tvmq.backend.registry import backend_for
    from tvmq.backend.schedule import core_schedule

    target = load_target(target_name)
    schedule = schedule or core_schedule(target.tvm.get("mcpu"))
    return backend_for(target).load().build(model, target, schedule)


def check_lowering(model: Model, target_name: str) -> None:
    """Do what building for the target does short of generating and compiling code
    (realization, legalization; for ahead-of-time targets fusion, the kernel graph,
    default schedules and the memory plan, checked against the board's flash and
    RAM), raising what the build would raise."""
    import tvm
    from tvm import relax

    from tvmq.backend.registry import backend_for

    target = load_target(target_name)
    if backend_for(target).emits_c:
        from tvmq.backend.aot import lower_model
        from tvmq.backend.mcu import model_memory
        from tvmq.backend.schedule import core_schedule

        core = target.tvm.get("mcpu")
        memory = model_memory(lower_model(model, core_schedule(core), core), target)
        ram = memory["arena_bytes"] + memory["io_bytes"]
        if memory["flash_limit"] and memory["weights_bytes"] > memory["flash_limit"]:
            raise MemoryBudgetError(
                f"weights of {memory['weights_bytes']:,} B exceed the flash of "
                f"{target.name} ({memory['flash_limit']:,} B)"
            )
        if memory["ram_limit"] and ram > memory["ram_limit"]:
            raise MemoryBudgetError(
                f"activation arena and inputs/outputs of {ram:,} B exceed the RAM of "
                f"{target.name} ({memory['ram_limit']:,} B)"
            )
        return
    from tvmq.quantize.realize import realize

    mod = realize(model.mod) if model.is_quantized else model.mod
    with target.tvm_target():
        tvm.ir.transform.Sequential([relax.transform.LegalizeOps()])(mod)
