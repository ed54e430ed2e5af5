"""The deployed integer model with its weights and biases as inputs.

:func:`tvmq.quantize.realize.realize` turns the batched QDQ graph into the integer
arithmetic every target builds; here its int8 weight and folded int32 bias
constants become function inputs, so one compiled module runs the integer model for
any trained weights. It returns the model's output and every quantized tensor (as
float32, exact), which the training graph (:mod:`tvmq.train.fake_quant`) is glued to.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tvmq.constants import constant_array
from tvmq.errors import TvmqError
from tvmq.quantize.annotate import main_bindings
from tvmq.train.layers import WEIGHTED_OPS, Layer
from tvmq.train.rewrite import op_name, rebuild_main


def _integer_constants(realized: tvm.IRModule, layers: list[Layer]):
    """Each layer's int8 weight constant and int32 bias constant in `realized`, found in
    graph order by their values (which must be the ones :class:`Layer` computes)."""
    pending = list(range(len(layers)))
    weights: dict[int, tvm.ir.expr.Constant] = {}
    biases: dict[int, tvm.ir.expr.Constant] = {}
    accumulators: dict[relax.Var, int] = {}
    for binding in main_bindings(realized):
        value = binding.value
        if op_name(value) in WEIGHTED_OPS:
            values = constant_array(value.args[1])
            match = [i for i in pending if values is not None and _same(values, layers[i])]
            if match:
                pending.remove(match[0])
                weights[match[0]] = value.args[1]
                accumulators[binding.var] = match[0]
            continue
        if op_name(value) == "relax.add" and value.args[0] in accumulators:
            index, bias = accumulators[value.args[0]], value.args[1]
        elif op_name(value) == "relax.call_tir" and value.args[1].fields[0] in accumulators:
            index, bias = accumulators[value.args[1].fields[0]], value.args[1].fields[1]
        else:
            continue
        values = constant_array(bias)
        if values is None or not np.array_equal(values.ravel(), layers[index].integer_bias()):
            raise TvmqError(
                f"layer '{layers[index].name}': its integer bias is not the one "
                "fine-tuning computes"
            )
        biases[index] = bias
    for index, layer in enumerate(layers):
        if index not in weights or index not in biases:
            raise TvmqError(f"layer '{layer.name}' did not realize as a trainable integer kernel")
    return [weights[i] for i in range(len(layers))], [biases[i] for i in range(len(layers))]


def _same(values: np.ndarray, layer: Layer) -> bool:
    return values.dtype == np.int8 and np.array_equal(values, layer.integer_weight())


def build_integer_graph(
    realized: tvm.IRModule, layers: list[Layer], glued: list[str]
) -> tvm.IRModule:
    """Function "integer": `realized` (the batched QDQ graph after realize), taking
    the model's inputs, each layer's int8 weight, then each layer's int32 bias, and
    returning (output, *tensors named in `glued`)."""
    main = realized["main"]
    named = {b.var.name: b.var for b in main_bindings(realized)}
    missing = [name for name in glued if name not in named]
    if missing:
        raise TvmqError(f"tensor '{missing[0]}' has no integer counterpart: cannot train on it")
    weights, biases = _integer_constants(realized, layers)
    inputs = [relax.Var(p.name, p.ty) for p in main.params]
    env: dict = dict(zip(main.params, inputs, strict=True))
    params = list(inputs)
    for layer, constant in zip(layers, weights, strict=True):
        params.append(relax.Var(f"{layer.name}.weight_int", constant.ty))
        env[constant] = params[-1]
    for layer, constant in zip(layers, biases, strict=True):
        params.append(relax.Var(f"{layer.name}.bias_int", constant.ty))
        env[constant] = params[-1]

    def output(builder: relax.BlockBuilder, env: dict) -> relax.Expr:
        tensors = [builder.emit(relax.op.astype(env[named[name]], "float32")) for name in glued]
        return relax.Tuple([env[main.body.body], *tensors])

    return rebuild_main(realized, "integer", params, env, lambda *_: None, output)
