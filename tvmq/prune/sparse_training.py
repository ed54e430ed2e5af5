"""Pruning with sparsity-preserving quantization-aware fine-tuning.

The training engine (tvmq.train) trains the int8 model's latent float weights;
:class:`MaskedStep` wraps its optimizer so that after every step the masks are
applied again (and, on the schedule's turns, recomputed from the weights'
magnitudes). Weights are int8 with zero point 0 (the only kind the engine trains),
so a zero latent weight rounds to exactly 0 and stays 0 in the exported model.
Unstructured and block sparsity rise gradually (TF-MOT's polynomial decay) over the
first part of fine-tuning; N:M is imposed at once. Only epochs at the final
sparsity compete for the exported model. By default the first layer, depthwise
layers and the classifier stay dense (see `sensitive_note`) and the target applies to
the other layers' weights; with `distill` the pruned model learns the unpruned int8
model's softened outputs (Hinton et al.'s logits distillation) instead of the labels.
Weights are removed with their mean contribution moved into the bias
(:mod:`tvmq.prune.mean_correction`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tvmq.data import LabelledData
from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.prune.compensation import lost_contribution
from tvmq.prune.layers import PrunableLayer, prunable_layers, sensitive_note, skipped_note
from tvmq.prune.masks import Pattern, check_sparsity
from tvmq.prune.mean_correction import input_means
from tvmq.prune.schedule import PolynomialDecay
from tvmq.prune.sensitivity import allocate, layer_losses
from tvmq.quantize.quantizer import quantize_model
from tvmq.train.distill import TEMPERATURE, is_distribution, kl_divergence, soften
from tvmq.train.engine import Engine
from tvmq.train.fake_quant import cross_entropy
from tvmq.train.finetune import (
    CALIBRATION_SAMPLES,
    check_enough,
    classifier_halves,
    validate,
)
from tvmq.train.layers import find_layers, plain_weights
from tvmq.train.optimizers import make_optimizer

SENSITIVITY_SAMPLES = 64


@dataclass(frozen=True)
class SparsityOptions:
    sparsity: float | None  # global target; None with an N:M pattern (1 - N/M)
    pattern: Pattern = field(default_factory=Pattern)
    per_layer: str = "sensitivity"  # or "uniform": every layer at the target
    epochs: int = 10
    lr: float = 1e-4
    batch: int = 32
    seed: int = 0
    optimizer: str = "adam"
    ramp: float = 0.5  # share of the fine-tuning steps over which sparsity rises
    all_layers: bool = False  # also prune the first layer, depthwise ones, the classifier
    distill: bool = False  # learn the unpruned model's softened outputs, not the labels
    correct_bias: bool = True  # move removed weights' mean contribution into the bias


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    weights: int
    kept: int  # nonzero int8 weights after fine-tuning
    note: str = ""  # why the layer was left dense


@dataclass(frozen=True)
class SparsityResult:
    model: Model  # QDQ, the best epoch at the final sparsity
    dense_model: Model  # QDQ, before pruning
    layers: list[LayerSparsity]
    dense_accuracy: float  # the int8 model before pruning, on the validation half
    pruned_accuracy: float  # pruned at once to the final masks, before fine-tuning
    accuracy: float  # after fine-tuning
    best_epoch: int
    history: list[dict]


def remove(layer: PrunableLayer, mask: np.ndarray, mean: np.ndarray | None) -> None:
    """Zero the weights outside `mask`; with the layer's input `mean`, their mean
    contribution moves into its bias."""
    weight, bias = layer.layer.weight, layer.layer.bias
    if mean is not None and bias is not None:
        lost = lost_contribution(
            weight * ~mask,
            layer.output_axis,
            layer.input_axis,
            mean,
            layer.coverage,
            layer.depthwise,
        )
        bias += lost.astype(np.float32)
    weight *= mask


class MaskedStep:
    """An optimizer whose step keeps the pruned weights at zero: the masks follow each
    layer's schedule and are applied again after every update; `means` (per layer, its
    input channels' means) correct the biases where weights are removed."""

    def __init__(
        self,
        optimizer,
        layers,
        pattern: Pattern,
        schedules: dict[str, PolynomialDecay],
        means: dict[str, np.ndarray] | None = None,
    ):
        self.optimizer, self.layers, self.pattern, self.schedules = (
            optimizer,
            layers,
            pattern,
            schedules,
        )
        self.means = means or {}
        self.masks = {layer.name: np.ones(layer.layer.weight.shape, bool) for layer in layers}
        self.steps = 0
        self.update_masks()

    def update_masks(self) -> None:
        for layer in self.layers:
            schedule = self.schedules[layer.name]
            layer.layer.weight *= self.masks[layer.name]  # undo the step's updates there
            if schedule.should_prune(self.steps):
                # Pruned weights are zero, the smallest: the pruned set only grows.
                self.masks[layer.name] = layer.mask(self.pattern, schedule.sparsity(self.steps))
                remove(layer, self.masks[layer.name], self.means.get(layer.name))

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.optimizer.step(params, grads)
        self.steps += 1
        self.update_masks()

    def done(self) -> bool:
        return all(s.done(self.steps) for s in self.schedules.values())


def _targets(
    engine: Engine, layers: list[PrunableLayer], options: SparsityOptions, x, y
) -> dict[str, float]:
    fixed = options.pattern.fixed_sparsity
    if fixed is not None:
        return {layer.name: fixed for layer in layers}
    if options.per_layer == "uniform":
        return {layer.name: options.sparsity for layer in layers}
    count = min(len(x), SENSITIVITY_SAMPLES)
    losses = layer_losses(engine, layers, options.pattern, x[:count], y[:count])
    return allocate(layers, losses, options.sparsity)


def check_options(options: SparsityOptions) -> None:
    fixed = options.pattern.fixed_sparsity
    if options.sparsity is None and fixed is None:
        raise TvmqError("give --sparsity S (a fraction in (0, 1)) or an N:M --pattern")
    if options.sparsity is not None:
        check_sparsity(options.sparsity)
        if fixed is not None and abs(options.sparsity - fixed) > 1e-9:
            raise TvmqError(
                f"--sparsity {options.sparsity} contradicts --pattern "
                f"{options.pattern.describe()} (sparsity {fixed:g})"
            )
    if options.epochs < 1 or options.batch < 1:
        raise TvmqError("--epochs and --batch-size must be at least 1")
    if options.per_layer not in ("sensitivity", "uniform"):
        raise TvmqError(f"--per-layer {options.per_layer}: expected sensitivity or uniform")


def dense_notes(layers: list[PrunableLayer], options: SparsityOptions) -> dict[str, str | None]:
    """Per layer (graph order) why it stays dense, None where it is pruned."""
    notes = {}
    for position, layer in enumerate(layers):
        note = None if options.all_layers else sensitive_note(layer, position, len(layers))
        notes[layer.name] = note or skipped_note(layer, options.pattern)
    return notes


def check_pattern(model: Model, options: SparsityOptions) -> None:
    """Raises, naming the layer, where the pattern does not fit a pruned layer's channels."""
    mod = plain_weights(model.mod)
    layers = prunable_layers(mod, find_layers(mod), model.source_names)
    notes = dense_notes(layers, options)
    for layer in layers:
        if notes[layer.name] is None:
            layer.mask(options.pattern, 0.5)


def teacher_targets(engine: Engine, x: np.ndarray) -> np.ndarray:
    """The engine's outputs on `x` as distributions at the distillation temperature
    (softmax outputs are softened; other outputs are read as logits)."""
    outputs = np.concatenate(
        [engine.predict(x[i : i + engine.batch]) for i in range(0, len(x), engine.batch)]
    )
    outputs = outputs.reshape(len(x), -1).astype(np.float64)
    if is_distribution(outputs):
        return soften(outputs, TEMPERATURE)
    scaled = outputs / TEMPERATURE
    soft = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def prune(model: Model, data: LabelledData, options: SparsityOptions) -> SparsityResult:
    """Prune `model` (float: calibrated first on the training half) to the options'
    sparsity and fine-tune it on `data`'s training half, scoring the validation half."""
    check_options(options)
    x_train, y_train, x_val, y_val = classifier_halves(model, data, "sparsity fine-tuning")
    check_enough(len(x_train), options.batch, data.source)
    float_model = None
    if not model.is_quantized:
        calibration = [[sample] for sample in x_train[:CALIBRATION_SAMPLES]]
        float_model, model = model, quantize_model(model, calibration, origin=data.source)
    check_pattern(model, options)  # in seconds, before compiling the training
    objective = kl_divergence(TEMPERATURE) if options.distill else cross_entropy
    engine = Engine(model, options.batch, float_model, objective)
    flat_train = x_train.reshape(len(x_train), *x_train.shape[2:])
    flat_val = x_val.reshape(len(x_val), *x_val.shape[2:])
    every = prunable_layers(model.mod, engine.layers, model.source_names)
    notes = dense_notes(every, options)
    layers = [layer for layer in every if notes[layer.name] is None]
    if not layers:
        hint = "" if options.all_layers else " (--all-layers also prunes those left dense)"
        raise TvmqError(f"{model.name}: no layer takes {options.pattern.describe()} sparsity{hint}")

    dense_accuracy = validate(engine, flat_val, y_val)[0]
    train_targets = teacher_targets(engine, flat_train) if options.distill else y_train
    targets = _targets(engine, layers, options, flat_train, y_train)
    means = input_means(engine, layers, flat_train) if options.correct_bias else {}
    dense = engine.state()
    for layer in layers:
        remove(layer, layer.mask(options.pattern, targets[layer.name]), means.get(layer.name))
    pruned_accuracy = validate(engine, flat_val, y_val)[0]
    engine.load_state(dense)

    batches = len(flat_train) // options.batch
    frequency = max(1, batches // 2)
    ramp = 0 if options.pattern.n_of_m else int(options.ramp * batches * options.epochs)
    end = ramp - ramp % frequency  # the last turn to prune lands on end_step
    schedules = {  # end 0: pruned at once, at the first step
        layer.name: PolynomialDecay(
            targets[layer.name] if end == 0 else 0.0,
            targets[layer.name],
            0,
            end,
            frequency=frequency,
        )
        for layer in layers
    }
    masked = MaskedStep(
        make_optimizer(options.optimizer, options.lr), layers, options.pattern, schedules, means
    )
    rng = np.random.default_rng(options.seed)
    best, best_state, best_epoch, history = None, None, 0, []
    for epoch in range(1, options.epochs + 1):
        order = rng.permutation(len(flat_train))
        losses = []
        for index in range(batches):
            chosen = order[index * options.batch : (index + 1) * options.batch]
            loss, grads = engine.gradients(flat_train[chosen], train_targets[chosen])
            if not np.isfinite(loss):
                raise TvmqError(f"loss became {loss} in epoch {epoch}: try a smaller --lr")
            masked.step(engine.parameters(), grads)
            losses.append(loss)
        current = validate(engine, flat_val, y_val)
        history.append(
            {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "validation_accuracy": current[0],
                "at_final_sparsity": masked.done(),
            }
        )
        print(
            f"epoch {epoch}: loss {np.mean(losses):.4f}, validation accuracy {current[0]:.4f}"
            + ("" if masked.done() else " (sparsity still rising)")
        )
        if masked.done() and (best is None or (current[0], -current[1]) > (best[0], -best[1])):
            best, best_state, best_epoch = current, engine.state(), epoch
    engine.load_state(best_state)
    report = [
        LayerSparsity(
            layer.label,
            layer.size,
            int(np.count_nonzero(layer.layer.integer_weight())),
            notes[layer.name] or "",
        )
        for layer in every
    ]
    return SparsityResult(
        engine.export(),
        model,
        report,
        dense_accuracy,
        pruned_accuracy,
        best[0],
        best_epoch,
        history,
    )
