"""GPU schedules for the CUDA backend: int8 GEMM kernels on dp4a, dlight for the rest.

Every realized int8 convolution (NHWC, as an implicit GEMM) and dense layer is a
reduction ``C[s, i, j] += int32(A[s, i, k]) * int32(B[s, j, k])`` once its
iterators are regrouped. :class:`Dp4aGemm` tiles that GEMM over thread blocks,
stages A and B tiles in shared memory with K padded to a multiple of the tile
(zeros add nothing to a dot product, so any channel count works) and runs the
innermost four K steps as one ``__dp4a`` (TVM's DP4A tensor intrinsic); the
requantization epilogue is computed in registers before the single int8 store.

dlight's own ``gpu.Matmul`` is never used on these kernels: it picks WMMA for
int8 and its code generation fails in TVM 0.27. It still schedules float GEMMs
(islands a quantizer kept float). Kernels the dp4a rule declines (depthwise
convolutions, where channels are not a reduction) run one thread per output
element (:class:`SmallWindowReduction`), and :func:`gpu_schedule_pass` records why.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import tvm
from tqdm import tqdm
from tvm import s_tir, tirx
from tvm.ir.expr import TensorLoad
from tvm.s_tir import dlight
from tvm.s_tir.dlight.analysis import get_root_block
from tvm.s_tir.dlight.gpu.base import GPUScheduleRule
from tvm.s_tir.dlight.gpu.matmul import (
    IterKind,
    IterTrait,
    auto_inline_producers,
    get_reduction_blocks,
    make_iter_fusion_index_map,
)
from tvm.script import tirx as T
from tvm.target import Target

DP4A_WIDTH = 4
# Each thread block loads K in tiles of this many int8 values (four dp4a steps).
K_TILE = 16
DP4A_INTRIN = "tvmq_dp4a_s8s8s32"


def _dp4a_functions():
    """TVM's DP4A intrinsic with int64 indices (ours), defined here because importing
    tvm.s_tir.tensor_intrin parses every shipped intrinsic: minutes on a loaded machine."""
    four, zero = T.int64(DP4A_WIDTH), T.int64(0)

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (four,), "int8", offset_factor=1, align=4, scope="shared")
        B = T.match_buffer(b, (four,), "int8", offset_factor=1, align=4, scope="shared")
        C = T.match_buffer(c, (T.int64(1),), "int32", offset_factor=1, align=4, scope="local")
        with T.sblock("root"):
            T.reads(C[zero], A[zero:four], B[zero:four])
            T.writes(C[zero])
            for k in range(four):
                with T.sblock("update"):
                    vk = T.axis.remap("R", [k])
                    C[zero] = C[zero] + T.cast(A[vk], "int32") * T.cast(B[vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (four,), "int8", offset_factor=1, align=4, scope="shared")
        B = T.match_buffer(b, (four,), "int8", offset_factor=1, align=4, scope="shared")
        C = T.match_buffer(c, (T.int64(1),), "int32", offset_factor=1, align=4, scope="local")
        with T.sblock("root"):
            T.reads(C[zero], A[zero:four], B[zero:four])
            T.writes(C[zero])
            C[zero] += T.call_pure_extern(
                "__dp4a",
                A.vload([zero], "int8x4"),
                B.vload([zero], "int8x4"),
                T.int32(0),
                dtype="int32",
            )

    return desc, impl


def dp4a_intrinsic() -> str:
    """The name of the DP4A tensor intrinsic, registered on first use."""
    if DP4A_INTRIN not in _registered:
        s_tir.TensorIntrin.register(DP4A_INTRIN, *_dp4a_functions())
        _registered.add(DP4A_INTRIN)
    return DP4A_INTRIN


_registered: set[str] = set()


@dataclass
class ScheduleLog:
    """Which rule scheduled each kernel, and why an int8 GEMM did not get dp4a."""

    rules: dict[str, str] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)
    unscheduled: list[str] = field(default_factory=list)

    @property
    def dp4a(self) -> list[str]:
        return [name for name, rule in self.rules.items() if rule == Dp4aGemm.__name__]


def _is_int8_gemm(block: tirx.SBlock) -> bool:
    reads = [str(region.source.dtype) for region in block.reads]
    return reads == ["int8", "int8"] and str(block.writes[0].source.dtype) == "int32"


def _is_int8_product(block: tirx.SBlock) -> bool:
    """True when the update is C + int32(A) * int32(B), the form DP4A matches."""
    body = block.body
    if not isinstance(body, tirx.BufferStore) or not isinstance(body.value, tirx.Add):
        return False
    product = body.value.b
    return (
        isinstance(product, tirx.Mul)
        and all(isinstance(x, tirx.Cast) for x in (product.a, product.b))
        and all(str(x.value.ty) == "int8" for x in (product.a, product.b))
    )


def _gemm_index_maps(block: tirx.SBlock) -> tuple[tirx.IndexMap, ...] | str:
    """Index maps regrouping `block` as C[0, I, J] += A[0, I, K] * B[0, J, K], or why not.

    dlight's get_index_map wants I and J of extent > 1; a dense layer at batch 1
    has no I, and it is still a GEMM (one row), so unit extents are allowed here.
    Iterators shared by A, B and C (depthwise channels) are refused: dp4a would
    only reduce over the kernel window.
    """
    axes = [_axes(region.region) for region in (*block.reads, *block.writes)]
    if any(a is None for a in axes):
        return "reads a tensor through a non-point access"
    a_axes, b_axes, c_axes = axes
    traits: dict[tirx.Var, IterTrait] = {}
    for iter_var in block.iter_vars:
        var, extent = iter_var.var, iter_var.dom.extent
        if isinstance(extent, tirx.IntImm) and extent.value == 1:
            kind = IterKind.kIter_T
        elif iter_var.iter_type == tirx.IterVar.CommReduce:
            if var not in a_axes or var not in b_axes or var in c_axes:
                return "reduces over an axis that is not shared by both operands"
            kind = IterKind.kIter_K
        elif var in a_axes and var in b_axes:
            return "depthwise or grouped: channels are not reduced (no dot product to widen)"
        elif var in a_axes and var in c_axes:
            kind = IterKind.kIter_I
        elif var in b_axes and var in c_axes:
            kind = IterKind.kIter_J
        else:
            return "an output axis reads neither operand"
        traits[var] = IterTrait(kind, extent)
    if IterKind.kIter_K not in {t.kind for t in traits.values()}:
        return "no reduction axis of extent > 1"

    def fusion(vars_, order):
        ordered = [traits[v.var] for v in block.iter_vars if v.var in vars_]
        return make_iter_fusion_index_map(ordered, order)

    s, i, j, k = IterKind.kIter_S, IterKind.kIter_I, IterKind.kIter_J, IterKind.kIter_K
    every = {v.var for v in block.iter_vars}
    return (
        fusion(every, [s, i, j, k]),
        fusion(a_axes, [s, i, k]),
        fusion(b_axes, [s, j, k]),
        fusion(c_axes, [s, i, j]),
    )


def _axes(region) -> set[tirx.Var] | None:
    """The block iterators a point access uses; None for a ranged access."""
    found: set[tirx.Var] = set()
    for r in region:
        if not (isinstance(r.extent, tirx.IntImm) and r.extent.value == 1):
            return None
        found |= set(tirx.analysis.undefined_vars(r.min))
    return found


def _pow2_at_least(n: int, limit: int) -> int:
    value = 1
    while value < n and value < limit:
        value *= 2
    return value


@dataclass(frozen=True)
class _Tiles:
    """Threads and per-thread outputs along I (rows: pixels x batch) and J (channels)."""

    threads_i: int
    threads_j: int
    micro_i: int
    micro_j: int

    @classmethod
    def for_gemm(cls, rows: int, columns: int) -> _Tiles:
        micro_j = 4 if columns >= 128 else 2 if columns >= 32 else 1
        micro_i = 4 if rows >= 1024 else 2 if rows >= 128 else 1
        threads_j = _pow2_at_least(-(-columns // micro_j), 16)
        threads_i = _pow2_at_least(-(-rows // micro_i), max(1, 256 // threads_j))
        return cls(min(threads_i, 16), threads_j, micro_i, micro_j)


class Dp4aGemm(GPUScheduleRule):
    """int8 x int8 -> int32 GEMM-shaped reductions (conv2d, dense) on ``__dp4a``."""

    def __init__(self):
        self.declined: str | None = None

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        self.declined = None
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        blocks = sch.get_child_blocks(get_root_block(sch))
        reductions = get_reduction_blocks(sch, blocks)
        if reductions is None:
            return None
        main = reductions[0]
        stmt = sch.get(main)
        if not _is_int8_gemm(stmt):
            return None
        if not _is_int8_product(stmt):
            self.declined = "the reduction is not int32(a) * int32(b)"
            return None
        # Regrouped as C[0, I, J] += A[0, I, K] * B[0, J, K]: I = batch x pixels,
        # J = output channels, K = window x input channels.
        reindex_a = sch.reindex(main, ("read", 0))
        reindex_b = sch.reindex(main, ("read", 1))
        reindex_c = sch.reindex(main, ("write", 0))
        maps = _gemm_index_maps(sch.get(main))
        if isinstance(maps, str):
            self.declined = maps
            return None
        matmul_map, a_map, b_map, c_map = maps
        sch.transform_layout(reindex_a, ("write", 0), a_map)
        sch.transform_layout(reindex_b, ("write", 0), b_map)
        sch.transform_layout(reindex_c, ("read", 0), c_map)
        sch.transform_block_layout(main, matmul_map)

        _, rows, columns, _ = (int(v.dom.extent) for v in sch.get(main).iter_vars)
        tiles = _Tiles.for_gemm(rows, columns)
        sch.pad_einsum(
            main,
            [1, tiles.threads_i * tiles.micro_i, tiles.threads_j * tiles.micro_j, K_TILE],
        )
        batch, i, j, k = sch.get_loops(main)
        bi, ti, ii = sch.split(i, [None, tiles.threads_i, tiles.micro_i])
        bj, tj, ji = sch.split(j, [None, tiles.threads_j, tiles.micro_j])
        ko, kt, k4 = sch.split(k, [None, K_TILE // DP4A_WIDTH, DP4A_WIDTH])
        sch.reorder(bi, bj, ti, tj, ko, kt, ii, ji, k4)
        bi = sch.fuse(batch, bi)
        sch.bind(bi, "blockIdx.y")
        sch.bind(bj, "blockIdx.x")
        sch.bind(ti, "threadIdx.y")
        sch.bind(tj, "threadIdx.x")

        store = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(store, tj, preserve_unit_loops=True)
        for index in (0, 1):
            self._stage_in_shared(sch, main, index, ko, tiles)
        _inline_copies(sch, store)
        sch.decompose_reduction(main, ko)
        sch.tensorize(k4, dp4a_intrinsic())
        epilogue = [b for b in sch.get_child_blocks(get_root_block(sch)) if not _is_bound(sch, b)]
        if epilogue:
            compute_per_element(sch, epilogue)
        return sch

    @staticmethod
    def _stage_in_shared(sch, main, index: int, ko, tiles: _Tiles) -> None:
        """All threads of the block copy one K tile of A (or B) into shared memory."""
        block = sch.cache_read(main, index, "shared")
        count = len(sch.get_loops(block))
        sch.compute_at(block, ko, preserve_unit_loops=True)
        loops = sch.get_loops(block)[-count:]
        _, ty, tx = sch.split(sch.fuse(*loops), [None, tiles.threads_i, tiles.threads_j])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
        auto_inline_producers(sch, block)


class ElementwiseKernel(GPUScheduleRule):
    """A fused chain of element-wise blocks computed in one thread per output element.

    dlight inlines such chains into one expression; the integer softmax and the
    rounding steps of requantization read each value several times, so the
    inlined expression grows exponentially with the chain (minutes for one
    kernel). Computing each intermediate at the output's thread instead keeps one
    local value per block.
    """

    def __init__(self, max_threads: int = 256):
        self.max_threads = max_threads

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func, error_render_level="none")
        blocks = sch.get_child_blocks(get_root_block(sch))
        if len(blocks) < 2 or any(_has_reduction(sch.get(b)) for b in blocks):
            return None
        compute_per_element(sch, blocks, self.max_threads)
        return sch


class SmallWindowReduction(GPUScheduleRule):
    """Reductions over a small window (depthwise convolutions, pooling): one thread
    per output element runs the whole window.

    dlight's GeneralReduction spreads each output's reduction over a thread block,
    which leaves most threads idle on a 3x3 window; per output element, the
    channels-last threads read consecutive channels (coalesced).
    """

    def __init__(self, max_window: int = 64, max_threads: int = 256):
        self.max_window, self.max_threads = max_window, max_threads

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func, error_render_level="none")
        blocks = sch.get_child_blocks(get_root_block(sch))
        reductions = [b for b in blocks if _has_reduction(sch.get(b))]
        if not reductions or any(_window(sch.get(b)) > self.max_window for b in reductions):
            return None
        for block in reductions:
            for producer in sch.get_producers(block):
                with contextlib.suppress(s_tir.ScheduleError):
                    sch.compute_inline(producer)  # padding: read through, never stored
        compute_per_element(sch, sch.get_child_blocks(get_root_block(sch)), self.max_threads)
        return sch


def _window(block: tirx.SBlock) -> int:
    window = 1
    for v in block.iter_vars:
        if v.iter_type != tirx.IterVar.DataPar:
            window *= int(v.dom.extent)
    return window


def compute_per_element(sch: s_tir.Schedule, blocks: list, max_threads: int = 256) -> None:
    """One thread per element of the last block computes every earlier block it
    needs, each value in a register; a block that cannot move there (it feeds
    another kernel too) gets a kernel of its own."""
    thread = _bind_threads(sch, blocks[-1], max_threads)
    for block in reversed(blocks[:-1]):
        try:
            sch.compute_at(block, thread, preserve_unit_loops=True)
            sch.set_scope(block, 0, "local")
        except s_tir.ScheduleError:
            _bind_threads(sch, block, max_threads)


def _bind_threads(sch: s_tir.Schedule, block, max_threads: int) -> s_tir.schedule.LoopRV:
    """Bind the block's spatial loops (outermost, as TE lays them out) to threads."""
    spatial = sum(v.iter_type == tirx.IterVar.DataPar for v in sch.get(block).iter_vars)
    loops = sch.get_loops(block)[:spatial] or [sch.add_unit_loop(block)]
    bx, tx = sch.split(sch.fuse(*loops), [None, max_threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return tx


def _is_bound(sch: s_tir.Schedule, block) -> bool:
    return any(sch.get(loop).thread_binding is not None for loop in sch.get_loops(block))


def _inline_copies(sch: s_tir.Schedule, block) -> None:
    """Fold plain copies after `block` (layout reindexing, padding crop) into it.

    Only copies: inlining the requantization epilogue would duplicate every value
    it reads twice, an expression exponential in the epilogue's length.
    """
    changed = True
    while changed:
        changed = False
        for consumer in sch.get_consumers(block):
            body = sch.get(consumer).body
            if isinstance(body, tirx.BufferStore) and isinstance(body.value, TensorLoad):
                try:
                    sch.reverse_compute_inline(consumer)
                    changed = True
                except s_tir.ScheduleError:
                    pass


def _is_integer(region) -> bool:
    return str(region.source.dtype).startswith(("int", "uint"))


def _has_reduction(block: tirx.SBlock) -> bool:
    return any(v.iter_type != tirx.IterVar.DataPar for v in block.iter_vars)


class FloatMatmul(GPUScheduleRule):
    """dlight's GEMM rule, kept away from integer kernels (its int8 WMMA path fails)."""

    def __init__(self):
        self._rule = dlight.gpu.Matmul()

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool):
        if not isinstance(func, tirx.PrimFunc):
            return None
        sch = s_tir.Schedule(func)
        reductions = get_reduction_blocks(sch, sch.get_child_blocks(get_root_block(sch)))
        if reductions is None or any(_is_integer(r) for r in sch.get(reductions[0]).reads):
            return None
        return self._rule.apply(func, target, tunable)


def gpu_schedule_pass(log: ScheduleLog) -> tvm.transform.Pass:
    """Schedule every kernel: dp4a first, then dlight's default GPU rules (Fallback
    last), without its int8 path through gpu.Matmul. Kernels no rule takes are
    listed in ``log.unscheduled`` (they cannot run on a GPU)."""
    dp4a = Dp4aGemm()
    rules = [
        dp4a,
        ElementwiseKernel(),
        FloatMatmul(),
        dlight.gpu.GEMV(),
        dlight.gpu.Reduction(),
        SmallWindowReduction(),
        dlight.gpu.GeneralReduction(),
        dlight.gpu.Fallback(),
    ]

    @tvm.transform.module_pass(opt_level=0, name="TvmqGpuSchedule")
    def schedule(mod: tvm.IRModule, _) -> tvm.IRModule:
        target = Target.current(allow_none=False)
        kernels = [
            (gv, f)
            for gv, f in mod.functions_items()
            if isinstance(f, tirx.PrimFunc) and not f.attrs.get("tirx.is_scheduled", False)
        ]
        for gv, func in tqdm(kernels, desc="scheduling kernels", unit="kernel", leave=False):
            for rule in rules:
                try:
                    sch = rule.apply(func, target, False)
                except tvm.error.InternalError:
                    continue  # a dlight rule that fails on this kernel (a 0-d mean) declines it
                if rule is dp4a and dp4a.declined:
                    log.declined[gv.name_hint] = dp4a.declined
                if sch is not None:
                    mod[gv] = sch.mod["main"].with_attr("tirx.is_scheduled", True)
                    log.rules[gv.name_hint] = type(rule).__name__
                    break
            else:
                log.unscheduled.append(gv.name_hint)
        return mod

    return schedule
