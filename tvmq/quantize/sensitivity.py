"""Accuracy-driven fallback: keep the layers float that cost the most accuracy.

As Intel Neural Compressor does: measure each layer's effect alone (the model with
only that layer quantized), then fall layers back to float, most harmful first,
until the quantized model's loss is within the budget. The loss is in percent:
the relative drop of a task metric against the float model when evaluation data
is given, else the output's relative error (100 * ||float - quantized|| / ||float||).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from tvmq.model import Model
from tvmq.quantize.quantizer import Calibrated, convert_model

Loss = Callable[[Model], float]


@dataclass
class Sensitivity:
    """Each layer's loss when quantized alone, and what fell back to reach the budget."""

    budget: float
    alone: dict[str, float] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    def as_dict(self, labels: dict[str, str]) -> dict:
        return {
            "budget_percent": self.budget,
            "loss_alone_percent": {labels[n]: loss for n, loss in self.alone.items()},
            "fallback": [{"layer": labels[n], "reason": r} for n, r in self.fallback.items()],
            "loss_after_each_fallback_percent": self.losses,
        }


def output_error_loss(float_model: Model, samples: Sequence[Sequence[np.ndarray]]) -> Loss:
    """Relative error (%) of the first output over `samples`, against the float model."""
    run = float_model.build("host")
    reference = [run(*sample)[0].astype(np.float64) for sample in samples]
    signal = sum(float(np.sum(r**2)) for r in reference)

    def loss(model: Model) -> float:
        executable = model.build("host")
        noise = sum(
            float(np.sum((executable(*sample)[0].astype(np.float64) - r) ** 2))
            for sample, r in zip(samples, reference, strict=True)
        )
        return 100.0 * float(np.sqrt(noise / signal)) if signal else 0.0

    return loss


def metric_loss(baseline: float, metric: Callable[[Model], float]) -> Loss:
    """Relative drop (%) of a higher-is-better task metric from its float `baseline`."""
    return lambda model: 100.0 * (baseline - metric(model)) / baseline if baseline else 0.0


def search(calibrated: Calibrated, loss: Loss, budget: float) -> tuple[Model, Sensitivity]:
    """The quantized model within `budget` (or all layers float), and how it was found."""
    names = calibrated.op_names
    result = Sensitivity(budget)
    for name in tqdm(names, desc="sensitivity", unit="layer"):
        others = {other: "measured alone" for other in names if other != name}
        result.alone[name] = loss(convert_model(calibrated, others))
    model = convert_model(calibrated)
    result.losses.append(loss(model))
    ranked = sorted(names, key=lambda n: result.alone[n], reverse=True)
    with tqdm(ranked, desc="fallback", unit="layer") as progress:
        for name in progress:
            if result.final_loss <= budget:
                break
            result.fallback[name] = (
                f"loss {result.final_loss:.3g} % above budget {budget:g} %; "
                f"quantized alone it costs {result.alone[name]:.3g} %"
            )
            model = convert_model(calibrated, result.fallback)
            result.losses.append(loss(model) if len(result.fallback) < len(names) else 0.0)
    return model, result
