"""Default schedules: the sane untuned kernels a microcontroller can afford.

Legalized Relax keeps every elementwise step of a fused kernel in a buffer of its
own (the requantization alone is twenty int32/int64 tensors the size of the
output), which a microcontroller cannot hold. The default schedule computes each
elementwise step right where one element of its input is ready, inlines padding
into the reduction that reads it, and hoists the accumulator initialisation, so a
kernel needs only registers beyond its input and output. Tuning (MetaSchedule)
starts from kernels that are already small.
"""

from __future__ import annotations

import contextlib

import tvm
from tvm import s_tir
from tvm.s_tir import ScheduleError

REDUCE = 2  # tvm.tirx.IterVar.CommReduce


def default_schedule(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    """`func` with every intermediate tensor shrunk to one element.

    Elementwise producers of a reduction are inlined into it (padding becomes a
    bounds check). Everything else is moved, step by step, under the loops where
    one element of its input is ready: after a reduction's spatial loops, or in
    the innermost loop of the output. Inlining those too would repeat shared
    subexpressions (the requantization reuses each value several times) and grow
    the code exponentially; one-element buffers become registers in C.
    """
    sch = s_tir.Schedule(func)
    _inline_into_reductions(sch)
    reductions = [b for b in _blocks(sch) if _is_reduction(sch, b)]
    for block in reductions:
        _fuse_epilogue(sch, block)
    if not reductions:
        _compute_at_output(sch)
    return sch.mod["main"]


def _blocks(sch: s_tir.Schedule) -> list:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _is_reduction(sch: s_tir.Schedule, block) -> bool:
    return any(int(v.iter_type) == REDUCE for v in sch.get(block).iter_vars)


def _inline_into_reductions(sch: s_tir.Schedule) -> None:
    """Inline elementwise blocks whose consumers are all reductions (padding, casts)."""
    for block in reversed(_blocks(sch)):
        consumers = sch.get_consumers(block)
        if _is_reduction(sch, block) or not consumers:
            continue
        if all(_is_reduction(sch, c) for c in consumers):
            try:
                sch.compute_inline(block)
            except ScheduleError:
                continue


def _fuse_epilogue(sch: s_tir.Schedule, block) -> None:
    """Move the blocks that follow a reduction under its spatial loops, in order.

    Legalized kernels have one loop per block variable, in order (``T.axis.remap``),
    so the spatial loops are those before the first reduction variable.
    """
    loops = sch.get_loops(block)
    kinds = [int(v.iter_type) for v in sch.get(block).iter_vars]
    if len(loops) != len(kinds):
        return
    depth = kinds.index(REDUCE)
    if depth:
        moved = {sch.get(block).name_hint}
        shape = _written_shape(sch, block)
        for consumer in _blocks(sch)[_position(sch, block) + 1 :]:
            producers = {sch.get(p).name_hint for p in sch.get_producers(consumer)}
            if not producers and _inlined(sch, consumer):
                continue  # a side input's own requantization, e.g. a residual add's
            if (
                _is_reduction(sch, consumer)
                or not producers <= moved
                or _written_shape(sch, consumer) != shape
            ):
                break
            try:
                sch.reverse_compute_at(consumer, loops[depth - 1])
            except ScheduleError:
                break
            moved.add(sch.get(consumer).name_hint)
    with contextlib.suppress(ScheduleError):
        sch.decompose_reduction(block, loops[depth])


def _compute_at_output(sch: s_tir.Schedule) -> None:
    """Compute each elementwise block inside the innermost loop of the output."""
    outputs = sch.get_output_blocks(sch.get_sblock("root"))
    if len(outputs) != 1:
        return
    for block in reversed(_blocks(sch)[:-1]):
        try:
            sch.compute_at(block, sch.get_loops(outputs[0])[-1])
        except ScheduleError:
            return


def _inlined(sch: s_tir.Schedule, block) -> bool:
    try:
        sch.compute_inline(block)
    except ScheduleError:
        return False
    return True


def _written_shape(sch: s_tir.Schedule, block) -> tuple[int, ...]:
    """Shape of the buffer `block` writes: an epilogue moved into a reduction's loops
    must write exactly the elements the reduction produces, no border around them."""
    return tuple(int(d) for d in sch.get(block).writes[0].source.ty.shape)


def _position(sch: s_tir.Schedule, block) -> int:
    names = [sch.get(b).name_hint for b in _blocks(sch)]
    return names.index(sch.get(block).name_hint)
