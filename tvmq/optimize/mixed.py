"""The search: measured layer costs, the walk, the front measured on the board, the pick.

The accuracy drop is in points of the metric (top-1 or AUC, x100) below the
all-int8 model on the scored samples. Of the points meeting every budget the one
with the least flash is returned (flash is what low-bit weights save); when none
does, the closest (the smallest excess over a budget, as a share of it) is named
with its figures in one line (:class:`BudgetsNotMet`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tvmq.data import LabelledData
from tvmq.evaluate import evaluate
from tvmq.model import Model
from tvmq.optimize.budgets import Budgets, BudgetsNotMet
from tvmq.optimize.search import (
    Assignment,
    Layer,
    Log,
    configure,
    describe,
    layer_drops,
    walk,
    weighted_layers,
)
from tvmq.prune.cost import board_cost
from tvmq.quantize.quantizer import Calibrated
from tvmq.targets import load_target

FIGURES = ("drop", "flash", "ram", "instructions")


@dataclass
class Point:
    """One configuration of the front, with what it costs on the board."""

    assignment: Assignment
    description: str
    weight_bytes: int  # the walk's storage figure; cost["weights_bytes"] is the board's
    accuracy: float
    drop: float  # points below all-int8
    cost: dict[str, int]  # instructions, flash, ram, arena_bytes, weights_bytes

    @property
    def figures(self) -> dict[str, float]:
        return {"drop": self.drop, **self.cost}

    def as_dict(self) -> dict:
        return {
            "layers": self.description,
            "accuracy": self.accuracy,
            "drop_points": round(self.drop, 4),
            "walk_weight_bytes": self.weight_bytes,
            **self.cost,
        }


@dataclass
class Optimized:
    """The chosen model and the front it was chosen from."""

    model: Model  # the chosen point's (the closest one's when none meets the budgets)
    chosen: Point
    front: list[Point]
    baseline: float  # the all-int8 model's metric
    metric: str
    scored: str
    target: str
    budgets: Budgets

    @property
    def met(self) -> bool:
        return self.budgets.met(self.chosen.figures)


def optimize(
    calibrated: Calibrated,
    data: LabelledData,
    indices: Sequence[int],
    metric: str,
    target: str,
    budgets: Budgets,
    log: Log,
    only: Collection[str] = (),
) -> Optimized:
    """The front, and its smallest-flash point meeting `budgets` or the closest one."""
    measured: dict[str, float] = {}

    def accuracy(model: Model) -> float:
        return evaluate(model, model.build("host"), data, metric, indices, progress=False)

    int8 = configure(calibrated, {})
    layers = weighted_layers(calibrated, int8, only)  # an unknown --layer fails at once
    baseline = accuracy(int8)
    scored = data.describe(indices) if isinstance(indices, range) else f"{len(indices)} samples"
    log(f"all int8: {metric} {baseline:.4f} on {scored}")
    drops = layer_drops(calibrated, layers, accuracy, baseline, log)
    path = walk(layers, drops)
    log(f"walk: {len(path)} configurations from all int8 to all int4")
    for index, assignment in enumerate(path, 1):
        key = describe(assignment, layers)
        alone = _alone(assignment, drops)
        if alone is None:
            measured[key] = accuracy(configure(calibrated, assignment))
            log(f"configuration {index}/{len(path)}: {metric} {measured[key]:.4f}  [{key}]")
        else:
            measured[key] = baseline - alone / 100
    front = _front(path, layers, measured)
    board = load_target(target).name
    points = []
    for index, (assignment, key) in enumerate(front, 1):
        cost = board_cost(configure(calibrated, assignment), target)
        bytes_ = sum(layer.weight_bytes(assignment[layer.name]) for layer in layers)
        points.append(
            Point(assignment, key, bytes_, measured[key], 100 * (baseline - measured[key]), cost)
        )
        log(f"point {index}/{len(front)} built for {board}: {figures_line(points[-1])}  [{key}]")
    meeting = [point for point in points if budgets.met(point.figures)]
    if meeting:
        chosen = min(meeting, key=lambda point: (point.cost["flash"], point.drop))
    else:
        chosen = min(points, key=lambda point: budgets.excess(point.figures))
    model = configure(calibrated, chosen.assignment)
    return Optimized(model, chosen, points, baseline, metric, scored, board, budgets)


def shortfall(result: Optimized) -> BudgetsNotMet:
    """The one-line error of a front none of whose points meets the budgets."""
    closest = result.chosen
    return BudgetsNotMet(
        f"no point of the front meets the budgets; closest [{closest.description}]: "
        + figures_line(closest, result.budgets)
    )


def _alone(assignment: Assignment, drops: dict[str, dict[str, float]]) -> float | None:
    """The measured drop of a configuration that changes at most one layer, else None."""
    changed = [(name, choice) for name, choice in assignment.items() if choice != "int8"]
    if not changed:
        return 0.0
    if len(changed) == 1:
        name, choice = changed[0]
        return drops[name][choice]
    return None


def _front(
    path: list[Assignment], layers: list[Layer], measured: dict[str, float]
) -> list[tuple[Assignment, str]]:
    """All int8 (the reference), then the configurations of `path` that no smaller
    one matches in accuracy, largest first."""
    sized = sorted(
        (sum(layer.weight_bytes(a[layer.name]) for layer in layers), describe(a, layers), a)
        for a in path[1:]
    )
    front, best = [], None
    for _, key, assignment in sized:
        if best is None or measured[key] > best:
            front.append((assignment, key))
            best = measured[key]
    return [(path[0], describe(path[0], layers)), *front[::-1]]


def figures_line(point: Point, budgets: Budgets | None = None) -> str:
    """A point's figures, each with its budget where one is given."""
    limits = budgets.limits() if budgets else {}
    units = {"drop": "pt", "flash": "B", "ram": "B", "instructions": ""}
    parts = []
    for key in FIGURES:
        value = point.figures[key]
        text = f"{value:.2f}" if key == "drop" else f"{value:,}"
        limit = limits.get(key)
        if limit is not None:
            shown = f"{limit:g}" if key == "drop" else f"{limit:,}"
            text += f" {units[key]} (budget {shown})".replace("  ", " ")
        else:
            text += f" {units[key]}".rstrip()
        parts.append(f"{key} {text}")
    return ", ".join(parts)
