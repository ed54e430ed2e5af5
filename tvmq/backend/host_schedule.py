"""Host schedules: the sane CPU loop nests the host build's kernels run in.

Legalized kernels are plain loop nests in the order of their block variables; LLVM
vectorizes little of them, so an unscheduled int8 model runs tens of times slower
than LiteRT. Here every kernel with one reduction (convolution, depthwise, dense,
pooling) is tiled as CPU inference libraries do: a tile of output pixels by a
vector of output channels held in int32 accumulators, the reduction outside the
tile, the requantization computed right after each tile, vectorized over the
channels; every elementwise kernel (pads, adds) is vectorized over its innermost
elements; a chain of elementwise steps (softmax's fixed-point arithmetic: hundreds
of steps) runs as one loop nest, each step computed per element. The arithmetic
is unchanged (same integer operations, only reordered loops), so outputs stay
bit-exact. One thread: the host build is the reference, and batch-1 latency on a
loaded machine is what users see.
"""

from __future__ import annotations

import contextlib

import tvm
from tvm import relax, s_tir
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline
from tvm.s_tir import ScheduleError

SPATIAL, REDUCE = 0, 2  # tvm.tirx.IterVar.DataPar, CommReduce
ACCUMULATORS = 128  # int32 accumulators per tile: 16 AVX2 registers
CHANNEL_VECTORS = (32, 16, 8, 4, 2)  # output channels per tile, widest that divides first
ELEMENT_VECTOR = 32  # elements per vectorized step of an elementwise kernel
SCHEDULED_ATTR = "tvmq.host_scheduled"


def host_pipeline(target: tvm.target.Target):
    """TVM's CPU pipeline with the host schedules applied between fusion and lowering."""

    @tvm.transform.module_pass(opt_level=0, name="TvmqHostPipeline")
    def _pipeline(mod: tvm.IRModule, _context) -> tvm.IRModule:
        with target:
            return tvm.transform.Sequential(
                cpu_pipeline.library_dispatch_passes(target)
                + cpu_pipeline.legalize_passes(target)
                + [schedule_host_kernels]
                + cpu_pipeline.dataflow_lower_passes(target)
                + cpu_pipeline.finalize_passes(target)
            )(mod)

    return _pipeline


@tvm.transform.module_pass(opt_level=0, name="TvmqScheduleHostKernels")
def schedule_host_kernels(mod: tvm.IRModule, _context) -> tvm.IRModule:
    """Every PrimFunc of `mod` with its host schedule (unchanged where none applies)."""
    updates = {}
    for var, func in mod.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc) and not isinstance(func, relax.Function):
            scheduled = schedule_kernel(func)
            if scheduled is not None:
                updates[var] = scheduled.with_attr(SCHEDULED_ATTR, True)
    for var, func in updates.items():
        mod[var] = func
    return mod


def schedule_kernel(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc | None:
    """`func` tiled for the CPU, or None when neither schedule applies (nor any can:
    TVM's FFT kernels, written as loops over buffers it declares inside, are not
    well-formed blocks for a Schedule, which refuses them)."""
    for schedule in (_reduction_schedule, _elementwise_schedule, _chain_schedule):
        try:  # a fresh schedule each time: a failed attempt leaves one half changed
            sch = s_tir.Schedule(func)
        except tvm.error.InternalError:
            return None
        try:
            if schedule(sch):
                return sch.mod["main"]
        except ScheduleError:
            continue
    return None


def _reduction_schedule(sch: s_tir.Schedule) -> bool:
    """Tile the kernel's one reduction: outer spatial loops, pixel tile, channel
    vector, then the reduction, then the tile itself (pixels unrolled, channels
    vectorized); the epilogue (requantization) follows each tile."""
    reductions = [b for b in _blocks(sch) if _is_reduction(sch, b)]
    if len(reductions) != 1:
        return False
    block = reductions[0]
    _inline_producers(sch, block)
    loops = sch.get_loops(block)
    kinds = [int(v.iter_type) for v in sch.get(block).iter_vars]
    if len(loops) != len(kinds) or REDUCE not in kinds:
        return False
    spatial = [loop for loop, kind in zip(loops, kinds, strict=True) if kind == SPATIAL]
    reduce = [loop for loop, kind in zip(loops, kinds, strict=True) if kind == REDUCE]
    if not spatial:
        return False
    channels = _extent(sch, spatial[-1])
    if channels is None or channels == 1:  # a free dimension, or a row's sum: no vector
        return False
    lanes = next((v for v in CHANNEL_VECTORS if channels % v == 0), 1)
    channel_outer, channel_inner = sch.split(spatial[-1], [None, lanes])
    if len(spatial) > 1:
        pixels = _extent(sch, spatial[-2]) or 1
        tile = max(d for d in range(1, pixels + 1) if pixels % d == 0 and d * lanes <= ACCUMULATORS)
        pixel_outer, pixel_inner = sch.split(spatial[-2], [None, tile])
        outer = [*spatial[:-2], pixel_outer, channel_outer]
        inner = [pixel_inner, channel_inner]
    else:
        outer, inner = [channel_outer], [channel_inner]
    sch.reorder(*outer, *reduce, *inner)
    sch.decompose_reduction(block, reduce[0])
    _epilogue_after_tile(sch, block, outer[-1])
    for scheduled in _blocks_under(sch, outer[-1]):
        _vectorize_innermost(sch, scheduled)
    if len(inner) == 2:
        sch.unroll(sch.get_loops(block)[-2])
    return True


def _elementwise_schedule(sch: s_tir.Schedule) -> bool:
    """Vectorize a one-block elementwise kernel (pad, add, copy) over its elements.
    Chains of several steps are _chain_schedule's."""
    blocks = _blocks(sch)
    if len(blocks) != 1 or _is_reduction(sch, blocks[0]) or not sch.get_loops(blocks[0]):
        return False
    loops = sch.get_loops(blocks[0])
    if sch.can_decompose_padding(blocks[0], loops[0]):
        # A pad: a fill and a copy of the interior, no bounds check per element.
        sch.decompose_padding(blocks[0], loops[0])
        for block in _blocks(sch):
            _vectorize_rows(sch, block)
        return True
    loop = sch.fuse(*loops)
    if (_extent(sch, loop) or 1) % ELEMENT_VECTOR == 0:
        sch.vectorize(sch.split(loop, [None, ELEMENT_VECTOR])[1])
    return True


def _chain_schedule(sch: s_tir.Schedule) -> bool:
    """Run a chain of elementwise steps (possibly ending in a row's sum) as one loop
    nest: every step computed at the last step's innermost loop, so its temporary
    shrinks to one element. Left as
    separate loop nests, each step's full-size temporary is a loop of its own, and
    LLVM spends minutes on a deep softmax's hundreds of them (4 minutes for 424
    loops over 16x400 with -mcpu=znver3, 3 s as one loop). Not inlined: a step
    read twice would be copied into each reader."""
    blocks = _blocks(sch)
    if len(blocks) < 2 or any(_is_reduction(sch, b) for b in blocks[:-1]):
        return False
    loops = sch.get_loops(blocks[-1])
    if not loops:
        return False
    for block in reversed(blocks[:-1]):
        with contextlib.suppress(ScheduleError):  # a step the last one does not read stays
            sch.compute_at(block, loops[-1])
    return True


def _vectorize_rows(sch: s_tir.Schedule, block) -> None:
    """Vectorize the last two loops (a row of pixels by its channels) as one, in
    vectors of at most ELEMENT_VECTOR lanes. A loop vectorized whole is one vector of
    its trip count, and TVM's lane count is 16 bits: an NCHW plane of 513 x 513 wrapped
    to 1,025 lanes (the fill wrote a fraction of the border) and 512 x 512 to none."""
    loops = sch.get_loops(block)
    if len(loops) >= 2:
        loops = [*loops[:-2], sch.fuse(*loops[-2:])]
    extent = _extent(sch, loops[-1])
    if extent is None:
        return
    lanes = extent if extent <= ELEMENT_VECTOR else _widest_divisor(extent)
    if lanes == 1:
        return
    with contextlib.suppress(ScheduleError):
        sch.vectorize(sch.split(loops[-1], [None, lanes])[1])


def _widest_divisor(extent: int) -> int:
    """The widest vector of CHANNEL_VECTORS that divides `extent` (1: none)."""
    return next((v for v in CHANNEL_VECTORS if extent % v == 0), 1)


def _inline_producers(sch: s_tir.Schedule, block) -> None:
    """Inline the copies and casts that feed the reduction (a fused pad's copy)."""
    for producer in sch.get_producers(block):
        with contextlib.suppress(ScheduleError):
            sch.compute_inline(producer)


def _epilogue_after_tile(sch: s_tir.Schedule, block, loop) -> None:
    """Compute the blocks after the reduction (requantization) under `loop`, per tile,
    each inlined into the next where it can be, so the int32 sums never leave the tile."""
    after = _blocks(sch)[_position(sch, block) + 1 :]
    if not _all_downstream(sch, block, after):
        # A step that does not read the sums (a hybrid layer's per-batch scale) would
        # be computed per tile next to steps that read it: left as it is, exact.
        return
    for consumer in after:
        if _spatial_extents(sch, consumer) != _spatial_extents(sch, block):
            # A step over another domain (a pad fused after the requantization: its
            # border lies outside every tile) would write only the tile's part of it.
            return
        with contextlib.suppress(ScheduleError):
            sch.reverse_compute_at(consumer, loop)


def _spatial_extents(sch: s_tir.Schedule, block) -> list:
    """The extents of the block's spatial iteration variables, its output's domain."""
    return [str(v.dom.extent) for v in sch.get(block).iter_vars if int(v.iter_type) == SPATIAL]


def _all_downstream(sch: s_tir.Schedule, block, blocks: list) -> bool:
    """Whether every one of `blocks` reads `block`'s output, directly or through others."""
    reached, frontier = set(), [block]
    while frontier:
        for consumer in sch.get_consumers(frontier.pop()):
            name = sch.get(consumer).name_hint
            if name not in reached:
                reached.add(name)
                frontier.append(consumer)
    return all(sch.get(b).name_hint in reached for b in blocks)


def _vectorize_innermost(sch: s_tir.Schedule, block) -> None:
    """Vectorize the block's innermost loop where it is spatial and clean."""
    loops = sch.get_loops(block)
    if not loops:
        return
    with contextlib.suppress(ScheduleError):
        sch.vectorize(loops[-1])


def _blocks(sch: s_tir.Schedule) -> list:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _blocks_under(sch: s_tir.Schedule, loop) -> list:
    return list(sch.get_child_blocks(loop))


def _is_reduction(sch: s_tir.Schedule, block) -> bool:
    return any(int(v.iter_type) == REDUCE for v in sch.get(block).iter_vars)


def _extent(sch: s_tir.Schedule, loop) -> int | None:
    """The loop's trip count, None where it depends on a free input dimension."""
    extent = sch.get(loop).extent
    return int(extent) if isinstance(extent, tvm.tirx.IntImm) else None


def _position(sch: s_tir.Schedule, block) -> int:
    names = [sch.get(b).name_hint for b in _blocks(sch)]
    return names.index(sch.get(block).name_hint)
