"""The trainable layers of a QDQ graph and the integers they deploy as.

Each weighted op (conv2d, matmul) of a quantized graph keeps a float "latent"
weight and bias that training updates. Their scales stay those of calibration:
the deployed integers are the latent weight rounded onto the frozen weight grid
(:func:`tvmq.quantize.scheme.integer_weight`) and the bias rounded at input scale x
weight scale with the input zero point folded in, the constants that
:mod:`tvmq.quantize.realize` computes for the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvmq.constants import constant_array
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.realize import INT32_MAX, INT32_MIN, constant_value, passes_through
from tvmq.quantize.scheme import integer_weight
from tvmq.train.rewrite import op_name

WEIGHTED_OPS = ("relax.nn.conv2d", "relax.matmul")


@dataclass
class Layer:
    """One weighted op: its latent float parameters and frozen quantization."""

    name: str  # the op's variable in main
    weight_var: relax.Var  # dequantize(int8 constant) feeding the op
    bias_var: relax.Var | None  # add(op, bias) after it (see bias_value)
    weight: np.ndarray  # float32 latent weight
    bias: np.ndarray | None  # float32 latent bias, one per output channel
    weight_scale: np.ndarray  # float32, one per output channel
    axis: int  # the weight's output-channel axis
    input_scale: float
    input_zero_point: int

    def channel_shape(self) -> list[int]:
        shape = [1] * self.weight.ndim
        shape[self.axis] = -1
        return shape

    def integer_weight(self) -> np.ndarray:
        return integer_weight(self.weight, self.weight_scale, self.axis)

    def bias_scale(self) -> np.ndarray:
        return np.float64(self.input_scale) * self.weight_scale.astype(np.float64)

    def rounded_bias(self) -> np.ndarray:
        """The int32 bias at input scale x weight scale, as TFLite stores it."""
        if self.bias is None:
            return np.zeros(self.weight.shape[self.axis], np.int32)
        rounded = np.round(self.bias.astype(np.float64) / self.bias_scale())
        return np.clip(rounded, INT32_MIN, INT32_MAX).astype(np.int32)

    def integer_bias(self) -> np.ndarray:
        """int32 bias with the input zero point folded in (realize's `_finish`)."""
        reduce = tuple(a for a in range(self.weight.ndim) if a != self.axis)
        sums = self.integer_weight().astype(np.int64).sum(axis=reduce)
        folded = self.rounded_bias().astype(np.int64) - self.input_zero_point * sums
        return folded.astype(np.int32)


def dequantized_constant(call: relax.Call) -> np.ndarray:
    """The float value of dequantize(constant), per tensor or per axis."""
    values = constant_array(call.args[0]).astype(np.float64)
    scale = constant_array(call.args[1]).astype(np.float64)
    zero_point = constant_array(call.args[2]).astype(np.float64)
    if scale.size > 1 or zero_point.size > 1:
        shape = [1] * values.ndim
        shape[int(call.attrs.axis)] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return ((values - zero_point) * scale).astype(np.float32)


def bias_value(producer, expr) -> np.ndarray | None:
    """A bias added to a weighted op: a float32 constant, or an int32 constant
    dequantized (imported int8 files), as float32."""
    constant = constant_array(expr)
    if constant is not None:
        return constant if constant.dtype == np.float32 else None
    call = producer(expr) if isinstance(expr, relax.Var) else None
    if op_name(call) == "relax.dequantize":
        values = constant_array(call.args[0])
        if values is not None and values.dtype == np.int32:
            return dequantized_constant(call)
    return None


def plain_weights(mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` with every weight of a conv2d/matmul held as dequantize(int8 constant) in
    the op's own layout, as tvmq's quantizer writes it. Imported int8 TFLite files
    reshape a depthwise weight after dequantizing it and transpose a dense weight
    before: the same integers and scales, moved into the constant, so the layer finder
    sees those layers too. The model computes exactly what it did."""
    bindings = main_bindings(mod)
    value = {b.var: b.value for b in bindings}
    weights = {b.value.args[1] for b in bindings if op_name(b.value) in WEIGHTED_OPS}
    plain = {
        var: folded
        for var in weights
        if isinstance(var, relax.Var) and (folded := _plain_weight(value, var)) is not None
    }
    if not plain:
        return mod
    main = mod["main"]
    blocks = []
    for block in main.body.blocks:
        rebound = [relax.VarBinding(b.var, plain.get(b.var, b.value)) for b in block.bindings]
        kind = relax.DataflowBlock if isinstance(block, relax.DataflowBlock) else relax.BindingBlock
        blocks.append(kind(rebound))
    functions = dict(mod.functions_items())
    functions[mod.get_global_var("main")] = relax.Function(
        main.params, relax.SeqExpr(blocks, main.body.body), main.ret_ty, main.is_pure, main.attrs
    )
    rebuilt = relax.transform.Normalize()(tvm.IRModule(functions, attrs=mod.attrs))
    return relax.transform.DeadCodeElimination()(rebuilt)


def _plain_weight(value: dict, var: relax.Var) -> relax.Call | None:
    """dequantize(constant) for reshape(dequantize(constant)) or
    dequantize(permute_dims(constant)) bound to `var`, else None."""
    call = value.get(var)
    name = op_name(call)
    if name == "relax.reshape" and op_name(value.get(call.args[0])) == "relax.dequantize":
        dequantize = value[call.args[0]]
        values = constant_array(dequantize.args[0])
        scale = constant_array(dequantize.args[1])
        shape = tuple(int(d) for d in var.ty.shape)
        if values is None or scale is None:
            return None
        axis = _moved_axis(values.shape, shape, int(dequantize.attrs.axis), scale.size)
        if axis is None:
            return None
        data = values.reshape(shape)
    elif name == "relax.dequantize" and op_name(value.get(call.args[0])) == "relax.permute_dims":
        dequantize, permute = call, value[call.args[0]]
        source = constant_array(permute.args[0])
        if source is None:
            return None
        axes = [int(a) for a in permute.attrs.axes] if permute.attrs.axes is not None else None
        data, axis = np.ascontiguousarray(np.transpose(source, axes)), int(dequantize.attrs.axis)
    else:
        return None
    return relax.op.dequantize(
        relax.const(data), dequantize.args[1], dequantize.args[2], axis, "float32"
    )


def _moved_axis(before, after, axis: int, channels: int) -> int | None:
    """Where a reshape from `before` to `after` puts the quantized `axis`: any axis for
    one scale, else the axis of `after` holding the same channels at the same stride."""
    if channels == 1:
        return axis % len(before)
    axis %= len(before)
    outer = int(np.prod(before[:axis]))
    for index, size in enumerate(after):
        if size == before[axis] and int(np.prod(after[:index])) == outer:
            return index
    return None


def find_layers(mod: tvm.IRModule) -> list[Layer]:
    """Every weighted op of a QDQ `mod` whose weight is dequantize(int8 constant) and
    whose input is a per-tensor dequantized activation (through copies), in graph order; the latent
    weight starts at the dequantized integers."""
    bindings = main_bindings(mod)
    value = {b.var: b.value for b in bindings}
    biases = {
        b.value.args[0]: (b.var, bias)
        for b in bindings
        if op_name(b.value) == "relax.add"
        and (bias := bias_value(value.get, b.value.args[1])) is not None
    }
    layers = []
    for binding in bindings:
        call = binding.value
        if op_name(call) not in WEIGHTED_OPS:
            continue
        source, weight = call.args[0], value.get(call.args[1])
        while passes_through(value.get(source)):
            source = value[source].args[0]
        source = value.get(source)
        if op_name(source) != "relax.dequantize" or op_name(weight) != "relax.dequantize":
            continue
        values, scale = constant_array(weight.args[0]), constant_array(weight.args[1])
        if values is None or values.dtype != np.int8 or constant_array(weight.args[2]).any():
            continue
        input_scale, input_zero_point = (
            constant_array(source.args[1]),
            constant_array(source.args[2]),
        )
        if input_scale is None or input_scale.size != 1:
            continue
        axis = int(weight.attrs.axis) % values.ndim
        scale = np.broadcast_to(scale.astype(np.float32), (values.shape[axis],)).copy()
        shape = [1] * values.ndim
        shape[axis] = -1
        bias_var, bias = biases.get(binding.var, (None, None))
        if bias is not None and bias.size != values.shape[axis]:
            bias_var, bias = None, None
        layers.append(
            Layer(
                name=binding.var.name,
                weight_var=call.args[1],
                bias_var=bias_var,
                weight=(values.astype(np.float32) * scale.reshape(shape)).astype(np.float32),
                bias=None if bias is None else bias.astype(np.float32).ravel(),
                weight_scale=scale,
                axis=axis,
                input_scale=float(input_scale.item()),
                input_zero_point=int(input_zero_point.item()),
            )
        )
    return layers


def start_from_float(layers: list[Layer], float_mod: tvm.IRModule) -> None:
    """Set each layer's latent weight and bias to the float model's own values (where
    the float graph has the same op under the same name): standard QAT starts there,
    rounding to exactly the calibrated integers, with each weight's fraction kept."""
    bindings = main_bindings(float_mod)
    value = {b.var: b.value for b in bindings}
    by_name = {b.var.name: b for b in bindings}
    biases = {
        b.value.args[0]: bias
        for b in bindings
        if op_name(b.value) == "relax.add"
        and (bias := bias_value(value.get, b.value.args[1])) is not None
    }
    for layer in layers:
        binding = by_name.get(layer.name)
        if binding is None or op_name(binding.value) not in WEIGHTED_OPS:
            continue
        weight = constant_value(value.get, binding.value.args[1])
        if weight is None or weight.shape != layer.weight.shape:
            continue
        if not np.array_equal(
            integer_weight(weight, layer.weight_scale, layer.axis), layer.integer_weight()
        ):
            continue  # not the weight these integers were calibrated from
        layer.weight = weight.astype(np.float32)
        bias = biases.get(binding.var)
        if layer.bias is not None and bias is not None and bias.size == layer.bias.size:
            layer.bias = bias.astype(np.float32).ravel()
