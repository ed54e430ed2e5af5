"""Task metrics of a compiled model on an evaluation set: top-1 accuracy, ROC AUC.

Classification sets give one input and one label per sample. The anomaly set
(ad01) gives one clip per sample: the model reconstructs each 640-value window
and the clip's score is the mean squared reconstruction error, as MLPerf Tiny
scores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from tvmq.data import LabelledData, model_input
from tvmq.datasets import AD_WINDOW, ad_windows
from tvmq.errors import TvmqError
from tvmq.model import Model, TensorSpec

METRICS = ("top1", "auc")


def default_metric(data: LabelledData) -> str:
    """AUC for the anomaly-detection set, top-1 accuracy for any other."""
    return "auc" if data.windows else "top1"


def check_metric(model: Model, data: LabelledData, metric: str) -> None:
    """Refuse a metric that cannot mean anything for this model on this data."""
    if metric not in METRICS:
        raise TvmqError(f"unknown metric '{metric}' (known: {', '.join(METRICS)})")
    if data.labels is None:
        raise TvmqError(f"{data.source}: no labels (y) to score {metric} against")
    out = model.outputs[0]
    classes = int(np.prod(out.shape))
    if metric == "auc":
        if not data.windows:
            raise TvmqError(
                f"metric auc scores anomaly detection: {data.source} is not the "
                "anomaly-detection set (ad01); use --metric top1"
            )
        if classes != AD_WINDOW:
            raise TvmqError(
                f"metric auc scores reconstructions: output '{out.name}' "
                f"{list(out.shape)} is not a {AD_WINDOW}-value window"
            )
        return
    if data.windows:
        raise TvmqError(
            f"metric top1 scores classes: {data.source} is the anomaly-detection set; "
            "use --metric auc"
        )
    spec = model.inputs[0]
    if tuple(out.shape) == tuple(spec.shape) or classes < 2:
        raise TvmqError(
            f"metric top1 needs one score per class: output '{out.name}' "
            f"{list(out.shape)} is not a class vector"
        )
    if data.size and int(np.max(data.labels)) >= classes:
        raise TvmqError(
            f"{data.source}: label {int(np.max(data.labels))} is beyond the {classes} "
            f"classes of output '{out.name}'"
        )


def check_data(model: Model, data: LabelledData, metric: str, indices: Sequence[int]) -> None:
    """Refuse a metric, or samples, that do not fit the model (cheap: one sample)."""
    check_metric(model, data, metric)
    if not len(indices):
        raise TvmqError(f"{data.source}: no samples to evaluate on")
    for value, _ in data.values(indices[:1]):
        model_input(ad_windows(value)[0] if data.windows else value, model.inputs[0], data)


def evaluate(
    model: Model,
    executable,
    data: LabelledData,
    metric: str,
    indices: Sequence[int],
    *,
    progress: bool = True,
) -> float:
    """`metric` of the compiled model over the samples of `data` in `indices`.

    ``progress=False`` silences the bar, for callers that evaluate on several
    boards at once and print their own progress lines."""
    check_data(model, data, metric, indices)  # data that does not fit fails before the bar
    spec, out = model.inputs[0], model.outputs[0]
    scores, labels = [], []
    samples = data.values(indices)
    bar = tqdm(samples, total=len(indices), desc="evaluate", unit="sample", disable=not progress)
    for value, label in bar:
        if data.windows:
            windows = ad_windows(value)
            errors = [
                np.mean((_real(executable(model_input(w, spec, data))[0], out) - w) ** 2)
                for w in windows
            ]
            scores.append(float(np.mean(errors)))
        else:
            scores.append(int(np.argmax(executable(model_input(value, spec, data))[0])))
        labels.append(label)
    if metric == "top1":
        return float(np.mean(np.array(scores) == np.array(labels)))
    return roc_auc(np.array(scores), np.array(labels))


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
