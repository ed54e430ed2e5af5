"""Prune in rounds, fine-tuning after each: a network loses a few channels at a time
and recovers before the next cut, which keeps more accuracy than one deep cut."""

from __future__ import annotations

from dataclasses import dataclass

from tvmq.data import LabelledData, model_inputs
from tvmq.model import Model
from tvmq.prune.structured import LayerReport, check_ratio, prune
from tvmq.quantize.quantizer import quantize_model
from tvmq.train.finetune import CALIBRATION_SAMPLES, finetune
from tvmq.train.loop import TrainOptions


@dataclass(frozen=True)
class IterativeResult:
    model: Model  # quantized (QDQ), fine-tuned after the last round
    layers: list[LayerReport]  # channels and MACs of the original model's layers, overall
    macs_before: int
    macs_after: int
    notes: list[str]
    pruned_accuracy: float  # held-out int8 top-1 of the first round's cut, before training
    finetuned_accuracy: float  # after the last round's fine-tuning
    history: list[dict]  # per round: kept channels, accuracy before and after training


def prune_and_finetune(
    model: Model,
    data: LabelledData,
    ratio: float,
    options: TrainOptions,
    *,
    rounds: int = 1,
    criterion: str = "l1",
    scope: str = "layer",
    keep: tuple[str, ...] = (),
    multiple: int = 4,
    compensate: bool = True,
) -> IterativeResult:
    """`ratio` of the channels removed over `rounds` equal cuts (each removes the same
    share of what is left), each followed by `options.epochs` of int8 fine-tuning on
    the training half of `data`; a float `model` is pruned first, then quantized."""
    check_ratio(ratio)
    split = data.split()
    samples = [inputs[0] for inputs in model_inputs(data, model.inputs[0], split.calibration)]
    step = 1 - (1 - ratio) ** (1 / rounds)
    current, history, notes, cuts = model, [], [], []
    for index in range(rounds):
        cut = prune(current, step, criterion, scope, samples, keep, multiple, compensate)
        cuts.append(cut)
        notes += [note for note in cut.notes if note not in notes]
        pruned = cut.model
        if not pruned.is_quantized:
            calibration = [[sample] for sample in samples[:CALIBRATION_SAMPLES]]
            pruned = quantize_model(pruned, calibration, origin=data.source)
        tuned = finetune(pruned, data, options)
        history.append(
            {
                "round": index + 1,
                "macs": cut.macs_after,
                "pruned_accuracy": tuned.start_accuracy,
                "finetuned_accuracy": tuned.best_accuracy,
                "best_epoch": tuned.best_epoch,
                "epochs": tuned.history,
            }
        )
        current = tuned.model
    # Every round finds the same layers in the same order: compose their kept channels.
    layers = cuts[0].layers
    for cut in cuts[1:]:
        layers = [
            LayerReport(
                old.name,
                old.op,
                old.channels,
                tuple(old.kept[i] for i in new.kept),
                old.macs_before,
                new.macs_after,
            )
            for old, new in zip(layers, cut.layers, strict=True)
        ]
    return IterativeResult(
        current,
        layers,
        cuts[0].macs_before,
        cuts[-1].macs_after,
        notes,
        history[0]["pruned_accuracy"],
        history[-1]["finetuned_accuracy"],
        history,
    )
