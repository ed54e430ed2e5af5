"""TFLite Micro's int8 HARD_SWISH, as integer Relax ops.

Transcribed from tensorflow/lite/kernels/internal/reference/hard_swish.h: the
kernel works in int16 fixed point (a "relu-ish" factor in [0, 1] times the input
on a pre-shift output scale), which a float x * relu6(x + 3) / 6 misses by one on
a few inputs. int16 values are held in int32 tensors; every step stays in range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax

from tvmq.quantize.fixed_point import IntegerKernel, quantize_multiplier

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
HIRES_SHIFT = 7  # the centred input, shifted left into the high bits of an int16


@dataclass(frozen=True)
class HardSwishParams:
    """TFLite Micro's HardSwishParams (hard_swish_common.cc)."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier: int  # int16
    output_exponent: int
    reluish_multiplier: int  # int16
    reluish_exponent: int


def _int16_multiplier(real: np.float32) -> tuple[int, int]:
    """QuantizeMultiplier then DownScaleInt32ToInt16Multiplier."""
    multiplier, exponent = quantize_multiplier(float(real))
    if multiplier >= INT16_MAX * 2**16 + 2**16 - 1 - 2**15:  # int32 max - rounding offset
        return INT16_MAX, exponent
    return (multiplier + (1 << 15)) >> 16, exponent


def hard_swish_params(
    input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int
) -> HardSwishParams | None:
    """The parameters, computed in float32 as TFLite does; None where TFLite refuses
    them (an output multiplier above one) or a left shift would not fit."""
    hires = np.float32(1.0 / 128.0) * np.float32(input_scale)
    output_multiplier, output_exponent = _int16_multiplier(hires / np.float32(output_scale))
    reluish = hires / (np.float32(3.0) / np.float32(32768.0))
    reluish_multiplier, reluish_exponent = _int16_multiplier(reluish)
    if output_exponent > 0 or reluish_exponent > 15:
        return None
    return HardSwishParams(
        input_zero_point,
        output_zero_point,
        output_multiplier,
        output_exponent,
        reluish_multiplier,
        reluish_exponent,
    )


class IntegerHardSwish(IntegerKernel):
    """Emits the int8 hard swish into an :class:`IntegerBuilder`."""

    def _high_mul(self, a: relax.Expr, b: relax.Expr, rounding: bool) -> relax.Expr:
        """int16 (Saturating)(Rounding)DoublingHighMul; operands never both -2**15."""
        product = self._op(relax.op.multiply, a, b)
        if rounding:
            nudge = relax.op.where(
                relax.op.greater_equal(product, self._i32(0)),
                self._i32(1 << 14),
                self._i32(1 - (1 << 14)),
            )
            product = self._op(relax.op.add, product, nudge)
        # C++ division by 2**15 truncates towards zero.
        shift = self._i32(15)
        return self._op(
            relax.op.where,
            relax.op.greater_equal(product, self._i32(0)),
            relax.op.right_shift(product, shift),
            relax.op.negative(relax.op.right_shift(relax.op.negative(product), shift)),
        )

    def _saturating_left_shift(self, x: relax.Expr, exponent: int) -> relax.Expr:
        shifted = self._op(relax.op.multiply, x, self._i32(1 << exponent))
        return self._op(relax.op.clip, shifted, INT16_MIN, INT16_MAX)

    def __call__(self, x: relax.Expr, params: HardSwishParams, out_dtype: str) -> relax.Expr:
        ints = self.ints
        centred = ints.centre(x, params.input_zero_point)
        hires = self._op(relax.op.multiply, centred, self._i32(1 << HIRES_SHIFT))
        preshift = self._high_mul(hires, self._i32(params.output_multiplier), rounding=True)
        reluish = hires
        exponent = params.reluish_exponent
        if exponent > 0:
            reluish = self._saturating_left_shift(reluish, exponent - 1)
        reluish = self._high_mul(reluish, self._i32(params.reluish_multiplier), rounding=True)
        if exponent > 0:
            reluish = self._saturating_left_shift(reluish, 1)
        if exponent < 0:
            reluish = ints.rounding_divide_by_pot(reluish, np.array(-exponent))
        # From [-1, 1] to [0, 1].
        reluish = self._op(
            relax.op.right_shift,
            relax.op.add(reluish, self._i32(1 << 15)),
            self._i32(1),
        )
        value = self._high_mul(reluish, preshift, rounding=False)
        if params.output_exponent < 0:
            value = ints.rounding_divide_by_pot(value, np.array(-params.output_exponent))
        shifted = self._op(relax.op.add, value, self._i32(params.output_zero_point))
        info = np.iinfo(out_dtype)
        return ints.saturate(shifted, int(info.min), int(info.max), out_dtype)
