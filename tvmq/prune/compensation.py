"""A removed weight's mean contribution to its output, for bias correction.

A removed weight w reading input channel i took w x mean(x_i) from its output on
average; structured pruning (whole input channels) and sparsity (single weights)
both move that into the output channel's bias. At a zero-padded convolution's
borders some taps read the padding, not the input, so each tap counts by the share
of outputs for which it lies inside the image.
"""

from __future__ import annotations

import numpy as np
from tvm import relax


def tap_coverage(conv: relax.Call) -> np.ndarray:
    """Per kernel tap, the share of output pixels whose input under that tap lies
    inside the image (not in the zero padding), shaped to broadcast over the weight:
    a removed weight's input mean reaches the output only through those taps."""
    attrs = conv.attrs
    layout, data_layout = str(attrs.kernel_layout), str(attrs.data_layout)
    data_shape = conv.args[0].ty.shape
    weight_shape = [int(d) for d in conv.args[1].ty.shape]
    padding = [int(p) for p in attrs.padding]
    coverage = np.ones([1] * len(weight_shape))
    for index, letter in enumerate("HW"):
        size, taps = int(data_shape[data_layout.index(letter)]), weight_shape[layout.index(letter)]
        stride, dilation = int(attrs.strides[index]), int(attrs.dilation[index])
        before, after = padding[index], padding[index + 2]
        outputs = np.arange((size + before + after - dilation * (taps - 1) - 1) // stride + 1)
        rows = outputs[:, None] * stride - before + np.arange(taps)[None, :] * dilation
        share = ((rows >= 0) & (rows < size)).mean(axis=0)
        shape = [1] * len(weight_shape)
        shape[layout.index(letter)] = taps
        coverage = coverage * share.reshape(shape)
    return coverage


def lost_contribution(
    removed: np.ndarray,
    output_axis: int,
    input_axis: int,
    mean: np.ndarray,
    coverage: np.ndarray | None = None,
    depthwise: bool = False,
) -> np.ndarray:
    """Per output channel, the mean the `removed` weights (zero elsewhere) contributed
    given each input channel's `mean`: their taps weighted by `coverage` (a
    convolution's, None for a matmul or to count every tap) and summed."""
    weight = removed.astype(np.float64)
    if coverage is not None:
        weight = weight * coverage
    moved = np.moveaxis(weight, (output_axis, input_axis), (0, -1))
    per_input = moved.reshape(moved.shape[0], -1, moved.shape[-1]).sum(axis=1)
    if depthwise:  # one input channel per filter: filter o reads o // multiplier
        return per_input[:, 0] * np.repeat(mean, len(per_input) // len(mean))
    return per_input @ mean
