"""Structure of the PTQ benchmark's latency figures: no timings are asserted."""

from __future__ import annotations

import numpy as np
import pytest

from bench.ptq_accuracy import latency_us, onnxruntime_builds
from tvmq.examples import DIGITS_MODEL, digits_split


def test_latency_is_positive_median_below_p90():
    figures = latency_us(lambda x: [x * 2], np.ones((1, 4), np.float32), runs=10)
    assert set(figures) == {"median", "p90"}
    assert 0 < figures["median"] <= figures["p90"]


def test_onnxruntime_float_and_int8_sessions_run_the_example(tmp_path):
    pytest.importorskip("onnxruntime")
    inputs, _ = digits_split("train")
    builds = onnxruntime_builds(DIGITS_MODEL, [[x] for x in inputs[:8]], 1, tmp_path)
    assert set(builds) == {"onnxruntime_float", "onnxruntime_int8"}
    for infer, how in builds.values():
        (probabilities,) = infer(inputs[0])
        assert probabilities.shape == (1, 10) and how
