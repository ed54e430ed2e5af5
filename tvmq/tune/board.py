"""One kernel measured on the board: a one-step model built as the target builds models.

A candidate schedule of a kernel is compiled exactly as in a model (the same
ahead-of-time lowering and C emitter), as a model whose only step is that
kernel, called with the constants it has in the real model and random
activations. A microcontroller runs it in the harness firmware: on an emulated
board (QEMU under -icount) the harness's tick count converts exactly into
instructions, on a real board it is cycles. A Cortex-A target runs it in the
library project's runner under QEMU user mode, whose executed instructions are
counted (:mod:`tvmq.hil.instruction_count`): a run of ``RUNS`` calls minus a run
of none, so process start and file I/O drop out; on a real board, the library
is a TVM module timed by the board's TVM RPC server (:mod:`tvmq.hil.rpc`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tvm

from tvmq.backend.aot import CompiledModel, lower_graph
from tvmq.backend.graph import CONSTANT, INPUT, OUTPUT, KernelGraph, Step, Tensor
from tvmq.backend.registry import backend_for
from tvmq.backend.schedule import ScheduledKernel
from tvmq.model import Model, TensorSpec
from tvmq.targets import Target
from tvmq.tune.tasks import Task

RUNS = 8  # timed runs per measurement: identical under -icount; more of them, finer ticks


def kernel_model(task: Task, scheduled: tvm.tirx.PrimFunc) -> CompiledModel:
    """`task`'s kernel, scheduled as `scheduled`, lowered as a one-step model."""
    tensors: dict[str, Tensor] = {}
    args = []
    last = len(task.arguments) - 1
    for position, source in enumerate(task.arguments):
        name = f"a{position}"
        if source.kind == CONSTANT:
            kind, value = CONSTANT, source.value
        else:
            kind, value = (OUTPUT if position == last else INPUT), None
        tensors[name] = Tensor(name, source.shape, source.dtype, kind, value=value)
        args.append(name)
    inputs = [n for n in args if tensors[n].kind == INPUT]
    graph = KernelGraph(tensors, [Step(task.name, args)], {task.name: task.mod["main"]}, inputs,
                        [args[-1]])  # fmt: skip
    model = Model(
        name=task.name,
        source=Path(task.name),
        format="kernel",
        mod=task.mod,
        inputs=[TensorSpec(n, tensors[n].shape, tensors[n].dtype) for n in inputs],
        outputs=[TensorSpec(args[-1], tensors[args[-1]].shape, tensors[args[-1]].dtype)],
    )
    candidate = ScheduledKernel(scheduled, dict(task.weight_layouts))
    return lower_graph(model, graph, lambda _: candidate)


def build_kernel_program(
    task: Task,
    scheduled: tvm.tirx.PrimFunc,
    target: Target,
    directory: Path,
    tvm_module: bool = False,
) -> Path:
    """Write and build the measurement program of one candidate: the firmware ELF
    (microcontroller), the library project's runner (Cortex-A) or, with
    `tvm_module`, the library as a TVM module for a board's RPC server."""
    from tvmq.backend.emit_c import emit_compiled

    compiled = kernel_model(task, scheduled)
    emit_compiled(compiled, directory / "model")
    backend = backend_for(target).load()
    return backend.build_kernel_program(compiled, target, directory, tvm_module=tvm_module)


def random_inputs(task: Task, seed: int = 0) -> list[np.ndarray]:
    """Activations for one call of the kernel (integer kernels run the same path on any)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in task.arguments[:-1]:
        if tensor.kind == CONSTANT:
            continue
        dtype = np.dtype(tensor.dtype)
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(tensor.shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, tensor.shape).astype(dtype))
        else:
            info = np.iinfo(dtype)
            low, high = max(info.min, -(2**15)), min(info.max, 2**15)
            arrays.append(rng.integers(low, high, tensor.shape, endpoint=True).astype(dtype))
    return arrays


def measure_instructions(program: Path, target: Target, inputs: list[np.ndarray]) -> float:
    """Instructions (emulated board) per call of the program's kernel."""
    return backend_for(target).load().program_instructions(program, target, inputs, RUNS)
