"""Hybrid layers made quantizable: the first step of quantizing a float graph.

A hybrid TFLite model (int8 weights, float activations, e.g. MLPerf Tiny's KWS
hybrid file) imports its per-tensor CONV_2D and FULLY_CONNECTED layers as TFLite's
hybrid kernels run them (:mod:`tvmq.frontend.tflite_ops`): the float input
quantized symmetrically per batch at run time, an int8 x int8 conv/matmul into
int32, ``astype`` float32, times (input scale x weight scale). That is right for
running the float model, but annotate sees an integer conv and leaves it a float
island, and the training engine's layer finder sees no dequantized weight.

:func:`normalize_hybrid` rewrites each such layer as the float op on
``dequantize(int8 weight, weight scale, 0)``: the form of a quantized constant
everywhere else in tvmq. The weight keeps the file's integers and scale (convert
reuses them, :func:`layer_weight`), and the layer quantizes like any other.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from tvmq.constants import constant_array
from tvmq.model import Model
from tvmq.quantize.annotate import MainGraph
from tvmq.quantize.realize import constant_value, conv2d_like
from tvmq.quantize.scheme import QuantConfig, QuantizedWeight, quantize_weight

_INTEGER_OPS = ("relax.nn.conv2d", "relax.matmul")


def _op(expr) -> str | None:
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


@dataclasses.dataclass(frozen=True)
class _HybridLayer:
    """One hybrid kernel: its int32 op, the float input it quantizes at run time, its
    int8 weight and scale, and the bindings it replaces (the cast and the rescale)."""

    core: relax.Var
    data: relax.Var
    weight: np.ndarray
    scale: np.float32
    cast: relax.Var
    rescaled: relax.Var


class _Bindings(MainGraph):
    """main's bindings, walked by op name: the hybrid kernel's pattern."""

    def call(self, expr, op: str) -> relax.Call | None:
        """The call bound to `expr` when it is `op`, else None."""
        value = self.value.get(expr) if isinstance(expr, relax.Var) else None
        return value if _op(value) == op else None

    def only_user_calling(self, var: relax.Var, op: str) -> relax.Var | None:
        """The only user of `var` when it is bound to a call of `op`, else None."""
        user = self.only_user(var)
        if user is not None and _op(self.value[user]) == op:
            return user
        return None

    def path(self, expr, *steps: tuple[str, int]) -> list[relax.Call] | None:
        """The calls met from `expr` on, each step (its op, the argument leading to
        the next), or None where one differs."""
        calls = []
        for op, index in steps:
            call = self.call(expr, op)
            if call is None:
                return None
            calls.append(call)
            expr = call.args[index]
        return calls

    def span(self, expr, data: relax.Var) -> bool:
        """`expr` is max(|data|) per batch: maximum(max(data), negative(min(data)))."""
        top = self.path(expr, ("relax.maximum", 0), ("relax.max", 0))
        bottom = self.path(expr, ("relax.maximum", 1), ("relax.negative", 0), ("relax.min", 0))
        if top is None or bottom is None:
            return False
        return top[-1].args[0].same_as(data) and bottom[-1].args[0].same_as(data)

    def quantized_input(self, expr) -> tuple[relax.Var, relax.Expr] | None:
        """(float data, its span) when `expr` is TFLite's per-batch symmetric
        quantization of data: astype int8 of clip(round(data x 127 / span))."""
        steps = ("relax.astype", 0), ("relax.clip", 0), ("relax.where", 0), ("relax.less", 0)
        calls = self.path(expr, *steps, ("relax.multiply", 1), ("relax.where", 2))
        divide = calls and self.call(calls[-1].args[2], "relax.divide")
        if divide is None or str(calls[0].attrs.dtype) != "int8":
            return None
        data = calls[4].args[0]
        if not isinstance(data, relax.Var) or not self.span(divide.args[1], data):
            return None
        return data, divide.args[1]

    def hybrid_layer(self, binding: relax.VarBinding) -> _HybridLayer | None:
        """The hybrid kernel whose int32 op is `binding`, else None."""
        call = binding.value
        if _op(call) not in _INTEGER_OPS:
            return None
        weight = constant_array(call.args[1])
        quantized = self.quantized_input(call.args[0])
        if weight is None or weight.dtype != np.int8 or quantized is None:
            return None
        data, span = quantized
        cast = self.only_user_calling(binding.var, "relax.astype")
        rescaled = None if cast is None else self.only_user_calling(cast, "relax.multiply")
        if rescaled is None or not self.value[rescaled].args[0].same_as(cast):
            return None
        factor = self.value[rescaled].args[1]
        calls = self.path(factor, ("relax.multiply", 0), ("relax.where", 2), ("relax.divide", 0))
        if calls is None or not calls[-1].args[0].same_as(span):
            return None
        scale = constant_array(calls[0].args[1])
        if scale is None or scale.size != 1:
            return None
        return _HybridLayer(binding.var, data, weight, np.float32(scale.item()), cast, rescaled)


@mutator
class _Dequantize(PyExprMutator):
    """Each hybrid kernel -> the float op on dequantize(its int8 weight)."""

    def __init__(self, mod: tvm.IRModule, layers: dict[relax.Var, _HybridLayer]):
        super().__init__(mod)
        self.layers = layers
        self.replaced = {layer.cast for layer in layers.values()}
        self.floats: dict[relax.Var, relax.Var] = {}  # rescale -> float op

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        var = binding.var
        layer = self.layers.get(var)
        if var in self.replaced:
            return
        if var in self.floats:
            self.set_var_remap(var, self.floats.pop(var))
            return
        if layer is None:
            super().visit_var_binding_(binding)
            return
        call = binding.value
        axis = _output_axis(call)
        weight = self.builder_.emit(
            relax.op.dequantize(
                relax.const(layer.weight),
                relax.const(layer.scale),
                relax.const(0, "int32"),
                axis=axis,
                out_dtype="float32",
            ),
            f"{var.name}_w",
        )
        data = self.visit_expr(layer.data)
        if _op(call) == "relax.nn.conv2d":
            op = conv2d_like(call.attrs, data, weight, "float32", out_layout=call.attrs.out_layout)
        else:
            op = relax.op.matmul(data, weight, out_dtype="float32")
        # Named as the int32 op: source names and layer names stay those of the import.
        self.floats[layer.rescaled] = self.builder_.emit(op, var.name)

    def run(self, mod: tvm.IRModule) -> tvm.IRModule:
        self.builder_.update_func(mod.get_global_var("main"), self.visit_expr(mod["main"]))
        return self.builder_.get()


def _output_axis(call: relax.Call) -> int:
    """The weight's output-channel axis: conv2d's kernel 'O', a matmul's last."""
    if _op(call) == "relax.nn.conv2d":
        return str(call.attrs.kernel_layout).index("O")
    return len(call.args[1].ty.shape) - 1


def normalize_hybrid(model: Model) -> Model:
    """`model` with its hybrid layers as float ops on dequantized int8 weights; the
    model itself when it has none."""
    graph = _Bindings(model.mod)
    layers = {
        layer.core: layer
        for binding in graph.bindings
        if (layer := graph.hybrid_layer(binding)) is not None
    }
    if not layers:
        return model
    mod = _Dequantize(model.mod, layers).run(model.mod)
    return dataclasses.replace(model, mod=relax.transform.DeadCodeElimination()(mod))


def _stored_weight(producer, expr) -> QuantizedWeight | None:
    """The int8 integers and per-channel scale of a weight already held as
    dequantize(int8 constant, scale, 0) (a normalized hybrid layer), else None."""
    call = producer(expr) if isinstance(expr, relax.Var) else None
    if _op(call) != "relax.dequantize":
        return None
    values, scale, zero_point = (constant_array(a) for a in call.args)
    if values is None or values.dtype != np.int8 or scale is None or zero_point is None:
        return None
    if zero_point.any():
        return None
    axis = int(call.attrs.axis) % values.ndim
    channels = np.broadcast_to(scale.astype(np.float32).ravel(), (values.shape[axis],)).copy()
    return QuantizedWeight(values, channels, axis)


def layer_weight(producer, expr, axis: int, config: QuantConfig, bits: int = 8) -> QuantizedWeight:
    """A weighted op's quantized weight: a stored int8 weight as it is (the file's
    integers; requantizing them would round twice), else `expr`'s float value (a
    constant, or a stored weight at other bits or power-of-two scales) quantized."""
    stored = _stored_weight(producer, expr)
    if stored is None:
        return quantize_weight(constant_value(producer, expr), axis, config, bits)
    if bits == 8 and not config.power_of_two and stored.axis == axis:
        return stored
    shape = [1] * stored.values.ndim
    shape[stored.axis] = -1
    real = (stored.values.astype(np.float64) * stored.scale.reshape(shape)).astype(np.float32)
    return quantize_weight(real, axis, config, bits)
