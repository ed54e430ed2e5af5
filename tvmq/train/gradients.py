"""Gradients TVM's Relax does not define for the ops a quantized graph trains through.

Registered once, on import, with `relax.op.base.register_gradient`:

- round: the straight-through estimator (the gradient passes unchanged), as in
  every quantization-aware training scheme;
- floor: zero, its true derivative almost everywhere; the training graph uses it to
  carry exact integer values that must not take a gradient (:mod:`tvmq.train.fake_quant`);
- clip (ReLU6, quantization's saturation): the gradient inside the bounds, zero outside;
- nn.pad: the gradient cut back to the unpadded window;
- max and min (reductions): the gradient to the elements equal to the result;
- strided_slice with unit strides: the gradient padded back to the input's extent;
  squeeze: reshaped back; stack: split back into the stacked tensors;
- leakyrelu, square, erf (GELU) and layer_norm (the scale and shift stay constants,
  as every weight but the quantized layers' does);
- image.resize2d (NHWC or NCHW; every method and coordinate mode but
  tf_crop_and_resize, whose fill value is not linear in the input): a resize is
  linear and separable, y = A_h x A_w^T per channel, so the gradient is
  A_h^T g A_w, the interpolation matrices computed by TVM's own resize of identities.

:func:`check_differentiable` names the first op that still has none, so that a model
is refused in one line before TVM's Gradient pass fails deep inside.
"""

from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import relax
from tvm.relax.op.base import register_gradient
from tvm.relax.op.grad import no_grad

from tvmq.constants import evaluate_constant
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


def _strided_slice(orig_var, orig_call, output_grad, ctx):
    x, axes, begin, end = orig_call.args[:4]
    shape = [int(d) for d in x.ty.shape]
    widths = [0] * (2 * len(shape))
    for axis, first, last in zip(_ints(axes), _ints(begin), _ints(end), strict=True):
        axis %= len(shape)
        first, last = (_bounded(v, shape[axis]) for v in (first, last))
        widths[2 * axis], widths[2 * axis + 1] = first, shape[axis] - last
    return [relax.op.nn.pad(output_grad, widths), *(no_grad(a) for a in orig_call.args[1:])]


def _ints(value) -> list[int]:
    return [int(getattr(field, "value", field)) for field in value.fields]


def _bounded(index: int, extent: int) -> int:
    """A slice bound as strided_slice reads it: negative from the end, clamped."""
    return min(max(index + extent if index < 0 else index, 0), extent)


def _unit_strides(call: relax.Call) -> bool:
    return len(call.args) < 5 or all(s == 1 for s in _ints(call.args[4]))


def _squeeze(orig_var, orig_call, output_grad, ctx):
    x = orig_call.args[0]
    return [relax.op.reshape(output_grad, [int(d) for d in x.ty.shape])]


def _leaky_relu(orig_var, orig_call, output_grad, ctx):
    x = orig_call.args[0]
    alpha = relax.const(float(orig_call.attrs.alpha), str(x.ty.dtype))
    positive = relax.op.greater(x, relax.const(0.0, str(x.ty.dtype)))
    return [relax.op.where(positive, output_grad, relax.op.multiply(output_grad, alpha))]


def _square(orig_var, orig_call, output_grad, ctx):
    x = orig_call.args[0]
    return [relax.op.multiply(output_grad, relax.op.multiply(x, relax.const(2.0, "float32")))]


def _erf(orig_var, orig_call, output_grad, ctx):
    x = orig_call.args[0]
    slope = relax.op.exp(relax.op.negative(relax.op.multiply(x, x)))
    scaled = relax.op.multiply(slope, relax.const(2.0 / math.sqrt(math.pi), "float32"))
    return [relax.op.multiply(output_grad, scaled)]


def _layer_norm(orig_var, orig_call, output_grad, ctx):
    """dx = (g' - mean(g') - x^ * mean(g' * x^)) / sigma, g' = g * gamma, over the axes."""
    x, gamma, beta = orig_call.args
    axes = [int(a) for a in orig_call.attrs.axes]
    epsilon = relax.const(float(orig_call.attrs.epsilon), "float32")

    def mean(value):
        return relax.op.mean(value, axis=axes, keepdims=True)

    centred = relax.op.subtract(x, mean(x))
    sigma = relax.op.sqrt(relax.op.add(mean(relax.op.multiply(centred, centred)), epsilon))
    normalised = relax.op.divide(centred, sigma)
    scaled = relax.op.multiply(output_grad, gamma)
    along = relax.op.multiply(normalised, mean(relax.op.multiply(scaled, normalised)))
    grad = relax.op.divide(relax.op.subtract(relax.op.subtract(scaled, mean(scaled)), along), sigma)
    return [grad, no_grad(gamma), no_grad(beta)]


def _stack(orig_var, orig_call, output_grad, ctx):
    """Each stacked tensor's slice of the gradient."""
    count = len(orig_call.args[0].ty.fields)
    axis = int(orig_call.attrs.axis) % len(orig_var.ty.shape)
    parts = relax.op.split(output_grad, count, axis)
    grads = [relax.op.squeeze(relax.TupleGetItem(parts, i), [axis]) for i in range(count)]
    return [relax.Tuple(grads)]


def _resize2d(orig_var, orig_call, output_grad, ctx):
    x = orig_call.args[0]
    layout = str(orig_call.attrs.layout)
    shape = [int(d) for d in x.ty.shape]
    out = [int(d) for d in orig_var.ty.shape]
    h, w = layout.index("H"), layout.index("W")
    rows = relax.const(_interpolation(orig_call, shape[h], out[h], along_height=True))
    columns = relax.const(_interpolation(orig_call, shape[w], out[w], along_height=False))
    # To [N, C, OH, OW]; g A_w, then (A_h^T g A_w); back to the layout.
    channels_first = (
        relax.op.permute_dims(output_grad, [0, 3, 1, 2]) if layout == "NHWC" else (output_grad)
    )
    across = relax.op.matmul(channels_first, columns)  # [N, C, OH, W]
    down = relax.op.matmul(relax.op.permute_dims(across, [0, 1, 3, 2]), rows)  # [N, C, W, H]
    axes = [0, 3, 2, 1] if layout == "NHWC" else [0, 1, 3, 2]
    return [relax.op.permute_dims(down, axes), no_grad(orig_call.args[1])]


def _interpolation(call: relax.Call, size: int, resized: int, along_height: bool):
    """The [resized, size] matrix of the resize `call` along one axis: TVM's resize
    (same attributes) of a one-hot basis, the other axis kept at 1."""
    basis = np.eye(size, dtype=np.float32)  # channel c one-hot at position c
    nhwc = basis.reshape(1, size, 1, size) if along_height else basis.reshape(1, 1, size, size)
    target = (resized, 1) if along_height else (1, resized)
    attrs = call.attrs
    resized_basis = evaluate_constant(
        relax.op.image.resize2d(
            relax.const(nhwc),
            target,
            layout="NHWC",
            method=str(attrs.method),
            coordinate_transformation_mode=str(attrs.coordinate_transformation_mode),
            rounding_method=str(attrs.rounding_method),
            cubic_alpha=float(attrs.cubic_alpha),
            cubic_exclude=int(attrs.cubic_exclude),
        )
    )
    return np.ascontiguousarray(resized_basis.reshape(resized, size))


def _resizable(call: relax.Call) -> bool:
    return str(call.attrs.layout) in ("NHWC", "NCHW") and (
        str(call.attrs.coordinate_transformation_mode) != "tf_crop_and_resize"
    )


register_gradient("relax.round", _straight_through, level=LEVEL)
register_gradient("relax.floor", _zero, level=LEVEL)
register_gradient("relax.clip", _clip, level=LEVEL)
register_gradient("relax.nn.pad", _pad, level=LEVEL)
register_gradient("relax.max", _extremum, level=LEVEL)
register_gradient("relax.min", _extremum, level=LEVEL)
register_gradient("relax.strided_slice", _strided_slice, level=LEVEL)
register_gradient("relax.squeeze", _squeeze, level=LEVEL)
register_gradient("relax.nn.leakyrelu", _leaky_relu, level=LEVEL)
register_gradient("relax.square", _square, level=LEVEL)
register_gradient("relax.erf", _erf, level=LEVEL)
register_gradient("relax.nn.layer_norm", _layer_norm, level=LEVEL)
register_gradient("relax.image.resize2d", _resize2d, level=LEVEL)
register_gradient("relax.stack", _stack, level=LEVEL)
# Ops whose registered gradient covers only some of their attributes.
PARTIAL = {
    "relax.strided_slice": (_unit_strides, "strides other than 1"),
    "relax.image.resize2d": (_resizable, "a layout other than NHWC/NCHW or tf_crop_and_resize"),
}


def has_gradient(op: tvm.ir.Op) -> bool:
    return op.get_attr("FPrimalGradient") is not None


def check_differentiable(func: relax.Function, node_names: dict[str, str]) -> None:
    """Refuse `func` in one line if an op in it has no gradient; `node_names` maps a
    Relax variable to the source file's node for the message."""
    for block in func.body.blocks:
        for binding in block.bindings:
            call = binding.value
            if op_name(call) is None:
                continue
            name = binding.var.name
            if not has_gradient(call.op):
                raise TvmqError(
                    f"node '{node_names.get(name, name)}': op {call.op.name} has no "
                    "gradient, so the model cannot be fine-tuned"
                )
            covered, what = PARTIAL.get(call.op.name, (None, ""))
            if covered is not None and not covered(call):
                raise TvmqError(
                    f"node '{node_names.get(name, name)}': op {call.op.name} with {what} "
                    "has no gradient, so the model cannot be fine-tuned"
                )
