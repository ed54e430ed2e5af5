"""The design space of a microcontroller kernel: the default schedule, with choices.

The backend's default schedule (:mod:`tvmq.backend.schedule`) fixes its decisions;
here they vary, so that MetaSchedule's traces replay the same SIMD tensorization
with other parameters:

- dot-product kernels: output channels per SIMD call (``tvmq_dot_s8_1xN``, any
  N of ``intrinsics.LANES`` that divides the channels), and output pixels per call
  for convolutions with an even number of output columns or rows (one, or a pair
  sharing each weight load: ``tvmq_dot_s8_2xN``), and on cores with i8mm whether
  pixel pairs use SMMLA (a 2x2 block per instruction, but zipped operands) or
  the dot product. Each distinct combination, a :class:`Variant`, is a design
  space of its own: the choice selects an intrinsic by name, and MetaSchedule
  drops a sampled value that no traced instruction consumes, so a sampled choice
  would be frozen at its first draw;
- the outermost spatial loop of the output (pixels or rows): split in two with
  a sampled inner extent, the inner part unrolled (MetaSchedule mutates it).

Reductions' own loops are not unrolled: TVM's ahead-of-time C build then keeps
the accumulator's first load for every unrolled step (wrong results; see
:func:`tvmq.tune.apply.unrolls_a_reduction`). Every choice keeps the schedule's
memory footprint (no new buffers), so any point of the space fits where the
default fits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import tvm
import tvm_ffi
from tvm import s_tir
from tvm.s_tir import ScheduleError
from tvm.s_tir import meta_schedule as ms

from tvmq.backend.schedule import (
    NotADotProduct,
    default_schedule,
    dot_product_schedule,
    small_schedule,
)
from tvmq.targets import Target

MAX_SPLIT = 8  # largest unrolled inner part of the output's outer loop


@dataclass(frozen=True)
class Variant:
    """One SIMD form of a dot-product kernel."""

    lanes: int  # output channels per call
    pixels: int  # output pixels per call
    simd_requantize: bool  # the epilogue as one SIMD call per channel block
    mmla: bool = True  # pixel pairs on SMMLA (channel pairs) where the core has i8mm

    def apply(self, func: tvm.tirx.PrimFunc, sch: s_tir.Schedule | None = None):
        """`func` scheduled this way (in place on `sch` when given)."""
        return dot_product_schedule(
            func,
            sch,
            lambda _sch, options: _only(self.lanes, options),
            simd_requantize=self.simd_requantize,
            choose_pixels=lambda _sch, options: _only(self.pixels, options),
            mmla=self.mmla,
        )


def offers_mmla(target: Target) -> bool:
    """Whether `target`'s cores have i8mm, where pixel pairs may use SMMLA or not."""
    return target.kind == "cortex-a" and "+i8mm" in target.tvm.get("mattr", [])


def variants(func: tvm.tirx.PrimFunc, mmla_choice: bool = False) -> list[Variant]:
    """The distinct SIMD forms `func`'s dot-product schedule admits (none: not a
    dot product), the SIMD requantization wherever the epilogue allows it, pixel
    pairs with and without SMMLA when `mmla_choice`. Registers the intrinsic of
    each, so that a recorded trace also replays in a process that never built
    that form."""
    return [variant for variant, _ in _variant_schedules(func, mmla_choice)]


def _variant_schedules(
    func: tvm.tirx.PrimFunc, mmla_choice: bool
) -> list[tuple[Variant, s_tir.Schedule]]:
    """Each distinct :class:`Variant` of `func`, with its schedule."""
    from tvmq.backend.intrinsics import LANES

    found: list[tuple[Variant, s_tir.Schedule]] = []
    for lanes in LANES:
        for pixels in (1, 2):
            for simd_requantize in (True, False):
                variant = Variant(lanes, pixels, simd_requantize)
                sch = s_tir.Schedule(func)
                try:
                    variant.apply(func, sch)
                except (ScheduleError, NotADotProduct):
                    continue
                # Choices a kernel has no use for (a dense layer's pixels, a depthwise
                # conv's lanes) give the same schedule: one space, not several.
                scheduled = sch.mod["main"]
                if not any(tvm_ffi.structural_equal(scheduled, s.mod["main"]) for _, s in found):
                    found.append((variant, sch))
                break
    if mmla_choice:  # the same kernel, calling the pair function that avoids SMMLA
        for variant, _ in [f for f in found if f[0].pixels == 2 and f[0].lanes % 2 == 0]:
            twin = replace(variant, mmla=False)
            sch = s_tir.Schedule(func)
            twin.apply(func, sch)
            found.append((twin, sch))
    return found


def _only(choice: int, options: list[int]) -> int:
    if choice not in options:
        raise NotADotProduct
    return choice


def kernel_spaces(mod: tvm.IRModule, mmla_choice: bool = False) -> list[s_tir.Schedule]:
    """The sampled space of a kernel: one schedule per :class:`Variant` (or the
    small schedule when it has none), each with its outer split sampled."""
    spaces = [sch for _, sch in _variant_schedules(mod["main"], mmla_choice)]
    if not spaces:
        spaces = [s_tir.Schedule(mod)]
        small_schedule(mod["main"], spaces[0])
    for sch in spaces:
        _sample_outer_split(sch)
    return spaces


def design_spaces(sch: s_tir.Schedule, mmla_choice: bool = False) -> list[s_tir.Schedule]:
    """The backend's default schedule (one point, so the search measures what an
    untuned build gets among its first candidates) and the sampled space."""
    default = s_tir.Schedule(sch.mod)
    default_schedule(sch.mod["main"], default)
    return [default, *kernel_spaces(sch.mod, mmla_choice)]


def sampled_space(sch: s_tir.Schedule, mmla_choice: bool = False) -> list[s_tir.Schedule]:
    """The sampled space alone: a search that starts knowing nothing (cost-model races)."""
    return kernel_spaces(sch.mod, mmla_choice)


def mcu_space(
    from_default: bool = True, mmla_choice: bool = False
) -> ms.space_generator.ScheduleFn:
    """MetaSchedule's space generator for a kernel of tvmq's C backend (Cortex-M or
    Cortex-A; `mmla_choice` where the cores have i8mm: :func:`offers_mmla`).

    No schedule rules (the space is the function) and no postprocessors: the
    kernels are plain C for the board, nothing to verify for a GPU or to
    rewrite for a vector unit. The search draws its first candidates from every
    variant's space, then mutates the outer split.
    """
    return ms.space_generator.ScheduleFn(
        partial(design_spaces if from_default else sampled_space, mmla_choice=mmla_choice),
        sch_rules=[],
        postprocs=[],
        mutator_probs={ms.mutator.MutateTileSize(): 1.0},
    )


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
    try:
        spaces = kernel_spaces(mod)
    except (ScheduleError, NotADotProduct):
        return False
    return len(spaces) > 1 or len(spaces[0].trace.decisions) > 0
