"""The bundled example model: small, accurate, and equal to onnxruntime on the host."""

from __future__ import annotations

import numpy as np
import onnxruntime

from tvmq.examples import DIGITS_DATA, DIGITS_MODEL, digits_split
from tvmq.frontend import load_model


def test_example_is_small_enough_to_commit():
    assert DIGITS_MODEL.stat().st_size + DIGITS_DATA.stat().st_size < 200_000


def test_example_accuracy_and_agreement_with_onnxruntime():
    inputs, labels = digits_split("test")
    assert len(labels) == 360
    executable = load_model(DIGITS_MODEL).build("host")
    session = onnxruntime.InferenceSession(str(DIGITS_MODEL), providers=["CPUExecutionProvider"])
    hits = 0
    for x, label in zip(inputs, labels, strict=True):
        (got,) = executable(x)
        (want,) = session.run(None, {"input": x})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        hits += int(got.argmax() == label)
    assert hits / len(labels) >= 0.97
