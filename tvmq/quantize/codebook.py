"""Codebook weights: each layer's int8 weights clustered into at most 16 int8 values.

A codebook layer is quantized to int8 as usual (symmetric, per output channel), and
then its int8 weights are replaced by the nearest of K centroids (K in 2..16, int8
values) found by k-means over the whole layer: the per-channel scales already put
every channel on the same [-127, 127] grid, so one table per layer serves them all,
and the kernels look a weight up in one 16-byte table (:mod:`tvmq.backend.codebook`).
The integer model is the ordinary int8 graph whose weights happen to take K values,
so the host's integer model is the reference every board must match bit for bit.

The k-means is one-dimensional on the layer's histogram of int8 values, solved
exactly by dynamic programming (optimal contiguous groups of the sorted values, no
seed, no iterations): deterministic and at least as good as Lloyd's from any start.
A layer whose weights are at least ZERO_SHARE exactly zero (pruned) keeps a zero
centroid so that its zeros stay zero.

``--codebook K`` keeps the first and the last weighted layer int8, as
``--weight-bits 4`` does; ``--codebook-layer LAYER=K`` sets any weighted layer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tvmq.errors import TvmqError
from tvmq.quantize.annotate import Annotation
from tvmq.quantize.low_bit import LOW_BIT_KINDS, low_bit_op, weighted_ops
from tvmq.quantize.scheme import QuantizedWeight

SIZES = range(2, 17)  # centroids: a 4-bit index
ZERO_SHARE = 0.1
# Weights per output channel from which a table per channel (16 bytes) costs less
# than the half of its int8 bytes that the indices save; fewer (3x3 depthwise: 9)
# keep one table for the layer.
PER_CHANNEL_FROM = 33


def check_codebook_size(size: int, option: str) -> None:
    if size not in SIZES:
        raise TvmqError(f"{option}: a codebook has 2 to 16 centroids (4-bit indices), not {size}")


def check_codebook_options(size: int, weight_bits: int) -> None:
    """Both ``--codebook`` and ``--weight-bits 4`` would choose the inner layers."""
    if size:
        check_codebook_size(size, f"--codebook {size}")
    if size and weight_bits != 8:
        raise TvmqError(
            f"--codebook {size} and --weight-bits {weight_bits} both set the inner layers' "
            "weights: give one (--bits and --codebook-layer mix them per layer)"
        )


def check_per_channel(per_channel: bool, size: int, layers: object) -> None:
    """Tables per channel need codebooks: `size` or some `layers` given one."""
    if per_channel and not size and not layers:
        raise TvmqError("--codebook-per-channel: give --codebook K or --codebook-layer LAYER=K")


def parse_codebook_layers(specs: list[str]) -> dict[str, int]:
    """``LAYER=K`` options (repeatable) as {layer name: centroids}."""
    chosen = {}
    for spec in specs:
        name, _, size = spec.rpartition("=")
        if not name or not size.isdigit():
            raise TvmqError(f"--codebook-layer {spec}: expected LAYER=K, e.g. conv2d#1=16")
        check_codebook_size(int(size), f"--codebook-layer {spec}")
        chosen[name] = int(size)
    return chosen


def layer_codebooks(
    annotation: Annotation, default_size: int, explicit: dict[str, int], bits: dict[str, int]
) -> dict[str, int]:
    """Centroids by op name for the codebook layers of `annotation`: those named in
    `explicit` (by op name), and with `default_size` every inner weighted layer that
    `bits` (the layers given weight bits explicitly) leaves alone. A layer without
    weights, or one also given 4-bit weights, is refused by name."""
    if default_size:
        check_codebook_size(default_size, f"--codebook {default_size}")
    for name, size in explicit.items():
        op = low_bit_op(annotation, name, "--codebook-layer", size, "codebooks")
        if bits.get(name, 8) != 8:
            raise TvmqError(
                f"--codebook-layer {op.label}={size}: {op.label} is also given "
                f"{bits[name]}-bit weights; a layer takes one or the other"
            )
    weighted, ends = weighted_ops(annotation)
    chosen = dict(explicit)
    if default_size:
        for op in weighted:
            if op.name not in ends and op.name not in bits and op.kind in LOW_BIT_KINDS:
                chosen.setdefault(op.name, default_size)
    return chosen


def cluster(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`values` (int8) with each element replaced by the nearest of at most `size`
    centroids, and the sorted int8 centroids."""
    points, counts = np.unique(values.astype(np.int64), return_counts=True)
    zero = points == 0
    keep_zero = zero.any() and counts[zero].sum() >= ZERO_SHARE * values.size and size > 2
    if keep_zero:
        centroids = kmeans_1d(points[~zero], counts[~zero], size - 1)
        centroids = np.union1d(centroids, [0])
    else:
        centroids = kmeans_1d(points, counts, size)
    table = centroids.astype(np.int8)
    # Nearest centroid of each distinct value (ties to the smaller), then per element.
    distance = np.abs(points[:, None] - centroids[None, :])
    nearest = table[np.argmin(distance, axis=1)]
    clustered = nearest[np.searchsorted(points, values.astype(np.int64))]
    return clustered.astype(np.int8).reshape(values.shape), table


def kmeans_1d(points: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    """Sorted distinct integer centroids (at most `size`) minimising the squared error
    of sorted distinct `points` weighted by `counts`: the optimal grouping into
    contiguous runs by dynamic programming, each centroid its run's rounded mean."""
    n = points.size
    if n <= size:
        return points.copy()
    x, w = points.astype(np.float64), counts.astype(np.float64)
    # Prefix sums: the cost of run [i, j] is sum w x^2 - (sum w x)^2 / sum w.
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cx = np.concatenate([[0.0], np.cumsum(w * x)])
    cxx = np.concatenate([[0.0], np.cumsum(w * x * x)])

    def cost(starts: np.ndarray, end: np.ndarray) -> np.ndarray:  # runs [starts, end)
        weight = cw[end] - cw[starts]
        total = cx[end] - cx[starts]
        return cxx[end] - cxx[starts] - total * total / weight

    # best[m][j]: least cost of the first j points in m + 1 runs; start[m][j]: where
    # the last run begins (the first least, as a scan over the starts would pick).
    best = np.full((size, n + 1), np.inf)
    start = np.zeros((size, n + 1), dtype=np.int64)
    best[0, 1:] = cost(np.zeros(n, dtype=np.int64), np.arange(1, n + 1))
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    with np.errstate(divide="ignore", invalid="ignore"):
        runs = np.where(i < j, cost(i, j), np.inf)  # runs[i, j]: the run [i, j)
    for m in range(1, size):
        total = np.where(i >= m, best[m - 1][:, None] + runs, np.inf)
        start[m] = np.argmin(total, axis=0)
        best[m] = total[start[m], np.arange(n + 1)]
    bounds, end = [], n
    for m in range(size - 1, -1, -1):
        begin = int(start[m, end]) if m else 0
        bounds.append((begin, end))
        end = begin
    means = [(cx[j] - cx[i]) / (cw[j] - cw[i]) for i, j in reversed(bounds)]
    return np.unique(np.clip(np.round(means), -127, 127).astype(np.int64))


def clustered(quantized: QuantizedWeight, size: int, per_channel: bool = False) -> QuantizedWeight:
    """`quantized` with its int8 values clustered into `size` centroids (0: as it
    is), one set for the layer or, with `per_channel`, one per output channel where
    that saves flash (:func:`tables_per_channel`). Each
    channel's scale is then refitted by least squares to the clustered values (scales
    are free: they only change the requantization multipliers) and every weight
    re-assigned to the centroid of its table nearest to its int8 value at that scale:
    measured on IC, 78 -> 81 % top-1."""
    if not size:
        return quantized
    axis, count = quantized.axis, quantized.values.shape[quantized.axis]
    rows = np.moveaxis(quantized.values, axis, 0).reshape(count, -1)
    if tables_per_channel(quantized, per_channel):
        values, tables = zip(*(cluster(row, size) for row in rows), strict=True)
        values = np.stack(values)
    else:
        values, table = cluster(rows, size)
        tables = [table] * count
    weight = rows.astype(np.float64) * quantized.scale[:, None]
    scale = _refitted_scale(quantized.scale, weight, values)
    at_scale = weight / scale[:, None].astype(np.float64)
    chosen = np.empty(rows.shape, dtype=np.int8)
    for channel, table in enumerate(tables):
        nearest = np.argmin(np.abs(at_scale[channel, :, None] - table.astype(np.float64)), axis=-1)
        chosen[channel] = table[nearest]
    shape = list(np.moveaxis(quantized.values, axis, 0).shape)
    values = np.moveaxis(chosen.reshape(shape), 0, axis)
    return dataclasses.replace(quantized, values=values, scale=scale)


def _refitted_scale(scale: np.ndarray, weight: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per channel (row), the scale at which the int8 `levels` best approximate the
    float `weight` rows in least squares (the old `scale` where none is positive)."""
    levels = levels.astype(np.float64)
    fit = (weight * levels).sum(axis=1) / np.maximum((levels * levels).sum(axis=1), 1e-30)
    return np.where(fit > 0, fit, scale).astype(np.float32)


def tables_per_channel(quantized: QuantizedWeight, per_channel: bool) -> bool:
    """Whether `quantized` takes one table per output channel when `per_channel`
    tables were asked for: where its channels have PER_CHANNEL_FROM weights or more."""
    return (
        per_channel
        and quantized.values.size >= PER_CHANNEL_FROM * quantized.values.shape[quantized.axis]
    )


def codebook_table(quantized: QuantizedWeight, per_channel: bool = False) -> list:
    """The centroids a clustered weight takes, as the model's report records them:
    one sorted list, or (:func:`tables_per_channel`) one per output channel."""
    if not tables_per_channel(quantized, per_channel):
        return [int(v) for v in np.unique(quantized.values)]
    rows = np.moveaxis(quantized.values, quantized.axis, 0)
    return [[int(v) for v in np.unique(row)] for row in rows]
