"""`tvmq finetune`: labelled quantization-aware fine-tuning of a classifier.

The data is split as every command splits it (tvmq.data): even-indexed samples (or
x_train) train (and calibrate a float model first), odd-indexed ones (or x_test)
validate after every epoch, and the epoch
with the best validation accuracy (then loss) is the one exported. Accuracy is always the
integer model's, as every target computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tvmq.data import LabelledData, model_input
from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train.engine import Engine
from tvmq.train.loop import LoopResult, TrainOptions, train

CALIBRATION_SAMPLES = 500


@dataclass(frozen=True)
class FinetuneResult:
    model: Model  # the best epoch's, QDQ
    start_accuracy: float  # on the validation half, before training
    best_accuracy: float
    best_epoch: int  # 0: training never beat the start
    history: list[dict]  # per validation: mean loss, validation accuracy and loss
    seconds_per_step: float
    note: str = ""
    metric: str = "accuracy"  # what start_accuracy and best_accuracy measure
    start_loss: float = float("nan")  # validation loss (distillation: KL to the teacher)
    best_loss: float = float("nan")

    @classmethod
    def of(cls, engine: Engine, loop: LoopResult, metric: str) -> FinetuneResult:
        """The best epoch's model exported from `engine`, with the loop's figures."""
        return cls(
            engine.export(),
            loop.start[0],
            loop.best[0],
            loop.best_epoch,
            loop.history,
            loop.seconds_per_step,
            loop.note,
            metric,
            loop.start[1],
            loop.best[1],
        )


def labelled_arrays(
    model: Model, data: LabelledData, indices: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The samples at `indices` (default all) as the model's input, and their labels."""
    if data.windows or data.labels is None:
        raise TvmqError(f"{data.source}: labelled fine-tuning needs labelled classification data")
    spec = model.inputs[0]
    chosen = range(data.size) if indices is None else indices
    inputs, labels = [], []
    for value, label in data.values(chosen):
        inputs.append(model_input(value, spec, data))
        labels.append(label)
    return np.stack(inputs), np.asarray(labels, np.int64)


def check_labels(labels: np.ndarray, classes: int, output: str, source: str) -> None:
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise TvmqError(
            f"{source}: label {int(bad[0])} does not fit output '{output}' "
            f"({classes} classes: labels 0..{classes - 1})"
        )


def validate(engine: Engine, x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy on every sample and mean loss over the full batches: the loss breaks
    ties, since a small validation set saturates at 100 % long before training ends."""
    hits, losses = 0, []
    for start in range(0, len(x), engine.batch):
        chosen = slice(start, start + engine.batch)
        scores = engine.predict(x[chosen])
        hits += int((scores.reshape(len(scores), -1).argmax(axis=1) == labels[chosen]).sum())
        if len(scores) == engine.batch:
            losses.append(engine.loss(x[chosen], labels[chosen]))
    return hits / len(x), float(np.mean(losses)) if losses else float("inf")


def finetune(model: Model, data: LabelledData, options: TrainOptions) -> FinetuneResult:
    """Fine-tune `model` (float: calibrated first on the training half) on `data`."""
    options.check()
    x_train, y_train, x_val, y_val = classifier_halves(model, data, "labelled fine-tuning")
    check_enough(len(x_train), options.batch, data.source)
    float_model, model = calibrated(model, x_train, data.source)
    engine = Engine(model, options.batch, float_model)
    flat_val = batched_samples(x_val)
    result = train(
        engine,
        batched_samples(x_train),
        y_train,
        lambda trained: validate(trained, flat_val, y_val),
        options,
    )
    return FinetuneResult.of(engine, result, "accuracy")


def classifier_halves(
    model: Model, data: LabelledData, purpose: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`data`'s training and validation halves (inputs, labels), checked against the
    one classifier output that `purpose` trains."""
    split = data.split()
    x_train, y_train = labelled_arrays(model, data, split.calibration)
    x_val, y_val = labelled_arrays(model, data, split.evaluation)
    output = model.outputs[0]
    if len(model.outputs) != 1 or len(output.shape) != 2:
        raise TvmqError(
            f"{model.name}: {purpose} needs one output of shape (1, classes), "
            f"not '{output.name}' {list(output.shape)}"
        )
    for labels in (y_train, y_val):
        check_labels(labels, int(output.shape[1]), output.name, data.source)
    return x_train, y_train, x_val, y_val


def check_enough(count: int, batch: int, source: str) -> None:
    if count < batch:
        raise TvmqError(f"{source}: {count} training samples, fewer than one batch of {batch}")


def calibrated(model: Model, x_train: np.ndarray, source: str) -> tuple[Model | None, Model]:
    """(float model or None, quantized model): a float `model` is calibrated on the
    first CALIBRATION_SAMPLES training samples, as `tvmq quantize` would."""
    if model.is_quantized:
        return None, model
    calibration = [[sample] for sample in x_train[:CALIBRATION_SAMPLES]]
    return model, quantize_model(model, calibration, origin=source)


def batched_samples(x: np.ndarray) -> np.ndarray:
    """Samples (N, *input shape with batch 1) as one array (N, *rest): rows of a batch."""
    return x.reshape(len(x), *x.shape[2:])
