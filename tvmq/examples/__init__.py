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
    the archive's `scale`, read by :mod:`tvmq.data` as every command reads it (the
    train part calibrates, the test part is scored).
    """
    from tvmq.data import open_data

    data = open_data(DIGITS_DATA)
    train, test = data.split()
    indices = {"train": train, "test": test}[split]
    pixels = np.stack([data.sample(index) for index in indices])
    return pixels[:, None, None], data.labels[indices].astype(np.int64)
