"""The MLPerf Tiny models and data beside the checkout (../shared), skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models" / "mlperf-tiny"
DATA = SHARED / "data"

# Each shared model and the evaluation set it reads.
MLPERF_MODELS = {
    "ic_resnet8_float": "ic01",
    "ic_resnet8_int8": "ic01",
    "vww_mobilenet_float": "vww01",
    "vww_mobilenet_int8": "vww01",
    "kws_dscnn_int8": "kws01",
    "kws_dscnn_hybrid": "kws01",
    "ad_autoencoder_float": "ad01",
    "ad_autoencoder_int8": "ad01",
}


def shared_model(name: str) -> Path:
    """Path of a shared MLPerf Tiny model, skipping the test when ../shared is absent."""
    path = MODELS / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} absent: the MLPerf Tiny models live in ../shared")
    return path


def shared_data(name: str) -> Path:
    path = DATA / name
    if not (path / "y_labels.csv").is_file():
        pytest.skip(f"{path} absent: the MLPerf Tiny data live in ../shared")
    return path
