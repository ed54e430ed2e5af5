"""Ahead-of-time compilation: a model as one TIR module and plain C around it.

The kernels become private TIR functions with plain C signatures (pointers only).
One public entry function calls them in graph order with pointers into the
model inputs and outputs, the constant weight blob and the planned arena; TVM
generates all of it (C source or an object file). The C written here only holds
the data (weights in flash, arena and I/O buffers in RAM) and the model
descriptor of ``firmware/include/tvmq_model.h``: no runtime, no heap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import tvm

from tvmq.backend.codebook import pack_codebook_weights
from tvmq.backend.dense import interleave_dense_weights
from tvmq.backend.graph import CONSTANT, INPUT, OUTPUT, KernelGraph, fuse, kernel_graph
from tvmq.backend.int4 import pack_int4_weights
from tvmq.backend.planner import ALIGNMENT, MemoryPlan, plan_memory
from tvmq.backend.schedule import ScheduledKernel, default_schedule
from tvmq.errors import TvmqError
from tvmq.model import Model

Scheduler = Callable[[tvm.tirx.PrimFunc], ScheduledKernel]

ENTRY = "tvmq_entry"


@dataclass
class CompiledModel:
    """What the emitter needs: the graph, its plan, the TIR module, the weight blob."""

    model: Model
    graph: KernelGraph
    plan: MemoryPlan
    tir: tvm.IRModule
    weights: bytes
    weight_offsets: dict[str, int]

    @cached_property
    def build_id(self) -> str:
        """Digest of weights and code; read by the header, the descriptor and the manifest."""
        digest = hashlib.sha256(self.weights)
        digest.update(tvm.ir.save_json(self.tir).encode())
        return digest.hexdigest()[:16]


def lower_model(
    model: Model, schedule: Scheduler = default_schedule, core: str | None = None
) -> CompiledModel:
    """Realize, fuse, schedule and plan `model`; build the entry function.

    `schedule` turns each kernel into a scheduled one: the default schedules, or
    tuned records (:mod:`tvmq.tune.apply`) with the default for the rest. On a Cortex-M
    `core`, sparse weights may take the sparse kernels (:mod:`tvmq.backend.sparse`).
    """
    return lower_graph(model, model_graph(model, core), schedule)


def model_graph(model: Model, core: str | None = None) -> KernelGraph:
    """The fused kernel graph of `model`, kernels not yet scheduled."""
    from tvmq.backend.sparse import sparsify
    from tvmq.quantize.realize import realize

    mod = sparsify(realize(model.mod), core) if model.is_quantized else model.mod
    return kernel_graph(fuse(mod))


def lower_graph(
    model: Model, graph: KernelGraph, schedule: Scheduler = default_schedule
) -> CompiledModel:
    """Schedule and plan `graph` (changed in place: weight layouts); build the entry."""
    functions = {}
    for name, func in graph.kernels.items():
        scheduled = schedule(func)
        functions[name] = _pointer_signature(scheduled.func)
        for position, axes in scheduled.weight_layouts.items():
            graph.transpose_constant(name, position, axes)
    pack_int4_weights(model, graph, functions)
    pack_codebook_weights(model, graph, functions)
    interleave_dense_weights(graph, functions)  # after packing: int8 weights only
    plan = plan_memory(graph)
    weights, weight_offsets = _weight_blob(graph)
    tir = tvm.IRModule({tvm.ir.GlobalVar(name): func for name, func in functions.items()})
    entry = _entry_function(graph, plan, weight_offsets, tir)
    tir[ENTRY] = entry
    return CompiledModel(model, graph, plan, tir, weights, weight_offsets)


def _weight_blob(graph: KernelGraph) -> tuple[bytes, dict[str, int]]:
    """All constants in one aligned little-endian blob, and each one's offset."""
    blob = bytearray()
    offsets = {}
    for name, tensor in graph.tensors.items():
        if tensor.kind != CONSTANT:
            continue
        blob.extend(b"\0" * (-len(blob) % ALIGNMENT))
        offsets[name] = len(blob)
        little_endian = tensor.value.dtype.newbyteorder("<")
        blob.extend(np.ascontiguousarray(tensor.value, dtype=little_endian).tobytes())
    return bytes(blob), offsets


def _pointer_signature(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    """The kernel with one pointer per buffer, so it is called as plain C."""
    pointers = [
        tvm.tirx.Var(f"{p.name}_ptr", tvm.ir.PointerType(tvm.ir.PrimType(str(p.ty.dtype))))
        for p in func.params
    ]
    declarations = [
        tvm.tirx.DeclBuffer(param, data=pointer)
        for param, pointer in zip(func.params, pointers, strict=True)
    ]
    body = tvm.tirx.SeqStmt([*declarations, func.body])
    return tvm.tirx.PrimFunc(pointers, body, attrs=func.attrs).without_attr("global_symbol")


def _entry_function(
    graph: KernelGraph, plan: MemoryPlan, weight_offsets: dict[str, int], tir: tvm.IRModule
) -> tvm.tirx.PrimFunc:
    """`tvmq_entry(inputs..., outputs..., weights, arena)`: every kernel call in order."""
    handles = {name: tvm.tirx.Var(name, "handle") for name in [*graph.inputs, *graph.outputs]}
    weights = tvm.tirx.Var("weights", "handle")
    arena = tvm.tirx.Var("arena", "handle")

    def pointer(name: str):
        storage = graph.storage(name)
        if storage.kind in (INPUT, OUTPUT):
            return handles[storage.name]
        if storage.kind == CONSTANT:
            return tvm.tirx.call_intrin(
                "handle", "tirx.handle_add_byte_offset", weights, weight_offsets[storage.name]
            )
        return tvm.tirx.call_intrin(
            "handle", "tirx.handle_add_byte_offset", arena, plan.offsets[storage.name]
        )

    calls = [
        tvm.tirx.Evaluate(
            tvm.ir.Call(
                tir.get_global_var(step.kernel), [pointer(a) for a in step.args], ret_ty="int32"
            )
        )
        for step in graph.steps
    ]
    params = [*handles.values(), weights, arena]
    body = calls[0] if len(calls) == 1 else tvm.tirx.SeqStmt(calls)  # no SeqStmt of one
    return tvm.tirx.PrimFunc(params, body).with_attr("global_symbol", ENTRY)


def build_kernels(tir: tvm.IRModule, target: tvm.target.Target):
    """``tvm.tirx.build`` of the model's TIR, with kernels that may allocate scratch.

    A kernel whose temporaries outgrow the stack (a float softmax's row of
    exponentials) gets them from TVMBackendAllocWorkspace, which needs the device
    the code runs on. Public functions say so through their packed API; the
    kernels here are private, so after TVM's pipeline has placed every allocation
    at the top of its function, each is wrapped in the CPU device scope before the
    builtins are lowered. The workspace then comes from the firmware's static pool
    (:mod:`tvmq.backend.emit_c`): no heap.
    """
    from tvm.tirx.build import split_host_device_mods, tir_to_runtime

    target = target.with_host(target)
    mod = tvm.tirx.transform.BindTarget(target)(tir)
    pipeline, finalize_host, _ = tvm.tirx.get_default_tir_pipeline(target)
    host, devices = split_host_device_mods(_on_cpu(pipeline(mod)))
    if devices:
        raise TvmqError("kernels for another device cannot be built ahead of time")
    return tir_to_runtime(finalize_host()(host), {}, target)


@tvm.tirx.transform.prim_func_pass(opt_level=0, name="TvmqKernelsOnCpu")
def _on_cpu(func: tvm.tirx.PrimFunc, _mod, _context) -> tvm.tirx.PrimFunc:
    """Private kernels run on device (kDLCPU, 0), as the builtin lowering asks."""
    if "global_symbol" in func.attrs:
        return func
    body = func.body
    for key, value in (("device_id", 0), ("device_type", 1)):  # kDLCPU
        body = tvm.tirx.AttrStmt(tvm.ir.StringImm("default"), key, value, body)
    return func.with_body(body)
