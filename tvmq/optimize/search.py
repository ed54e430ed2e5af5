"""Per-layer weight choices, their measured accuracy cost, and the greedy walk.

Each layer's cost of a choice is measured, not modelled: the accuracy drop (points,
against the all-int8 model) when only that layer takes it. The walk starts from
all-int8 and takes, step by step, the move (a layer to a smaller choice) with the
least added drop per weight byte saved, down to all-int4; the bytes of a choice
are the weights' storage (one byte, half a byte, half a byte and a 16-byte table),
which only orders the walk: the points are measured afterwards on the board.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass

from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.quantize.codebook import SIZES
from tvmq.quantize.low_bit import LOW_BIT_KINDS
from tvmq.quantize.quantizer import Calibrated, convert_model

CHOICES = ("int8", "codebook16", "int4")
CENTROIDS = max(SIZES)  # codebook16: 4-bit indices into 16 int8 centroids

Assignment = dict[str, str]  # op name -> choice
Accuracy = Callable[[Model], float]  # a metric, higher is better, in [0, 1]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Layer:
    """A weighted layer that low-bit kernels take."""

    name: str  # the op's Relax name, as QuantConfig keys it
    label: str  # as quantize prints it: conv2d#1
    weights: int

    def weight_bytes(self, choice: str) -> int:
        half = (self.weights + 1) // 2
        return {"int8": self.weights, "codebook16": half + CENTROIDS, "int4": half}[choice]


def weighted_layers(calibrated: Calibrated, int8: Model, only: Collection[str] = ()) -> list[Layer]:
    """The layers with weights that int4 and codebook kernels take (those labelled
    in `only` when given; the others stay int8), with their weight counts as the
    all-int8 model `int8` holds them. A name in `only` that is no such layer is refused."""
    layers = [
        Layer(op.name, op.label, int(int8.params[op.name].size))
        for op in calibrated.annotation.ops
        if op.weight_axis is not None and op.kind in LOW_BIT_KINDS and op.name in int8.params
    ]
    unknown = sorted(set(only) - {layer.label for layer in layers})
    if unknown:
        raise TvmqError(
            f"--layer {unknown[0]}: not a weighted layer that low-bit kernels take "
            f"(these are: {', '.join(layer.label for layer in layers)})"
        )
    return [layer for layer in layers if not only or layer.label in only]


def configure(calibrated: Calibrated, assignment: Assignment) -> Model:
    """The quantized model with each layer's weights as `assignment` chooses."""
    bits = frozenset((name, 4) for name, choice in assignment.items() if choice == "int4")
    books = frozenset(
        (name, CENTROIDS) for name, choice in assignment.items() if choice == "codebook16"
    )
    config = dataclasses.replace(calibrated.config, layer_bits=bits, layer_codebook=books)
    return convert_model(dataclasses.replace(calibrated, config=config))


def describe(assignment: Assignment, layers: list[Layer]) -> str:
    """The non-int8 layers of `assignment`, e.g. 'conv2d#1=int4 matmul#0=codebook16'."""
    chosen = [f"{layer.label}={assignment[layer.name]}" for layer in layers]
    chosen = [text for text in chosen if not text.endswith("=int8")]
    return " ".join(chosen) or "all int8"


def layer_drops(
    calibrated: Calibrated, layers: list[Layer], accuracy: Accuracy, baseline: float, log: Log
) -> dict[str, dict[str, float]]:
    """The drop (points) of each layer's each choice, that layer alone changed."""
    drops: dict[str, dict[str, float]] = {}
    for index, layer in enumerate(layers, 1):
        drops[layer.name] = {"int8": 0.0}
        for choice in CHOICES[1:]:
            value = accuracy(configure(calibrated, {layer.name: choice}))
            drops[layer.name][choice] = 100.0 * (baseline - value)
        figures = ", ".join(f"{c} {drops[layer.name][c]:+.2f} pt" for c in CHOICES[1:])
        log(f"layer {index}/{len(layers)} {layer.label} ({layer.weights:,} weights): {figures}")
    return drops


def walk(layers: list[Layer], drops: dict[str, dict[str, float]]) -> list[Assignment]:
    """The configurations from all-int8 to all-int4, cheapest drop per byte first."""
    current = {layer.name: "int8" for layer in layers}
    path = [dict(current)]
    while True:
        moves = [
            (_cost_per_byte(layer, current[layer.name], choice, drops), index, choice)
            for index, layer in enumerate(layers)
            for choice in CHOICES
            if layer.weight_bytes(choice) < layer.weight_bytes(current[layer.name])
        ]
        if not moves:
            return path
        _, index, choice = min(moves)
        current[layers[index].name] = choice
        path.append(dict(current))


def _cost_per_byte(layer: Layer, now: str, then: str, drops: dict[str, dict[str, float]]) -> float:
    saved = layer.weight_bytes(now) - layer.weight_bytes(then)
    return (drops[layer.name][then] - drops[layer.name][now]) / saved
