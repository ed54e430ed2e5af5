"""The design space of a microcontroller kernel: the default schedule, with choices.

The backend's default schedule (:mod:`tvmq.backend.schedule`) fixes its decisions;
here they are sampled, so that MetaSchedule's traces replay the same SIMD
tensorization with other parameters:

- dot-product kernels: output channels per SIMD call (``tvmq_dot_s8_1xN``, any
  N of ``intrinsics.LANES`` that divides the channels);
- every reduction: how many of its innermost loops are unrolled (none up to
  three, bounded so the code stays small);
- the outermost spatial loop of the output (pixels or rows): split in two with
  a sampled inner extent, the inner part unrolled.

Every choice keeps the schedule's memory footprint (no new buffers), so any
point of the space fits where the default fits.
"""

from __future__ import annotations

import tvm
from tvm import s_tir
from tvm.s_tir import ScheduleError
from tvm.s_tir import meta_schedule as ms

from tvmq.backend.schedule import (
    NotADotProduct,
    dot_product_schedule,
    small_schedule,
)

REDUCE = 2  # tvm.tirx.IterVar.CommReduce
MAX_UNROLLED = 64  # iterations one unrolled loop nest may copy its body into
MAX_SPLIT = 8  # largest unrolled inner part of the output's outer loop


def valid_lanes(func: tvm.tirx.PrimFunc) -> list[int]:
    """The output channels per SIMD call that `func`'s dot-product schedule can use
    (none: not a dot product). Registers each one's intrinsic, so that a recorded
    trace also replays in a process that never sampled it."""
    from tvmq.backend.intrinsics import LANES

    valid = []
    for lanes in LANES:
        try:
            dot_product_schedule(func, None, lambda _sch, options, n=lanes: _only(n, options))
        except (ScheduleError, NotADotProduct):
            continue
        valid.append(lanes)
    return valid


def _only(lanes: int, options: list[int]) -> int:
    if lanes not in options:
        raise NotADotProduct
    return lanes


def schedule_kernel(sch: s_tir.Schedule) -> None:
    """One point of the space, decisions sampled on `sch` (recorded in its trace)."""
    func = sch.mod["main"]
    lanes = valid_lanes(func)
    if lanes:
        dot_product_schedule(func, sch, lambda sch, _: _sample_lanes(sch, lanes))
    else:
        small_schedule(func, sch)
    for block in _blocks(sch):
        if _is_reduction(sch, block):
            _sample_unrolling(sch, block)
    _sample_outer_split(sch)


def mcu_space() -> ms.space_generator.ScheduleFn:
    """MetaSchedule's space generator for a microcontroller kernel.

    No schedule rules (the space is the function) and no postprocessors: the
    kernels are plain C for the board, nothing to verify for a GPU or to
    rewrite for a vector unit; tile sizes mutate, the rest is resampled.
    """
    return ms.space_generator.ScheduleFn(
        schedule_kernel,
        sch_rules=[],
        postprocs=[],
        mutator_probs={ms.mutator.MutateTileSize(): 1.0},
    )


def _sample_lanes(sch: s_tir.Schedule, lanes: list[int]) -> int:
    if len(lanes) == 1:
        return lanes[0]
    choice = sch.sample_categorical(lanes, [1 / len(lanes)] * len(lanes))
    return int(sch.get(choice))


def _sample_unrolling(sch: s_tir.Schedule, block) -> None:
    """Unroll the innermost 0..3 loops of a reduction, while the copies stay few."""
    loops = sch.get_loops(block)
    depths, copies = [0], 1
    for depth, loop in enumerate(reversed(loops), start=1):
        extent = sch.get(loop).extent
        if depth > 3 or not isinstance(extent, tvm.tirx.IntImm):
            break
        copies *= int(extent)
        if copies > MAX_UNROLLED:
            break
        if int(extent) > 1:
            depths.append(depth)
    if len(depths) == 1:
        return
    choice = int(sch.get(sch.sample_categorical(depths, [1 / len(depths)] * len(depths))))
    for loop in loops[len(loops) - choice :]:
        sch.unroll(loop)


def _sample_outer_split(sch: s_tir.Schedule) -> None:
    """Split the output's outermost loop of extent > 1, inner part unrolled."""
    outputs = sch.get_output_blocks(sch.get_sblock("root"))
    if len(outputs) != 1:
        return
    for loop in sch.get_loops(outputs[0]):
        extent = sch.get(loop).extent
        if not isinstance(extent, tvm.tirx.IntImm) or int(extent) == 1:
            continue
        factors = sch.sample_perfect_tile(loop, n=2, max_innermost_factor=MAX_SPLIT)
        _, inner = sch.split(loop, factors)
        sch.unroll(inner)
        return


def _blocks(sch: s_tir.Schedule, parent=None) -> list:
    """Every block under `parent` (the root by default), depth first."""
    found = []
    for block in sch.get_child_blocks(parent or sch.get_sblock("root")):
        found += [block, *_blocks(sch, block)]
    return found


def _is_reduction(sch: s_tir.Schedule, block) -> bool:
    return any(int(v.iter_type) == REDUCE for v in sch.get(block).iter_vars)


def has_choices(mod: tvm.IRModule) -> bool:
    """Whether the space of this workload has more than one point."""
    sch = s_tir.Schedule(mod)
    try:
        schedule_kernel(sch)
    except (ScheduleError, NotADotProduct):
        return False
    return len(sch.trace.decisions) > 0
