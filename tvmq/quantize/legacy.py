"""TFLite's uint8 kernels (TF1 quantization-aware training), where their arithmetic
differs from the int8 kernels that :mod:`tvmq.quantize.realize` reproduces.

Realize runs uint8 tensors as int8 ones (value - 128, zero point - 128), which
leaves every integer formula unchanged except these:

- conv and depthwise conv take their multiplier from the float32 product of input
  and weight scales (GetQuantizedConvolutionMultipler), not from the product of
  doubles (fully connected, in LiteRT's reference kernel, from the doubles);
- average pooling rounds halves up, (sum + count / 2) / count on non-negative sums;
- concatenation of inputs whose parameters differ from the output's is a float32
  affine map, round(x * scale + bias) (ConcatenationWithScaling): over 256 possible
  inputs it is exactly a lookup table;
- mul takes its multiplier from float32 arithmetic on the three scales;
- mean folds the division by the count into its multiplier (:func:`mean_multiplier`);
- RELU, RELU6 and LEAKY_RELU rescale with float32 scale ratios and round their bounds
  in float32 (:func:`activation_multiplier`, :func:`relu_bounds`).
"""

from __future__ import annotations

import numpy as np

from tvmq.quantize.fixed_point import quantize_multiplier

# The offset between a uint8 value and the int8 value that stands for it.
OFFSET = 128


def product_scale(input_scale: float, weight_scale: np.ndarray) -> np.ndarray:
    """input scale x weight scale as TFLite's uint8 convolutions compute it (float32)."""
    return (np.float32(input_scale) * np.asarray(weight_scale, np.float32)).astype(np.float64)


def mul_multiplier(a_scale: float, b_scale: float, out_scale: float) -> float:
    """The real multiplier of TFLite's uint8 MUL (float32 arithmetic)."""
    return float(np.float32(np.float32(a_scale) * np.float32(b_scale)) / np.float32(out_scale))


def concat_table(
    in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int
) -> np.ndarray:
    """int8 lookup table, indexed by the uint8 input value, of TFLite's uint8
    ConcatenationWithScaling rescale, returning the int8 stand-in of the output."""
    scale = np.float32(in_scale) * (np.float32(1.0) / np.float32(out_scale))
    bias = np.float32(-in_zero_point) * scale
    real = np.arange(256, dtype=np.float32) * scale + bias
    # TfLiteRound (std::round): halves away from zero.
    rounded = np.sign(real) * np.floor(np.abs(real.astype(np.float64)) + 0.5)
    values = np.clip(rounded.astype(np.int64) + out_zero_point, 0, 255)
    return (values - OFFSET).astype(np.int8)


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """(multiplier, shift) of TFLite's QuantizedMeanOrSum (reduce.h), the only uint8
    MEAN kernel: in/out scale, with 1/count folded in by shifting the multiplier
    left by log2(count) (at most 32 and at most 31 + shift) and dividing."""
    multiplier, shift = quantize_multiplier(
        float(np.float64(np.float32(in_scale)) / np.float64(np.float32(out_scale)))
    )
    left = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << left) // count, shift - left


def activation_multiplier(in_scale: float, out_scale: float, alpha: float = 1.0) -> tuple[int, int]:
    """(multiplier, shift) of TFLite's quantized RELU family (in/out scale) and
    LEAKY_RELU's negative side (in x alpha / out), computed in float32."""
    real = np.float32(in_scale) * np.float32(alpha) / np.float32(out_scale)
    return quantize_multiplier(float(real))


def relu_bounds(low: float, high: float | None, out_scale: float, zero_point: int):
    """uint8 clamp of QuantizedReluX: zero point + roundf(bound / scale), in range."""

    def quantized(bound: float) -> int:
        value = np.float32(bound) / np.float32(out_scale)
        return zero_point + int(np.sign(value) * np.floor(np.abs(np.float64(value)) + 0.5))

    upper = 255 if high is None else min(255, quantized(high))
    return max(0, quantized(low)), upper
