"""Static memory planning: one arena, offsets fixed at compile time.

Every activation tensor is live from the step that writes it to the last step
that reads it. Tensors are placed one at a time at the lowest offset that does
not overlap any placed tensor live at the same time (TFLite Micro's
GreedyMemoryPlanner places them largest first). No single placement order is
best for every graph: largest-first fragments chains where a padded tensor
alternates with smaller ones (KWS), so several orders are tried and the
smallest arena wins. The peak of live bytes over the steps bounds every plan
from below; the search stops when a plan reaches it. Model inputs and outputs
live in buffers of their own, owned by the model, so the harness can write and
read them while the arena is reused.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tvmq.backend.graph import ACTIVATION, KernelGraph, Tensor

ALIGNMENT = 16
RANDOM_ORDERS = 200  # extra shuffled orders tried when no heuristic reaches the bound
SEED = 0  # the plan is part of the firmware: the same graph must give the same plan


@dataclass(frozen=True)
class MemoryPlan:
    """Byte offsets of the activation tensors in one arena of `arena_bytes`."""

    offsets: dict[str, int]
    arena_bytes: int
    unplanned_bytes: int  # what one buffer per tensor would take
    lower_bound_bytes: int  # the most bytes live at one step: no plan can be smaller

    @property
    def saving(self) -> float:
        return 1 - self.arena_bytes / self.unplanned_bytes if self.unplanned_bytes else 0.0


def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def _lifetime(t: Tensor) -> int:
    return t.last_use - t.first_use


_ORDERS: dict[str, Callable[[Tensor], tuple]] = {
    "largest first": lambda t: (-t.nbytes, t.first_use, t.name),
    "first written first": lambda t: (t.first_use, -t.nbytes, t.name),
    "longest lived first": lambda t: (-_lifetime(t), -t.nbytes, t.name),
    "largest area first": lambda t: (-t.nbytes * (_lifetime(t) + 1), t.first_use, t.name),
}


def _place(tensors: Sequence[Tensor]) -> tuple[dict[str, int], int]:
    """First fit in the given order: each tensor at the lowest free offset."""
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict[str, int] = {}
    for tensor in tensors:
        size = _aligned(tensor.nbytes)
        conflicts = sorted(
            (start, end)
            for start, end, first, last in placed
            if first <= tensor.last_use and tensor.first_use <= last
        )
        offset = 0
        for start, end in conflicts:
            if offset + size <= start:
                break
            offset = max(offset, end)
        offsets[tensor.name] = offset
        placed.append((offset, offset + size, tensor.first_use, tensor.last_use))
    return offsets, max((end for _, end, _, _ in placed), default=0)


def _peak_live_bytes(tensors: Sequence[Tensor]) -> int:
    steps = {step for t in tensors for step in (t.first_use, t.last_use)}
    return max(
        (
            sum(_aligned(t.nbytes) for t in tensors if t.first_use <= step <= t.last_use)
            for step in steps
        ),
        default=0,
    )


def plan_memory(graph: KernelGraph) -> MemoryPlan:
    """Place every activation that owns memory (aliases share their root's)."""
    tensors = [t for t in graph.tensors.values() if t.kind == ACTIVATION and t.alias_of is None]
    bound = _peak_live_bytes(tensors)
    candidates = [sorted(tensors, key=key) for key in _ORDERS.values()]
    shuffler = random.Random(SEED)
    best: tuple[dict[str, int], int] | None = None
    for attempt in range(len(candidates) + RANDOM_ORDERS):
        if attempt < len(candidates):
            order = candidates[attempt]
        else:
            order = list(candidates[0])
            shuffler.shuffle(order)
        offsets, arena = _place(order)
        if best is None or arena < best[1]:
            best = (offsets, arena)
        if best[1] <= bound:
            break
    offsets, arena = best if best else ({}, 0)
    return MemoryPlan(offsets, arena, sum(_aligned(t.nbytes) for t in tensors), bound)
