"""Each calibrator on distributions with a known answer; determinism; exact histograms."""

from __future__ import annotations

import numpy as np
import pytest

from tvmq.errors import TvmqError
from tvmq.quantize.calibrators import (
    CALIBRATORS,
    EntropyCalibrator,
    MinMaxCalibrator,
    MovingAverageMinMaxCalibrator,
    PercentileCalibrator,
    make_calibrator,
)

RNG = np.random.default_rng(5)
GAUSSIAN = RNG.standard_normal(100_000).astype(np.float32)


def test_minmax_is_the_extremes():
    calibrator = MinMaxCalibrator()
    for batch in np.split(GAUSSIAN, 10):
        calibrator.collect(batch)
    assert calibrator.compute_range() == (float(GAUSSIAN.min()), float(GAUSSIAN.max()))


def test_moving_average_follows_its_formula():
    calibrator = MovingAverageMinMaxCalibrator(averaging_constant=0.5)
    calibrator.collect(np.array([-2.0, 2.0]))
    calibrator.collect(np.array([-4.0, 6.0]))
    assert calibrator.compute_range() == (-3.0, 4.0)


def test_percentile_clips_the_tails_of_uniform_data():
    calibrator = PercentileCalibrator(percentile=99.0)
    calibrator.collect(RNG.uniform(-1, 1, 200_000))
    low, high = calibrator.compute_range()
    assert -0.995 < low < -0.985 and 0.985 < high < 0.995


@pytest.mark.parametrize(
    ("name", "options"), [("percentile", {"percentile": 99.99}), ("entropy", {})]
)
def test_clipping_calibrators_ignore_a_far_outlier(name, options):
    calibrator = make_calibrator(name, **options)
    calibrator.collect(np.concatenate([GAUSSIAN, [80.0]]))
    _, high = calibrator.compute_range()
    assert high < 20.0


def quantization_error(values: np.ndarray, low: float, high: float) -> float:
    scale = (high - low) / 255
    return float(
        np.sum((values - (np.clip(np.round((values - low) / scale), 0, 255) * scale + low)) ** 2)
    )


def test_mse_range_is_near_the_least_error_range():
    values = np.concatenate([RNG.laplace(0, 1, 50_000), [60.0, -40.0]])
    calibrator = make_calibrator("mse")
    calibrator.collect(values)
    chosen = quantization_error(values, *calibrator.compute_range())
    fractions = np.linspace(0.05, 1.0, 30)
    best = min(
        quantization_error(values, values.min() * a, values.max() * b)
        for a in fractions
        for b in fractions
    )
    assert chosen < quantization_error(values, values.min(), values.max())
    assert chosen < 1.05 * best


def test_entropy_keeps_relu_outputs_unclipped_when_nothing_stands_out():
    calibrator = EntropyCalibrator()
    calibrator.collect(np.maximum(GAUSSIAN, 0))
    low, high = calibrator.compute_range()
    assert low == 0.0 and high > 0.8 * GAUSSIAN.max()


def test_histogram_growth_is_exact():
    """Data seen in two steps (the range doubling in between) bins as if seen at once."""
    small, large = RNG.uniform(-0.9, 0.9, 5000), RNG.uniform(-3.5, 3.5, 5000)
    stepwise = PercentileCalibrator()
    stepwise.collect(small)
    stepwise.collect(large)
    at_once = PercentileCalibrator()
    at_once.collect(large)
    at_once.collect(small)
    assert stepwise.limit == at_once.limit == 4.0
    np.testing.assert_array_equal(stepwise.counts, at_once.counts)


@pytest.mark.parametrize("name", sorted(CALIBRATORS))
def test_same_data_same_range(name):
    ranges = []
    for _ in range(2):
        calibrator = make_calibrator(name)
        for batch in np.split(GAUSSIAN, 4):
            calibrator.collect(batch)
        ranges.append(calibrator.compute_range())
    assert ranges[0] == ranges[1]


def test_unknown_calibrator_and_bad_percentile():
    with pytest.raises(TvmqError, match="unknown calibrator 'magic'"):
        make_calibrator("magic")
    with pytest.raises(TvmqError, match="percentile 10"):
        make_calibrator("percentile", percentile=10)
