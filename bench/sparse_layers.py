"""Pruned int8 layers as TFLite files, as another tool would export them: one
FULLY_CONNECTED or one 1x1 CONV_2D whose weights hold zeros (unstructured or N:M)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tests.tflite_ops import Operand, quantized, single_op

IN_PARAMS, OUT_PARAMS = (0.05, -3), (0.25, 7)


def pruned_weights(rng: np.random.Generator, channels: int, depth: int, pattern: str) -> np.ndarray:
    """int8 weights [channels, depth]: `pattern` is a fraction of zeros ("0.75", at random
    places) or N:M ("2:4": N nonzeros in each M consecutive inputs)."""
    weights = rng.integers(-127, 128, (channels, depth)).astype(np.int8)
    weights[weights == 0] = 1
    if ":" in pattern:
        keep, group = (int(v) for v in pattern.split(":"))
        groups = weights.reshape(channels, depth // group, group)
        ranks = rng.random(groups.shape).argsort(axis=-1).argsort(axis=-1)
        groups[ranks >= keep] = 0
        return groups.reshape(channels, depth)
    zeros = rng.permutation(channels * depth) < round(float(pattern) * channels * depth)
    weights.reshape(-1)[zeros] = 0
    return weights


def layer_model(
    path: Path, kind: str, weights: np.ndarray, pixels: tuple[int, int] = (1, 1)
) -> Path:
    """A `kind` ("dense" or "pointwise", on `pixels`: height, width) int8 layer with `weights`
    [channels, depth], per-channel scales, an int32 bias and a fused ReLU."""
    channels, depth = weights.shape
    scales = tuple(float(s) for s in np.linspace(0.002, 0.01, channels, dtype=np.float32))
    shape = weights.shape if kind == "dense" else (channels, 1, 1, depth)
    w = Operand("w", shape, "int8", scales, (0,) * channels, 0, weights.reshape(shape))
    bias_values = np.arange(channels, dtype=np.int32) * 41 - 700
    bias_scales = tuple(float(np.float32(IN_PARAMS[0] * s)) for s in scales)
    b = Operand("b", (channels,), "int32", bias_scales, (0,) * channels, 0, bias_values)
    relu = schema.ActivationFunctionType.RELU
    if kind == "dense":
        x, y = quantized("x", (1, depth), IN_PARAMS), quantized("y", (1, channels), OUT_PARAMS)
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = relu
        return single_op(path, schema.BuiltinOperator.FULLY_CONNECTED, [x, w, b], [y], options)
    x = quantized("x", (1, *pixels, depth), IN_PARAMS)
    y = quantized("y", (1, *pixels, channels), OUT_PARAMS)
    options = schema.Conv2DOptionsT()
    options.padding, options.strideW, options.strideH = schema.Padding.VALID, 1, 1
    options.dilationWFactor = options.dilationHFactor = 1
    options.fusedActivationFunction = relu
    return single_op(path, schema.BuiltinOperator.CONV_2D, [x, w, b], [y], options, 3)
