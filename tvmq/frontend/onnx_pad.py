"""ONNX Pad as Relax's nn.pad.

TVM's converter emits a TE pad (a call_tir) that no layout rule can move, so a
channels_last graph went back to NCHW around every Pad: a transpose before and after
it, each a full copy in the arena (BlazeFace pads channels 24 -> 28 in its residual
blocks: 1.06 MB of arena where the same network from TFLite needs 344 KB). nn.pad
has a layout rule and computes the same values. Pads that are not constants,
negative pads (crops) and the "wrap" mode keep TVM's conversion (None).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import relax

from tvmq.constants import constant_array

# ONNX Pad modes and nn.pad's names for them.
MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr | None:
    """nn.pad for constant pads, else None (TVM's converter)."""
    mode = MODES.get(attrs.get("mode", b"constant").decode())
    data = bb.normalize(inputs[0])
    rank = len(data.ty.shape)
    if "pads" in attrs:  # Pad-2: pads and value are attributes
        pads, value = np.asarray(attrs["pads"]), float(attrs.get("value", 0.0))
    else:
        pads, value = _constant(inputs, 1), _constant(inputs, 2)
        if pads is None or (len(inputs) > 2 and inputs[2] is not None and value is None):
            return None
        value = 0.0 if value is None else float(np.ravel(value)[0])
        axes = _constant(inputs, 3)
        if len(inputs) > 3 and inputs[3] is not None:
            if axes is None:
                return None
            pads = _full_rank(pads, [int(a) % rank for a in np.ravel(axes)], rank)
    if mode is None or pads.size != 2 * rank or (pads < 0).any():
        return None
    before, after = np.split(pads.astype(np.int64), 2)
    widths = [int(w) for pair in zip(before, after, strict=True) for w in pair]
    return relax.op.nn.pad(data, widths, mode, value)


def _constant(inputs: Sequence, index: int) -> np.ndarray | None:
    """The values of optional input `index` when it is a constant, else None."""
    return constant_array(inputs[index]) if index < len(inputs) else None


def _full_rank(pads: np.ndarray, axes: list[int], rank: int) -> np.ndarray:
    """Pads given for `axes` (Pad-18) spread over every axis."""
    before, after = np.zeros(rank, np.int64), np.zeros(rank, np.int64)
    half = len(axes)
    for i, axis in enumerate(axes):
        before[axis], after[axis] = pads[i], pads[half + i]
    return np.concatenate([before, after])
