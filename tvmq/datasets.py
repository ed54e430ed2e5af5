"""The MLPerf Tiny sets (``../shared/data``): how their .bin samples decode into real
values, and how a sample becomes a model's input (:mod:`tvmq.data` opens the folders).

Samples are kept in real units (what a float model takes) and quantized for an
int8 model with that model's own input parameters, exactly as TFLite Micro users
feed them (:func:`as_model_input`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError
from tvmq.model import TensorSpec

# How each set's .bin files decode into real values (see shared/data/README.md).
_KWS_SCALE, _KWS_ZERO_POINT = 0.5847029089927673, 83
DECODERS = {
    "ic01": lambda raw: np.frombuffer(raw, np.uint8).astype(np.float32).reshape(32, 32, 3),
    "vww01": lambda raw: (np.frombuffer(raw, np.uint8).astype(np.float32) / 255.0).reshape(
        96, 96, 3
    ),
    "kws01": lambda raw: (
        (np.frombuffer(raw, np.int8).astype(np.float32) - _KWS_ZERO_POINT) * _KWS_SCALE
    ).reshape(49, 10, 1),
    "ad01": lambda raw: np.frombuffer(raw, "<f4").reshape(200, 128),
}
AD_WINDOW, AD_STRIDE = 640, 128
# Bytes per .bin sample of each set: how a folder under another name is recognised.
SAMPLE_BYTES = {"ic01": 32 * 32 * 3, "vww01": 96 * 96 * 3, "kws01": 49 * 10, "ad01": 200 * 128 * 4}


def mlperf_kind(folder: Path, sample_bytes: int) -> str | None:
    """The MLPerf Tiny set a folder holds: by its name, else by its samples' size."""
    if folder.name in DECODERS:
        return folder.name
    kinds = [kind for kind, size in SAMPLE_BYTES.items() if size == sample_bytes]
    return kinds[0] if kinds else None


def ad_windows(spectrogram: np.ndarray) -> np.ndarray:
    """The anomaly-detection clip as overlapping 640-value windows, shape (N, 640)."""
    flat = spectrogram.reshape(-1)
    starts = range(0, flat.size - AD_WINDOW + 1, AD_STRIDE)
    return np.stack([flat[s : s + AD_WINDOW] for s in starts])


def as_model_input(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A sample shaped and typed for `spec`. A sample already of the input's type is
    fed as it is; any other holds real values, quantized if the input is integer."""
    value = np.asarray(value)
    if value.size != int(np.prod(spec.shape)):
        raise TvmqError(
            f"a sample of shape {list(value.shape)} does not fit input '{spec.name}' "
            f"{spec.dtype}{list(spec.shape)}"
        )
    if value.dtype == np.dtype(spec.dtype):
        return value.reshape(spec.shape)
    value = value.astype(np.float32).reshape(spec.shape)
    if spec.quant is None:
        return value.astype(spec.dtype)
    if not spec.quant.per_tensor:
        raise TvmqError(f"input '{spec.name}': per-axis quantized inputs are not supported")
    info = np.iinfo(spec.dtype)
    quantized = np.round(value / np.float32(spec.quant.scale[0])) + spec.quant.zero_point[0]
    return np.clip(quantized, info.min, info.max).astype(spec.dtype)
