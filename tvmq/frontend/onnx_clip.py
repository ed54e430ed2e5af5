"""ONNX Clip as Relax's clip.

TVM's converter emits a TE maximum and a TE minimum (two call_tir kernels) for a
Clip with bounds: no layout rule moves them (a channels_last graph went back to
NCHW around every ReLU6 and hard-sigmoid: PP-OCR has 18), no gradient, and no
quantized kernel (float islands). relax.op.clip has all three. Bounds computed at
run time (a log-mel front end's floor 80 dB below its peak) are a Relax maximum and
minimum: TVM's kernels also guard them with isnan, which fine-tuning cannot
differentiate through. Data that is not float32 keeps TVM's conversion (None).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import relax

from tvmq.constants import constant_array

LOWEST, HIGHEST = float(np.finfo(np.float32).min), float(np.finfo(np.float32).max)


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr | None:
    """relax.op.clip for constant bounds on float32 data, maximum and minimum for
    bounds computed at run time, None (TVM's conversion) for other data."""
    data = bb.normalize(inputs[0])
    if str(data.ty.dtype) != "float32":
        return None
    if "min" in attrs or "max" in attrs:  # Clip-1/-6: bounds are attributes
        low, high = attrs.get("min"), attrs.get("max")
    else:
        low, high = (_bound(inputs, i) for i in (1, 2))
        if low is False or high is False:
            return _run_time_bounds(bb, data, inputs)
    # No bound, or an infinite one (TVM's C code generator prints inf as "inff").
    low = LOWEST if low is None else max(float(low), LOWEST)
    high = HIGHEST if high is None else min(float(high), HIGHEST)
    return relax.op.clip(data, low, high)


def _bound(inputs: Sequence, position: int) -> float | bool | None:
    """The bound at `position` (None: not given), or False when it is not a constant."""
    if len(inputs) <= position or inputs[position] is None:
        return None
    values = constant_array(inputs[position])
    return False if values is None else float(np.ravel(values)[0])


def _run_time_bounds(bb: relax.BlockBuilder, data: relax.Expr, inputs: Sequence) -> relax.Expr:
    """max(x, low) then min(., high) for bounds given as tensors (either may be absent)."""
    value = data
    for position, bound in ((1, relax.op.maximum), (2, relax.op.minimum)):
        if _bound(inputs, position) not in (None, float("inf"), float("-inf")):
            value = bound(value, bb.normalize(inputs[position]))
    return value
