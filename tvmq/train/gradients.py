"""Gradients TVM's Relax does not define for the ops a quantized graph trains through.

Registered once, on import, with `relax.op.base.register_gradient`:

- round: the straight-through estimator (the gradient passes unchanged), as in
  every quantization-aware training scheme;
- floor: zero, its true derivative almost everywhere; the training graph uses it to
  carry exact integer values that must not take a gradient (:mod:`tvmq.train.fake_quant`);
- clip (ReLU6, quantization's saturation): the gradient inside the bounds, zero outside;
- nn.pad: the gradient cut back to the unpadded window;
- max and min (reductions): the gradient to the elements equal to the result.

:func:`check_differentiable` names the first op that still has none, so that a model
is refused in one line before TVM's Gradient pass fails deep inside.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.op.base import register_gradient
from tvm.relax.op.grad import no_grad

from tvmq.errors import TvmqError
from tvmq.train.rewrite import op_name

# Above TVM's own registrations (level 10), should a later TVM add its own.
LEVEL = 20


def _straight_through(orig_var, orig_call, output_grad, ctx):
    return [output_grad]


def _zero(orig_var, orig_call, output_grad, ctx):
    return [relax.op.zeros_like(output_grad)]


def _clip(orig_var, orig_call, output_grad, ctx):
    x, low, high = orig_call.args
    dtype = str(x.ty.dtype)
    inside = relax.op.logical_and(
        relax.op.greater_equal(x, relax.const(_number(low), dtype)),
        relax.op.less_equal(x, relax.const(_number(high), dtype)),
    )
    return [
        relax.op.where(inside, output_grad, relax.op.zeros_like(output_grad)),
        no_grad(low),
        no_grad(high),
    ]


def _number(prim: relax.PrimValue) -> float:
    value = prim.value
    return getattr(value, "value", value)


def _pad(orig_var, orig_call, output_grad, ctx):
    widths = [int(w) for w in orig_call.attrs.pad_width]
    shape = [int(d) for d in orig_call.args[0].ty.shape]
    axes = list(range(len(shape)))
    begin = [widths[2 * axis] for axis in axes]
    end = [begin[axis] + shape[axis] for axis in axes]
    sliced = relax.op.strided_slice(output_grad, axes, begin, end)
    return [sliced, *(no_grad(arg) for arg in orig_call.args[1:])]


def _extremum(orig_var, orig_call, output_grad, ctx):
    x = orig_call.args[0]
    ndim = len(x.ty.shape)
    axes = (
        list(range(ndim))
        if orig_call.attrs.axis is None
        else sorted(int(a) % ndim for a in orig_call.attrs.axis)
    )
    peak, grad = orig_var, output_grad
    if not orig_call.attrs.keepdims:
        peak, grad = relax.op.expand_dims(peak, axes), relax.op.expand_dims(grad, axes)
    at_peak = relax.op.astype(relax.op.equal(x, peak), str(x.ty.dtype))
    return [relax.op.multiply(at_peak, grad)]


register_gradient("relax.round", _straight_through, level=LEVEL)
register_gradient("relax.floor", _zero, level=LEVEL)
register_gradient("relax.clip", _clip, level=LEVEL)
register_gradient("relax.nn.pad", _pad, level=LEVEL)
register_gradient("relax.max", _extremum, level=LEVEL)
register_gradient("relax.min", _extremum, level=LEVEL)


def has_gradient(op: tvm.ir.Op) -> bool:
    return op.get_attr("FPrimalGradient") is not None


def check_differentiable(func: relax.Function, node_names: dict[str, str]) -> None:
    """Refuse `func` in one line if an op in it has no gradient; `node_names` maps a
    Relax variable to the source file's node for the message."""
    for block in func.body.blocks:
        for binding in block.bindings:
            call = binding.value
            if op_name(call) is not None and not has_gradient(call.op):
                name = binding.var.name
                raise TvmqError(
                    f"node '{node_names.get(name, name)}': op {call.op.name} has no "
                    "gradient, so the model cannot be fine-tuned"
                )
