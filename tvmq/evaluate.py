"""Task metrics of a compiled model on an evaluation set: top-1 accuracy, ROC AUC.

Classification sets give one input and one label per sample. AUC scores an
autoencoder (an output the shape of its input) on labels 0 (normal) and 1
(anomalous): a sample's anomaly score is the mean squared reconstruction error.
The anomaly set (ad01) gives one clip per sample: the model reconstructs each
640-value window and the clip's score is the mean of its windows', as MLPerf Tiny
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


def default_metric(model: Model, data: LabelledData) -> str:
    """AUC for the anomaly-detection set and for autoencoders, top-1 accuracy else."""
    return "auc" if data.windows or _reconstructs(model) else "top1"


def _reconstructs(model: Model) -> bool:
    """The model's output has its input's shape: an autoencoder's reconstruction."""
    return tuple(model.outputs[0].shape) == tuple(model.inputs[0].shape)


def check_metric(model: Model, data: LabelledData, metric: str) -> None:
    """Refuse a metric that cannot mean anything for this model on this data."""
    if metric not in METRICS:
        raise TvmqError(f"unknown metric '{metric}' (known: {', '.join(METRICS)})")
    if data.labels is None:
        raise TvmqError(f"{data.source}: no labels (y) to score {metric} against")
    out = model.outputs[0]
    classes = int(np.prod(out.shape))
    if metric == "auc":
        if data.windows and classes != AD_WINDOW:
            raise TvmqError(
                f"metric auc scores reconstructions: output '{out.name}' "
                f"{list(out.shape)} is not a {AD_WINDOW}-value window"
            )
        if not data.windows and not _reconstructs(model):
            spec = model.inputs[0]
            raise TvmqError(
                f"metric auc scores reconstructions: output '{out.name}' "
                f"{list(out.shape)} does not reconstruct input '{spec.name}' "
                f"{list(spec.shape)}; use --metric top1"
            )
        if not data.windows and data.size and set(np.unique(data.labels)) != {0, 1}:
            raise TvmqError(
                f"{data.source}: metric auc needs labels 0 (normal) and 1 (anomalous), both present"
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
        elif metric == "auc":
            reconstruction = _real(executable(model_input(value, spec, data))[0], out)
            scores.append(float(np.mean((reconstruction - _real(value, spec)) ** 2)))
        else:
            scores.append(int(np.argmax(executable(model_input(value, spec, data))[0])))
        labels.append(label)
    if metric == "top1":
        return float(np.mean(np.array(scores) == np.array(labels)))
    return roc_auc(np.array(scores), np.array(labels))


def _real(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values of a tensor of `spec` (dequantized when it is stored quantized)."""
    if spec.quant is None or values.dtype.kind == "f":
        return values.astype(np.float32).ravel()
    return ((values.astype(np.float32) - spec.quant.zero_point[0]) * spec.quant.scale[0]).ravel()


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties half)."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    if not len(positive) or not len(negative):
        raise TvmqError("AUC needs both normal and anomalous samples")
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))
