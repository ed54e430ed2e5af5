"""Static memory planning: one arena, offsets fixed at compile time.

Every activation tensor is live from the step that writes it to the last step
that reads it. Tensors are placed greedily, largest first, at the lowest offset
that does not overlap any placed tensor live at the same time (TFLite Micro's
GreedyMemoryPlanner does the same). Model inputs and outputs live in buffers of
their own, owned by the model, so the harness can write and read them while the
arena is reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvmq.backend.graph import ACTIVATION, KernelGraph

ALIGNMENT = 16


@dataclass(frozen=True)
class MemoryPlan:
    """Byte offsets of the activation tensors in one arena of `arena_bytes`."""

    offsets: dict[str, int]
    arena_bytes: int
    unplanned_bytes: int  # what one buffer per tensor would take

    @property
    def saving(self) -> float:
        return 1 - self.arena_bytes / self.unplanned_bytes if self.unplanned_bytes else 0.0


def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def plan_memory(graph: KernelGraph) -> MemoryPlan:
    """Place every activation that owns memory (aliases share their root's)."""
    tensors = [t for t in graph.tensors.values() if t.kind == ACTIVATION and t.alias_of is None]
    tensors.sort(key=lambda t: (-t.nbytes, t.first_use, t.name))
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
    arena = max((end for _, end, _, _ in placed), default=0)
    return MemoryPlan(offsets, arena, sum(_aligned(t.nbytes) for t in tensors))
