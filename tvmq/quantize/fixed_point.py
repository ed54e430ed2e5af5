"""TFLite's fixed-point requantization, as Relax integer ops.

Results must equal TFLite Micro bit for bit, so these follow
tensorflow/lite/kernels/internal/common.h exactly: a real multiplier becomes a Q31
integer and a shift (QuantizeMultiplier), applied with the classic double rounding
(SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT).
"""

from __future__ import annotations

import math

import numpy as np
from tvm import relax

Q31_ONE = 1 << 31


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real = multiplier * 2**(shift - 31)."""
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

    def saturate(self, x: relax.Expr, low: int, high: int, dtype: str) -> relax.Expr:
        """Clamp an int32 tensor to [low, high] and narrow it to `dtype`."""
        return relax.op.astype(self.emit(relax.op.clip(x, low, high)), dtype)
