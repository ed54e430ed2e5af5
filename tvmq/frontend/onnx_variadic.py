"""ONNX Max, Min, Sum and Mean: their inputs folded pairwise by the elementwise op.

TVM's converters broadcast every input to the output's shape and stack them into a
tensor of one more dim before reducing it: a constant operand (``Max(x, -0.4)``,
tf2onnx's form of a clamp) is stored at the activation's size, and the 5-D stack
stops channels_last's layout conversion ("Invalid SLayout", openWakeWord's
embedding model). Folded left to right, as onnxruntime's kernels add, every op has
a layout rule and the result is the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from tvm import relax


def _fold(op: Callable) -> Callable:
    def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr:
        return functools.reduce(lambda left, right: bb.normalize(op(left, right)), inputs)

    return convert


def _mean(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr:
    total = bb.normalize(_fold(relax.op.add)(bb, inputs, attrs))
    return relax.op.divide(total, relax.const(len(inputs), str(total.ty.dtype)))


CONVERTERS = {
    "Max": _fold(relax.op.maximum),
    "Min": _fold(relax.op.minimum),
    "Sum": _fold(relax.op.add),
    "Mean": _mean,
}
