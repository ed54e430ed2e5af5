"""Tensor intrinsics: the int8 dot products a microcontroller does in SIMD.

A convolution's reduction over one filter row (kernel width x input channels,
contiguous in NHWC input and OHWI weights) for N output channels is replaced by
one call to ``tvmq_dot_s8_1xN`` from ``kernels/tvmq_dot.h``: SXTB16 + SMLAD on
Cortex-M4/M7/M33, Helium VMLADAVA on Cortex-M55, SDOT or SMULL + SADALP on
Cortex-A (``kernels/tvmq_dot_neon.h``), plain C elsewhere. This is the
shape of microTVM's former SMLAD "gemm" micro-kernels, as MetaSchedule-visible
TensorIntrins, one per shape (:func:`conv_dot_product`, :func:`dense_dot_product`).
Two output pixels can share one call (``tvmq_dot_s8_2xN``,
:func:`conv_pair_dot_product`), which loads each weight vector once for both.
"""

from __future__ import annotations

from pathlib import Path

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

KERNELS_DIR = Path(__file__).resolve().parent / "kernels"
HEADER = "tvmq_dot.h"  # what the generated kernels include
# the header and what it includes
HEADERS = (
    HEADER,
    "tvmq_dot_neon.h",
    "tvmq_dense.h",
    "tvmq_requant.h",
    "tvmq_sparse.h",
    "tvmq_s4.h",
    "tvmq_cb.h",
)
LANES = (4, 2, 1)  # output channels per call, as defined in tvmq_dot.h
DENSE_KERNEL = "tvmq_dense_s8x4"  # four dense rows on interleaved weights (tvmq_dense.h)


def conv_dot_product(lanes: int, width: int, channels: int) -> str:
    """Intrinsic for `lanes` output channels x one filter row (`width` x `channels`)
    of an NHWC convolution with OHWI weights."""
    name = f"tvmq_dot_s8_1x{lanes}_conv{width}x{channels}"
    return _registered_once(name, lambda: _conv_functions(lanes, width, channels))


def conv_pair_dot_product(
    lanes: int, pixel_step: tuple[int, int], width: int, channels: int, mmla: bool = True
) -> str:
    """:func:`conv_dot_product` for two output pixels at once (``tvmq_dot_s8_2xN``: each
    weight vector loaded once for both); their input rows start `pixel_step` (rows,
    columns) apart: the convolution's stride along the axis the pair is taken on.
    Without `mmla`, ``tvmq_dot_s8_2xN_no_mmla``: no SMMLA on i8mm cores."""
    rows, columns = pixel_step
    function = f"tvmq_dot_s8_2x{lanes}" + ("" if mmla else "_no_mmla")
    name = f"{function}_conv{width}x{channels}_step{rows}x{columns}"
    return _registered_once(
        name, lambda: _conv_pair_functions(function, lanes, pixel_step, width, channels)
    )


def conv_row_dot_product(lanes: int, stride: int, pixels: int, width: int, channels: int) -> str:
    """:func:`conv_dot_product` for a whole row of `pixels` output pixels, `stride`
    input columns apart (``tvmq_dot_s8_rowxN``: pixel pairs, then one pixel when
    `pixels` is odd): rows of odd length keep the pairs' shared weight loads."""
    name = f"tvmq_dot_s8_rowx{lanes}_conv{width}x{channels}_row{pixels}_stride{stride}"
    return _registered_once(
        name,
        lambda: _conv_pair_functions(
            f"tvmq_dot_s8_rowx{lanes}", lanes, (0, stride), width, channels, pixels
        ),
    )


def conv_window_dot_product(lanes: int, height: int, width: int, channels: int) -> str:
    """Intrinsic for `lanes` output channels x a whole (`height` x `width` x `channels`)
    filter window, read from a contiguous copy of the input window (im2col of one
    pixel): for filters whose rows are too short to fill a SIMD register."""
    name = f"tvmq_dot_s8_1x{lanes}_window{height}x{width}x{channels}"
    return _registered_once(name, lambda: _window_functions(lanes, height, width, channels))


def dense_dot_product(lanes: int, depth: int, interleaved: bool = False) -> str:
    """Intrinsic for `lanes` output features of a dense layer with [N, K] weights.
    `interleaved` (four lanes): ``tvmq_dense_s8x4``, which reads each block of four
    rows interleaved by :mod:`tvmq.backend.dense` after scheduling."""
    function = DENSE_KERNEL if interleaved else f"tvmq_dot_s8_1x{lanes}"
    name = f"{function}_dense{depth}"
    return _registered_once(name, lambda: _dense_functions(lanes, depth, function))


def depthwise_product(height: int, width: int) -> str:
    """Intrinsic for a (`height` x `width`) depthwise window over 4 channels."""
    name = f"tvmq_dw_s8x4_{height}x{width}"
    return _registered_once(name, lambda: _depthwise_functions(height, width))


def depthwise_row_product(height: int, width: int, pixels: int, stride: int) -> str:
    """:func:`depthwise_product` for a row of `pixels` output pixels, `stride` input
    columns apart (``tvmq_dw_s8x4_row``: pairs sharing each weight load)."""
    name = f"tvmq_dw_s8x4_{height}x{width}_row{pixels}_stride{stride}"
    return _registered_once(name, lambda: _depthwise_row_functions(height, width, pixels, stride))


def requantize(lanes: int, rank: int, rescale: bool = False) -> str:
    """Intrinsic for the requantization of `lanes` channels of an int32 accumulator of
    `rank` dimensions (4: NHWC convolution, 2: dense) to int8, as
    :func:`tvmq.quantize.fixed_point.requantize_te` writes it (``tvmq_requant_s8xN``),
    or :func:`~tvmq.quantize.fixed_point.rescale_te` when `rescale`
    (``tvmq_rescale_s8xN``: any shift)."""
    name = f"{_REQUANT_KERNELS[rescale]}{lanes}_rank{rank}"
    return _registered_once(name, lambda: _requantize_functions(lanes, rank, rescale))


def requantize_row(lanes: int, pixels: int, rescale: bool = False) -> str:
    """:func:`requantize` of `lanes` channels for a row of `pixels` output pixels of an
    NHWC convolution (``tvmq_requant_s8xN_row``, ``tvmq_rescale_s8xN_row``): each
    channel's bias, multiplier and shift are loaded, and their rounding constants
    derived, once for the row."""
    name = f"{_REQUANT_KERNELS[rescale]}{lanes}_row{pixels}"
    return _registered_once(name, lambda: _requantize_row_functions(lanes, pixels, rescale))


_registered: set[str] = set()


def _registered_once(name: str, functions) -> str:
    """Register `name` with the (desc, impl) that `functions()` builds, once per process."""
    if name not in _registered:
        TensorIntrin.register(name, *functions())
        _registered.add(name)
    return name


DEPTHWISE_LANES = 4


def _depthwise_functions(height: int, width: int):
    kh, kw, n = T.int64(height), T.int64(width), T.int64(DEPTHWISE_LANES)
    one, zero = T.int64(1), T.int64(0)

    @T.prim_func(s_tir=True)
    def desc(x: T.handle, w: T.handle, acc: T.handle) -> None:
        X = T.match_buffer(x, (one, kh, kw, n), "int8", offset_factor=1)
        W = T.match_buffer(w, (kh, kw, n, one), "int8", offset_factor=1)
        C = T.match_buffer(acc, (one, one, one, n), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0, 0, 0, 0:n], X[0, 0:kh, 0:kw, 0:n], W[0:kh, 0:kw, 0:n, 0])
            T.writes(C[0, 0, 0, 0:n])
            for r, c, _u, j in T.grid(kh, kw, one, n):
                with T.sblock("update"):
                    vj, vr, vc = T.axis.remap("SRR", [j, r, c])
                    C[zero, zero, zero, vj] = C[zero, zero, zero, vj] + T.Cast(
                        "int32", X[zero, vr, vc, vj]
                    ) * T.Cast("int32", W[vr, vc, vj, zero])

    @T.prim_func(s_tir=True)
    def impl(x: T.handle, w: T.handle, acc: T.handle) -> None:
        sx0, sx1, sx2 = T.int64(), T.int64(), T.int64()
        sw0, sw1 = T.int64(), T.int64()
        sc0, sc1, sc2 = T.int64(), T.int64(), T.int64()
        X = T.match_buffer(
            x, (one, kh, kw, n), "int8", strides=[sx0, sx1, sx2, one], offset_factor=1
        )
        W = T.match_buffer(
            w, (kh, kw, n, one), "int8", strides=[sw0, sw1, one, one], offset_factor=1
        )
        C = T.match_buffer(
            acc, (one, one, one, n), "int32", strides=[sc0, sc1, sc2, one], offset_factor=1
        )
        with T.sblock("root"):
            T.reads(C[0, 0, 0, 0:n], X[0, 0:kh, 0:kw, 0:n], W[0:kh, 0:kw, 0:n, 0])
            T.writes(C[0, 0, 0, 0:n])
            T.evaluate(
                T.call_extern(
                    "int32",
                    "tvmq_dw_s8x4",
                    C.access_ptr("rw"),
                    X.access_ptr("r"),
                    W.access_ptr("r"),
                    T.int32(height),
                    T.int32(width),
                    T.Cast("int32", sx1),
                    T.Cast("int32", sx2),
                    T.Cast("int32", sw0),
                    T.Cast("int32", sw1),
                )
            )

    return desc, impl


def _depthwise_row_functions(height: int, width: int, pixels: int, stride: int):
    kh, kw, n = T.int64(height), T.int64(width), T.int64(DEPTHWISE_LANES)
    w, span = T.int64(pixels), T.int64(stride * (pixels - 1) + width)
    one, zero = T.int64(1), T.int64(0)

    def column(vp, vc):
        """X's column index, as the scheduled kernel writes it (no product by one)."""
        return _times(vp, stride) + vc

    @T.prim_func(s_tir=True)
    def desc(x: T.handle, wt: T.handle, acc: T.handle) -> None:
        X = T.match_buffer(x, (one, kh, span, n), "int8", offset_factor=1)
        W = T.match_buffer(wt, (kh, kw, n, one), "int8", offset_factor=1)
        C = T.match_buffer(acc, (one, one, w, n), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0, 0, 0:w, 0:n], X[0, 0:kh, 0:span, 0:n], W[0:kh, 0:kw, 0:n, 0])
            T.writes(C[0, 0, 0:w, 0:n])
            for p, r, c, _u, j in T.grid(w, kh, kw, one, n):
                with T.sblock("update"):
                    vp, vj, vr, vc = T.axis.remap("SSRR", [p, j, r, c])
                    C[zero, zero, vp, vj] = C[zero, zero, vp, vj] + T.Cast(
                        "int32", X[zero, vr, column(vp, vc), vj]
                    ) * T.Cast("int32", W[vr, vc, vj, zero])

    @T.prim_func(s_tir=True)
    def impl(x: T.handle, wt: T.handle, acc: T.handle) -> None:
        sx0, sx1, sx2 = T.int64(), T.int64(), T.int64()
        sw0, sw1 = T.int64(), T.int64()
        sc0, sc1, sc2 = T.int64(), T.int64(), T.int64()
        X = T.match_buffer(
            x, (one, kh, span, n), "int8", strides=[sx0, sx1, sx2, one], offset_factor=1
        )
        W = T.match_buffer(
            wt, (kh, kw, n, one), "int8", strides=[sw0, sw1, one, one], offset_factor=1
        )
        C = T.match_buffer(
            acc, (one, one, w, n), "int32", strides=[sc0, sc1, sc2, one], offset_factor=1
        )
        with T.sblock("root"):
            T.reads(C[0, 0, 0:w, 0:n], X[0, 0:kh, 0:span, 0:n], W[0:kh, 0:kw, 0:n, 0])
            T.writes(C[0, 0, 0:w, 0:n])
            T.evaluate(
                T.call_extern(
                    "int32",
                    "tvmq_dw_s8x4_row",
                    C.access_ptr("rw"),
                    X.access_ptr("r"),
                    W.access_ptr("r"),
                    T.int32(height),
                    T.int32(width),
                    T.Cast("int32", sx1),
                    T.Cast("int32", sx2),
                    T.Cast("int32", sw0),
                    T.Cast("int32", sw1),
                    T.int32(pixels),
                    T.Cast("int32", T.int64(stride) * sx2),
                    T.Cast("int32", sc2),
                )
            )

    return desc, impl


def _call(lanes: int, depth: int, acc, a, b, b_stride, function: str | None = None):
    return T.call_extern(
        "int32",
        function or f"tvmq_dot_s8_1x{lanes}",
        acc.access_ptr("rw"),
        a.access_ptr("r"),
        b.access_ptr("r"),
        T.int32(depth),
        T.Cast("int32", b_stride),
    )


def _dense_functions(lanes: int, depth: int, function: str):
    n, k = T.int64(lanes), T.int64(depth)
    one, zero = T.int64(1), T.int64(0)

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, acc: T.handle) -> None:
        A = T.match_buffer(a, (one, k), "int8", offset_factor=1)
        B = T.match_buffer(b, (n, k), "int8", offset_factor=1)
        C = T.match_buffer(acc, (one, n), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0, 0:n], A[0, 0:k], B[0:n, 0:k])
            T.writes(C[0, 0:n])
            for j, i in T.grid(n, k):
                with T.sblock("update"):
                    vj, vi = T.axis.remap("SR", [j, i])
                    C[zero, vj] = C[zero, vj] + T.Cast("int32", A[zero, vi]) * T.Cast(
                        "int32", B[vj, vi]
                    )

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, acc: T.handle) -> None:
        sa, sb, sc = T.int64(), T.int64(), T.int64()
        A = T.match_buffer(a, (one, k), "int8", strides=[sa, one], offset_factor=1)
        B = T.match_buffer(b, (n, k), "int8", strides=[sb, one], offset_factor=1)
        C = T.match_buffer(acc, (one, n), "int32", strides=[sc, one], offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0, 0:n], A[0, 0:k], B[0:n, 0:k])
            T.writes(C[0, 0:n])
            T.evaluate(_call(lanes, depth, C, A, B, sb, function))

    return desc, impl


def _conv_functions(lanes: int, width: int, channels: int):
    n, kw, c = T.int64(lanes), T.int64(width), T.int64(channels)
    one, zero = T.int64(1), T.int64(0)

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, acc: T.handle) -> None:
        A = T.match_buffer(a, (one, one, kw, c), "int8", offset_factor=1)
        B = T.match_buffer(b, (n, one, kw, c), "int8", offset_factor=1)
        C = T.match_buffer(acc, (one, one, one, n), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0, 0, 0, 0:n], A[0, 0, 0:kw, 0:c], B[0:n, 0, 0:kw, 0:c])
            T.writes(C[0, 0, 0, 0:n])
            # A loop of extent one binds no block variable in the scheduled kernel.
            if width == 1:
                for j, _x, k in T.grid(n, kw, c):
                    with T.sblock("update"):
                        vj, vk = T.axis.remap("SR", [j, k])
                        C[zero, zero, zero, vj] = C[zero, zero, zero, vj] + T.Cast(
                            "int32", A[zero, zero, zero, vk]
                        ) * T.Cast("int32", B[vj, zero, zero, vk])
            elif channels == 1:
                for j, x, _k in T.grid(n, kw, c):
                    with T.sblock("update"):
                        vj, vx = T.axis.remap("SR", [j, x])
                        C[zero, zero, zero, vj] = C[zero, zero, zero, vj] + T.Cast(
                            "int32", A[zero, zero, vx, zero]
                        ) * T.Cast("int32", B[vj, zero, vx, zero])
            else:
                for j, x, k in T.grid(n, kw, c):
                    with T.sblock("update"):
                        vj, vx, vk = T.axis.remap("SRR", [j, x, k])
                        C[zero, zero, zero, vj] = C[zero, zero, zero, vj] + T.Cast(
                            "int32", A[zero, zero, vx, vk]
                        ) * T.Cast("int32", B[vj, zero, vx, vk])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, acc: T.handle) -> None:
        sa0, sa1 = T.int64(), T.int64()
        sb0, sb1 = T.int64(), T.int64()
        sc0, sc1, sc2 = T.int64(), T.int64(), T.int64()
        A = T.match_buffer(
            a, (one, one, kw, c), "int8", strides=[sa0, sa1, c, one], offset_factor=1
        )
        B = T.match_buffer(b, (n, one, kw, c), "int8", strides=[sb0, sb1, c, one], offset_factor=1)
        C = T.match_buffer(
            acc, (one, one, one, n), "int32", strides=[sc0, sc1, sc2, one], offset_factor=1
        )
        with T.sblock("root"):
            T.reads(C[0, 0, 0, 0:n], A[0, 0, 0:kw, 0:c], B[0:n, 0, 0:kw, 0:c])
            T.writes(C[0, 0, 0, 0:n])
            T.evaluate(_call(lanes, width * channels, C, A, B, sb0))

    return desc, impl


def _conv_pair_functions(
    function: str,
    lanes: int,
    pixel_step: tuple[int, int],
    width: int,
    channels: int,
    pixels: int = 2,
):
    """A pair of pixels (`pixels` 2), or a whole row of them along the columns (the
    count then follows the pair's arguments)."""
    n, kw, c, two = T.int64(lanes), T.int64(width), T.int64(channels), T.int64(pixels)
    one, zero = T.int64(1), T.int64(0)
    step_y, step_x = pixel_step
    rows, span = T.int64(step_y + 1), T.int64(step_x * (pixels - 1) + width)
    # The accumulators of the pair: two rows or two columns of one channel block.
    acc_shape = (one, two, one, n) if step_y else (one, one, two, n)

    def acc(vp, vj):
        return (zero, vp, zero, vj) if step_y else (zero, zero, vp, vj)

    region = (
        (0, slice(0, 2), 0, slice(0, lanes))
        if step_y
        else (0, 0, slice(0, pixels), slice(0, lanes))
    )

    def pair_stride(row_stride, column_stride):
        return row_stride if step_y else column_stride

    def call(C, A, B, row_stride, weight_stride, acc_stride):
        arguments = [
            C.access_ptr("rw"),
            A.access_ptr("r"),
            B.access_ptr("r"),
            T.int32(width * channels),
            T.Cast("int32", weight_stride),
            T.Cast("int32", T.int64(step_y) * row_stride + T.int64(step_x) * c),
            T.Cast("int32", acc_stride),
        ]
        count = [] if pixels == 2 else [T.int32(pixels)]
        return T.call_extern("int32", function, *arguments, *count)

    def pixel(vp, vx, vk):
        """A's index for pixel `vp` of the pair, written as the scheduled kernel has it
        (no product by one, no term for a step of zero)."""
        row = _times(vp, step_y) if step_y else zero
        if not step_x:
            column = vx
        elif width == 1:
            column = _times(vp, step_x)
        else:
            column = _times(vp, step_x) + vx
        return zero, row, column, vk

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, accumulators: T.handle) -> None:
        A = T.match_buffer(a, (one, rows, span, c), "int8", offset_factor=1)
        B = T.match_buffer(b, (n, one, kw, c), "int8", offset_factor=1)
        C = T.match_buffer(accumulators, acc_shape, "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[region], A[0, 0:rows, 0:span, 0:c], B[0:n, 0, 0:kw, 0:c])
            T.writes(C[region])
            # A loop of extent one binds no block variable in the scheduled kernel.
            if width == 1:
                for p, j, _x, k in T.grid(two, n, kw, c):
                    with T.sblock("update"):
                        vp, vj, vk = T.axis.remap("SSR", [p, j, k])
                        C[acc(vp, vj)] = C[acc(vp, vj)] + T.Cast(
                            "int32", A[pixel(vp, zero, vk)]
                        ) * T.Cast("int32", B[vj, zero, zero, vk])
            else:
                for p, j, x, k in T.grid(two, n, kw, c):
                    with T.sblock("update"):
                        vp, vj, vx, vk = T.axis.remap("SSRR", [p, j, x, k])
                        C[acc(vp, vj)] = C[acc(vp, vj)] + T.Cast(
                            "int32", A[pixel(vp, vx, vk)]
                        ) * T.Cast("int32", B[vj, zero, vx, vk])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, accumulators: T.handle) -> None:
        sa0, sa1 = T.int64(), T.int64()
        sb0, sb1 = T.int64(), T.int64()
        sc0, sc1, sc2 = T.int64(), T.int64(), T.int64()
        A = T.match_buffer(
            a, (one, rows, span, c), "int8", strides=[sa0, sa1, c, one], offset_factor=1
        )
        B = T.match_buffer(b, (n, one, kw, c), "int8", strides=[sb0, sb1, c, one], offset_factor=1)
        C = T.match_buffer(
            accumulators, acc_shape, "int32", strides=[sc0, sc1, sc2, one], offset_factor=1
        )
        with T.sblock("root"):
            T.reads(C[region], A[0, 0:rows, 0:span, 0:c], B[0:n, 0, 0:kw, 0:c])
            T.writes(C[region])
            T.evaluate(call(C, A, B, sa1, sb0, pair_stride(sc1, sc2)))

    return desc, impl


def _times(var, factor: int):
    return var if factor == 1 else var * T.int64(factor)


def _requantized(acc, bias, multiplier, shift, zero_point, low, high):
    """The expression of the fused ``requantize`` block, in TVM's simplified form."""
    wide = T.Cast("int64", shift)
    rounding = T.shift_left(T.int64(1), wide + T.int64(30))
    nudge = T.Select(
        T.Cast("int64", acc + bias) < T.int64(0),
        rounding - T.int64(1 << 30),
        rounding + T.int64(1 << 30),
    )
    product = (T.Cast("int64", acc) + T.Cast("int64", bias)) * T.Cast("int64", multiplier)
    scaled = T.Cast("int32", T.shift_right(product + nudge, wide + T.int64(31)))
    return T.Cast("int8", T.max(T.min(scaled + zero_point, high), low))


def _rescaled(acc, bias, multiplier, shift, zero_point, low, high):
    """The expression of the fused ``rescale_s8`` block (any shift), in TVM's
    simplified form."""
    shifted = T.shift_left(acc + bias, T.max(shift, 0))
    right = T.Cast("int64", T.min(shift, 0)) * T.int64(-1)
    product = T.shift_right(
        T.Cast("int64", shifted) * T.Cast("int64", multiplier) + T.int64(1 << 30), T.int64(31)
    )
    half = T.shift_right(T.shift_left(T.int64(1), right), T.int64(1))
    negative = T.Cast("int64", product < T.int64(0)) * T.min(half, T.int64(1))
    scaled = T.Cast("int32", T.shift_right(product + half - negative, right))
    return T.Cast("int8", T.max(T.min(scaled + zero_point, high), low))


def _reads(rescale: bool, acc, bias, multiplier, shift, *scalars) -> list:
    """A requantization block's reads in the order its expression makes them (the
    tensorized block's): rescale_te reads the shift before the multiplier."""
    if rescale:
        return [acc, bias, shift, multiplier, *scalars]
    return [acc, bias, multiplier, shift, *scalars]


# C micro-kernel name prefixes: requantize_te's form, rescale_te's (any shift)
_REQUANT_KERNELS = {False: "tvmq_requant_s8x", True: "tvmq_rescale_s8x"}
_REQUANT_EXPRESSIONS = {False: _requantized, True: _rescaled}


def _requantize_functions(lanes: int, rank: int, rescale: bool):
    expression, kernel = _REQUANT_EXPRESSIONS[rescale], _REQUANT_KERNELS[rescale]
    n, one, zero = T.int64(lanes), T.int64(1), T.int64(0)
    shape = (one,) * (rank - 1) + (n,)
    acc_strides = [T.int64() for _ in range(rank - 1)]
    out_strides = [T.int64() for _ in range(rank - 1)]
    region = (0,) * (rank - 1) + (slice(0, n),)

    def lane(j):
        """Index of channel `j` in the accumulator and output: leading axes are one."""
        return (zero,) * (rank - 1) + (j,)

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, m: T.handle, s: T.handle, z: T.handle,
             lo: T.handle, hi: T.handle, o: T.handle) -> None:  # fmt: skip
        A = T.match_buffer(a, shape, "int32", offset_factor=1)
        B = T.match_buffer(b, (n,), "int32", offset_factor=1)
        M = T.match_buffer(m, (n,), "int32", offset_factor=1)
        S = T.match_buffer(s, (n,), "int32", offset_factor=1)
        Z = T.match_buffer(z, (one,), "int32", offset_factor=1)
        LO = T.match_buffer(lo, (one,), "int32", offset_factor=1)
        HI = T.match_buffer(hi, (one,), "int32", offset_factor=1)
        Y = T.match_buffer(o, shape, "int8", offset_factor=1)
        with T.sblock("root"):
            T.reads(_reads(rescale, A[region], B[0:n], M[0:n], S[0:n], Z[0], HI[0], LO[0]))
            T.writes(Y[region])
            for j in T.serial(n):
                with T.sblock("requantize"):
                    vj = T.axis.spatial(n, j)
                    Y[lane(vj)] = expression(
                        A[lane(vj)], B[vj], M[vj], S[vj], Z[zero], LO[zero], HI[zero]
                    )

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, m: T.handle, s: T.handle, z: T.handle,
             lo: T.handle, hi: T.handle, o: T.handle) -> None:  # fmt: skip
        A = T.match_buffer(a, shape, "int32", strides=[*acc_strides, one], offset_factor=1)
        B = T.match_buffer(b, (n,), "int32", offset_factor=1)
        M = T.match_buffer(m, (n,), "int32", offset_factor=1)
        S = T.match_buffer(s, (n,), "int32", offset_factor=1)
        Z = T.match_buffer(z, (one,), "int32", offset_factor=1)
        LO = T.match_buffer(lo, (one,), "int32", offset_factor=1)
        HI = T.match_buffer(hi, (one,), "int32", offset_factor=1)
        Y = T.match_buffer(o, shape, "int8", strides=[*out_strides, one], offset_factor=1)
        with T.sblock("root"):
            T.reads(_reads(rescale, A[region], B[0:n], M[0:n], S[0:n], Z[0], HI[0], LO[0]))
            T.writes(Y[region])
            T.evaluate(
                T.call_extern(
                    "int32",
                    f"{kernel}{lanes}",
                    Y.access_ptr("w"),
                    A.access_ptr("r"),
                    B.access_ptr("r"),
                    M.access_ptr("r"),
                    S.access_ptr("r"),
                    Z[0],
                    LO[0],
                    HI[0],
                )
            )

    return desc, impl


def _requantize_row_functions(lanes: int, pixels: int, rescale: bool):
    expression, kernel = _REQUANT_EXPRESSIONS[rescale], _REQUANT_KERNELS[rescale]
    n, w, one, zero = T.int64(lanes), T.int64(pixels), T.int64(1), T.int64(0)
    shape = (one, one, w, n)
    region = (0, 0, slice(0, pixels), slice(0, lanes))

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, m: T.handle, s: T.handle, z: T.handle,
             lo: T.handle, hi: T.handle, o: T.handle) -> None:  # fmt: skip
        A = T.match_buffer(a, shape, "int32", offset_factor=1)
        B = T.match_buffer(b, (n,), "int32", offset_factor=1)
        M = T.match_buffer(m, (n,), "int32", offset_factor=1)
        S = T.match_buffer(s, (n,), "int32", offset_factor=1)
        Z = T.match_buffer(z, (one,), "int32", offset_factor=1)
        LO = T.match_buffer(lo, (one,), "int32", offset_factor=1)
        HI = T.match_buffer(hi, (one,), "int32", offset_factor=1)
        Y = T.match_buffer(o, shape, "int8", offset_factor=1)
        with T.sblock("root"):
            T.reads(_reads(rescale, A[region], B[0:n], M[0:n], S[0:n], Z[0], HI[0], LO[0]))
            T.writes(Y[region])
            for p, j in T.grid(w, n):
                with T.sblock("requantize"):
                    vp, vj = T.axis.remap("SS", [p, j])
                    Y[zero, zero, vp, vj] = expression(
                        A[zero, zero, vp, vj], B[vj], M[vj], S[vj], Z[zero], LO[zero], HI[zero]
                    )

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, m: T.handle, s: T.handle, z: T.handle,
             lo: T.handle, hi: T.handle, o: T.handle) -> None:  # fmt: skip
        sa0, sa1, sa2 = T.int64(), T.int64(), T.int64()
        so0, so1, so2 = T.int64(), T.int64(), T.int64()
        A = T.match_buffer(a, shape, "int32", strides=[sa0, sa1, sa2, one], offset_factor=1)
        B = T.match_buffer(b, (n,), "int32", offset_factor=1)
        M = T.match_buffer(m, (n,), "int32", offset_factor=1)
        S = T.match_buffer(s, (n,), "int32", offset_factor=1)
        Z = T.match_buffer(z, (one,), "int32", offset_factor=1)
        LO = T.match_buffer(lo, (one,), "int32", offset_factor=1)
        HI = T.match_buffer(hi, (one,), "int32", offset_factor=1)
        Y = T.match_buffer(o, shape, "int8", strides=[so0, so1, so2, one], offset_factor=1)
        with T.sblock("root"):
            T.reads(_reads(rescale, A[region], B[0:n], M[0:n], S[0:n], Z[0], HI[0], LO[0]))
            T.writes(Y[region])
            T.evaluate(
                T.call_extern(
                    "int32",
                    f"{kernel}{lanes}_row",
                    Y.access_ptr("w"),
                    A.access_ptr("r"),
                    B.access_ptr("r"),
                    M.access_ptr("r"),
                    S.access_ptr("r"),
                    Z[0],
                    LO[0],
                    HI[0],
                    T.int32(pixels),
                    T.Cast("int32", so2),
                    T.Cast("int32", sa2),
                )
            )

    return desc, impl


def _window_functions(lanes: int, height: int, width: int, channels: int):
    n, kh, kw, c = T.int64(lanes), T.int64(height), T.int64(width), T.int64(channels)
    one, zero = T.int64(1), T.int64(0)

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, acc: T.handle) -> None:
        A = T.match_buffer(a, (one, kh, kw, c), "int8", offset_factor=1)
        B = T.match_buffer(b, (n, kh, kw, c), "int8", offset_factor=1)
        C = T.match_buffer(acc, (one, one, one, n), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0, 0, 0, 0:n], A[0, 0:kh, 0:kw, 0:c], B[0:n, 0:kh, 0:kw, 0:c])
            T.writes(C[0, 0, 0, 0:n])
            # A loop of extent one binds no block variable in the scheduled kernel.
            if channels == 1:
                for j, y, x, _k in T.grid(n, kh, kw, c):
                    with T.sblock("update"):
                        vj, vy, vx = T.axis.remap("SRR", [j, y, x])
                        C[zero, zero, zero, vj] = C[zero, zero, zero, vj] + T.Cast(
                            "int32", A[zero, vy, vx, zero]
                        ) * T.Cast("int32", B[vj, vy, vx, zero])
            else:
                for j, y, x, k in T.grid(n, kh, kw, c):
                    with T.sblock("update"):
                        vj, vy, vx, vk = T.axis.remap("SRRR", [j, y, x, k])
                        C[zero, zero, zero, vj] = C[zero, zero, zero, vj] + T.Cast(
                            "int32", A[zero, vy, vx, vk]
                        ) * T.Cast("int32", B[vj, vy, vx, vk])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, acc: T.handle) -> None:
        sa0, sb0 = T.int64(), T.int64()
        sc0, sc1, sc2 = T.int64(), T.int64(), T.int64()
        A = T.match_buffer(
            a, (one, kh, kw, c), "int8", strides=[sa0, kw * c, c, one], offset_factor=1
        )
        B = T.match_buffer(
            b, (n, kh, kw, c), "int8", strides=[sb0, kw * c, c, one], offset_factor=1
        )
        C = T.match_buffer(
            acc, (one, one, one, n), "int32", strides=[sc0, sc1, sc2, one], offset_factor=1
        )
        with T.sblock("root"):
            T.reads(C[0, 0, 0, 0:n], A[0, 0:kh, 0:kw, 0:c], B[0:n, 0:kh, 0:kw, 0:c])
            T.writes(C[0, 0, 0, 0:n])
            T.evaluate(_call(lanes, height * width * channels, C, A, B, sb0))

    return desc, impl
