"""The arena planner: never two live tensors on one byte, and as small as the peak allows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tvmq.backend.graph import ACTIVATION, KernelGraph, Tensor
from tvmq.backend.planner import MemoryPlan, plan_memory


def assert_no_live_overlap(graph: KernelGraph, plan: MemoryPlan) -> None:
    """No two activations that are live at the same step share a byte of the arena."""
    owners = [t for t in graph.tensors.values() if t.kind == ACTIVATION and not t.alias_of]
    for i, a in enumerate(owners):
        start_a = plan.offsets[a.name]
        assert start_a + a.nbytes <= plan.arena_bytes
        for b in owners[i + 1 :]:
            start_b = plan.offsets[b.name]
            overlap_in_time = a.first_use <= b.last_use and b.first_use <= a.last_use
            overlap_in_space = start_a < start_b + b.nbytes and start_b < start_a + a.nbytes
            assert not (overlap_in_time and overlap_in_space), (a.name, b.name)


def graph_of(lifetimes: list[tuple[int, int, int]]) -> KernelGraph:
    """Activations of (bytes, first step, last step); no kernels are needed to plan."""
    tensors = {
        f"t{i}": Tensor(f"t{i}", (size,), "int8", ACTIVATION, first_use=first, last_use=last)
        for i, (size, first, last) in enumerate(lifetimes)
    }
    return KernelGraph(tensors, [], {}, [], [])


def test_padded_chain_reaches_the_peak():
    """A depthwise block chain (pad 12,096 B, then two 8,000 B tensors, repeated): placing
    largest first fragments it to 28,096 B, while 20,096 B are enough."""
    lifetimes = [(8000, 0, 1)]
    step = 1
    for _ in range(4):
        lifetimes.append((12096, step, step + 1))  # padded input of the depthwise conv
        lifetimes.append((8000, step + 1, step + 2))  # depthwise output
        lifetimes.append((8000, step + 2, step + 3))  # pointwise output
        step += 3
    graph = graph_of(lifetimes)
    plan = plan_memory(graph)
    assert_no_live_overlap(graph, plan)
    assert plan.lower_bound_bytes == 20096
    assert plan.arena_bytes == 20096


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 5000), st.integers(0, 12), st.integers(0, 6)),
        min_size=1,
        max_size=24,
    )
)
def test_random_graphs_are_planned_safely(raw):
    graph = graph_of([(size, first, first + length) for size, first, length in raw])
    plan = plan_memory(graph)
    assert_no_live_overlap(graph, plan)
    assert plan.lower_bound_bytes <= plan.arena_bytes <= plan.unplanned_bytes
    assert plan_memory(graph) == plan  # deterministic: the plan is part of the firmware
