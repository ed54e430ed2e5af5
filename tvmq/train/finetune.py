"""`tvmq finetune`: labelled quantization-aware fine-tuning of a classifier.

The data is split as every command splits it (tvmq.data): even-indexed samples (or
x_train) train (and calibrate a float model first), odd-indexed ones (or x_test)
validate after every epoch, and the epoch
with the best validation accuracy (then loss) is the one exported. Accuracy is always the
integer model's, as every target computes it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from tvmq.data import LabelledData, model_input
from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train.engine import Engine
from tvmq.train.optimizers import make_optimizer

CALIBRATION_SAMPLES = 500


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 10
    lr: float = 1e-4
    batch: int = 32
    seed: int = 0
    optimizer: str = "adam"


@dataclass(frozen=True)
class FinetuneResult:
    model: Model  # the best epoch's, QDQ
    start_accuracy: float  # on the validation half, before training
    best_accuracy: float
    best_epoch: int  # 0: training never beat the start
    history: list[dict]  # per epoch: mean loss, validation accuracy
    seconds_per_step: float
    note: str = ""


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


def finetune(model: Model, data: LabelledData, options: FinetuneOptions) -> FinetuneResult:
    """Fine-tune `model` (float: calibrated first on the training half) on `data`."""
    if options.epochs < 1 or options.batch < 1:
        raise TvmqError("--epochs and --batch-size must be at least 1")
    split = data.split()
    x_train, y_train = labelled_arrays(model, data, split.calibration)
    x_val, y_val = labelled_arrays(model, data, split.evaluation)
    output = model.outputs[0]
    if len(model.outputs) != 1 or len(output.shape) != 2:
        raise TvmqError(
            f"{model.name}: labelled fine-tuning needs one output of shape (1, classes), "
            f"not '{output.name}' {list(output.shape)}"
        )
    for labels in (y_train, y_val):
        check_labels(labels, int(output.shape[1]), output.name, data.source)
    if len(x_train) < options.batch:
        raise TvmqError(
            f"{data.source}: {len(x_train)} training samples, fewer than one batch of "
            f"{options.batch}"
        )
    float_model = None
    if not model.is_quantized:
        calibration = [[sample] for sample in x_train[:CALIBRATION_SAMPLES]]
        float_model, model = model, quantize_model(model, calibration, origin=data.source)
    engine = Engine(model, options.batch, float_model)
    optimizer = make_optimizer(options.optimizer, options.lr)
    rng = np.random.default_rng(options.seed)
    flat_train, flat_val = _batched(x_train), _batched(x_val)
    start = best = validate(engine, flat_val, y_val)
    best_state, best_epoch, history, note = engine.state(), 0, [], ""
    steps, elapsed = 0, 0.0
    for epoch in range(1, options.epochs + 1):
        order = rng.permutation(len(flat_train))
        batches = len(order) // options.batch
        losses = []
        progress = tqdm(range(batches), desc=f"epoch {epoch}/{options.epochs}", unit="step")
        for index in progress:
            chosen = order[index * options.batch : (index + 1) * options.batch]
            began = time.perf_counter()
            loss, grads = engine.gradients(flat_train[chosen], y_train[chosen])
            if not np.isfinite(loss):
                note = f"loss became {loss} in epoch {epoch}: stopped, kept the best epoch"
                break
            optimizer.step(engine.parameters(), grads)
            elapsed += time.perf_counter() - began
            steps += 1
            losses.append(loss)
            progress.set_postfix(loss=f"{np.mean(losses):.4f}")
        progress.close()
        if note:
            break
        current = validate(engine, flat_val, y_val)
        history.append(
            {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "validation_accuracy": current[0],
                "validation_loss": current[1],
            }
        )
        print(
            f"epoch {epoch}: loss {np.mean(losses):.4f}, validation accuracy "
            f"{current[0]:.4f}, validation loss {current[1]:.4f}"
        )
        if (current[0], -current[1]) > (best[0], -best[1]):
            best, best_state, best_epoch = current, engine.state(), epoch
    engine.load_state(best_state)
    return FinetuneResult(
        engine.export(), start[0], best[0], best_epoch, history, elapsed / max(steps, 1), note
    )


def _batched(x: np.ndarray) -> np.ndarray:
    """Samples (N, *input shape with batch 1) as one array (N, *rest): rows of a batch."""
    return x.reshape(len(x), *x.shape[2:])
