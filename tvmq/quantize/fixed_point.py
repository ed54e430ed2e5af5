"""TFLite's fixed-point requantization, as Relax integer ops.

Results must equal TFLite Micro bit for bit, so these follow
tensorflow/lite/kernels/internal/common.h exactly: a real multiplier becomes a Q31
integer and a shift (QuantizeMultiplier), applied with the classic double rounding
(SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT).
"""

from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import relax, te

from tvmq.errors import TvmqError

Q31_ONE = 1 << 31
# relax.OpPatternKind.kElemWise: the one kind FuseOps puts after a convolution. Each output
# element reads the same element of the accumulator (and per-channel constants).
ELEMENTWISE = 0
OPAQUE = 8  # relax.OpPatternKind.kOpaque: a kernel of its own, never fused
# PrimFunc attribute naming the C micro-kernel an ahead-of-time backend calls for the
# whole step (tvmq/backend/kernels) instead of generating code from its TIR.
MICRO_KERNEL = "tvmq.micro_kernel"
# Name of the requantization step of any exponent (rescale_te), beside requantize_te's.
RESCALE = "rescale_s8"


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real = multiplier * 2**(shift - 31).

    A ratio of scales that is NaN, infinite or negative comes from broken quantization
    parameters (importers refuse them); it is refused here too, never a ValueError."""
    if not math.isfinite(real) or real < 0:
        raise TvmqError(f"quantization scales give the requantization multiplier {real}")
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    # std::round rounds halves away from zero; np.round would round them to even.
    multiplier = math.floor(abs(fraction) * Q31_ONE + 0.5) * (1 if fraction >= 0 else -1)
    if multiplier == Q31_ONE:
        multiplier //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return multiplier, shift


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise :func:`quantize_multiplier` (one per output channel)."""
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    multipliers = np.array([m for m, _ in pairs], np.int64).reshape(np.shape(reals))
    shifts = np.array([s for _, s in pairs], np.int64).reshape(np.shape(reals))
    return multipliers, shifts


class IntegerBuilder:
    """Emits integer arithmetic into a Relax BlockBuilder, one binding per op.

    `channel_shape` places per-channel constants on the output channel axis, e.g.
    (1, 1, 1, C) for NHWC; per-tensor constants are scalars.
    """

    def __init__(self, builder: relax.BlockBuilder):
        self.bb = builder

    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.bb.emit(expr)

    @staticmethod
    def const(values: np.ndarray | int, dtype: str, shape: tuple[int, ...] | None = None):
        array = np.asarray(values, dtype)
        if array.size == 1:
            return relax.const(array.reshape(()).item(), dtype)
        return relax.const(array.reshape(shape if shape is not None else array.shape), dtype)

    @staticmethod
    def const_vector(value: int) -> relax.Expr:
        """An int32 tensor of shape (1,): a scalar that kernels read from memory."""
        return relax.const(np.array([value], "int32"))

    def cast(self, x: relax.Expr, dtype: str) -> relax.Expr:
        return self.emit(relax.op.astype(x, dtype))

    def centre(self, x: relax.Expr, zero_point: int) -> relax.Expr:
        """int32 (x - zero_point): a quantized value around its real zero."""
        if str(x.ty.dtype) != "int32":
            x = self.cast(x, "int32")
        return self.emit(relax.op.subtract(x, self.const(zero_point, "int32")))

    def multiply_by_quantized_multiplier(
        self, x: relax.Expr, multiplier: np.ndarray, shift: np.ndarray, channel_shape=None
    ) -> relax.Expr:
        """int32 x * real multiplier, rounded as TFLite's MultiplyByQuantizedMultiplier."""
        multiplier, shift = np.asarray(multiplier), np.asarray(shift)
        left = np.maximum(shift, 0)
        right = np.maximum(-shift, 0)
        if (right >= 1).all():
            return self._multiply_high_and_shift(x, multiplier, right, channel_shape)
        if left.any():
            x = self.emit(relax.op.multiply(x, self.const(1 << left, "int32", channel_shape)))
        # The saturating case (both operands INT32_MIN) cannot occur: multipliers are >= 0.
        x = self.doubling_high_mul(x, self.const(multiplier, "int64", channel_shape))
        if right.any():
            x = self.rounding_divide_by_pot(x, right, channel_shape)
        return x

    def _multiply_high_and_shift(
        self, x: relax.Expr, multiplier: np.ndarray, right: np.ndarray, channel_shape
    ) -> relax.Expr:
        """The same result in four cheap steps when every right shift is at least one.

        The two roundings fold into one constant: with r = right shift,
        SRDHM then RoundingDivideByPOT equals
        ((x * M + 2**30 + 2**(30 + r) - (x < 0) * 2**31) >> 32) >> (r - 1),
        exactly, for every int32 x. The product is one 32x32->64 multiply, the
        high word of the sum is free on a 32-bit core, and no int64 survives it.
        """
        rounding = (1 << 30) + (np.int64(1) << (30 + right))
        product = self.emit(
            relax.op.multiply(self._wide(x), self.const(multiplier, "int64", channel_shape))
        )
        nudge = self.emit(
            relax.op.where(
                relax.op.less(x, self.const(0, str(x.ty.dtype))),
                self.const(rounding - Q31_ONE, "int64", channel_shape),
                self.const(rounding, "int64", channel_shape),
            )
        )
        total = self.emit(relax.op.add(product, nudge))
        high = self.cast(self.emit(relax.op.right_shift(total, self.const(32, "int64"))), "int32")
        return self.emit(relax.op.right_shift(high, self.const(right - 1, "int32", channel_shape)))

    def requantize(
        self,
        accumulator: relax.Expr,
        bias: np.ndarray,
        multiplier: np.ndarray,
        shift: np.ndarray,
        channel_axis: int,
        out,
        low: int,
        high: int,
    ) -> relax.Expr:
        """An int32 accumulator plus bias, requantized to `out` (zero point, dtype) and
        clamped to [low, high], as ONE elementwise kernel step; `shift` is TFLite's
        (per channel, negative to the right).

        When every right shift is at least one the arithmetic is
        :meth:`_multiply_high_and_shift`'s (:func:`requantize_te`), else
        :func:`rescale_te`'s, each written as a single expression with per-channel
        bias, multiplier and shift arrays. One step with a known form is what lets a
        backend hand the whole requantization of a block of channels to a SIMD
        micro-kernel (:func:`tvmq.backend.intrinsics.requantize`); as twenty small
        Relax ops it could only run one element at a time.
        """
        channels = len(bias)
        shift = np.asarray(shift)
        right = bool(np.all(shift <= -1))
        # Vectors of (channels,) even for one channel: `const` would make that a
        # scalar, which requantize_te cannot index by channel.
        arrays = [
            relax.const(np.broadcast_to(np.asarray(values, "int32"), (channels,)).copy())
            for values in (bias, multiplier, -shift if right else shift)
        ]
        # One-element tensors: FuseOps fuses a step after a convolution only when every
        # argument broadcasts to the output, which a (3,) vector would not; 0-d buffers
        # would not tensorize.
        output = [self.const_vector(v) for v in (out.zero_point, low, high)]
        return self.emit(
            self.bb.call_te(
                requantize_te if right else rescale_te,
                accumulator,
                *arrays,
                *output,
                channel_axis=channel_axis,
                dtype=out.dtype,
                primfunc_name_hint="requantize" if right else RESCALE,
                primfunc_attrs={"op_pattern": ELEMENTWISE},
            )
        )

    def add(
        self,
        a: relax.Expr,
        b: relax.Expr,
        inputs: list[tuple[int, int, int]],
        output: tuple[int, int, int],
        clamp: tuple[int, int],
        left_shift: int,
    ) -> relax.Expr:
        """TFLite's int8 add as ONE step (:func:`add_te`): `inputs` are (zero point,
        multiplier, right shift) of a and b, `output` (multiplier, right shift, zero
        point), no shift to the left.

        A kernel of its own that names the C micro-kernel doing the same arithmetic
        (``tvmq_add_s8``: Helium on Cortex-M55), the way TFLite Micro and CMSIS-NN run
        an elementwise add; fused behind a convolution it could only run one element
        at a time.
        """
        values = [v for operand in inputs for v in operand] + [*output, *clamp]
        return self.emit(
            self.bb.call_te(
                add_te,
                a,
                b,
                *[self.const_vector(int(v)) for v in values],
                left_shift=left_shift,
                primfunc_name_hint="add_s8",
                primfunc_attrs={"op_pattern": OPAQUE, MICRO_KERNEL: "tvmq_add_s8"},
            )
        )

    def multiply_by_quantized_multiplier_int64(
        self, x: relax.Expr, multiplier: np.ndarray, shift: np.ndarray, channel_shape=None
    ) -> relax.Expr:
        """int64 x * real multiplier to int32, as TFLite's 64-bit MultiplyByQuantizedMultiplier
        (16x8 kernels): the multiplier cut to 16 bits, one rounding shift."""
        multiplier, shift = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
        reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
        total_shift = 15 - shift
        product = self.emit(
            relax.op.multiply(self._wide(x), self.const(reduced, "int64", channel_shape))
        )
        rounded = self.emit(
            relax.op.add(product, self.const(1 << (total_shift - 1), "int64", channel_shape))
        )
        shifted = relax.op.right_shift(rounded, self.const(total_shift, "int64", channel_shape))
        return self.cast(self.emit(shifted), "int32")

    def doubling_high_mul(self, a: relax.Expr, b: relax.Expr) -> relax.Expr:
        """gemmlowp's SaturatingRoundingDoublingHighMul of two int32 tensors, without
        its one saturating case (a == b == INT32_MIN), which callers rule out."""
        product = self.emit(relax.op.multiply(self._wide(a), self._wide(b)))
        nudged = self.emit(
            relax.op.add(
                product,
                self.emit(
                    relax.op.where(
                        relax.op.greater_equal(product, self.const(0, "int64")),
                        self.const(1 << 30, "int64"),
                        self.const(1 - (1 << 30), "int64"),
                    )
                ),
            )
        )
        # C++ integer division truncates towards zero; a right shift floors.
        shift31 = self.const(31, "int64")
        truncated = relax.op.where(
            relax.op.greater_equal(nudged, self.const(0, "int64")),
            relax.op.right_shift(nudged, shift31),
            relax.op.negative(relax.op.right_shift(relax.op.negative(nudged), shift31)),
        )
        return self.cast(self.emit(truncated), "int32")

    def _wide(self, x: relax.Expr) -> relax.Expr:
        return x if str(x.ty.dtype) == "int64" else self.cast(x, "int64")

    def rounding_divide_by_pot(
        self, x: relax.Expr, exponent: np.ndarray | relax.Expr, channel_shape=None
    ) -> relax.Expr:
        """gemmlowp's RoundingDivideByPOT: x / 2**exponent, halves rounded away from
        zero. `exponent` is constant (per channel) or a tensor of x's dtype."""
        dtype = str(x.ty.dtype)
        if isinstance(exponent, relax.Expr):
            one = self.const(1, dtype)
            mask = self.emit(relax.op.subtract(relax.op.left_shift(one, exponent), one))
            half = self.emit(relax.op.right_shift(mask, one))
        else:
            exponent = np.asarray(exponent)
            mask = self.const((1 << exponent) - 1, dtype, channel_shape)
            half = self.const(((1 << exponent) - 1) >> 1, dtype, channel_shape)
            exponent = self.const(exponent, dtype, channel_shape)
        remainder = self.emit(relax.op.bitwise_and(x, mask))
        negative = self.cast(self.emit(relax.op.less(x, self.const(0, dtype))), dtype)
        threshold = self.emit(relax.op.add(half, negative))
        round_up = self.cast(self.emit(relax.op.greater(remainder, threshold)), dtype)
        shifted = self.emit(relax.op.right_shift(x, exponent))
        return self.emit(relax.op.add(shifted, round_up))

    def rounding_divide(self, x: relax.Expr, divisor: np.ndarray) -> relax.Expr:
        """x / divisor rounded half away from zero, as TFLite's average pooling does."""
        half = self.const(divisor // 2, "int32")
        div = self.const(divisor, "int32")
        positive = relax.op.floor_divide(relax.op.add(x, half), div)
        negative = relax.op.negative(relax.op.floor_divide(relax.op.subtract(half, x), div))
        return self.emit(
            relax.op.where(relax.op.greater(x, self.const(0, "int32")), positive, negative)
        )

    def divide_round_half_even(self, x: relax.Expr, divisor: int) -> relax.Expr:
        """x / divisor (> 0) rounded half to even, as ONNX's QuantizeLinear rounds:
        the floor quotient q goes up when 2 * remainder + (q & 1) > divisor."""
        if divisor == 1:
            return x
        dtype = str(x.ty.dtype)
        div = self.const(divisor, dtype)
        quotient = self.emit(relax.op.floor_divide(x, div))
        twice_remainder = relax.op.multiply(relax.op.floor_mod(x, div), self.const(2, dtype))
        odd = relax.op.bitwise_and(quotient, self.const(1, dtype))
        up = self.emit(relax.op.greater(relax.op.add(twice_remainder, odd), div))
        return self.emit(relax.op.add(quotient, relax.op.astype(up, dtype)))

    def scale_round_half_even(
        self, x: relax.Expr, scales: np.ndarray, shape: list[int], low: int, high: int
    ) -> relax.Expr:
        """int32 `x` times float32 `scales` (broadcast as `shape`), clamped to [low,
        high] and rounded half to even, in float32 as onnxruntime's
        MlasRequantizeOutput computes it."""
        product = relax.op.multiply(
            self.cast(x, "float32"), self.const(scales.astype(np.float32), "float32", shape)
        )
        return self.round_half_even(self.emit(product), low, high)

    def round_half_even(self, x: relax.Expr, low: int, high: int) -> relax.Expr:
        """float32 `x` clamped to [low, high], rounded half to even into int32: floor(v
        + 1/2), one less at an odd tie (exact, |v| being far below 2**22), so every
        backend's C rounds alike."""
        clamped = self.emit(relax.op.clip(x, low, high))
        floor = self.emit(relax.op.floor(relax.op.add(clamped, self.const(0.5, "float32"))))
        tie = relax.op.equal(relax.op.subtract(floor, clamped), self.const(0.5, "float32"))
        rounded = self.cast(floor, "int32")
        odd = relax.op.bitwise_and(rounded, self.const(1, "int32"))
        down = relax.op.where(tie, odd, self.const(0, "int32"))
        return self.emit(relax.op.subtract(rounded, down))

    def saturate(self, x: relax.Expr, low: int, high: int, dtype: str) -> relax.Expr:
        """Clamp an int32 tensor to [low, high] and narrow it to `dtype`."""
        return relax.op.astype(self.emit(relax.op.clip(x, low, high)), dtype)


def _rescale(
    x: tvm.tirx.PrimExpr, multiplier: tvm.tirx.PrimExpr, right_shift: tvm.tirx.PrimExpr
) -> tvm.tirx.PrimExpr:
    """MultiplyByQuantizedMultiplier(x, M, -r) for int32 x and r >= 1, as
    :meth:`IntegerBuilder._multiply_high_and_shift` folds it, in TE."""
    rounding = tvm.tirx.const(1 << 30, "int64") + tvm.tirx.shift_left(
        tvm.tirx.const(1, "int64"), (right_shift + 30).astype("int64")
    )
    nudge = tvm.tirx.Select(x < 0, rounding - tvm.tirx.const(Q31_ONE, "int64"), rounding)
    total = x.astype("int64") * multiplier.astype("int64") + nudge
    # One shift by 31 + r, not >> 32 then an int32 >> (r - 1): TVM's bound analysis
    # wrongly narrows an int32 shifted by a loaded amount and drops a clamp after it.
    return tvm.tirx.shift_right(total, (right_shift + 31).astype("int64")).astype("int32")


def requantize_te(
    accumulator: te.Tensor,
    bias: te.Tensor,
    multiplier: te.Tensor,
    right_shift: te.Tensor,
    zero_point: te.Tensor,
    low: te.Tensor,
    high: te.Tensor,
    channel_axis: int,
    dtype: str,
) -> te.Tensor:
    """clamp((((acc + bias) * M + nudge) >> (31 + r)) + zero_point, low, high): see
    :meth:`IntegerBuilder._multiply_high_and_shift` for why this equals TFLite. The
    output parameters are read from scalar tensors, not folded in as numbers, so that
    every requantization has the same form (one tensor intrinsic) whatever its values."""

    def element(*index):
        channel = index[channel_axis]
        scaled = _rescale(
            accumulator(*index) + bias[channel], multiplier[channel], right_shift[channel]
        )
        clamped = tvm.tirx.Max(tvm.tirx.Min(scaled + zero_point[0], high[0]), low[0])
        return clamped.astype(dtype)

    return te.compute(accumulator.shape, element, name="requantize")


def rescale_te(
    accumulator: te.Tensor,
    bias: te.Tensor,
    multiplier: te.Tensor,
    exponent: te.Tensor,
    zero_point: te.Tensor,
    low: te.Tensor,
    high: te.Tensor,
    channel_axis: int,
    dtype: str,
) -> te.Tensor:
    """:func:`requantize_te` for any per-channel exponent (TFLite's shift: left when
    positive, right when negative), as MultiplyByQuantizedMultiplier does it: the sum
    shifted left, then the doubling high multiply and the rounding right shift. The
    layers whose multipliers are not all below one half (some right shift zero) take
    this form, also one step a backend can hand to a SIMD micro-kernel."""

    def element(*index):
        channel = index[channel_axis]
        e = exponent[channel]
        shifted = tvm.tirx.shift_left(accumulator(*index) + bias[channel], tvm.tirx.Max(e, 0))
        scaled = _multiply_by_quantized_multiplier(
            shifted, multiplier[channel], tvm.tirx.Max(-e, 0)
        )
        clamped = tvm.tirx.Max(tvm.tirx.Min(scaled + zero_point[0], high[0]), low[0])
        return clamped.astype(dtype)

    return te.compute(accumulator.shape, element, name=RESCALE)


def _multiply_by_quantized_multiplier(
    x: tvm.tirx.PrimExpr, multiplier: tvm.tirx.PrimExpr, right_shift: tvm.tirx.PrimExpr
) -> tvm.tirx.PrimExpr:
    """TFLite's MultiplyByQuantizedMultiplier(x, M, -r) for int32 x and any r >= 0, in
    int64 (see :func:`_rescale` on TVM's bounds) and without a Select.

    SaturatingRoundingDoublingHighMul is (x * M + 2**30) >> 31 for either sign (its
    truncating division of a negative nudged product rounds the same way), and
    RoundingDivideByPOT is (h + 2**(r - 1) - (h < 0)) >> r for r >= 1, h for r = 0.
    """
    one = tvm.tirx.const(1, "int64")
    shift = right_shift.astype("int64")
    high = tvm.tirx.shift_right(
        x.astype("int64") * multiplier.astype("int64") + tvm.tirx.const(1 << 30, "int64"),
        tvm.tirx.const(31, "int64"),
    )
    half = tvm.tirx.shift_right(tvm.tirx.shift_left(one, shift), one)
    negative = (high < 0).astype("int64") * tvm.tirx.Min(half, one)
    return tvm.tirx.shift_right(high + half - negative, shift).astype("int32")


def add_te(a: te.Tensor, b: te.Tensor, *params: te.Tensor, left_shift: int) -> te.Tensor:
    """int8 a + b as TFLite's AddElementwise (no rescale shifting left).

    `params` are one-element int32 tensors: (zero point, multiplier, right shift) of
    `a`, then of `b`, then the output's (multiplier, right shift, zero point), then
    the clamp (low, high). Each input is centred and shifted left, both are
    rescaled to a common scale and summed, the sum rescaled to the output.
    """
    zp_a, m_a, r_a, zp_b, m_b, r_b, m_out, r_out, zp_out, low, high = (p[0] for p in params)
    rescale = _multiply_by_quantized_multiplier

    def centred(x: te.Tensor, zero_point, index) -> tvm.tirx.PrimExpr:
        return (x(*index).astype("int32") - zero_point) * (1 << left_shift)

    def element(*index):
        total = rescale(centred(a, zp_a, index), m_a, r_a) + rescale(
            centred(b, zp_b, index), m_b, r_b
        )
        result = rescale(total, m_out, r_out) + zp_out
        return tvm.tirx.Max(tvm.tirx.Min(result, high), low).astype("int8")

    return te.compute(a.shape, element, name="add_s8")


class IntegerKernel:
    """A fixed-point kernel (softmax, logistic, hard swish) written as Relax ops into
    an :class:`IntegerBuilder`, with shorthands for its int32 constants and steps."""

    def __init__(self, ints: IntegerBuilder):
        self.ints = ints

    def _i32(self, value: int) -> relax.Expr:
        return self.ints.const(value, "int32")

    def _op(self, op, *args) -> relax.Expr:
        return self.ints.emit(op(*args))
