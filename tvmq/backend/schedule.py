"""Default schedules: the sane untuned kernels a microcontroller can afford.

Legalized Relax keeps every elementwise step of a fused kernel in a buffer of its
own (the requantization alone is twenty int32/int64 tensors the size of the
output), which a microcontroller cannot hold. The default schedule computes each
elementwise step right where one element of its input is ready, inlines padding
into the reduction that reads it, and hoists the accumulator initialisation, so a
kernel needs only registers beyond its input and output. Int8 convolutions,
dense layers and depthwise windows additionally hand their reductions to SIMD
micro-kernels (:mod:`tvmq.backend.intrinsics`). Tuning (MetaSchedule) starts
from kernels that are already small.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import s_tir
from tvm.s_tir import ScheduleError

from tvmq.quantize.fixed_point import MICRO_KERNEL, RESCALE

SPATIAL, REDUCE = 0, 2  # tvm.tirx.IterVar.DataPar, CommReduce
SHORT_ROW = 16  # filter-row bytes below which a conv copies its input window (one MVE load)


@dataclass
class ScheduledKernel:
    """A scheduled kernel, and the layouts it wants its constant arguments in:
    argument position -> axes for np.transpose of the original value."""

    func: tvm.tirx.PrimFunc
    weight_layouts: dict[int, tuple[int, ...]] = field(default_factory=dict)


# Picks the output channels per SIMD call among those that divide the channels
# (widest first); the tuner (tvmq.tune.space) samples it instead.
LaneChoice = Callable[[s_tir.Schedule, list[int]], int]


def _widest(_: s_tir.Schedule, lanes: list[int]) -> int:
    return lanes[0]


def _narrowest(_: s_tir.Schedule, options: list[int]) -> int:
    return options[-1]


# Cores whose builds take whole rows of pixels per call where a convolution's rows
# are odd or it is depthwise (the DSP extension's SXTB16 + SMLAD kernels): on the M4
# and M7 rows measured 12-20 % fewer instructions on KWS and VWW. Elsewhere one pixel
# per call for convolutions: Helium's one-pixel kernels are a few vector
# instructions, and odd rows measured KWS 5 % slower on the M55 (1,681,219 against
# 1,600,906); Cortex-A is not measured.
ROW_CORES = ("cortex-m4", "cortex-m7", "cortex-m33")
# Cores whose depthwise convolutions take whole rows of pixels per call even though
# their other convolutions do not: Helium's depthwise rows load each weight vector
# once for four pixels.
DEPTHWISE_ROW_CORES = (*ROW_CORES, "cortex-m55")


def core_schedule(core: str | None) -> Callable[[tvm.tirx.PrimFunc], ScheduledKernel]:
    """The default schedule for `core` (a target's mcpu): rows of pixels on the
    ROW_CORES (depthwise rows on the DEPTHWISE_ROW_CORES), one pixel per call
    elsewhere; the same choice tuned builds make, so a build without tuning records
    runs the same kernels as one with none applied."""
    if core in ROW_CORES:
        return default_schedule
    return functools.partial(
        default_schedule, rows=False, depthwise_rows=core in DEPTHWISE_ROW_CORES
    )


def default_schedule(
    func: tvm.tirx.PrimFunc,
    sch: s_tir.Schedule | None = None,
    rows: bool = True,
    depthwise_rows: bool = True,
) -> ScheduledKernel:
    """A step that names its micro-kernel calls it; else the SIMD dot-product schedule
    where it applies (two pixels per call where it can, whole rows of them where
    `rows`, depthwise ones where `depthwise_rows`, with a SIMD requantization if the
    epilogue allows), else
    :func:`small_schedule`. `sch` (a schedule of `func`: the tuner's default point)
    is scheduled in place when given."""
    if calls_micro_kernel(func):
        return ScheduledKernel(micro_kernel_call(func))
    for simd_requantize in (True, False):
        for choose_pixels in (_widest, _narrowest):
            options = {
                "simd_requantize": simd_requantize,
                "choose_pixels": choose_pixels,
                "rows": rows,
                "depthwise_rows": depthwise_rows,
            }
            try:
                # A failed attempt leaves its schedule half changed: try on a fresh one.
                scheduled = dot_product_schedule(func, **options)
            except NotADotProduct:
                return ScheduledKernel(small_schedule(func, sch))
            except ScheduleError:
                continue
            return scheduled if sch is None else dot_product_schedule(func, sch, **options)
    return ScheduledKernel(small_schedule(func, sch))


def calls_micro_kernel(func: tvm.tirx.PrimFunc) -> bool:
    """Whether the step is one call of a hand-written C micro-kernel (nothing to tune)."""
    return func.attrs is not None and MICRO_KERNEL in func.attrs


def micro_kernel_call(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    """`func` as one call of the C micro-kernel its ``tvmq.micro_kernel`` attribute
    names: ``kernel(out, in..., elements, scalar...)``, with pointers to the tensor
    arguments and the values of the one-element ones (zero points, multipliers,
    shifts, clamp), in the order of the step's TE definition."""
    *inputs, output = func.params
    tensors = [p for p in inputs if _elements(p) > 1]
    scalars = [p for p in inputs if _elements(p) == 1]

    def first(buffer) -> tvm.tirx.BufferLoad:
        return tvm.tirx.BufferLoad(buffer, [tvm.tirx.const(0, "int64")] * len(buffer.ty.shape))

    def address(buffer) -> tvm.tirx.PrimExpr:
        return tvm.tirx.call_intrin("handle", "tirx.address_of", first(buffer))

    call = tvm.tirx.call_extern(
        "int32",
        str(func.attrs[MICRO_KERNEL]),
        address(output),
        *[address(t) for t in tensors],
        tvm.tirx.const(_elements(output), "int32"),
        *[first(s) for s in scalars],
    )
    return tvm.tirx.PrimFunc(func.params, tvm.tirx.Evaluate(call), attrs=func.attrs)


def extern_calls(func: tvm.tirx.PrimFunc) -> set[str]:
    """The C micro-kernels the scheduled kernel calls, by name."""
    return set(re.findall(r'call_extern\("int32", "(\w+)"', func.script()))


def is_row_kernel(name: str) -> bool:
    """Whether the micro-kernel `name` runs over a whole row of pixels."""
    return name.endswith("_row") or "_rowx" in name


def _elements(buffer) -> int:
    return int(np.prod([int(d) for d in buffer.ty.shape]))


class NotADotProduct(Exception):
    """The kernel is not an int8 NHWC convolution or dense layer."""


def dot_product_schedule(
    func: tvm.tirx.PrimFunc,
    sch: s_tir.Schedule | None = None,
    choose_lanes: LaneChoice = _widest,
    simd_requantize: bool = True,
    choose_pixels: LaneChoice = _narrowest,
    mmla: bool = True,
    rows: bool = True,
    depthwise_rows: bool = True,
) -> ScheduledKernel:
    """An int8 convolution or dense layer whose reductions are SIMD dot products.

    `sch` (a schedule of `func`: the tuner's design space) is scheduled in place,
    with the output channels per call that `choose_lanes` picks, and the output
    pixels per call (1, or 2: pixel pairs for convolutions with an even number of
    output columns or rows, whole rows of pairs and a tail otherwise, and for
    depthwise convolutions) that `choose_pixels` picks; pixel pairs use SMMLA on
    i8mm cores unless `mmla` is False. Without `rows`, odd rows keep one pixel per
    call; without `depthwise_rows`, depthwise convolutions do. With `rows` (the DSP
    cores), dense layers of four channels per call read weights interleaved by
    :mod:`tvmq.backend.dense`.

    The weights (constants) are relaid out output-channel-major, so that one
    output channel's filter row is contiguous, as the input pixels are in NHWC.
    Loops become (pixel, channel block, filter row | channel in block, filter
    row elements); the part after the bar is one call of a
    :mod:`tvmq.backend.intrinsics` dot product. The requantization follows per
    channel block: one SIMD call (`simd_requantize`), or one element at a time as in
    :func:`small_schedule`.
    """
    from tvmq.backend.intrinsics import (
        LANES,
        conv_dot_product,
        conv_pair_dot_product,
        conv_row_dot_product,
        conv_window_dot_product,
        dense_dot_product,
    )

    sch = s_tir.Schedule(func) if sch is None else sch
    _inline_into_reductions(sch)
    reductions = [b for b in _blocks(sch) if _is_reduction(sch, b)]
    if len(reductions) != 1:
        raise NotADotProduct
    block = reductions[0]
    depthwise = _depthwise_weights(sch, block)
    if depthwise is not None:
        rows = depthwise_rows and choose_pixels(sch, [2, 1]) == 2
        return _depthwise_schedule(sch, func, block, depthwise, simd_requantize, rows)
    position, axes = _output_channel_major(sch, func, block)
    shape = [int(d) for d in func.params[position].ty.shape]
    shape = [shape[a] for a in axes]
    lanes = choose_lanes(sch, [n for n in LANES if shape[0] % n == 0])
    loops = sch.get_loops(block)
    if len(loops) == 7 and shape[1] > 1 and shape[2] * shape[3] < SHORT_ROW:
        # conv2d with short filter rows (first layers: one to three input channels):
        # n, y, x, [window copy], channel | filter row, column, input channel
        _copy_window_at(sch, block, position, loops[2])
        intrinsic = conv_window_dot_product(lanes, *shape[1:])
        channels, first_reduction = loops[3], None
    elif len(loops) == 7:  # conv2d: n, y, x, channel | filter row, column, input channel
        pair = _pixel_pair(sch, block, func.params[position].name, shape[1], shape[2])
        if pair is not None and pair[2] != 2 and not rows:
            pair = None
        if pair is not None and choose_pixels(sch, [2, 1]) == 2:
            axis, step, pixels = pair
            if pixels == 2:
                intrinsic = conv_pair_dot_product(lanes, step, shape[2], shape[3], mmla)
            else:
                intrinsic = conv_row_dot_product(lanes, step[1], pixels, shape[2], shape[3])
            layouts = {} if axes == tuple(range(len(axes))) else {position: axes}
            return _pair_schedule(
                sch, block, loops, axis, lanes, intrinsic, simd_requantize, layouts, pixels
            )
        intrinsic = conv_dot_product(lanes, shape[2], shape[3])
        channels, first_reduction = loops[3], loops[4]
    elif len(loops) == 3:  # dense: row, feature | depth
        intrinsic = dense_dot_product(lanes, shape[1], interleaved=rows and lanes == 4)
        channels, first_reduction = loops[1], None
    else:
        raise NotADotProduct
    block_of_channels, channel_in_block = sch.split(channels, [None, lanes])
    if first_reduction is not None:
        sch.reorder(block_of_channels, first_reduction, channel_in_block)
    if not _fuse_epilogue_at(sch, block, block_of_channels):
        raise NotADotProduct  # an epilogue left behind would need whole-tensor scratch
    sch.decompose_reduction(block, first_reduction or channel_in_block)
    sch.tensorize(channel_in_block, intrinsic)
    layouts = {} if axes == tuple(range(len(axes))) else {position: axes}
    if simd_requantize:
        _simd_requantize(sch, lanes)
    return ScheduledKernel(sch.mod["main"], layouts)


def _pixel_pair(
    sch: s_tir.Schedule, block, weights: str, filter_height: int, filter_width: int
) -> tuple[int, tuple[int, int], int] | None:
    """(loop index, (row step, column step), pixels per call) of the output axis to
    take pixel pairs on: columns when there is an even number of them, else rows;
    when neither is even, whole rows of three or more columns (pairs and a tail, one
    call per row); else None. The steps are the convolution's strides, from the
    shapes."""
    stmt = sch.get(block)
    output = [int(d) for d in stmt.writes[0].source.ty.shape]
    inputs = [
        r.source
        for r in stmt.reads
        if str(r.source.ty.dtype) == "int8" and r.source.name != weights
    ]
    if len(inputs) != 1 or len(output) != 4:
        return None
    height, width = (int(d) for d in inputs[0].ty.shape[1:3])
    for axis, size, filter_size in ((2, width, filter_width), (1, height, filter_height)):
        count = output[axis]
        if count % 2 == 0:
            stride = (size - filter_size) // (count - 1)
            return axis, ((0, stride) if axis == 2 else (stride, 0)), 2
    if output[2] >= 3:
        return 2, (0, (width - filter_width) // (output[2] - 1)), output[2]
    return None


def _pair_schedule(
    sch: s_tir.Schedule,
    block,
    loops,
    axis: int,
    lanes: int,
    intrinsic: str,
    simd_requantize: bool,
    layouts: dict[int, tuple[int, ...]],
    pixels: int = 2,
) -> ScheduledKernel:
    """Loops n, y, x (the one on `axis` taken in pairs), channel block, filter row |
    pixel of the pair, channel in block, filter row elements: after the bar, one
    pair call; the requantization follows per channel block. With `pixels` other
    than 2 the whole row of columns is one call: n, y, channel block, filter row |
    column, channel in block, filter row elements."""
    _, _, x, channels, first_reduction, _, _ = loops
    pixel = loops[axis] if pixels != 2 else sch.split(loops[axis], [None, 2])[1]
    block_of_channels, channel_in_block = sch.split(channels, [None, lanes])
    if axis == 2:
        sch.reorder(block_of_channels, first_reduction, pixel, channel_in_block)
    else:
        sch.reorder(x, block_of_channels, first_reduction, pixel, channel_in_block)
    if not _fuse_epilogue_at(sch, block, block_of_channels):
        raise NotADotProduct
    sch.decompose_reduction(block, first_reduction)
    sch.tensorize(pixel, intrinsic)
    if simd_requantize:
        _simd_requantize(sch, lanes)
    return ScheduledKernel(sch.mod["main"], layouts)


def _copy_window_at(sch: s_tir.Schedule, block, weights: int, pixel_loop) -> None:
    """Copy the input window of each output pixel into a small contiguous buffer
    (kh x kw x input channels bytes, im2col of one pixel) under `pixel_loop`, so that
    the whole window is one dot-product run instead of kh runs too short to fill a
    SIMD register."""
    stmt = sch.get(block)
    weight_buffer = sch.mod["main"].params[weights].name
    inputs = [
        index
        for index, region in enumerate(stmt.reads)
        if str(region.source.ty.dtype) == "int8" and region.source.name != weight_buffer
    ]
    if len(inputs) != 1:
        raise NotADotProduct
    window = sch.cache_read(block, inputs[0], "global")  # small: on the stack
    sch.compute_at(window, pixel_loop)


# Depthwise weights by what each of their dimensions indexes (0 channel, 1 filter row,
# 2 column, 3 channel multiplier) -> np.transpose axes to [row, column, channel, 0]:
# TFLite's (1HWC) already are; channels-last ONNX ones (OHWI) come channel first.
DEPTHWISE_LAYOUTS = {(1, 2, 0, 3): (0, 1, 2, 3), (0, 1, 2, 3): (1, 2, 0, 3)}


def _depthwise_weights(sch: s_tir.Schedule, block) -> tuple[int, tuple[int, ...]] | None:
    """(read index, axes to [filter row, column, channel, 0]) of the weights of an
    NHWC depthwise conv (:data:`DEPTHWISE_LAYOUTS`), or None when `block` is not one."""
    stmt = sch.get(block)
    kinds = [int(v.iter_type) for v in stmt.iter_vars]
    if kinds != [SPATIAL] * 4 + [REDUCE] * 3:
        return None
    window = [v.var for v in stmt.iter_vars[3:]]  # channel, row, column, multiplier
    # A depthwise conv's input channel follows the output channel (a plain 1x1 conv
    # reads OHWI weights in the same order, but sums over its input channels).
    if not any(_uses(region.region[-1].min, window[0]) for region in stmt.reads):
        return None
    for index, region in enumerate(stmt.reads):
        if len(region.region) != 4:
            continue
        positions = tuple(_position_of(r.min, window) for r in region.region)
        if positions in DEPTHWISE_LAYOUTS:
            return index, DEPTHWISE_LAYOUTS[positions]
    return None


def _depthwise_schedule(
    sch: s_tir.Schedule,
    func: tvm.tirx.PrimFunc,
    block,
    weights: tuple[int, tuple[int, ...]],
    simd_requantize: bool,
    rows: bool = True,
) -> ScheduledKernel:
    """Channels in blocks of four, each block's window one SIMD call, for a whole row
    of output pixels when `rows` (pairs sharing each weight load), else per pixel;
    weights relaid out [filter row, column, channel] first when they come channel
    first."""
    from tvmq.backend.intrinsics import (
        DEPTHWISE_LANES,
        depthwise_product,
        depthwise_row_product,
    )

    index, axes = weights
    layouts = {}
    if axes != tuple(range(4)):
        buffer = sch.get(block).reads[index].source
        layouts = {[p.name for p in func.params].index(buffer.name): axes}
        sch.transform_layout(block, ("read", index), _permutation(axes))
    _, _, _, channel, row, column, multiplier = sch.get_loops(block)
    extents = [int(sch.get(loop).extent) for loop in (channel, row, column, multiplier)]
    if extents[0] % DEPTHWISE_LANES or extents[3] != 1 or min(extents[1:3]) < 2:
        raise NotADotProduct
    block_of_channels, channel_in_block = sch.split(channel, [None, DEPTHWISE_LANES])
    stride = _column_stride(sch, block, index, extents[2]) if rows else None
    if stride is None:
        sch.reorder(block_of_channels, row, column, multiplier, channel_in_block)
        first, intrinsic = row, depthwise_product(extents[1], extents[2])
    else:  # the whole row of output pixels per call, in pairs sharing weight loads
        _, _, x, *_ = sch.get_loops(block)
        pixels = int(sch.get(x).extent)
        sch.reorder(block_of_channels, x, row, column, multiplier, channel_in_block)
        first = x
        intrinsic = depthwise_row_product(extents[1], extents[2], pixels, stride)
    if not _fuse_epilogue_at(sch, block, block_of_channels):
        raise NotADotProduct  # an epilogue left behind would need whole-tensor scratch
    sch.decompose_reduction(block, first)
    sch.tensorize(first, intrinsic)
    if simd_requantize:
        _simd_requantize(sch, DEPTHWISE_LANES)
    return ScheduledKernel(sch.mod["main"], layouts)


def _column_stride(sch: s_tir.Schedule, block, weights: int, filter_width: int) -> int | None:
    """The input columns between two output columns of a depthwise conv (its stride,
    from the shapes), or None when its rows have fewer than two pixels."""
    stmt = sch.get(block)
    output = int(stmt.writes[0].source.ty.shape[2])
    inputs = [
        r.source
        for i, r in enumerate(stmt.reads)
        if i != weights and str(r.source.ty.dtype) == "int8" and len(r.source.ty.shape) == 4
    ]
    if len(inputs) != 1 or output < 2:
        return None
    return (int(inputs[0].ty.shape[2]) - filter_width) // (output - 1)


def _simd_requantize(sch: s_tir.Schedule, lanes: int) -> None:
    """The schedule with the requantization of each block of `lanes` channels handed
    to one SIMD call, when the epilogue is exactly that (a ``requantize`` step,
    :func:`tvmq.quantize.fixed_point.requantize_te`, alone in its loop).
    A ScheduleError here leaves `sch` half changed: the caller starts again without."""
    from tvmq.backend.intrinsics import requantize, requantize_row

    forms = {"requantize": False, RESCALE: True}  # block name -> rescale (any shift)
    blocks = [b for b in _blocks(sch) if sch.get(b).name_hint in forms]
    if len(blocks) != 1:
        return
    rescale = forms[sch.get(blocks[0]).name_hint]
    rank = len(sch.get(blocks[0]).iter_vars)
    loop = sch.get_loops(blocks[0])[-1]
    if rank in (2, 4) and int(sch.get(loop).extent) == lanes:
        _scalars_read_once(sch, blocks[0])
        outer = sch.get_loops(blocks[0])[-2] if rank == 4 else None
        if outer is not None and sch.get(outer).body.same_as(sch.get(loop)):
            # a row of pixels per channel block (pairs): one call for the row
            pixels = int(sch.get(outer).extent)
            sch.tensorize(outer, requantize_row(lanes, pixels, rescale))
        else:
            sch.tensorize(loop, requantize(lanes, rank, rescale))


def _scalars_read_once(sch: s_tir.Schedule, block) -> None:
    """Copy the one-element parameters `block` reads (zero point, clamp) into local
    copies at the top of the kernel: read through their pointers, they are loaded
    again in every iteration, since the int8 output stores may alias them."""
    for index, region in enumerate(sch.get(block).reads):
        if _elements(region.source) == 1:
            sch.cache_read(block, index, "global")


def _output_channel_major(
    sch: s_tir.Schedule, func: tvm.tirx.PrimFunc, block
) -> tuple[int, tuple[int, ...]]:
    """(parameter position, axes) of the int8 weights read by `block`, relaid out in
    the schedule with the output channel first; the rest keeps its order."""
    stmt = sch.get(block)
    kinds = [int(v.iter_type) for v in stmt.iter_vars]
    if kinds not in ([SPATIAL] * 4 + [REDUCE] * 3, [SPATIAL] * 2 + [REDUCE]):
        raise NotADotProduct
    variables = [v.var for v in stmt.iter_vars]
    weight_vars = [variables[kinds.index(REDUCE) - 1], *variables[kinds.index(REDUCE) :]]
    params = [p.name for p in func.params]
    for index, region in enumerate(stmt.reads):
        buffer = region.source
        starts = [r.min for r in region.region]
        if str(buffer.ty.dtype) != "int8" or buffer.name not in params:
            continue
        order = [_position_of(start, weight_vars) for start in starts]
        if sorted(order) != list(range(len(weight_vars))):
            continue
        axes = tuple(order.index(i) for i in range(len(order)))
        if axes != tuple(range(len(axes))):
            sch.transform_layout(block, ("read", index), _permutation(axes))
        return params.index(buffer.name), axes
    raise NotADotProduct


def _permutation(axes: tuple[int, ...]):
    return lambda *indices: [indices[a] for a in axes]


def _uses(expr, var) -> bool:
    return any(v.same_as(var) for v in tvm.tirx.analysis.undefined_vars(expr, []))


def _position_of(expr, variables) -> int:
    return next((i for i, v in enumerate(variables) if expr.same_as(v)), -1)


def small_schedule(func: tvm.tirx.PrimFunc, sch: s_tir.Schedule | None = None) -> tvm.tirx.PrimFunc:
    """`func` with every intermediate tensor shrunk to one element.

    Elementwise producers of a reduction are inlined into it (padding becomes a
    bounds check). Everything else is moved, step by step, under the loops where
    one element of its input is ready: after a reduction's spatial loops, or in
    the innermost loop of the output. Inlining those too would repeat shared
    subexpressions (the requantization reuses each value several times) and grow
    the code exponentially; one-element buffers become registers in C.
    `sch` (a schedule of `func`) is scheduled in place when given.
    """
    sch = s_tir.Schedule(func) if sch is None else sch
    _inline_into_reductions(sch)
    reductions = [b for b in _blocks(sch) if _is_reduction(sch, b)]
    if not _rows_at_output(sch, reductions):
        for block in reductions:
            _fuse_epilogue(sch, block)
    if not reductions:
        _split_padding(sch)
        _compute_at_output(sch)
    return sch.mod["main"]


def _rows_at_output(sch: s_tir.Schedule, reductions: list) -> bool:
    """Several reductions over the same innermost axes (a softmax: max, then the sum
    of exponentials) run one row at a time: every step moves under the output's
    row loops, so each temporary holds one row, not the whole tensor (a float
    softmax of a 64x64x21 segmentation map would otherwise keep 344 KB of
    exponentials). False, and nothing changed, for other kernels."""
    outputs = sch.get_output_blocks(sch.get_sblock("root"))
    if len(reductions) < 2 or len(outputs) != 1:
        return False
    depths = set()
    for block in reductions:
        kinds = [int(v.iter_type) for v in sch.get(block).iter_vars]
        if len(sch.get_loops(block)) != len(kinds) or REDUCE not in kinds:
            return False
        depths.add(kinds.index(REDUCE))
    depth = depths.pop() if len(depths) == 1 else 0
    if depth == 0 or len(sch.get_loops(outputs[0])) <= depth:
        return False
    names = [sch.get(b).name_hint for b in _blocks(sch)]
    output = sch.get(outputs[0]).name_hint

    def rows(schedule: s_tir.Schedule) -> None:
        row = schedule.get_loops(schedule.get_sblock(output))[depth - 1]
        for name in reversed(names[: names.index(output)]):
            schedule.compute_at(schedule.get_sblock(name), row)

    try:
        rows(sch.copy())  # a failed attempt would leave `sch` half changed
    except ScheduleError:
        return False
    rows(sch)
    for block in reductions:
        loops = sch.get_loops(block)  # a reduction over one element has lost its loop
        if len(loops) > depth:
            with contextlib.suppress(ScheduleError):
                sch.decompose_reduction(block, loops[depth])
    return True


def has_reduction(func: tvm.tirx.PrimFunc) -> bool:
    """Whether a block of `func` reduces (convolution, dense layer, pooling, sum)."""
    sch = s_tir.Schedule(func)
    return any(_is_reduction(sch, b) for b in _blocks(sch))


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
    """Move the blocks that follow a reduction under its spatial loops, in order,
    and hoist the accumulator's initialisation out of the reduction loops.

    Legalized kernels have one loop per block variable, in order (``T.axis.remap``),
    so the spatial loops are those before the first reduction variable.
    """
    loops = sch.get_loops(block)
    kinds = [int(v.iter_type) for v in sch.get(block).iter_vars]
    if len(loops) != len(kinds):
        return
    depth = kinds.index(REDUCE)
    if depth:
        _fuse_epilogue_at(sch, block, loops[depth - 1])
    with contextlib.suppress(ScheduleError):
        sch.decompose_reduction(block, loops[depth])


def _fuse_epilogue_at(sch: s_tir.Schedule, block, loop) -> bool:
    """Move the elementwise blocks after `block` under `loop`, one loop for them all.

    The first lands in a loop of its own over the elements `block` produced under
    `loop`; each next one goes inside that loop, so the steps between them are
    single elements (registers), however many elements `loop` covers. False when
    a block could not follow (it then keeps its whole-tensor buffer).
    """
    moved = {sch.get(block).name_hint}
    shape = _written_shape(sch, block)
    inner = None
    for consumer in _blocks(sch)[_position(sch, block) + 1 :]:
        producers = {sch.get(p).name_hint for p in sch.get_producers(consumer)}
        if not producers and _inlined(sch, consumer):
            continue  # a side input's own requantization, e.g. a residual add's
        if (
            _is_reduction(sch, consumer)
            or not producers <= moved
            or _written_shape(sch, consumer) != shape
        ):
            return False
        if not _compute_after(sch, consumer, [inner, loop]):
            return False
        inner = sch.get_loops(consumer)[-1]
        moved.add(sch.get(consumer).name_hint)
    return True


def _compute_after(sch: s_tir.Schedule, block, loops: list) -> bool:
    """reverse_compute_at the first of `loops` that accepts `block`."""
    for loop in loops:
        if loop is None:
            continue
        try:
            sch.reverse_compute_at(block, loop)
        except ScheduleError:
            continue
        return True
    return False


def _split_padding(sch: s_tir.Schedule) -> None:
    """A pad becomes a fill with the pad value and a copy of the interior: two
    branch-free loops (memset and memcpy to the C compiler) instead of a bounds
    check per element."""
    for block in _blocks(sch):
        loops = sch.get_loops(block)  # none for a 0-d tensor
        if loops and sch.can_decompose_padding(block, loops[0]):
            sch.decompose_padding(block, loops[0])


def _compute_at_output(sch: s_tir.Schedule) -> None:
    """Compute each elementwise block inside the innermost loop of the output."""
    outputs = sch.get_output_blocks(sch.get_sblock("root"))
    if len(outputs) != 1 or not sch.get_loops(outputs[0]):  # a 0-d output has no loop
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
