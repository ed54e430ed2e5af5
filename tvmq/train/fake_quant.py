"""The training graph: a QDQ graph whose forward values are the integer model's.

Each quantize becomes a differentiable stand-in, clip(round(x / s) + zp), whose
rounding passes gradients straight through; its value is then replaced by the
integer model's own tensor Q at that point (an input of this graph, computed by
:mod:`tvmq.train.integer`) as ``q + floor(Q - q)``: both are integers, so the sum is
exactly Q, and floor's derivative is zero, so the gradient is q's. Every tensor the
loss sees is therefore the deployed integer arithmetic's, bit for bit (requantization,
rounding, integer softmax), while gradients flow through the float surrogate.

Weights are fake-quantized from their latent float values on the frozen grid
(straight-through as well); biases stay float, as realize rounds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvmq.errors import TvmqError
from tvmq.quantize.annotate import main_bindings
from tvmq.train import gradients
from tvmq.train.layers import Layer, dequantized_constant
from tvmq.train.rewrite import op_name, rebuild_main

LABELS = "labels"


@dataclass(frozen=True)
class TrainingGraph:
    """The loss module and the order of its inputs."""

    mod: tvm.IRModule  # function "loss"; after Gradient also "loss_adjoint"
    inputs: list[str]
    parameters: list[str]  # latent tensors, as weight_names() gives them
    glued: list[str]  # quantized tensors taken from the integer model, in order
    classes: int
    logits: str


def parameter_names(layers: list[Layer]) -> list[str]:
    names = []
    for layer in layers:
        names.append(f"{layer.name}.weight")
        if layer.bias is not None:
            names.append(f"{layer.name}.bias")
    return names


def parameter_values(layers: list[Layer]) -> list[np.ndarray]:
    return [v for layer in layers for v in (layer.weight, layer.bias) if v is not None]


def quantized_tensors(mod: tvm.IRModule) -> list[relax.Var]:
    """The activations `mod` quantizes, in graph order: the integer model's tensors."""
    return [b.var for b in main_bindings(mod) if op_name(b.value) == "relax.quantize"]


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


def build_training_graph(
    mod: tvm.IRModule, layers: list[Layer], node_names: dict[str, str]
) -> TrainingGraph:
    """The loss function of batched QDQ `mod`: cross-entropy of its logits against
    one-hot labels, with every quantized tensor glued to the integer model's;
    `node_names` (Relax name -> source node) names a refused op's node."""
    main = mod["main"]
    logits = _logits(mod)
    shape = [int(d) for d in logits.ty.shape]
    if len(shape) != 2:
        raise TvmqError(
            f"output '{logits.name}' has shape {shape}: the labelled loss needs (batch, classes)"
        )
    inputs = [relax.Var(p.name, p.ty) for p in main.params]
    labels = relax.Var(LABELS, relax.TensorType(shape, "float32"))
    weights = {layer.weight_var: layer for layer in layers}
    biases = {layer.bias_var: layer for layer in layers if layer.bias_var is not None}
    latent = {
        name: relax.Var(name, relax.TensorType(value.shape, "float32"))
        for name, value in zip(parameter_names(layers), parameter_values(layers), strict=True)
    }
    quantized = quantized_tensors(mod)
    glued = {
        var: relax.Var(f"{var.name}.int", relax.TensorType(var.ty.shape, "float32"))
        for var in quantized
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
            exact = glued[var]
            return relax.op.add(surrogate, relax.op.floor(relax.op.subtract(exact, surrogate)))
        if name == "relax.dequantize":
            data, scale, zero_point = value.args
            if isinstance(data, tvm.ir.expr.Constant):
                return _float_const(dequantized_constant(value))
            if str(data.ty.dtype) != "float32":  # an integer model input
                data = relax.op.astype(data, "float32")
            centred = relax.op.subtract(data, relax.op.astype(zero_point, "float32"))
            return relax.op.multiply(centred, scale)
        return None

    def loss(builder: relax.BlockBuilder, env: dict) -> relax.Expr:
        log_probabilities = builder.emit(relax.op.nn.log_softmax(env[logits], axis=-1))
        return relax.op.nn.cross_entropy_with_logits(log_probabilities, labels)

    env = dict(zip(main.params, inputs, strict=True))
    params = [*inputs, labels, *latent.values(), *glued.values()]
    built = rebuild_main(mod, "loss", params, env, rewrite, loss)
    built = relax.transform.DeadCodeElimination(["loss"])(built)
    built = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NCHW", "OIHW"]})(built)
    gradients.check_differentiable(built["loss"], node_names)
    return TrainingGraph(
        built,
        [p.name for p in inputs],
        list(latent),
        [var.name for var in quantized],
        shape[1],
        logits.name,
    )


def _bias_shape(add: relax.Expr) -> list[int]:
    """The shape of an add's constant bias: the bias broadcasts exactly like it."""
    return [int(d) for d in add.args[1].ty.shape]
