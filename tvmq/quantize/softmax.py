"""TFLite Micro's int8 softmax, as integer Relax ops.

Softmax is the one op of the int8 models whose float version does not round to
the same integers as TFLite Micro, so it is transcribed here step by step from
tensorflow/lite/kernels/internal/reference/softmax.h (int8 in, int8 out) and the
gemmlowp fixed-point functions it calls: the input difference to the row maximum
is rescaled to Q5.26, exponentiated with ``exp_on_negative_values``, summed in
Q12.19, inverted with ``one_over_one_plus_x_for_x_in_0_1`` (Newton-Raphson) and
multiplied back. The output is always scale 1/256, zero point -128.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import relax

from tvmq.quantize.fixed_point import IntegerKernel, quantize_multiplier

OUTPUT_SCALE = 1.0 / 256.0
OUTPUT_ZERO_POINT = -128
SCALED_DIFF_INTEGER_BITS = 5  # exp() input in Q5.26
ACCUMULATION_INTEGER_BITS = 12  # sum of exponentials in Q12.19
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
Q0_ONE = INT32_MAX  # FixedPoint<int32, 0>::One(), saturated
# exp(-2**k) in Q0.31 for k = -2..4: gemmlowp's barrel shifter over the integer part.
EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))  # fmt: skip
EXP_MINUS_ONE_EIGHTH = 1895147668
ONE_THIRD = 715827883
FORTY_EIGHT_OVER_17 = 1515870810  # Q2.29
MINUS_THIRTY_TWO_OVER_17 = -1010580540  # Q2.29


@dataclass(frozen=True)
class SoftmaxParams:
    """TFLite Micro's SoftmaxParams for an int8 input (CalculateSoftmaxParams)."""

    multiplier: int
    left_shift: int
    diff_min: int


def softmax_params(input_scale: float, beta: float = 1.0) -> SoftmaxParams | None:
    """PreprocessSoftmaxScaling and CalculateInputRadius; None where TFLite refuses
    the scale (a multiplier below one) or its kernel would overflow int32 (a left
    shift of 31, from an input scale of 16 or more)."""
    fraction_bits = 31 - SCALED_DIFF_INTEGER_BITS
    real = min(beta * input_scale * (1 << fraction_bits), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if not 0 <= left_shift < 31 or multiplier == 0:
        return None
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << fraction_bits) / (1 << left_shift)
    return SoftmaxParams(multiplier, left_shift, -math.floor(radius))


class IntegerSoftmax(IntegerKernel):
    """Emits the int8 softmax over the last axis into an :class:`IntegerBuilder`."""

    def __call__(self, x: relax.Expr, params: SoftmaxParams, dtype: str = "int8") -> relax.Expr:
        """Into int8 (scale 1/256) or, as TFLite's 8-to-16 softmax, int16 (1/65536);
        the zero point is the type's minimum."""
        ints = self.ints
        low, high = (int(v) for v in (np.iinfo(dtype).min, np.iinfo(dtype).max))
        wide = ints.cast(x, "int32")
        row_max = ints.emit(relax.op.max(wide, axis=-1, keepdims=True))
        diff = self._op(relax.op.subtract, wide, row_max)
        kept = self._op(relax.op.greater_equal, diff, self._i32(params.diff_min))
        # Differences below diff_min give -128; clamping them first keeps the
        # arithmetic below free of overflow for those discarded lanes.
        diff = self._op(relax.op.maximum, diff, self._i32(params.diff_min))
        shifted = self._op(relax.op.multiply, diff, self._i32(1 << params.left_shift))
        scaled_diff = ints.doubling_high_mul(shifted, self._i32(params.multiplier))
        exp = self._exp_on_negative_values(scaled_diff)
        rescaled = ints.rounding_divide_by_pot(exp, np.array(ACCUMULATION_INTEGER_BITS))
        kept_exp = self._op(relax.op.where, kept, rescaled, self._i32(0))
        sum_of_exps = ints.emit(relax.op.sum(kept_exp, axis=-1, keepdims=True))
        reciprocal, bits_over_unit = self._reciprocal(sum_of_exps)
        exponent = self._op(relax.op.add, bits_over_unit, self._i32(31 - np.iinfo(dtype).bits))
        # Exponents past 31 need 512 near-maximal classes or more, where TFLite Micro
        # aborts (gemmlowp asserts exponent <= 31); int64 keeps the result defined.
        product = ints.cast(ints.doubling_high_mul(reciprocal, exp), "int64")
        unsaturated = ints.rounding_divide_by_pot(product, ints.cast(exponent, "int64"))
        output = self._op(relax.op.add, ints.cast(unsaturated, "int32"), self._i32(low))
        output = self._op(relax.op.clip, output, low, high)
        output = self._op(relax.op.where, kept, output, self._i32(low))
        return relax.op.astype(output, dtype)

    def _saturating_left_shift(self, x: relax.Expr, exponent: int) -> relax.Expr:
        """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent."""
        ints = self.ints
        product = self._op(
            relax.op.multiply, ints.cast(x, "int64"), ints.const(1 << exponent, "int64")
        )
        return ints.cast(self._op(relax.op.clip, product, INT32_MIN, INT32_MAX), "int32")

    def _exp_on_negative_values(
        self, a: relax.Expr, integer_bits: int = SCALED_DIFF_INTEGER_BITS
    ) -> relax.Expr:
        """exp(a) in Q0.31 for a <= 0 with `integer_bits` integer bits (gemmlowp
        fixedpoint.h)."""
        ints = self.ints
        fraction_bits = 31 - integer_bits
        quarter = 1 << (fraction_bits - 2)
        modulo = self._op(relax.op.bitwise_and, a, self._i32(quarter - 1))
        modulo = self._op(relax.op.subtract, modulo, self._i32(quarter))
        result = self._exp_on_quarter_interval(self._saturating_left_shift(modulo, integer_bits))
        remainder = self._op(relax.op.subtract, modulo, a)
        for exponent, multiplier in EXP_BARREL:
            if exponent >= integer_bits:  # gemmlowp's barrel stops at the integer bits
                break
            bit = self._op(
                relax.op.bitwise_and, remainder, self._i32(1 << (fraction_bits + exponent))
            )
            scaled = ints.doubling_high_mul(result, self._i32(multiplier))
            result = self._op(relax.op.where, relax.op.not_equal(bit, self._i32(0)), scaled, result)
        return self._op(relax.op.where, relax.op.equal(a, self._i32(0)), self._i32(Q0_ONE), result)

    def _exp_on_quarter_interval(self, a: relax.Expr) -> relax.Expr:
        """exp(a) for a in [-1/4, 0), Q0.31: a Taylor series around -1/8."""
        ints = self.ints
        mul = ints.doubling_high_mul
        x = self._op(relax.op.add, a, self._i32(1 << 28))
        x2 = mul(x, x)
        x3 = mul(x2, x)
        x4 = mul(x2, x2)
        x4_over_4 = ints.rounding_divide_by_pot(x4, np.array(2))
        series = mul(self._op(relax.op.add, x4_over_4, x3), self._i32(ONE_THIRD))
        series = ints.rounding_divide_by_pot(self._op(relax.op.add, series, x2), np.array(1))
        constant = self._i32(EXP_MINUS_ONE_EIGHTH)
        return self._op(relax.op.add, constant, mul(constant, self._op(relax.op.add, x, series)))

    def _reciprocal(self, total: relax.Expr) -> tuple[relax.Expr, relax.Expr]:
        """TFLite's GetReciprocal of a positive Q12.19 sum: 1/total in Q0.31 scaled by
        2**-bits_over_unit, and bits_over_unit."""
        ints = self.ints
        # Count leading zeros as the number of powers 2**1..2**31 above the value.
        powers = ints.const(np.array([1 << k for k in range(1, 32)], np.int64), "int64")
        wide = ints.cast(total, "int64")
        below = self._op(relax.op.less, relax.op.expand_dims(wide, -1), powers)
        leading_zeros = ints.emit(relax.op.sum(ints.cast(below, "int64"), axis=-1))
        bits_over_unit = self._op(
            relax.op.subtract,
            self._i32(ACCUMULATION_INTEGER_BITS),
            ints.cast(leading_zeros, "int32"),
        )
        normalized = self._op(relax.op.left_shift, wide, leading_zeros)
        minus_one = ints.cast(
            self._op(relax.op.subtract, normalized, ints.const(1 << 31, "int64")), "int32"
        )
        return self._one_over_one_plus_x(minus_one), bits_over_unit

    def _one_over_one_plus_x(self, a: relax.Expr) -> relax.Expr:
        """1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps."""
        ints = self.ints
        mul = ints.doubling_high_mul
        # RoundingHalfSum(a, One()) with a >= 0: (a + One + 1) / 2.
        half_sum = self._op(relax.op.add, ints.cast(a, "int64"), ints.const(Q0_ONE + 1, "int64"))
        half = ints.cast(self._op(relax.op.right_shift, half_sum, ints.const(1, "int64")), "int32")
        x = self._op(
            relax.op.add,
            self._i32(FORTY_EIGHT_OVER_17),
            mul(half, self._i32(MINUS_THIRTY_TWO_OVER_17)),
        )
        for _ in range(3):
            one_minus = self._op(relax.op.subtract, self._i32(1 << 29), mul(half, x))
            x = self._op(relax.op.add, x, self._saturating_left_shift(mul(x, one_minus), 2))
        # ExactMulByPot<-1> only retypes Q2.29 as Q1.30; Rescale<0> then shifts by one.
        return self._saturating_left_shift(x, 1)


LOGISTIC_INPUT_INTEGER_BITS = 4  # TFLite's int8 logistic reads its input in Q4.27
LOGISTIC_OUTPUT_SHIFT = 31 - 8  # Q0.31 down to 1/256 steps


@dataclass(frozen=True)
class LogisticParams:
    """TFLite Micro's int8 LOGISTIC parameters (CalculateArithmeticOpData)."""

    zero_point: int
    multiplier: int
    left_shift: int
    radius: int


def logistic_params(input_scale: float, zero_point: int) -> LogisticParams | None:
    """The Q4.27 input rescale and the input radius beyond which the output
    saturates; None where the multiplier would shift right."""
    fraction_bits = 31 - LOGISTIC_INPUT_INTEGER_BITS
    multiplier, left_shift = quantize_multiplier(input_scale * (1 << fraction_bits))
    if left_shift < 0 or multiplier == 0:
        return None
    radius = ((1 << LOGISTIC_INPUT_INTEGER_BITS) - 1) * (1 << fraction_bits) / (1 << left_shift)
    return LogisticParams(zero_point, multiplier, left_shift, math.floor(radius))


class IntegerLogistic(IntegerSoftmax):
    """TFLite's int8 LOGISTIC (reference integer_ops/logistic.h): gemmlowp's
    logistic on the input rescaled to Q4.27, output scale 1/256, zero point -128.
    It shares softmax's fixed-point exp and reciprocal."""

    def __call__(self, x: relax.Expr, params: LogisticParams) -> relax.Expr:
        ints = self.ints
        centred = ints.centre(x, params.zero_point)
        # Inputs beyond the radius saturate; clamping them first keeps the rescale
        # below free of overflow for those discarded lanes.
        limit = params.radius - 1
        inside = self._op(relax.op.clip, centred, -limit, limit)
        q4 = ints.multiply_by_quantized_multiplier(
            inside, np.array(params.multiplier), np.array(params.left_shift)
        )
        positive = self._op(relax.op.greater, q4, self._i32(0))
        magnitude = self._op(relax.op.abs, q4)
        exp = self._exp_on_negative_values(
            self._op(relax.op.negative, magnitude), LOGISTIC_INPUT_INTEGER_BITS
        )
        on_positive = self._one_over_one_plus_x(exp)
        on_negative = self._op(relax.op.subtract, self._i32(Q0_ONE), on_positive)
        value = self._op(relax.op.where, positive, on_positive, on_negative)
        value = self._op(
            relax.op.where, relax.op.equal(q4, self._i32(0)), self._i32(1 << 30), value
        )
        scaled = ints.rounding_divide_by_pot(value, np.array(LOGISTIC_OUTPUT_SHIFT))
        output = self._op(relax.op.add, scaled, self._i32(OUTPUT_ZERO_POINT))
        output = self._op(relax.op.clip, output, -128, 127)
        output = self._op(
            relax.op.where,
            relax.op.less_equal(centred, self._i32(-params.radius)),
            self._i32(-128),
            output,
        )
        output = self._op(
            relax.op.where,
            relax.op.greater_equal(centred, self._i32(params.radius)),
            self._i32(127),
            output,
        )
        return relax.op.astype(output, "int8")
