"""Calibrators: from the values a tensor takes on real data to the range to quantize.

One small class per method, as in ONNX Runtime: ``collect`` sees each batch of
values, ``compute_range`` returns (min, max). Everything is deterministic: the
same data in the same order gives byte-identical ranges.
"""

from __future__ import annotations

import numpy as np

from tvmq.errors import TvmqError


class Calibrator:
    """Base: subclasses keep whatever statistics they need."""

    name = ""

    def collect(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def compute_range(self) -> tuple[float, float]:
        raise NotImplementedError


class MinMaxCalibrator(Calibrator):
    """The extremes seen over all data."""

    name = "minmax"

    def __init__(self) -> None:
        self.low, self.high = np.inf, -np.inf

    def collect(self, values: np.ndarray) -> None:
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def compute_range(self) -> tuple[float, float]:
        return self.low, self.high


class MovingAverageMinMaxCalibrator(Calibrator):
    """Exponential moving average of each batch's extremes (TensorFlow QAT's observer)."""

    name = "moving-average"

    def __init__(self, averaging_constant: float = 0.01) -> None:
        self.constant = averaging_constant
        self.low: float | None = None
        self.high = 0.0

    def collect(self, values: np.ndarray) -> None:
        low, high = float(values.min()), float(values.max())
        if self.low is None:
            self.low, self.high = low, high
        else:
            self.low += self.constant * (low - self.low)
            self.high += self.constant * (high - self.high)

    def compute_range(self) -> tuple[float, float]:
        return (self.low or 0.0), self.high


class _HistogramCalibrator(Calibrator):
    """Keeps a histogram over [-limit, limit]; the limit doubles when values exceed it.

    Doubling merges bins pairwise into the middle half, so the histogram stays
    exact whatever order the data come in.
    """

    def __init__(self, bins: int = 2048) -> None:
        if bins % 4:
            raise ValueError("bins must be a multiple of 4")
        self.bins = bins
        self.counts = np.zeros(bins, np.int64)
        self.limit = 0.0
        self.low, self.high = np.inf, -np.inf

    def collect(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).ravel()
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        peak = max(abs(self.low), abs(self.high))
        if self.limit == 0.0:
            self.limit = 2.0 ** np.ceil(np.log2(peak)) if peak > 0 else 1.0
        while peak > self.limit:
            folded = self.counts.reshape(-1, 2).sum(axis=1)
            self.counts = np.zeros(self.bins, np.int64)
            quarter = self.bins // 4
            self.counts[quarter : quarter + folded.size] = folded
            self.limit *= 2
        counts, _ = np.histogram(values, bins=self.bins, range=(-self.limit, self.limit))
        self.counts += counts

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(-self.limit, self.limit, self.bins + 1)

    def compute_range(self) -> tuple[float, float]:
        if self.low > self.high:
            raise TvmqError("calibrator saw no data")
        low, high = self._clip_range()
        return float(max(low, self.low)), float(min(high, self.high))

    def _clip_range(self) -> tuple[float, float]:
        raise NotImplementedError


class PercentileCalibrator(_HistogramCalibrator):
    """Clip the tails: the range keeps `percentile` % of the values inside."""

    name = "percentile"

    def __init__(self, percentile: float = 99.999, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 50.0 < percentile <= 100.0:
            raise TvmqError(f"percentile {percentile} is not in (50, 100]")
        self.percentile = percentile

    def _clip_range(self) -> tuple[float, float]:
        cumulative = np.cumsum(self.counts) / self.counts.sum()
        tail = (100.0 - self.percentile) / 100.0 / 2
        edges = self.edges
        low = edges[int(np.searchsorted(cumulative, tail, side="right"))]
        high = edges[int(np.searchsorted(cumulative, 1.0 - tail, side="left")) + 1]
        return float(low), float(high)


class EntropyCalibrator(_HistogramCalibrator):
    """The clipping threshold minimizing the KL divergence between the value
    distribution and its 8-bit quantized version (TensorRT's method), symmetric."""

    name = "entropy"

    def __init__(self, bins: int = 2048, levels: int = 128) -> None:
        super().__init__(bins)
        self.levels = levels

    def _clip_range(self) -> tuple[float, float]:
        half = self.bins // 2
        magnitude = self.counts[half:] + self.counts[:half][::-1]  # histogram of |x|
        width = self.limit / half
        best, best_divergence = half, np.inf
        for stop in range(self.levels, half + 1, max(1, half // 256)):
            divergence = _kl_after_quantization(magnitude, stop, self.levels)
            if divergence < best_divergence:
                best, best_divergence = stop, divergence
        threshold = best * width
        return -threshold, threshold


def _kl_after_quantization(magnitude: np.ndarray, stop: int, levels: int) -> float:
    """KL(P || Q): P clips the histogram at `stop` bins (outliers into the last bin),
    Q is the unclipped part quantized to `levels` levels and expanded back."""
    clipped = magnitude[:stop].astype(np.float64)
    reference = clipped.copy()
    reference[-1] += magnitude[stop:].sum()
    if reference.sum() == 0:
        return np.inf
    candidate = np.zeros(stop)
    # The bin at zero keeps a level of its own: after ReLU it holds a spike that
    # must not be smeared over its neighbours (zero is exactly representable).
    groups = [np.array([0]), *np.array_split(np.arange(1, stop), levels - 1)]
    for group in groups:
        nonzero = clipped[group] > 0
        if nonzero.any():
            candidate[group[nonzero]] = clipped[group].sum() / nonzero.sum()
    if candidate.sum() == 0:
        return np.inf
    p = _smooth(reference / reference.sum())
    q = _smooth(candidate / candidate.sum())
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _smooth(distribution: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    """Move a little mass onto empty bins so the divergence stays finite (as MXNet does)."""
    empty = distribution == 0
    if empty.all() or not empty.any():
        return distribution
    taken = epsilon * empty.sum() / (~empty).sum()
    return np.maximum(distribution + np.where(empty, epsilon, -taken), epsilon * 1e-6)


class MSECalibrator(_HistogramCalibrator):
    """The range, shrunk from the extremes, with the least expected squared error
    after 8-bit asymmetric quantization (clipping error against rounding error)."""

    name = "mse"

    def __init__(self, bins: int = 2048, candidates: int = 100) -> None:
        super().__init__(bins)
        self.candidates = candidates

    def _clip_range(self) -> tuple[float, float]:
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        weights = self.counts.astype(np.float64)

        def error(low: float, high: float) -> float:
            scale = (high - low) / 255.0 or 1.0
            quantized = np.clip(np.round((centres - low) / scale), 0, 255) * scale + low
            return float(np.sum(weights * (centres - quantized) ** 2))

        # Coordinate descent: the best upper end for the current lower end, and back.
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        shrink = np.linspace(1.0, 0.05, self.candidates)
        for _ in range(2):
            high = min((high * f for f in shrink), key=lambda h: error(low, h))
            low = min((low * f for f in shrink), key=lambda lo: error(lo, high))
        return low, high


CALIBRATORS: dict[str, type[Calibrator]] = {
    c.name: c
    for c in (
        MinMaxCalibrator,
        MovingAverageMinMaxCalibrator,
        PercentileCalibrator,
        EntropyCalibrator,
        MSECalibrator,
    )
}


def make_calibrator(name: str, **options) -> Calibrator:
    if name not in CALIBRATORS:
        raise TvmqError(f"unknown calibrator '{name}' (known: {', '.join(CALIBRATORS)})")
    return CALIBRATORS[name](**options)
