"""Per-layer sparsity under a global target, chosen by each layer's sensitivity.

Each layer is pruned alone at a ladder of sparsities and the training loss of the
integer model measured on a few batches. Then, from a dense start, the layer whose
next rung costs the least loss per weight removed is raised, until the weights
removed over all layers reach the target; the last raise stops exactly there. Small,
sensitive layers (the first convolution, the classifier) so tend to stay denser.
"""

from __future__ import annotations

import numpy as np

from tvmq.prune.layers import PrunableLayer
from tvmq.prune.masks import Pattern
from tvmq.train.engine import Engine

LADDER = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def layer_losses(
    engine: Engine,
    layers: list[PrunableLayer],
    pattern: Pattern,
    x: np.ndarray,
    labels: np.ndarray,
) -> dict[str, list[float]]:
    """Mean loss on the full batches of `x` with each layer alone at each rung."""
    batches = [
        (x[i : i + engine.batch], labels[i : i + engine.batch])
        for i in range(0, len(x) - engine.batch + 1, engine.batch)
    ]
    losses: dict[str, list[float]] = {}
    for layer in layers:
        dense = layer.layer.weight.copy()
        losses[layer.name] = []
        for sparsity in LADDER:
            layer.layer.weight[...] = dense * layer.mask(pattern, sparsity)
            losses[layer.name].append(float(np.mean([engine.loss(*b) for b in batches])))
        layer.layer.weight[...] = dense
    return losses


def allocate(
    layers: list[PrunableLayer], losses: dict[str, list[float]], target: float
) -> dict[str, float]:
    """Per-layer sparsity removing `target` of all the layers' weights together."""
    rung = dict.fromkeys((layer.name for layer in layers), 0)
    sparsity = dict.fromkeys(rung, 0.0)
    size = {layer.name: layer.size for layer in layers}
    budget = target * sum(size.values())
    removed = 0.0
    while removed < budget - 0.5:
        candidates = []
        for name, at in rung.items():
            if at + 1 < len(LADDER):
                weights = (LADDER[at + 1] - LADDER[at]) * size[name]
                cost = max(losses[name][at + 1] - losses[name][at], 0.0)
                candidates.append((cost / weights, -size[name], name))
        if not candidates:
            break  # every layer at the top rung: the target is out of reach
        *_, name = min(candidates)
        step = (LADDER[rung[name] + 1] - LADDER[rung[name]]) * size[name]
        if removed + step > budget:
            sparsity[name] += (budget - removed) / size[name]
            break
        removed += step
        rung[name] += 1
        sparsity[name] = LADDER[rung[name]]
    return sparsity
