"""The design space of a microcontroller kernel: the default schedule, with choices.

The backend's default schedule (:mod:`tvmq.backend.schedule`) fixes its decisions;
here they are sampled, so that MetaSchedule's traces replay the same SIMD
tensorization with other parameters:

- dot-product kernels: output channels per SIMD call (``tvmq_dot_s8_1xN``, any
  N of ``intrinsics.LANES`` that divides the channels), and output pixels per call
  for convolutions with an even number of output columns or rows (one, or a pair
  sharing each weight load: ``tvmq_dot_s8_2xN``);
- the outermost spatial loop of the output (pixels or rows): split in two with
  a sampled inner extent, the inner part unrolled.

Reductions' own loops are not unrolled: TVM's ahead-of-time C build then keeps
the accumulator's first load for every unrolled step (wrong results; see
:func:`tvmq.tune.apply.unrolls_a_reduction`). Every choice keeps the schedule's
memory footprint (no new buffers), so any point of the space fits where the
default fits.
"""

from __future__ import annotations

import tvm
from tvm import s_tir
from tvm.s_tir import ScheduleError
from tvm.s_tir import meta_schedule as ms

from tvmq.backend.schedule import (
    NotADotProduct,
    default_schedule,
    dot_product_schedule,
    small_schedule,
)

MAX_SPLIT = 8  # largest unrolled inner part of the output's outer loop


def valid_lanes(func: tvm.tirx.PrimFunc) -> list[int]:
    """The output channels per SIMD call that `func`'s dot-product schedule can use
    (none: not a dot product). Registers the intrinsic of each, with one pixel and
    with two per call, so that a recorded trace also replays in a process that never
    sampled it."""
    from tvmq.backend.intrinsics import LANES

    valid = []
    for lanes in LANES:
        for pixels in (2, 1):
            try:
                dot_product_schedule(
                    func,
                    None,
                    lambda _sch, options, n=lanes: _only(n, options),
                    choose_pixels=lambda _sch, options, n=pixels: _only(n, options),
                )
            except (ScheduleError, NotADotProduct):
                continue
            if lanes not in valid:
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
        dot_product_schedule(
            func,
            sch,
            lambda sch, _: _sample_one_of(sch, lanes),
            choose_pixels=_sample_one_of,
        )
    else:
        small_schedule(func, sch)
    _sample_outer_split(sch)


def design_spaces(sch: s_tir.Schedule) -> list[s_tir.Schedule]:
    """The backend's default schedule (one point, so the search measures what an
    untuned build gets among its first candidates) and the sampled space."""
    default = s_tir.Schedule(sch.mod)
    default_schedule(sch.mod["main"], default)
    schedule_kernel(sch)
    return [default, sch]


def sampled_space(sch: s_tir.Schedule) -> list[s_tir.Schedule]:
    """The sampled space alone: a search that starts knowing nothing (cost-model races)."""
    schedule_kernel(sch)
    return [sch]


def mcu_space(from_default: bool = True) -> ms.space_generator.ScheduleFn:
    """MetaSchedule's space generator for a microcontroller kernel.

    No schedule rules (the space is the function) and no postprocessors: the
    kernels are plain C for the board, nothing to verify for a GPU or to
    rewrite for a vector unit; tile sizes mutate, the rest is resampled.
    """
    return ms.space_generator.ScheduleFn(
        design_spaces if from_default else sampled_space,
        sch_rules=[],
        postprocs=[],
        mutator_probs={ms.mutator.MutateTileSize(): 1.0},
    )


def _sample_one_of(sch: s_tir.Schedule, lanes: list[int]) -> int:
    if len(lanes) == 1:
        return lanes[0]
    choice = sch.sample_categorical(lanes, [1 / len(lanes)] * len(lanes))
    return int(sch.get(choice))


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


def has_choices(mod: tvm.IRModule) -> bool:
    """Whether the space of this workload has more than one point."""
    sch = s_tir.Schedule(mod)
    try:
        schedule_kernel(sch)
    except (ScheduleError, NotADotProduct):
        return False
    return len(sch.trace.decisions) > 0
