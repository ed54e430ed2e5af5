"""The int8 scheme: how a calibrated range or a weight becomes scale and zero point.

Defaults follow the TFLite quantization spec: activations int8 asymmetric per
tensor, weights int8 symmetric in [-127, 127] per output channel, biases int32 at
input_scale * weight_scale (biases are rounded when the graph is realized).
16-bit activations follow TFLite's 16x8 scheme: int16 symmetric (zero point 0),
weights still int8, int64 biases and accumulators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from tvmq.errors import TvmqError
from tvmq.quantize.softmax import OUTPUT_SCALE, OUTPUT_ZERO_POINT


@dataclass(frozen=True)
class QuantConfig:
    """User choices for one quantization run."""

    mode: str = "static"
    calibrator: str = "mse"
    calibrator_options: dict = field(default_factory=dict)
    per_channel: bool = True
    symmetric_activations: bool = False
    power_of_two: bool = False
    skip_ops: frozenset[str] = frozenset()
    skip_names: frozenset[str] = frozenset()
    # int16 activations everywhere, or only around the layers named here.
    int16_activations: bool = False
    int16_names: frozenset[str] = frozenset()
    # Weight bits of every weighted layer (8 or 4: tvmq.quantize.low_bit) and the
    # layers given other bits, as (layer name, bits).
    weight_bits: int = 8
    layer_bits: frozenset[tuple[str, int]] = frozenset()
    # Codebook centroids of the inner weighted layers (0: none; tvmq.quantize.codebook)
    # and the layers given a codebook explicitly, as (layer name, centroids); one
    # table per output channel instead of one per layer.
    codebook: int = 0
    layer_codebook: frozenset[tuple[str, int]] = frozenset()
    codebook_per_channel: bool = False


@dataclass(frozen=True)
class ActivationParams:
    scale: np.float32
    zero_point: int
    dtype: str = "int8"


# TFLite fixes softmax outputs at [0, 1) in steps of 1/256, whatever calibration saw.
SOFTMAX_OUTPUT = ActivationParams(np.float32(OUTPUT_SCALE), OUTPUT_ZERO_POINT)


def _power_of_two(scale: float) -> float:
    return 2.0 ** math.ceil(math.log2(scale))


def activation_params(
    low: float, high: float, config: QuantConfig, dtype: str = "int8"
) -> ActivationParams:
    """Scale and zero point covering [low, high] (widened to include zero); int16
    is symmetric with zero point 0, as in TFLite's 16x8 scheme."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise TvmqError(f"calibrated range [{low}, {high}] is not finite")
    low, high = min(low, 0.0), max(high, 0.0)
    if dtype == "int16":
        scale = max(abs(low), abs(high)) / 32767.0 or 1.0
        if config.power_of_two:
            scale = _power_of_two(scale)
        return ActivationParams(np.float32(scale), 0, "int16")
    qmin, qmax = -128, 127
    if config.symmetric_activations:
        scale = max(abs(low), abs(high)) / 127.0 or 1.0
    else:
        scale = (high - low) / (qmax - qmin) or 1.0
    if config.power_of_two:
        scale = _power_of_two(scale)
    scale = float(np.float32(scale))
    if config.symmetric_activations:
        return ActivationParams(np.float32(scale), 0)
    # TFLite's ChooseQuantizationParams: the zero point with the smaller rounding error.
    from_min, from_max = qmin - low / scale, qmax - high / scale
    error_min = abs(qmin) + abs(low / scale)
    error_max = abs(qmax) + abs(high / scale)
    zero_point = from_min if error_min < error_max else from_max
    zero_point = int(np.clip(np.round(zero_point), qmin, qmax))
    return ActivationParams(np.float32(scale), zero_point)


DEAD_CHANNEL = 1e-20


@dataclass(frozen=True)
class QuantizedWeight:
    values: np.ndarray
    scale: np.ndarray
    axis: int


def quantize_weight(
    weight: np.ndarray, axis: int, config: QuantConfig, bits: int = 8
) -> QuantizedWeight:
    """Symmetric int8 in [-127, 127] (at 4 bits [-7, 7], held in int8), one scale per
    output channel (or per tensor)."""
    moved = np.moveaxis(weight.astype(np.float64), axis, 0).reshape(weight.shape[axis], -1)
    peak = (
        np.abs(moved).max(axis=1)
        if config.per_channel
        else np.full(moved.shape[0], np.abs(moved).max())
    )
    # Pruned channels (weights ~1e-30) would get scales so small that their bias
    # overflows int32 at input_scale * weight_scale: they take the largest scale.
    alive = peak > DEAD_CHANNEL
    top = float((1 << (bits - 1)) - 1)
    scale = np.where(alive, peak / top, peak[alive].max() / top if alive.any() else 1.0)
    if bits < 8:
        scale = scale * _mse_clip(moved, scale, top)
    if config.power_of_two:
        scale = np.array([_power_of_two(s) for s in scale])
    scale = scale.astype(np.float32)
    return QuantizedWeight(integer_weight(weight, scale, axis, bits), scale, axis)


def quantize_slope(slope: np.ndarray, config: QuantConfig) -> QuantizedWeight:
    """A PReLU's slope as symmetric int8 with one scale (TFLite's PRELU kernel reads
    one), whatever its shape."""
    flat = quantize_weight(slope.reshape(1, -1), 0, replace(config, per_channel=False))
    return QuantizedWeight(flat.values.reshape(slope.shape), flat.scale.reshape(()), 0)


CLIP_RATIOS = np.linspace(0.5, 1.0, 26)


def _mse_clip(rows: np.ndarray, scale: np.ndarray, top: float) -> np.ndarray:
    """Per row, the fraction of the peak to keep that minimises the squared rounding
    error: at 4 bits a step is 1/7 of the peak, and clipping a few outliers buys a
    finer step for the rest (at 8 bits the peak is kept, as TFLite does)."""
    errors = []
    for ratio in CLIP_RATIOS:
        step = (scale * ratio)[:, None]
        rounded = np.clip(np.round(rows / step), -top, top) * step
        errors.append(((rows - rounded) ** 2).sum(axis=1))
    return CLIP_RATIOS[np.argmin(np.stack(errors), axis=0)]


def integer_weight(weight: np.ndarray, scale: np.ndarray, axis: int, bits: int = 8) -> np.ndarray:
    """int8 `weight` at per-channel `scale` (on `axis`), in [-127, 127] (or the
    symmetric range of `bits`); fine-tuning re-rounds its trained weights with this rule."""
    shape = [1] * weight.ndim
    shape[axis] = -1
    top = (1 << (bits - 1)) - 1
    return np.clip(np.round(weight / scale.reshape(shape)), -top, top).astype(np.int8)
