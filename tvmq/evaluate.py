"""Task metrics of a compiled model on an evaluation set: top-1 accuracy, ROC AUC.

Classification sets give one input and one label per sample. The anomaly set
(ad01) gives one clip per sample: the model reconstructs each 640-value window
and the clip's score is the mean squared reconstruction error, as MLPerf Tiny
scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tvmq.datasets import MLPerfTinySet, ad_windows, as_model_input
from tvmq.errors import TvmqError
from tvmq.fileio import read_array
from tvmq.model import Model, TensorSpec

METRICS = ("top1", "auc")


@dataclass(frozen=True)
class LabelledData:
    """Real-valued samples with labels, from an MLPerf Tiny folder or a .npz file."""

    values: Callable[[range], Iterator[tuple[np.ndarray, int]]]
    size: int
    windows: bool = False
    source: str = "data"  # the folder or file, for error messages

    def split(self, fraction: float) -> tuple[range, range]:
        """The first `fraction` of samples (calibration) and the rest (evaluation)."""
        if not 0.0 <= fraction < 1.0:
            raise TvmqError(f"fraction {fraction} is not in [0, 1)")
        cut = round(self.size * fraction)
        return range(0, cut), range(cut, self.size)


def open_data(path: str | Path) -> LabelledData:
    """An MLPerf Tiny folder (ic01, vww01, kws01, ad01) or a .npz with arrays x and y."""
    path = Path(path)
    if path.is_dir():
        dataset = MLPerfTinySet(path)
        size = len(dataset)
        return LabelledData(
            lambda part: ((s.value, s.label) for s in dataset.samples(part.start, part.stop)),
            size,
            windows=dataset.kind == "ad01",
            source=str(path),
        )
    if path.suffix != ".npz":
        raise TvmqError(f"{path}: data must be an MLPerf Tiny folder or a .npz with x and y")
    if not path.is_file():
        raise TvmqError(f"{path}: no such file")
    try:
        with np.load(path) as archive:
            x, y = archive["x"], archive["y"]
    except (KeyError, ValueError, OSError) as error:
        raise TvmqError(f"{path}: needs arrays 'x' and 'y' ({error})") from error
    if len(x) != len(y):
        raise TvmqError(f"{path}: {len(x)} samples in x but {len(y)} labels in y")
    return LabelledData(
        lambda part: zip(
            x[part.start : part.stop], (int(v) for v in y[part.start : part.stop]), strict=True
        ),
        len(x),
        source=str(path),
    )


def read_calibration(path: str | Path, spec: TensorSpec) -> np.ndarray:
    """Calibration inputs from a .npy (N, *shape) file."""
    array = read_array(path)
    if array.shape[1:] != spec.shape:
        raise TvmqError(
            f"{path}: shape {list(array.shape)} is not a batch of input "
            f"'{spec.name}' {list(spec.shape)}"
        )
    return array


def model_inputs(data: LabelledData, spec: TensorSpec, indices: range, every_window: int = 1):
    """Model-ready inputs (one list per inference) of the samples in `indices`."""
    for value, _ in data.values(indices):
        windows = ad_windows(value)[::every_window] if data.windows else [value]
        for window in windows:
            yield [_model_input(window, spec, data)]


def evaluate(
    model: Model,
    executable,
    data: LabelledData,
    metric: str,
    indices: range,
    *,
    progress: bool = True,
) -> float:
    """`metric` of the compiled model over the samples of `data` in `indices`.

    ``progress=False`` silences the bar, for callers that evaluate on several
    boards at once and print their own progress lines."""
    if metric not in METRICS:
        raise TvmqError(f"unknown metric '{metric}' (known: {', '.join(METRICS)})")
    if metric == "auc" and not data.windows:
        raise TvmqError("metric auc needs the anomaly-detection set (ad01)")
    spec, out = model.inputs[0], model.outputs[0]
    for value, _ in data.values(indices[:1]):  # data that does not fit fails before the bar
        _model_input(ad_windows(value)[0] if data.windows else value, spec, data)
    scores, labels = [], []
    samples = data.values(indices)
    bar = tqdm(samples, total=len(indices), desc="evaluate", unit="sample", disable=not progress)
    for value, label in bar:
        if data.windows:
            windows = ad_windows(value)
            errors = [
                np.mean((_real(executable(_model_input(w, spec, data))[0], out) - w) ** 2)
                for w in windows
            ]
            scores.append(float(np.mean(errors)))
        else:
            scores.append(int(np.argmax(executable(_model_input(value, spec, data))[0])))
        labels.append(label)
    if metric == "top1":
        return float(np.mean(np.array(scores) == np.array(labels)))
    return roc_auc(np.array(scores), np.array(labels))


def _model_input(value: np.ndarray, spec: TensorSpec, data: LabelledData) -> np.ndarray:
    """A sample as the model's input; a sample that does not fit names the data."""
    try:
        return as_model_input(value, spec)
    except TvmqError as error:
        raise TvmqError(f"{data.source}: {error}") from error


def _real(output: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.quant is None:
        return output.astype(np.float32).ravel()
    return ((output.astype(np.float32) - spec.quant.zero_point[0]) * spec.quant.scale[0]).ravel()


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties half)."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    if not len(positive) or not len(negative):
        raise TvmqError("AUC needs both normal and anomalous samples")
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))
