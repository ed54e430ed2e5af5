"""The training graph: a QDQ graph whose forward values are the integer model's.

Each quantize becomes a differentiable stand-in, clip(round(x / s) + zp), whose
rounding passes gradients straight through (integer ops on activations, such as
an imported int8 average pool, run in float and round the same way); its value is
then replaced by the integer model's own tensor Q at that point (an input of this graph, computed by
:mod:`tvmq.train.integer`) as ``q + floor(Q - q)``: both are integers, so the sum is
exactly Q, and floor's derivative is zero, so the gradient is q's. Every tensor the
loss sees is therefore the deployed integer arithmetic's, bit for bit (requantization,
rounding, integer softmax), while gradients flow through the float surrogate.

Weights are fake-quantized from their latent float values on the frozen grid
(straight-through as well); biases stay float, as realize rounds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from tvmq.errors import TvmqError, first_line
from tvmq.quantize.annotate import main_bindings
from tvmq.train import gradients
from tvmq.train.layers import Layer, dequantized_constant
from tvmq.train.rewrite import op_name, rebuild_main

LABELS = "labels"


@dataclass(frozen=True)
class TrainingGraph:
    """The loss module and the order of its inputs."""

    mod: tvm.IRModule  # function "loss"
    parameters: list[str]  # latent tensors, as parameter_names() gives them
    glued: list[str]  # quantized tensors taken from the integer model, in order
    classes: int


def parameter_names(layers: list[Layer]) -> list[str]:
    names = []
    for layer in layers:
        names.append(f"{layer.name}.weight")
        if layer.bias is not None:
            names.append(f"{layer.name}.bias")
    return names


def parameter_values(layers: list[Layer]) -> list[np.ndarray]:
    return [v for layer in layers for v in (layer.weight, layer.bias) if v is not None]


def integer_tensors(mod: tvm.IRModule) -> list[relax.Var]:
    """The integer activations of `mod` in graph order: what it quantizes, and what
    integer ops compute from those (an imported int8 average pool, a clip)."""
    found: list[relax.Var] = []
    for binding in main_bindings(mod):
        value = binding.value
        if op_name(value) == "relax.quantize":
            found.append(binding.var)
        elif _is_integer(binding.var) and isinstance(value, relax.Call):
            inputs = relax.analysis.free_vars(value)
            if any(var in found for var in inputs):
                found.append(binding.var)
    return found


def _is_integer(expr: relax.Expr) -> bool:
    dtype = getattr(expr.ty, "dtype", None)
    return dtype is not None and str(dtype).startswith(("int", "uint"))


def _as_float(expr: relax.Expr) -> relax.Expr:
    """An integer tensor argument as float32 (the training graph computes in float)."""
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_as_float(field) for field in expr.fields])
    if isinstance(getattr(expr, "ty", None), relax.TensorType) and _is_integer(expr):
        return relax.op.astype(expr, "float32")
    return expr


def _glue(surrogate: relax.Expr, exact: relax.Expr | None) -> relax.Expr:
    """`surrogate`'s gradient with `exact`'s value (both integers): see the module doc."""
    if exact is None:
        return surrogate
    return relax.op.add(surrogate, relax.op.floor(relax.op.subtract(exact, surrogate)))


def _logits(mod: tvm.IRModule) -> relax.Var:
    """The tensor a classification loss reads: the input of a final softmax (seen
    through its quantize/dequantize), else the output itself."""
    value = {b.var: b.value for b in main_bindings(mod)}
    var = mod["main"].body.body
    while op_name(value.get(var)) in ("relax.quantize", "relax.dequantize") or isinstance(
        value.get(var), relax.Var
    ):
        var = value[var] if isinstance(value[var], relax.Var) else value[var].args[0]
    if op_name(value.get(var)) == "relax.nn.softmax":
        return value[var].args[0]
    return mod["main"].body.body


def _float_const(values, dtype: str = "float32") -> relax.Expr:
    return relax.const(np.asarray(values, dtype))


def cross_entropy(
    builder: relax.BlockBuilder, logits: relax.Expr, targets: relax.Var
) -> relax.Expr:
    """Mean cross-entropy of (batch, classes) logits against target distributions:
    one-hot labels, or a teacher's probabilities (distillation, KL up to a constant)."""
    log_probabilities = builder.emit(relax.op.nn.log_softmax(logits, axis=-1))
    return relax.op.nn.cross_entropy_with_logits(log_probabilities, targets)


Loss = Callable[[relax.BlockBuilder, relax.Expr, relax.Var], relax.Expr]


def trainable_layout(mod: tvm.IRModule) -> tvm.IRModule:
    """Convolutions in NCHW/OIHW between transposes: TVM's conv2d gradient asserts
    that layout, and tvmq's graphs are NHWC (OHWI or HWIO weights). A graph without
    convolutions is left as it is (ConvertLayout fails on some ops, stack among them)."""
    functions = [f for _, f in mod.functions_items() if isinstance(f, relax.Function)]
    if not any(_calls(f, "relax.nn.conv2d") for f in functions):
        return mod
    try:
        converted = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NCHW", "OIHW"]})(mod)
    except Exception as error:  # TVM's layout conversion raises many types: one line
        raise TvmqError(f"cannot build the training graph: {first_line(error)}") from error
    for var, function in converted.functions_items():
        if isinstance(function, relax.Function):
            converted[var] = _ScalarTransposesRemoved().visit_expr(function)
    return converted


@mutator
class _ScalarTransposesRemoved(PyExprMutator):
    """ConvertLayout leaves a permute_dims with no axes on a scalar (a mean loss over
    a whole output), and TVM's permute_dims gradient fails on it (Index -2)."""

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if op_name(call) == "relax.permute_dims" and len(call.args[0].ty.shape) == 0:
            return call.args[0]
        return call


def _calls(function: relax.Function, op: str) -> bool:
    found = []
    relax.analysis.post_order_visit(function, lambda e: found.append(op_name(e) == op))
    return any(found)


def build_training_graph(
    mod: tvm.IRModule,
    layers: list[Layer],
    node_names: dict[str, str],
    realized: set[str],
    loss: Loss = cross_entropy,
) -> TrainingGraph:
    """The loss function of batched QDQ `mod`: `loss` of its logits against targets
    of the same shape (input "labels"), with every integer tensor that the realized
    graph has (by name, in `realized`) glued to the integer model's; `node_names`
    (Relax name -> source node) names a refused op's node."""
    main = mod["main"]
    logits = _logits(mod)
    shape = [int(d) for d in logits.ty.shape]
    if len(shape) != 2 and loss is cross_entropy:
        raise TvmqError(
            f"output '{logits.name}' has shape {shape}: the labelled loss needs (batch, classes)"
        )
    # Other losses compare whole outputs (a spectrogram's, a mask's), flattened per sample.
    flat = [shape[0], int(np.prod(shape[1:]))]
    inputs = [relax.Var(p.name, p.ty) for p in main.params]
    labels = relax.Var(LABELS, relax.TensorType(flat, "float32"))
    weights = {layer.weight_var: layer for layer in layers}
    biases = {layer.bias_var: layer for layer in layers if layer.bias_var is not None}
    latent = {
        name: relax.Var(name, relax.TensorType(value.shape, "float32"))
        for name, value in zip(parameter_names(layers), parameter_values(layers), strict=True)
    }
    integers = integer_tensors(mod)
    glued = {
        var: relax.Var(f"{var.name}.int", relax.TensorType(var.ty.shape, "float32"))
        for var in integers
        if var.name in realized
    }

    def rewrite(binding: relax.VarBinding, value: relax.Expr) -> relax.Expr | None:
        var, name = binding.var, op_name(value)
        if var in weights:
            layer = weights[var]
            scale = _float_const(layer.weight_scale.reshape(layer.channel_shape()))
            steps = relax.op.round(relax.op.divide(latent[f"{layer.name}.weight"], scale))
            return relax.op.multiply(relax.op.clip(steps, -127, 127), scale)
        if var in biases:
            layer = biases[var]
            bias = latent[f"{layer.name}.bias"]
            return relax.op.add(value.args[0], relax.op.reshape(bias, _bias_shape(value)))
        if name == "relax.quantize":
            x, scale, zero_point = value.args
            info = np.iinfo(str(value.attrs.out_dtype))
            steps = relax.op.round(relax.op.divide(x, scale))
            shifted = relax.op.add(steps, relax.op.astype(zero_point, "float32"))
            surrogate = relax.op.clip(shifted, int(info.min), int(info.max))
            return _glue(surrogate, glued.get(var))
        if var in integers:  # an integer op on activations: in float, then rounded
            if name == "relax.astype":
                return _glue(relax.op.round(_as_float(value.args[0])), glued.get(var))
            args = [_as_float(arg) for arg in value.args]
            call = relax.Call(value.op, args, value.attrs, value.ty_args)
            return _glue(relax.op.round(call), glued.get(var))
        if name == "relax.dequantize":
            data, scale, zero_point = value.args
            if isinstance(data, tvm.ir.expr.Constant):
                return _float_const(dequantized_constant(value))
            if str(data.ty.dtype) != "float32":  # an integer model input
                data = relax.op.astype(data, "float32")
            centred = relax.op.subtract(data, relax.op.astype(zero_point, "float32"))
            return relax.op.multiply(centred, scale)
        return None

    env = dict(zip(main.params, inputs, strict=True))
    params = [*inputs, labels, *latent.values(), *glued.values()]
    built = rebuild_main(
        mod,
        "loss",
        params,
        env,
        rewrite,
        lambda builder, e: loss(builder, relax.op.reshape(e[logits], flat), labels),
    )
    built = relax.transform.DeadCodeElimination(["loss"])(built)
    built = trainable_layout(built)
    # The rebuilt graph's builder may rename a variable (its own temporaries take
    # lvN names too): source nodes are found through the variable each one replaced.
    sources = {
        new.name: node_names.get(old.name, old.name)
        for old, new in env.items()
        if isinstance(new, relax.Var)
    }
    gradients.check_differentiable(built["loss"], {**node_names, **sources})
    return TrainingGraph(built, list(latent), [var.name for var in glued], flat[1])


def _bias_shape(add: relax.Expr) -> list[int]:
    """The shape of an add's constant bias: the bias broadcasts exactly like it."""
    return [int(d) for d in add.args[1].ty.shape]
