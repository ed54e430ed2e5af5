"""TFLite Micro's int8 softmax, transcribed line by line in Python ints.

From tensorflow/lite/kernels/internal/reference/softmax.h, common.h (GetReciprocal,
MultiplyByQuantizedMultiplierGreaterThanOne), quantization_util.cc
(PreprocessSoftmaxScaling, CalculateInputRadius) and gemmlowp's fixedpoint.h; a
scalar oracle for tvmq's vectorised Relax version.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def high_mul(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    total = ab + nudge
    quotient = abs(total) // (1 << 31)
    return wrap32(quotient if total >= 0 else -quotient)


def divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def multiply_by_pot(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT."""
    if exponent < 0:
        return divide_by_pot(x, -exponent)
    return max(INT32_MIN, min(INT32_MAX, x * (1 << exponent)))


def exp_on_interval(a: int) -> int:
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = high_mul(x, x)
    x3 = high_mul(x2, x)
    x4 = high_mul(x2, x2)
    x4_over_4 = multiply_by_pot(x4, -2)
    poly = multiply_by_pot(high_mul(x4_over_4 + x3, one_third) + x2, -1)
    return wrap32(constant_term + high_mul(constant_term, x + poly))


def exp_on_negative_values(a: int, integer_bits: int = 5) -> int:
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod = (a & mask) - one_quarter
    result = exp_on_interval(multiply_by_pot(a_mod, integer_bits))
    remainder = a_mod - a
    for exponent in range(-2, 5):
        if integer_bits > exponent:
            multiplier = round(math.exp(-(2.0**exponent)) * 2**31)
            multiplier = min(multiplier, INT32_MAX)
            if remainder & (1 << (fractional_bits + exponent)):
                result = high_mul(result, multiplier)
    return INT32_MAX if a == 0 else result


def one_over_one_plus_x(a: int) -> int:
    total = a + INT32_MAX
    half_denominator = (total + 1) // 2
    x = 1515870810 + high_mul(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - high_mul(half_denominator, x)
        x = x + multiply_by_pot(high_mul(x, one_minus), 2)
    # ExactMulByPot<-1> changes only the type (Q2.29 read as Q1.30), then Rescale<0>.
    return multiply_by_pot(x, 1)


def get_reciprocal(x: int, integer_digits: int) -> tuple[int, int]:
    headroom_plus_one = 32 - x.bit_length()
    shifted_minus_one = ((x << headroom_plus_one) - (1 << 31)) & 0xFFFFFFFF
    return one_over_one_plus_x(wrap32(shifted_minus_one)), integer_digits - headroom_plus_one


def softmax_params(scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    real = min(beta * scale * (1 << 26), (1 << 31) - 1.0)
    fraction, shift = math.frexp(real)
    multiplier = math.floor(fraction * (1 << 31) + 0.5)
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    radius = math.floor(31 * (1 << 26) / (1 << shift))
    return multiplier, shift, -radius


def softmax_int8(values: np.ndarray, scale: float) -> np.ndarray:
    """Softmax over the last axis of int8 `values` quantized with `scale`."""
    multiplier, left_shift, diff_min = softmax_params(scale)
    rows = values.reshape(-1, values.shape[-1]).astype(int)
    out = np.empty(rows.shape, np.int8)
    for i, row in enumerate(rows):
        top = int(row.max())
        exps = {}
        total = 0
        for c, v in enumerate(row):
            diff = int(v) - top
            if diff >= diff_min:
                exps[c] = exp_on_negative_values(high_mul(diff * (1 << left_shift), multiplier))
                total += multiply_by_pot(exps[c], -12)
        reciprocal, bits_over_unit = get_reciprocal(total, 12)
        for c in range(len(row)):
            if c in exps:
                unsat = divide_by_pot(high_mul(reciprocal, exps[c]), bits_over_unit + 31 - 8)
                out[i, c] = max(-128, min(127, unsat - 128))
            else:
                out[i, c] = -128
    return out.reshape(values.shape)
