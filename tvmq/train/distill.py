"""Label-free distillation: the float model teaches its quantized self.

Only unlabelled inputs are needed. The teacher's outputs on the training half are
computed once (its host build); a classifier's (a probability distribution per
sample, read as logits through log) become soft targets at a temperature and the
student minimises the KL divergence of its integer logits' softmax to them (scaled
by the temperature squared, as Hinton et al. do); any other output is matched
directly by mean squared error. Validation reports that divergence on the odd half
and the accuracy there: against the labels when the data has them, else agreement
with the teacher's top-1; an output of more than two dims (a feature map, a
spectrogram) has no top-1, and its score is minus the mean squared error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import relax

from tvmq.data import LabelledData, Split, model_input
from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.train.engine import Engine
from tvmq.train.fake_quant import Loss
from tvmq.train.finetune import (
    FinetuneResult,
    batched_samples,
    calibrated,
    check_enough,
    check_labels,
)
from tvmq.train.loop import TrainOptions, train

TEMPERATURE = 2.0
PROBABILITY_TOLERANCE = 1e-3  # rows summing to 1 within this are softmax outputs


def kl_divergence(temperature: float) -> Loss:
    """T^2 x cross-entropy of softmax(logits / T) against the teacher's softened
    distribution: the KL divergence plus the teacher's entropy (no gradient)."""

    def loss(builder: relax.BlockBuilder, logits: relax.Expr, targets: relax.Var) -> relax.Expr:
        scaled = relax.op.divide(logits, relax.const(temperature, "float32"))
        log_probabilities = builder.emit(relax.op.nn.log_softmax(scaled, axis=-1))
        cross = relax.op.nn.cross_entropy_with_logits(log_probabilities, targets)
        return relax.op.multiply(cross, relax.const(temperature**2, "float32"))

    return loss


def mean_squared_error(
    builder: relax.BlockBuilder, logits: relax.Expr, targets: relax.Var
) -> relax.Expr:
    difference = builder.emit(relax.op.subtract(logits, targets))
    return relax.op.mean(relax.op.multiply(difference, difference))


def unlabelled_arrays(model: Model, data: LabelledData, indices: Sequence[int]) -> np.ndarray:
    if data.windows:
        raise TvmqError(f"{data.source}: distillation of windowed (anomaly) data is not supported")
    spec = model.inputs[0]
    return np.stack([model_input(value, spec, data) for value, _ in data.values(indices)])


def distillation_split(data: LabelledData) -> Split:
    """The shared split, interleaved for unlabelled data too (which has no evaluation
    half when it only calibrates)."""
    if data.train_size is not None:
        return data.split()
    return Split(range(0, data.size, 2), range(1, data.size, 2))


def teacher_outputs(teacher: Model, x: np.ndarray) -> np.ndarray:
    """The teacher's first output for each sample (N, classes), by its host build."""
    executable = teacher.build("host")
    return np.stack([executable(sample)[0].reshape(-1) for sample in x]).astype(np.float32)


def is_distribution(outputs: np.ndarray) -> bool:
    return bool((outputs >= 0).all()) and bool(
        np.allclose(outputs.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)
    )


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the teacher's distribution at temperature T."""
    logits = np.log(np.maximum(probabilities.astype(np.float64), 1e-30)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def entropy(distributions: np.ndarray) -> float:
    """Mean entropy of the rows: the constant between cross-entropy and KL."""
    p = distributions.astype(np.float64)
    return float(-(p * np.log(np.maximum(p, 1e-30))).sum(axis=1).mean())


def divergence(engine: Engine, x: np.ndarray, targets: np.ndarray, temperature: float | None):
    """Mean KL (T^2 scaled) or squared error to the teacher over the full batches."""
    values = []
    for start in range(0, len(x) - engine.batch + 1, engine.batch):
        chosen = slice(start, start + engine.batch)
        loss = engine.loss(x[chosen], targets[chosen])
        if temperature is not None:
            loss -= temperature**2 * entropy(targets[chosen])
        values.append(loss)
    return float(np.mean(values)) if values else float("inf")


def distill(
    model: Model,
    data: LabelledData,
    options: TrainOptions,
    teacher: Model | None = None,
    temperature: float = TEMPERATURE,
) -> FinetuneResult:
    """Distil `teacher` (default: the float `model` itself, calibrated first) into the
    quantized model on `data`'s inputs; labels, if any, only score."""
    options.check()
    if not temperature > 0:
        raise TvmqError(f"temperature {temperature} must be positive")
    split = distillation_split(data)
    x_train = unlabelled_arrays(model, data, split.calibration)
    x_val = unlabelled_arrays(model, data, split.evaluation)
    check_enough(len(x_train), options.batch, data.source)
    float_model, quantized = calibrated(model, x_train, data.source)
    teacher = teacher or float_model
    if teacher is None:
        raise TvmqError(
            f"{model.source}: --distill needs the float model as teacher: this model is "
            "quantized already, so name it with --teacher FLOAT_MODEL"
        )
    if teacher.is_quantized:
        raise TvmqError(f"{teacher.source}: the teacher must be a float model")
    train_outputs, val_outputs = teacher_outputs(teacher, x_train), teacher_outputs(teacher, x_val)
    output = quantized.outputs[0]
    if train_outputs.shape[1] != int(np.prod(output.shape)):
        raise TvmqError(
            f"{teacher.source}: the teacher's output has {train_outputs.shape[1]} values, "
            f"the model's '{output.name}' {list(output.shape)}"
        )
    classifier = is_distribution(train_outputs)
    kept_temperature = temperature if classifier else None
    if classifier:
        loss, train_targets = kl_divergence(temperature), soften(train_outputs, temperature)
        val_targets = soften(val_outputs, temperature)
    else:
        loss, train_targets, val_targets = mean_squared_error, train_outputs, val_outputs
    labels = val_outputs.argmax(axis=1)
    metric = "agreement with the teacher's top-1"
    # A feature map, spectrogram or mask has no top-1: the error itself is the score.
    whole_output = data.labels is None and len(output.shape) > 2
    if whole_output:
        metric = "minus the mean squared error to the teacher"
    if data.labels is not None:
        labels = np.asarray([data.labels[i] for i in split.evaluation], np.int64)
        check_labels(labels, train_outputs.shape[1], output.name, data.source)
        metric = "accuracy"
    engine = Engine(quantized, options.batch, float_model or teacher, loss)
    flat_train, flat_val = batched_samples(x_train), batched_samples(x_val)

    def validation(trained: Engine) -> tuple[float, float]:
        error = divergence(trained, flat_val, val_targets, kept_temperature)
        if whole_output:
            return -error, error
        hits = 0
        for start in range(0, len(flat_val), trained.batch):
            scores = trained.predict(flat_val[start : start + trained.batch])
            chosen = labels[start : start + trained.batch]
            hits += int((scores.reshape(len(scores), -1).argmax(axis=1) == chosen).sum())
        return hits / max(len(flat_val), 1), error

    result = train(engine, flat_train, train_targets, validation, options)
    return FinetuneResult.of(engine, result, metric)
