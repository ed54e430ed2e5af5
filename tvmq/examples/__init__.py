"""The bundled example: a digits CNN small enough to ship, with its data.

``digits_cnn.onnx`` and ``digits.npz`` are written by :mod:`tvmq.examples.train_digits`
(scikit-learn's 8x8 digits, 80/20 stratified split, seed 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DIGITS_MODEL = HERE / "digits_cnn.onnx"
DIGITS_DATA = HERE / "digits.npz"


def digits_split(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of the 'train' or 'test' split, inputs shaped (N, 1, 1, 8, 8).

    Each inputs[i] is one model input: float32 pixels scaled from 0..16 to 0..1 by
    the archive's `scale` (which lets ``tvmq quantize --calib digits.npz`` read it too).
    """
    with np.load(DIGITS_DATA) as data:
        pixels, labels, scale = data[f"x_{split}"], data[f"y_{split}"], data["scale"]
    return pixels[:, None, None].astype(np.float32) * scale, labels.astype(np.int64)
