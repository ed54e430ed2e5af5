"""Which weighted layers a sparsity pattern applies to, and along which axes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm

from tvmq.prune.compensation import tap_coverage
from tvmq.prune.masks import Pattern, block_mask, magnitude_mask, n_of_m_mask
from tvmq.quantize.annotate import main_bindings
from tvmq.train.layers import Layer


@dataclass(frozen=True)
class PrunableLayer:
    layer: Layer  # the training engine's layer: its latent weight is masked in place
    output_axis: int
    input_axis: int
    depthwise: bool  # one input channel per filter: no input channels to choose among
    label: str  # the source file's node name where known: what messages name
    coverage: np.ndarray | None = None  # a convolution's tap_coverage: its border weighting

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def size(self) -> int:
        return int(self.layer.weight.size)

    def mask(self, pattern: Pattern, sparsity: float) -> np.ndarray:
        """The mask of the current latent weight at `sparsity` (N:M: its own)."""
        weight = self.layer.weight
        if pattern.n_of_m is not None:
            n, m = pattern.n_of_m
            return n_of_m_mask(weight, n, m, self.input_axis, self.label)
        if pattern.block is not None:
            return block_mask(
                weight, sparsity, pattern.block, self.output_axis, self.input_axis, self.label
            )
        return magnitude_mask(weight, sparsity)


def prunable_layers(
    mod: tvm.IRModule, layers: list[Layer], source_names: dict[str, str]
) -> list[PrunableLayer]:
    """The engine's layers with their input-channel axis: conv2d's kernel layout 'I',
    matmul's weight (in, out) rows."""
    calls = {b.var.name: b.value for b in main_bindings(mod)}
    found = []
    for layer in layers:
        call = calls[layer.name]
        coverage = None
        if call.op.name == "relax.nn.conv2d":
            kernel_layout = str(call.attrs.kernel_layout)
            input_axis = kernel_layout.index("I")
            depthwise = int(call.attrs.groups) > 1 and layer.weight.shape[input_axis] == 1
            coverage = tap_coverage(call)
        else:
            input_axis, depthwise = layer.weight.ndim - 2, False
        label = source_names.get(layer.name) or layer.name
        found.append(PrunableLayer(layer, layer.axis, input_axis, depthwise, label, coverage))
    return found


def sensitive_note(layer: PrunableLayer, position: int, count: int) -> str | None:
    """Why `layer` (at `position` among `count` weighted layers in graph order) is left
    dense by default: a depthwise filter has few weights that each carry a channel, the
    first layer sees the raw features through few input channels, and the classifier's
    every weight moves a logit. Pruning them cost KWS DS-CNN most of its accuracy for
    a sixth of its weights."""
    hint = "left dense (--all-layers prunes it)"
    if layer.depthwise:
        return f"layer '{layer.label}' is depthwise: {hint}"
    if position == 0:
        return f"layer '{layer.label}' is the first layer: {hint}"
    if position == count - 1:
        return f"layer '{layer.label}' is the classifier: {hint}"
    return None


def skipped_note(layer: PrunableLayer, pattern: Pattern) -> str | None:
    """Why `pattern` leaves `layer` dense, or None when it applies. A layer with fewer
    input channels than a group (a first convolution on 1 to 3 channels) is left dense;
    one with more that the group does not divide is an error (see the masks)."""
    if layer.depthwise and (pattern.n_of_m or pattern.block):
        return f"layer '{layer.label}' is depthwise (one input channel per filter): left dense"
    inputs = layer.layer.weight.shape[layer.input_axis]
    group = pattern.n_of_m[1] if pattern.n_of_m else pattern.block[1] if pattern.block else 1
    if inputs < group:
        return f"layer '{layer.label}' has {inputs} input channels, fewer than {group}: left dense"
    return None
