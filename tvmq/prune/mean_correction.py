"""Input means for the bias correction of pruned weights (sparsity).

A removed weight w at input channel i took w x mean(x_i) from its output on average;
inputs after a ReLU have positive means, so pruning most of a layer's small weights
shifts its outputs by many such terms, which the next ReLU and requantization turn
into lost information. Adding the lost contribution to the output channel's bias
(measured input means of the unpruned model, per input channel over the batch and
the image; convolution taps weighted by how often they read the image rather than its
padding, see :mod:`tvmq.prune.compensation`) removes that shift at the moment the
weights go, so fine-tuning starts closer.
"""

from __future__ import annotations

import numpy as np

from tvmq.prune.layers import PrunableLayer
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.realize import passes_through
from tvmq.train.engine import Engine
from tvmq.train.rewrite import op_name


def input_means(
    engine: Engine, layers: list[PrunableLayer], x: np.ndarray
) -> dict[str, np.ndarray]:
    """Per layer, the float mean of each input channel over the full batches of `x`;
    layers whose input is not one of the integer model's tensors are left out."""
    value = {b.var: b.value for b in main_bindings(engine.batched)}
    named = {b.var.name: b.var for b in main_bindings(engine.batched)}
    sources, axes = {}, {}
    for layer in layers:
        call = value[named[layer.name]]
        source = call.args[0]
        while passes_through(value.get(source)):
            source = value[source].args[0]
        dequantize = value.get(source)
        if op_name(dequantize) != "relax.dequantize":
            continue
        sources[layer.name] = dequantize.args[0].name
        layout = str(call.attrs.data_layout) if op_name(call) == "relax.nn.conv2d" else None
        axes[layer.name] = layout.index("C") if layout else -1
    sums: dict[str, np.ndarray] = {}
    batches = 0
    for start in range(0, len(x) - engine.batch + 1, engine.batch):
        tensors = engine.quantized_tensors(x[start : start + engine.batch])
        batches += 1
        for name, source in sources.items():
            if source not in tensors:
                continue
            moved = np.moveaxis(tensors[source].astype(np.float64), axes[name], -1)
            mean = moved.reshape(-1, moved.shape[-1]).mean(axis=0)
            sums[name] = sums.get(name, 0.0) + mean
    found = {layer.name: layer for layer in layers}
    return {
        name: (total / batches - found[name].layer.input_zero_point) * found[name].layer.input_scale
        for name, total in sums.items()
    }
