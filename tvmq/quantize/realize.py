"""Realize: rewrite a quantize/dequantize (QDQ) graph as integer arithmetic.

Every quantized graph in tvmq, imported (TFLite int8, ONNX QDQ) or made by tvmq's
quantizer, is first a float graph with ``dequantize -> float op -> quantize``
around each quantized op. This pass replaces each such island by the integer
kernel TFLite Micro runs for it, so results match TFLite Micro bit for bit:

- conv2d (grouped and depthwise too) and matmul/dense: int8 x int8 -> int32
  accumulation, int32 bias with the input zero point folded in, per-channel
  requantization, fused activation as a clamp; with int16 inputs (TFLite's 16x8
  scheme) int64 accumulation and bias, and TFLite's 64-bit requantization;
- add: TFLite's rescale of both inputs to a common 2**20-scaled domain (2**15
  for int16 outputs);
- mul: the product of both centred inputs, requantized by s_a * s_b / s_out;
- squared difference: TFLite's rescale to a common 2**7-scaled domain, the
  integer difference squared, requantized;
- concat: each input requantized to the output's parameters (a plain copy when
  they are equal, as TFLite requires), then an integer concat;
- average pooling: integer sums divided with round-half-away-from-zero;
- mean: the integer sum requantized once, 1/N folded into the multiplier (TFLite's
  QuantizedMeanOrSum);
- softmax over the last axis (int8 in, scale 1/256 and zero point -128 out):
  TFLite's fixed-point exp and reciprocal (:mod:`tvmq.quantize.softmax`);
- quantize(dequantize(x)) with new parameters: an integer requantize (clamped
  for TFLite's int8 RELU and RELU6);
- sqrt: LiteRT's int8 SQRT, the float root over the output scale truncated;
- abs: |x - zero point| requantized, as TFLite's int8 ABS; leaky ReLU: either
  side requantized by its own multiplier; PReLU too, the negative side times the
  centred slope;
- bilinear resize: TFLite's ResizeBilinearInteger, neighbours weighted in
  1/1024 steps (then a requantize where the output's parameters differ); an ONNX
  Resize (its function marked ONNX_RESIZE_ATTR by the importer) is defined by its
  float graph instead: exact rational taps, rounded half to even once;
- logistic and hard swish: TFLite's fixed-point kernels
  (:mod:`tvmq.quantize.softmax`, :mod:`tvmq.quantize.hard_swish`);
- reshapes, transposes, slices, max pooling, nearest resize and padding (with the
  zero point) copy integers;
- an ONNX QDQ graph's conv2d, matmul, add and mul (its functions marked
  ONNX_REQUANTIZE_ATTR by the importer) compute as onnxruntime's QLinearConv,
  QLinearMatMul, QLinearAdd and QLinearMul do instead, in float32 rounded half to
  even, and its leaky ReLU, mean and softmax as its QLinearLeakyRelu (a lookup
  table), QLinearGlobalAveragePool and QLinearSoftmax: its reference is
  onnxruntime, not TFLite (QOperator models arrive in this form too,
  :mod:`tvmq.frontend.onnx_qoperator`);
- conv2d and matmul whose input is quantized at run time (dynamic mode): integer
  accumulation, then a float rescale by input scale x weight scale, as ONNX
  Runtime's ConvInteger/MatMulInteger followed by its scale multiply.

uint8 tensors (TFLite's legacy asymmetric scheme) run as int8 ones, value and zero
point less 128, with TFLite's uint8 formulas where they differ
(:mod:`tvmq.quantize.legacy`); weights with a zero point subtract it times the
inputs' window sums.

Weights dequantized into a float op (weight-only mode) stay as they are.

Islands that match no rule stay float between their quantize/dequantize, which
is always correct, never a crash.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from tvmq.constants import constant_array
from tvmq.quantize import legacy
from tvmq.quantize.fixed_point import IntegerBuilder, quantize_multiplier, quantize_multipliers
from tvmq.quantize.hard_swish import IntegerHardSwish, hard_swish_params
from tvmq.quantize.softmax import (
    OUTPUT_SCALE,
    OUTPUT_ZERO_POINT,
    IntegerLogistic,
    IntegerSoftmax,
    logistic_params,
    softmax_params,
)

QDQ_OPS = ("relax.quantize", "relax.dequantize")
# Ops that commute with a per-tensor dequantize (positive scale): run them on integers.
PASSTHROUGH_OPS = (
    "relax.reshape",
    "relax.permute_dims",
    "relax.flatten",
    "relax.squeeze",
    "relax.expand_dims",
    "relax.nn.max_pool2d",
    "relax.nn.pad",
    "relax.strided_slice",
)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# A Relax function attribute: its linear resizes are ONNX Resize nodes, whose quantized
# meaning is dequantize -> float resize -> quantize (TFLite's RESIZE_BILINEAR instead
# has its own integer kernel, with taps in 1/1024 steps).
ONNX_RESIZE_ATTR = "tvmq.onnx_resize"
# A Relax function attribute: it was imported from an ONNX QDQ graph, whose reference,
# onnxruntime with its default optimizations, fuses DQ -> Conv/MatMul -> Q into
# QLinearConv/QLinearMatMul, which requantize the int32 accumulator in float32 (times
# x_scale * w_scale / y_scale, float32 in that order, rounded half to even), and
# DQ -> Add/Mul -> Q into QLinearAdd/QLinearMul (float32, see _Realizer._add_float32
# and _Realizer._mul_float32).
ONNX_REQUANTIZE_ATTR = "tvmq.onnx_requantize"
RESIZE_MODES = ("asymmetric", "half_pixel", "align_corners")
# TFLite Micro's add rescales int8 inputs by 2**20 before summing (add.cc).
ADD_LEFT_SHIFT = {"int8": 20, "uint8": 20, "int16": 15}


def passes_through(expr) -> bool:
    """An op that only copies values (PASSTHROUGH_OPS, nearest-neighbour resizing)."""
    name = _op_name(expr)
    if name == "relax.image.resize2d":
        return str(expr.attrs.method) == "nearest_neighbor"
    return name in PASSTHROUGH_OPS


def has_qdq(mod: tvm.IRModule) -> bool:
    """True when any Relax function of `mod` quantizes or dequantizes, or averages
    integers (TVM's import of TFLite's int8 AVERAGE_POOL_2D, which realize rounds
    as TFLite does: a model of that op alone has no quantize)."""
    found = []

    def visit(expr):
        name = _op_name(expr)
        found.append(
            name in QDQ_OPS
            or (name == "relax.nn.avg_pool2d" and "int" in str(expr.args[0].ty.dtype))
        )

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return any(found)


def mark_onnx_resize(mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` with its functions marked as holding ONNX resizes (see ONNX_RESIZE_ATTR)."""
    return _mark(mod, ONNX_RESIZE_ATTR)


def mark_onnx_requantize(mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` (an ONNX QDQ graph) with its functions marked as requantizing as
    onnxruntime does (see ONNX_REQUANTIZE_ATTR)."""
    return _mark(mod, ONNX_REQUANTIZE_ATTR)


def _mark(mod: tvm.IRModule, attr: str) -> tvm.IRModule:
    for global_var, func in mod.functions_items():
        if isinstance(func, relax.Function):
            mod.update_func(global_var, func.with_attr(attr, True))
    return mod


def realize(mod: tvm.IRModule) -> tvm.IRModule:
    """Integer version of `mod`: every recognised QDQ island becomes integer ops."""
    mod = _Realizer(mod).transform()
    return relax.transform.DeadCodeElimination()(mod)


@dataclass(frozen=True)
class _QuantizedActivation:
    """A per-tensor quantized value entering a float op through dequantize."""

    data: relax.Expr
    scale: float
    zero_point: int
    dtype: str
    # Stands for a uint8 tensor: TFLite's uint8 kernels' arithmetic applies.
    legacy: bool = False


@dataclass(frozen=True)
class _QuantizedConstant:
    """Integer weights with scale and zero point broadcast to their full shape."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray

    def per_channel(self, axis: int) -> np.ndarray | None:
        """One scale per index of `axis`, or None if it also varies along other axes."""
        columns = np.moveaxis(self.scale, axis, 0).reshape(self.scale.shape[axis], -1)
        return columns[:, 0] if np.all(columns == columns[:, :1]) else None


def _op_name(expr) -> str | None:
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def prelu_slope(add: relax.Call, producer) -> relax.Expr | None:
    """The slope of a PReLU as the importers write it (tvmq.frontend.activations),
    ``maximum(x, 0) + minimum(x, 0) * slope``, `producer` giving each var's value;
    else None."""
    if _op_name(add) != "relax.add":
        return None
    kept, product = (producer(arg) for arg in add.args)
    if _op_name(kept) != "relax.maximum" or _op_name(product) != "relax.multiply":
        return None
    negative = producer(product.args[0])
    if _op_name(negative) != "relax.minimum" or not negative.args[0].same_as(kept.args[0]):
        return None
    if _scalar(kept.args[1]) != 0 or _scalar(negative.args[1]) != 0:
        return None
    return product.args[1]


def _scalar(expr) -> float | int | None:
    """The value of a scalar constant (a tensor constant or a prim value)."""
    if not isinstance(expr, tvm.ir.expr.Constant):
        return None
    value = expr.value
    if not hasattr(value, "numpy"):
        return value
    value = value.numpy()
    return value.item() if value.size == 1 else None


def layout_transform(call: relax.Call):
    """The numpy equivalent of a reshape or permute_dims call."""
    if _op_name(call) == "relax.reshape":
        shape = _shape(call)
        return lambda a: np.reshape(a, shape)
    axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
    return lambda a: np.transpose(a, axes)


def conv2d_like(attrs, data, weight, out_dtype: str, **changes) -> relax.Expr:
    """A conv2d with the strides, padding, dilation, groups and layouts of a source
    conv2d's `attrs` except for `changes`: its integer or float-weight forms."""
    options = {
        "strides": attrs.strides,
        "padding": attrs.padding,
        "dilation": attrs.dilation,
        "groups": attrs.groups,
        "data_layout": attrs.data_layout,
        "kernel_layout": attrs.kernel_layout,
    }
    return relax.op.nn.conv2d(data, weight, out_dtype=out_dtype, **(options | changes))


def constant_value(producer, expr) -> np.ndarray | None:
    """Value of a constant, possibly reshaped or permuted (a transposed weight), or
    None; `producer` maps a variable to the expression bound to it."""
    value = constant_array(expr)
    if value is not None:
        return value
    call = producer(expr) if isinstance(expr, relax.Var) else None
    if _op_name(call) in ("relax.reshape", "relax.permute_dims"):
        inner = constant_value(producer, call.args[0])
        return None if inner is None else layout_transform(call)(inner)
    return None


def _identity_clip(call: relax.Call) -> relax.Expr | None:
    """The input of a clip to its integer dtype's whole range (TFLite's int8 ReLU
    when the zero point is -128), which only costs a pass over the tensor."""
    x = call.args[0]
    dtype = str(x.ty.dtype)
    if not dtype.startswith(("int", "uint")):
        return None
    bounds = [_prim_value(a) for a in call.args[1:3]]
    return x if tuple(bounds) == _activation_range(dtype) else None


def _prim_value(expr) -> float | None:
    """The number in a FloatImm/IntImm, or in a Relax prim value wrapping one."""
    value = getattr(expr, "value", None)
    return getattr(value, "value", value)


def _shape(expr) -> tuple[int, ...]:
    return tuple(int(d) for d in expr.ty.shape)


def _mlas_add_form(a, b) -> list[tuple[int, bool]] | None:
    """The order in which MLAS's QLinearAdd adds its operands into the fixed part, as
    (operand: 0 for a, 1 for b; fused), or None for a broadcast it splits into other
    calls: same shapes (b then a, both fused multiply-adds), or one operand of a
    single value (it first, by a separate multiply and add; the other fused)."""
    shape_a, shape_b = _shape(a.data), _shape(b.data)
    if shape_a == shape_b:
        return [(1, True), (0, True)]
    if int(np.prod(shape_b)) == 1:
        return [(1, False), (0, True)]
    if int(np.prod(shape_a)) == 1:
        return [(0, False), (1, True)]
    return None


def _activation_range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


@mutator
class _Realizer(PyExprMutator):
    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.mod_ = mod
        self.ints = IntegerBuilder(self.builder_)
        self.onnx_resize = False
        self.onnx_requantize = False

    def transform(self) -> tvm.IRModule:
        for global_var, func in self.mod_.functions_items():
            if isinstance(func, relax.Function):
                self.onnx_resize = bool(func.attrs and func.attrs.get(ONNX_RESIZE_ATTR))
                self.onnx_requantize = bool(func.attrs and func.attrs.get(ONNX_REQUANTIZE_ATTR))
                self.builder_.update_func(global_var, self.visit_expr(func))
        return self.builder_.get()

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        name = _op_name(call)
        realized = None
        if name == "relax.quantize":
            realized = self._quantize(call)
        elif name == "relax.astype":
            realized = self._average_pool(call)
        elif passes_through(call):
            realized = self._passthrough(call)
            if realized is None:
                realized = self._sink_uint8(call)
        elif name in ("relax.nn.conv2d", "relax.matmul"):
            realized = self._dynamic(call)
        elif name == "relax.clip":
            realized = _identity_clip(call)
            if realized is None:
                realized = self._sink_uint8(call)
        return call if realized is None else realized

    # -- graph walking ---------------------------------------------------

    def _producer(self, expr) -> relax.Expr | None:
        if isinstance(expr, relax.Var):
            return self.lookup_binding(expr)
        return expr

    def _producer_op(self, expr) -> tuple[str | None, relax.Expr | None]:
        producer = self._producer(expr)
        return _op_name(producer), producer

    def _dequantized(self, expr, signed: bool = True) -> _QuantizedActivation | None:
        """The quantized value behind a per-tensor dequantize; a uint8 one as its
        int8 stand-in unless `signed` is False."""
        name, call = self._producer_op(expr)
        if name != "relax.dequantize" or constant_array(call.args[0]) is not None:
            return None
        scale, zero_point = _scalar(call.args[1]), _scalar(call.args[2])
        if scale is None or zero_point is None:
            return None
        dtype = str(call.args[0].ty.dtype)
        x = _QuantizedActivation(call.args[0], float(scale), int(zero_point), dtype)
        return self._signed(x) if signed else x

    def _signed(self, x: _QuantizedActivation) -> _QuantizedActivation:
        """A uint8 activation as the int8 one that stands for it (value - 128)."""
        if x.dtype != "uint8":
            return x
        return _QuantizedActivation(
            self._to_int8(x.data), x.scale, x.zero_point - legacy.OFFSET, "int8", True
        )

    def _to_int8(self, data: relax.Expr) -> relax.Expr:
        """uint8 `data` less 128, as int8; the int8 value itself when `data` was made
        from it by :meth:`_to_uint8`."""
        source = self._uint8_source(data)
        if source is not None:
            return source
        wide = self.ints.emit(
            relax.op.subtract(self.ints.cast(data, "int16"), self.ints.const(128, "int16"))
        )
        return self.ints.cast(wide, "int8")

    def _to_uint8(self, value: relax.Expr) -> relax.Expr:
        """int8 `value` plus 128, as uint8 (the inverse of :meth:`_to_int8`)."""
        wide = self.ints.emit(
            relax.op.add(self.ints.cast(value, "int16"), self.ints.const(128, "int16"))
        )
        return relax.op.astype(wide, "uint8")

    def _uint8_source(self, data: relax.Expr) -> relax.Expr | None:
        """The int8 value that :meth:`_to_uint8` turned into `data`, or None."""
        while isinstance(self._producer(data), relax.Var):  # an alias (a clip dropped)
            data = self._producer(data)
        name, cast = self._producer_op(data)
        if name != "relax.astype" or str(cast.attrs.dtype) != "uint8":
            return None
        name, add = self._producer_op(cast.args[0])
        if name != "relax.add" or _scalar(add.args[1]) != 128:
            return None
        name, widen = self._producer_op(add.args[0])
        if name != "relax.astype" or str(widen.ty.dtype) != "int16":
            return None
        source = widen.args[0]
        return source if str(source.ty.dtype) == "int8" else None

    def _elementwise_operand(self, expr) -> _QuantizedActivation | None:
        """An input of add, sub or mul: TFLite reads a quantized constant operand
        (e.g. ``x - 0.5``) as it reads an activation."""
        name, call = self._producer_op(expr)
        if name != "relax.dequantize" or constant_array(call.args[0]) is None:
            return self._dequantized(expr)
        scale, zero_point = _scalar(call.args[1]), _scalar(call.args[2])
        if scale is None or zero_point is None:
            return None
        dtype = str(call.args[0].ty.dtype)
        return _QuantizedActivation(call.args[0], float(scale), int(zero_point), dtype)

    def _dynamically_quantized(self, expr) -> tuple[relax.Expr, relax.Expr, relax.Expr] | None:
        """(int8 data, scale, zero point) of a dequantize whose parameters are tensors
        computed at run time."""
        name, call = self._producer_op(expr)
        if name != "relax.dequantize" or _scalar(call.args[1]) is not None:
            return None
        if str(call.args[0].ty.dtype) != "int8" or len(call.args[1].ty.shape) != 0:
            return None
        return call.args[0], call.args[1], call.args[2]

    def _quantized_constant(self, expr) -> _QuantizedConstant | None:
        """Follow reshape/permute_dims around dequantize(constant) back to integers."""
        name, call = self._producer_op(expr)
        if name == "relax.dequantize":
            values = self._constant_value(call.args[0])
            scale, zero_point = constant_array(call.args[1]), constant_array(call.args[2])
            if values is None or scale is None or zero_point is None:
                return None
            shape = [1] * values.ndim
            if scale.size > 1 or zero_point.size > 1:
                shape[int(call.attrs.axis)] = -1
            if values.dtype == np.uint8:  # as int8 stand-ins, like uint8 activations
                values = (values.astype(np.int16) - legacy.OFFSET).astype(np.int8)
                zero_point = zero_point.astype(np.int64) - legacy.OFFSET
            return _QuantizedConstant(
                values,
                np.broadcast_to(scale.astype(np.float64).reshape(shape), values.shape),
                np.broadcast_to(zero_point.astype(np.int64).reshape(shape), values.shape),
            )
        if name in ("relax.reshape", "relax.permute_dims"):
            inner = self._quantized_constant(call.args[0])
            if inner is None:
                return None
            transform = layout_transform(call)
            return _QuantizedConstant(
                transform(inner.values), transform(inner.scale), transform(inner.zero_point)
            )
        return None

    def _constant_value(self, expr) -> np.ndarray | None:
        return constant_value(self._producer, expr)

    # -- rules -----------------------------------------------------------

    def _quantize(self, call: relax.Call) -> relax.Expr | None:
        out_scale, out_zero_point = _scalar(call.args[1]), _scalar(call.args[2])
        if out_scale is None or out_zero_point is None:
            return None
        out = _QuantizedActivation(
            call, float(out_scale), int(out_zero_point), str(call.attrs.out_dtype)
        )
        if out.dtype == "uint8":
            return self._quantize_uint8(call, out)
        return self._quantize_to(call, out)

    def _quantize_uint8(self, call: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """A uint8 output computed as its int8 stand-in, then moved back to uint8."""
        signed = _QuantizedActivation(
            call, out.scale, out.zero_point - legacy.OFFSET, "int8", legacy=True
        )
        name, producer = self._producer_op(call.args[0])
        if self.onnx_requantize and name in ("relax.mean", "relax.nn.leakyrelu"):
            realized = self._quantize_to(call, signed)  # onnxruntime's kernels, not TFLite's
        elif name == "relax.mean":
            realized = self._mean_uint8(producer, signed)
        elif (
            name in ("relax.nn.relu", "relax.clip", "relax.nn.leakyrelu")
            and _op_name(self._producer(producer.args[0])) == "relax.dequantize"
        ):
            realized = self._activation_uint8(producer, signed)
        else:
            realized = self._quantize_to(call, signed)
        if realized is None:
            return None
        return self._to_uint8(self.ints.emit(realized))

    def _quantize_to(self, call: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        low, high = _activation_range(out.dtype)
        value = call.args[0]
        name, producer = self._producer_op(value)
        fused_activation = name in ("relax.nn.relu", "relax.clip")
        if name == "relax.nn.relu":
            low = max(low, out.zero_point)
            value = producer.args[0]
        elif name == "relax.clip":
            low = max(low, out.zero_point + round(_scalar(producer.args[1]) / out.scale))
            high = min(high, out.zero_point + round(_scalar(producer.args[2]) / out.scale))
            value = producer.args[0]
        name, producer = self._producer_op(value)
        bias = None
        if not fused_activation and prelu_slope(producer, self._producer) is not None:
            return self._prelu(producer, out)
        if name == "relax.add":
            core_name, core = self._producer_op(producer.args[0])
            if core_name in ("relax.nn.conv2d", "relax.matmul"):
                name, producer, bias = core_name, core, producer.args[1]
            else:
                return self._add(producer, out, low, high)
        if name == "relax.subtract":
            return self._add(producer, out, low, high, subtract=True)
        if name == "relax.multiply":
            return self._mul(producer, out, low, high)
        if name == "relax.concat" and not fused_activation:
            return self._concat(producer, out)
        if name in ("relax.nn.avg_pool2d", "relax.mean"):
            return self._pool(producer, out)
        if name == "relax.nn.conv2d":
            return self._conv2d(producer, bias, out, low, high)
        if name == "relax.matmul":
            return self._matmul(producer, bias, out, low, high)
        if name == "relax.image.resize2d" and not fused_activation:
            return self._resize_bilinear(producer, out)
        if name == "relax.divide" and not fused_activation:
            return self._hard_swish(producer, out)
        if name == "relax.sigmoid" and not fused_activation:
            return self._logistic(producer, out)
        if name == "relax.nn.leakyrelu" and not fused_activation:
            return self._leaky_relu(producer, out)
        if name == "relax.sqrt" and not fused_activation:
            return self._sqrt(producer, out)
        if name == "relax.abs" and not fused_activation:
            return self._abs(producer, out)
        if name == "relax.nn.softmax" and not fused_activation:
            return self._softmax(producer, out)
        if name == "relax.dequantize":
            return self._requantize(value, out, low, high)
        return None

    def _conv2d(self, conv, bias, out, low, high) -> relax.Expr | None:
        attrs = conv.attrs
        if str(attrs.out_layout) != str(attrs.data_layout):
            return None
        x = self._dequantized(conv.args[0])
        weight = self._quantized_constant(conv.args[1])
        out_axis = str(attrs.kernel_layout).index("O")
        if x is None or weight is None or not _single_zero_point(weight):
            return None
        weight_scale = weight.per_channel(out_axis)
        if weight_scale is None:
            return None
        data = x.data
        padding = [int(p) for p in attrs.padding]
        if any(padding):
            # Pad with the zero point: padded positions then contribute nothing,
            # exactly like TFLite's kernels that skip them.
            layout = str(attrs.data_layout)
            widths = [[0, 0] for _ in layout]
            widths[layout.index("H")] = [padding[0], padding[2]]
            widths[layout.index("W")] = [padding[1], padding[3]]
            data = self.ints.emit(
                relax.op.nn.pad(
                    data, [w for pair in widths for w in pair], "constant", x.zero_point
                )
            )
        accumulator = self.ints.emit(
            conv2d_like(
                attrs, data, relax.const(weight.values), _accumulator_dtype(x), padding=[0, 0, 0, 0]
            )
        )
        channel_axis = str(attrs.out_layout).index("C")
        reduce_axes = tuple(a for a in range(weight.values.ndim) if a != out_axis)
        weight_sums = _centred(weight).sum(axis=reduce_axes)
        accumulator = self._less_window_sums(accumulator, data, conv, weight, out_axis)
        return self._finish(
            accumulator,
            x,
            weight_scale,
            weight_sums,
            bias,
            out,
            low,
            high,
            channel_axis,
            4,
            float32_product=x.legacy,  # TFLite's uint8 conv (not its fully connected)
        )

    def _matmul(self, matmul, bias, out, low, high) -> relax.Expr | None:
        x = self._dequantized(matmul.args[0])
        weight = self._quantized_constant(matmul.args[1])
        if x is None or weight is None or weight.values.ndim != 2:
            return None
        if not _single_zero_point(weight):
            return None
        weight_scale = weight.per_channel(1)
        if weight_scale is None:
            return None
        accumulator = self.ints.emit(
            relax.op.matmul(x.data, relax.const(weight.values), out_dtype=_accumulator_dtype(x))
        )
        ndim = len(_shape(matmul))
        weight_sums = _centred(weight).sum(axis=0)
        zero_point = int(weight.zero_point.flat[0])
        if zero_point:
            row_sums = self.ints.emit(
                relax.op.sum(self.ints.cast(x.data, "int32"), axis=[-1], keepdims=True)
            )
            accumulator = self._less(accumulator, row_sums, zero_point)
        return self._finish(
            accumulator, x, weight_scale, weight_sums, bias, out, low, high, ndim - 1, ndim
        )

    def _finish(
        self,
        accumulator,
        x,
        weight_scale,
        weight_sums,
        bias,
        out,
        low,
        high,
        channel_axis,
        ndim,
        float32_product: bool = False,
    ) -> relax.Expr | None:
        """Add the bias (with the input zero point folded in) and requantize per channel;
        with `float32_product` the multiplier starts from input x weight scale in float32."""
        channels = weight_sums.shape[0]
        if float32_product:
            bias_scale = legacy.product_scale(x.scale, weight_scale)
        else:
            bias_scale = np.float64(x.scale) * weight_scale.astype(np.float64)
        bias_values = np.zeros(channels, np.int64)
        if bias is not None:
            bias_values = self._bias_values(
                bias, bias_scale, channels, _accumulator_dtype(x) == "int64"
            )
            if bias_values is None:
                return None
        channel_shape = [1] * ndim
        channel_shape[channel_axis] = channels
        folded_bias = bias_values - x.zero_point * weight_sums
        wide = _accumulator_dtype(x) == "int64"
        if self.onnx_requantize and not wide:
            return self._requantize_float32(
                accumulator, folded_bias, x, weight_scale, channel_shape, out, low, high
            )
        multiplier, shift = quantize_multipliers(bias_scale / np.float64(out.scale))
        if not wide:
            return self.ints.requantize(
                accumulator, folded_bias, multiplier, shift, channel_axis, out, low, high
            )
        accumulator = self.ints.emit(
            relax.op.add(accumulator, self.ints.const(folded_bias, "int64", channel_shape))
        )
        if np.all(multiplier == multiplier[0]) and np.all(shift == shift[0]):
            multiplier, shift = multiplier[:1], shift[:1]
        scaled = self.ints.multiply_by_quantized_multiplier_int64(
            accumulator, multiplier, shift, channel_shape
        )
        return self._output(scaled, out, low, high)

    def _requantize_float32(
        self, accumulator, folded_bias, x, weight_scale, channel_shape, out, low, high
    ) -> relax.Expr:
        """onnxruntime's requantization of an int32 accumulator plus bias (see
        ONNX_REQUANTIZE_ATTR); uint8 tensors' int8 stand-ins shift both zero points
        by the same 128, which cancels."""
        scales = np.float32(x.scale) * weight_scale.astype(np.float32) / np.float32(out.scale)
        total = self.ints.emit(
            relax.op.add(accumulator, self.ints.const(folded_bias, "int32", channel_shape))
        )
        rounded = self.ints.scale_round_half_even(
            total, scales, channel_shape, low - out.zero_point, high - out.zero_point
        )
        return self._output(rounded, out, low, high)

    def _less_window_sums(self, accumulator, data, conv, weight, out_axis) -> relax.Expr:
        """conv(x, w) less the weight zero point times each window's input sum: with
        it, the int8 convolution of x and w sums (x - x_zp) * (w - w_zp) (the rest of
        the expansion is folded into the bias)."""
        zero_point = int(weight.zero_point.flat[0])
        if not zero_point:
            return accumulator
        attrs = conv.attrs
        shape = list(weight.values.shape)
        groups = int(attrs.groups)
        if groups == 1:
            shape[out_axis] = 1  # one sum per window, shared by all output channels
        window_sums = self.ints.emit(
            conv2d_like(
                attrs,
                data,
                relax.const(np.ones(shape, str(data.ty.dtype))),
                "int32",
                padding=[0, 0, 0, 0],
            )
        )
        return self._less(accumulator, window_sums, zero_point)

    def _less(self, accumulator, sums, zero_point: int) -> relax.Expr:
        """accumulator - zero_point * sums (int32)."""
        scaled = self.ints.emit(relax.op.multiply(sums, self.ints.const(zero_point, "int32")))
        return self.ints.emit(relax.op.subtract(accumulator, scaled))

    def _bias_values(
        self, bias, bias_scale: np.ndarray, channels: int, wide: bool
    ) -> np.ndarray | None:
        """Integer bias at `bias_scale`: int32, or int64 for int16 inputs (`wide`)."""
        quantized = self._quantized_constant(bias)
        if quantized is not None and quantized.values.size == channels:
            # TFLite stores int32 biases at input_scale * weight_scale: take them as they are.
            if np.allclose(quantized.scale.ravel(), bias_scale, rtol=1e-5):
                return quantized.values.astype(np.int64).ravel()
            real = (quantized.values.astype(np.float64) - quantized.zero_point) * quantized.scale
        else:
            real = self._constant_value(bias)
            if real is None or real.size != channels:
                return None
        rounded = np.round(real.astype(np.float64).ravel() / bias_scale)
        if wide:
            return rounded.astype(np.int64)
        return np.clip(rounded, INT32_MIN, INT32_MAX).astype(np.int64)

    def _output(self, scaled, out, low, high) -> relax.Expr:
        shifted = self.ints.emit(relax.op.add(scaled, self.ints.const(out.zero_point, "int32")))
        return self.ints.saturate(shifted, low, high, out.dtype)

    def _add(self, add, out, low, high, subtract: bool = False) -> relax.Expr | None:
        """TFLite's add, or its sub, which differs only in subtracting the rescaled
        inputs (one step apart from a float island when the scales' ratio is a power
        of two: ties are frequent there)."""
        a, b = self._elementwise_operand(add.args[0]), self._elementwise_operand(add.args[1])
        if a is None or b is None:
            return None
        if (
            self.onnx_requantize
            and not subtract
            and {a.dtype, b.dtype, out.dtype} <= {"int8", "uint8"}  # MLAS's 8-bit kernel
            and _mlas_add_form(a, b) is not None
        ):
            return self._add_float32(a, b, out, low, high)
        left_shift = ADD_LEFT_SHIFT.get(out.dtype)
        if left_shift is None:
            return None
        twice_max = 2 * max(np.float64(a.scale), np.float64(b.scale))
        if not subtract:
            one_step = self._add_step(a, b, out, twice_max, left_shift, (low, high))
            if one_step is not None:
                return one_step
        scaled = []
        for operand in (a, b):
            multiplier, shift = quantize_multiplier(np.float64(operand.scale) / twice_max)
            centred = self.ints.centre(operand.data, operand.zero_point)
            shifted = self.ints.emit(
                relax.op.multiply(centred, self.ints.const(1 << left_shift, "int32"))
            )
            scaled.append(self.ints.multiply_by_quantized_multiplier(shifted, multiplier, shift))
        combine = relax.op.subtract if subtract else relax.op.add
        total = self.ints.emit(combine(scaled[0], scaled[1]))
        multiplier, shift = quantize_multiplier(
            twice_max / ((1 << left_shift) * np.float64(out.scale))
        )
        return self._output(
            self.ints.multiply_by_quantized_multiplier(total, multiplier, shift), out, low, high
        )

    def _add_float32(self, a, b, out, low, high) -> relax.Expr:
        """onnxruntime's QLinearAdd (MLAS's AVX2 kernel, which the QDQ Add of an ONNX
        graph becomes): c = a * (s_a / s_c) + (b * (s_b / s_c) + fixed), each step a
        fused multiply-add rounded to float32 (emulated exactly in float64), fixed =
        z_c - (z_a * s_a / s_c + z_b * s_b / s_c) in float32, then rounded half to
        even. A single-value operand (its scalar form) joins `fixed` first by a
        multiply and an add, each rounded, before the other's fused step. It reads
        the stored integers: uint8 ones, not their int8 stand-ins."""

        def stored_zero_point(x: _QuantizedActivation) -> np.float32:
            return np.float32(x.zero_point + _stored_offset(x))

        operands = [(x, np.float32(x.scale) / np.float32(out.scale)) for x in (a, b)]
        (_, ratio_a), (_, ratio_b) = operands
        fixed = stored_zero_point(out) - (
            ratio_a * stored_zero_point(a) + ratio_b * stored_zero_point(b)
        )
        value = self.ints.const(np.float32(fixed), "float32")
        for position, fused in _mlas_add_form(a, b):
            x, ratio = operands[position]
            stored = relax.op.add(
                self.ints.cast(x.data, "float64"), self.ints.const(_stored_offset(x), "float64")
            )
            product = relax.op.multiply(stored, self.ints.const(ratio, "float64"))
            if not fused:  # rounded to float32 before the add
                product = relax.op.astype(
                    self.ints.cast(self.ints.emit(product), "float32"), "float64"
                )
            total = relax.op.add(product, relax.op.astype(value, "float64"))
            value = self.ints.cast(self.ints.emit(total), "float32")
        shift = _stored_offset(out)
        rounded = self.ints.round_half_even(value, low + shift, high + shift)
        return self._output(rounded, dataclasses.replace(out, zero_point=-shift), low, high)

    def _add_step(self, a, b, out, twice_max, left_shift, clamp) -> relax.Expr | None:
        """The int8 add of two same-shape tensors as one step with a micro-kernel, when
        no rescale shifts left (never for the inputs, whose multipliers are at most
        1/2; for the output only when its scale is tiny)."""
        if {a.dtype, b.dtype, out.dtype} != {"int8"} or _shape(a.data) != _shape(b.data):
            return None
        inputs = []
        for operand in (a, b):
            multiplier, shift = quantize_multiplier(np.float64(operand.scale) / twice_max)
            inputs.append((operand.zero_point, multiplier, -shift))
        multiplier, shift = quantize_multiplier(
            twice_max / ((1 << left_shift) * np.float64(out.scale))
        )
        if min(-shift, *(right for _, _, right in inputs)) < 0:
            return None
        output = (multiplier, -shift, out.zero_point)
        return self.ints.add(a.data, b.data, inputs, output, clamp, left_shift)

    def _mul(self, mul, out, low, high) -> relax.Expr | None:
        """TFLite's MulElementwise: (a - za) * (b - zb) in int32, requantized by
        s_a * s_b / s_out (broadcasting as numpy does)."""
        a, b = self._elementwise_operand(mul.args[0]), self._elementwise_operand(mul.args[1])
        if a is None or b is None:
            return self._squared_difference(mul, out, low, high)
        product = self.ints.emit(
            relax.op.multiply(
                self.ints.centre(a.data, a.zero_point), self.ints.centre(b.data, b.zero_point)
            )
        )
        if self.onnx_requantize and {a.dtype, b.dtype, out.dtype} <= {"int8", "uint8"}:
            return self._mul_float32(product, a, b, out, low, high)
        if a.legacy:
            real = legacy.mul_multiplier(a.scale, b.scale, out.scale)
        else:
            real = np.float64(a.scale) * np.float64(b.scale) / np.float64(out.scale)
        multiplier, shift = quantize_multiplier(real)
        scaled = self.ints.multiply_by_quantized_multiplier(product, multiplier, shift)
        return self._output(scaled, out, low, high)

    def _mul_float32(self, product, a, b, out, low, high) -> relax.Expr:
        """onnxruntime's QLinearMul (MLAS's SSE2 kernel): the int32 product of the
        centred inputs times s_a * s_b / s_c, plus the stored output zero point, each
        rounded to float32, then rounded half to even. Each step is computed exactly
        in float64 and rounded to float32, so no compiler fuses the two roundings."""
        ratio = np.float32(a.scale) * np.float32(b.scale) / np.float32(out.scale)
        shift = _stored_offset(out)
        scaled = relax.op.multiply(
            self.ints.cast(product, "float64"), self.ints.const(ratio, "float64")
        )
        scaled = self.ints.cast(self.ints.cast(self.ints.emit(scaled), "float32"), "float64")
        total = relax.op.add(scaled, self.ints.const(out.zero_point + shift, "float64"))
        value = self.ints.cast(self.ints.emit(total), "float32")
        rounded = self.ints.round_half_even(value, low + shift, high + shift)
        return self._output(rounded, dataclasses.replace(out, zero_point=-shift), low, high)

    def _squared_difference(self, mul, out, low, high) -> relax.Expr | None:
        """d * d of d = dequantize(a) - dequantize(b), as TVM imports TFLite's int8
        SQUARED_DIFFERENCE: both inputs rescaled to a common 2**7-scaled domain (as
        add does), the integer difference squared, then requantized."""
        name, difference = self._producer_op(mul.args[0])
        if name != "relax.subtract" or not mul.args[0].same_as(mul.args[1]):
            return None
        a, b = self._dequantized(difference.args[0]), self._dequantized(difference.args[1])
        if a is None or b is None or out.dtype != "int8":
            return None
        left_shift = 7
        twice_max = 2 * max(np.float64(a.scale), np.float64(b.scale))
        scaled = []
        for operand in (a, b):
            multiplier, shift = quantize_multiplier(np.float64(operand.scale) / twice_max)
            centred = self.ints.centre(operand.data, operand.zero_point)
            shifted = self.ints.emit(
                relax.op.multiply(centred, self.ints.const(1 << left_shift, "int32"))
            )
            scaled.append(self.ints.multiply_by_quantized_multiplier(shifted, multiplier, shift))
        raw = self.ints.emit(relax.op.subtract(scaled[0], scaled[1]))
        squared = self.ints.emit(relax.op.multiply(raw, raw))
        multiplier, shift = quantize_multiplier(
            twice_max * twice_max / ((1 << (2 * left_shift)) * np.float64(out.scale))
        )
        result = self.ints.multiply_by_quantized_multiplier(squared, multiplier, shift)
        return self._output(result, out, low, high)

    def _concat(self, concat: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """Concatenate integers: inputs whose parameters differ from the output's are
        requantized to them first (TFLite's QUANTIZE int8 -> int8 arithmetic)."""
        fields = concat.args[0]
        if isinstance(fields, relax.Var):
            fields = self._producer(fields)
        if not isinstance(fields, relax.Tuple):
            return None
        parts = []
        for field in fields.fields:
            x = self._dequantized(field)
            if x is None:
                return None
            same = (np.float32(x.scale), x.zero_point) == (np.float32(out.scale), out.zero_point)
            if same and x.dtype == out.dtype:
                parts.append(x.data)
            elif x.legacy and out.legacy:
                parts.append(self._concat_rescale_uint8(x, out))
            else:
                parts.append(self.ints.emit(self._rescale(x.data, x, out)))
        return relax.op.concat(parts, axis=concat.attrs.axis)

    def _concat_rescale_uint8(self, x: _QuantizedActivation, out: _QuantizedActivation):
        """TFLite's uint8 concatenation rescale (float32 arithmetic) as a table lookup."""
        table = legacy.concat_table(
            x.scale,
            x.zero_point + legacy.OFFSET,
            out.scale,
            out.zero_point + legacy.OFFSET,
        )
        index = self.ints.emit(
            relax.op.add(self.ints.cast(x.data, "int32"), self.ints.const(128, "int32"))
        )
        # Indices are 0..255 by construction; "clip" only spares the "fast" mode's warning.
        return self.ints.emit(relax.op.take(relax.const(table), index, axis=0, mode="clip"))

    def _softmax(self, softmax: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """int8 softmax over the last axis into TFLite's fixed output parameters
        (int8, or int16 at 1/65536 as TFLite Micro's 8-to-16 softmax)."""
        x = self._dequantized(softmax.args[0])
        if x is not None and self.onnx_requantize and out.dtype == "int8":
            return self._softmax_onnx(softmax, x, out)
        if x is None or x.dtype != "int8" or out.dtype not in ("int8", "int16"):
            return None
        if int(softmax.attrs.axis) % len(_shape(softmax)) != len(_shape(softmax)) - 1:
            return None
        if out.dtype == "int16":
            # SoftmaxPrepare: zero point -32768, scale within 0.1% of 1/65536.
            wide = np.float32(1.0 / 65536)
            if out.zero_point != -32768 or abs(np.float32(out.scale) - wide) > wide * 0.001:
                return None
        elif (np.float32(out.scale), out.zero_point) != (
            np.float32(OUTPUT_SCALE),
            OUTPUT_ZERO_POINT,
        ):
            return None
        params = softmax_params(np.float64(np.float32(x.scale)))
        if params is None:
            return None
        return IntegerSoftmax(self.ints)(x.data, params, out.dtype)

    def _softmax_onnx(self, softmax: relax.Call, x: _QuantizedActivation, out) -> relax.Expr:
        """onnxruntime's QLinearSoftmax: exp((x - max + shift) * s_x) from a float32
        table of its 256 differences (shift keeps the sum in range), summed in float32,
        each times floor(1 / s_y) over the sum, rounded half to even, plus the zero
        point, clamped above at 255 only. An int8 output (not a uint8 stand-in) keeps
        onnxruntime's wrap-around of values above 127."""
        axis = int(softmax.attrs.axis)
        count = _shape(softmax)[axis]
        x_scale = float(np.float32(x.scale))
        shift = max(0.0, np.log(np.finfo(np.float32).max / count) - 5) / x_scale
        table = np.exp((np.arange(256) - 255 + shift) * x_scale).astype(np.float32)
        data = self.ints.cast(x.data, "int32")
        largest = self.ints.emit(relax.op.max(data, axis=[axis], keepdims=True))
        index = self.ints.emit(
            relax.op.add(relax.op.subtract(data, largest), self.ints.const(255, "int32"))
        )
        exps = self.ints.emit(relax.op.take(relax.const(table), index, axis=0, mode="clip"))
        total = self.ints.emit(relax.op.sum(exps, axis=[axis], keepdims=True))
        y_scale = np.floor(np.float32(1.0) / np.float32(out.scale))
        scaled = relax.op.multiply(exps, self.ints.const(np.float32(y_scale), "float32"))
        ratio = self.ints.emit(relax.op.divide(scaled, total))
        rounded = self.ints.round_half_even(ratio, 0, 1 << 22)  # then clamped at 255
        stored_zero_point = out.zero_point + _stored_offset(out)
        value = self.ints.emit(
            relax.op.minimum(
                relax.op.add(rounded, self.ints.const(stored_zero_point, "int32")),
                self.ints.const(255, "int32"),
            )
        )
        if out.legacy:  # the uint8 value, as its int8 stand-in
            return self.ints.saturate(
                self.ints.emit(relax.op.subtract(value, self.ints.const(128, "int32"))),
                -128,
                127,
                "int8",
            )
        wrapped = relax.op.subtract(
            relax.op.bitwise_and(
                relax.op.add(value, self.ints.const(128, "int32")), self.ints.const(255, "int32")
            ),
            self.ints.const(128, "int32"),
        )
        return relax.op.astype(self.ints.emit(wrapped), "int8")

    def _abs(self, abs_call: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """TFLite's int8 ABS: |x - zero point|, requantized by s_in / s_out."""
        x = self._dequantized(abs_call.args[0])
        if x is None:
            return None
        magnitude = self.ints.emit(relax.op.abs(self.ints.centre(x.data, x.zero_point)))
        return self._rescale(magnitude, dataclasses.replace(x, zero_point=0), out)

    def _sqrt(self, sqrt: relax.Call, out) -> relax.Expr | None:
        """LiteRT's int8 SQRT (TFLite Micro has none): the float32 root of the
        dequantized input over the output scale, truncated toward zero, not rounded
        (a float island is a step above it about half the time)."""
        x = self._dequantized(sqrt.args[0])
        if x is None or self.onnx_requantize:
            return None  # onnxruntime quantizes its float Sqrt by rounding
        centred = self.ints.cast(self.ints.centre(x.data, x.zero_point), "float32")
        real = relax.op.multiply(centred, self.ints.const(np.float32(x.scale), "float32"))
        root = relax.op.sqrt(self.ints.emit(real))
        scaled = relax.op.divide(root, self.ints.const(np.float32(out.scale), "float32"))
        truncated = self.ints.cast(self.ints.emit(scaled), "int32")  # C's conversion
        return self._output(truncated, out, *_activation_range(out.dtype))

    def _logistic(self, sigmoid: relax.Call, out) -> relax.Expr | None:
        """int8 sigmoid into TFLite's fixed output parameters (1/256, -128)."""
        x = self._dequantized(sigmoid.args[0])
        if x is None or x.dtype != "int8" or out.dtype != "int8":
            return None
        if (np.float32(out.scale), out.zero_point) != (np.float32(OUTPUT_SCALE), OUTPUT_ZERO_POINT):
            return None
        params = logistic_params(np.float64(np.float32(x.scale)), x.zero_point)
        if params is None:
            return None
        return IntegerLogistic(self.ints)(x.data, params)

    def _hard_swish(self, divide: relax.Call, out) -> relax.Expr | None:
        """x * clip(x + 3, 0, 6) / 6 on a dequantized int8 x, as TVM imports TFLite's
        HARD_SWISH: TFLite's int16 fixed-point kernel."""
        product_name, product = self._producer_op(divide.args[0])
        if _scalar(divide.args[1]) != 6.0 or product_name != "relax.multiply":
            return None
        clip_name, clip = self._producer_op(product.args[1])
        if clip_name != "relax.clip" or [_prim_value(a) for a in clip.args[1:3]] != [0.0, 6.0]:
            return None
        add_name, add = self._producer_op(clip.args[0])
        if add_name != "relax.add" or _scalar(add.args[1]) != 3.0:
            return None
        if not (add.args[0].same_as(product.args[0])):
            return None
        x = self._dequantized(product.args[0])
        if x is None or x.dtype != "int8" or out.dtype != "int8":
            return None
        params = hard_swish_params(x.scale, x.zero_point, out.scale, out.zero_point)
        if params is None:
            return None
        return IntegerHardSwish(self.ints)(x.data, params, out.dtype)

    def _leaky_relu(self, leaky: relax.Call, out) -> relax.Expr | None:
        """TFLite's int8 LEAKY_RELU: x - zero point requantized by s_in / s_out where it
        is at least 0, by float32(s_in * alpha) / s_out below."""
        x = self._dequantized(leaky.args[0])
        if x is None:
            return None
        if self.onnx_requantize:
            alpha = np.float32(leaky.attrs.alpha)
            return self._onnx_lookup(x, out, lambda v: np.where(v >= 0, v, v * alpha))
        centred = self.ints.centre(x.data, x.zero_point)
        reals = [
            np.float64(np.float32(x.scale) * factor) / np.float64(out.scale)
            for factor in (np.float32(1.0), np.float32(leaky.attrs.alpha))
        ]
        return self._by_sign(centred, (centred, reals[0]), (centred, reals[1]), out)

    def _by_sign(self, centred, at_least_zero, below_zero, out) -> relax.Expr:
        """Where centred x is at least 0 one (value, real multiplier) requantized, below
        0 the other: TFLite's LEAKY_RELU and PRELU."""
        scaled = [
            self.ints.multiply_by_quantized_multiplier(value, *quantize_multiplier(real))
            for value, real in (at_least_zero, below_zero)
        ]
        chosen = self.ints.emit(
            relax.op.where(relax.op.greater_equal(centred, self.ints.const(0, "int32")), *scaled)
        )
        return self._output(chosen, out, *_activation_range(out.dtype))

    def _prelu(self, add: relax.Call, out) -> relax.Expr | None:
        """TFLite's int8 PRELU (the form of activations.prelu): x - zero point
        requantized by s_in / s_out where it is at least 0, its product with the
        centred slope by s_in * s_alpha / s_out below (the slope broadcast)."""
        if self.onnx_requantize:
            return None  # onnxruntime runs PRelu in float between its DQ and Q
        kept = self._producer(add.args[0])
        x = self._dequantized(kept.args[0])
        alpha = self._elementwise_operand(prelu_slope(add, self._producer))
        if x is None or alpha is None:
            return None
        centred = self.ints.centre(x.data, x.zero_point)
        slope = self.ints.centre(alpha.data, alpha.zero_point)
        negative = self.ints.emit(relax.op.multiply(centred, slope))
        return self._by_sign(
            centred,
            (centred, np.float64(x.scale) / np.float64(out.scale)),
            (negative, np.float64(x.scale) * np.float64(alpha.scale) / np.float64(out.scale)),
            out,
        )

    def _onnx_lookup(self, x: _QuantizedActivation, out, function) -> relax.Expr:
        """An elementwise op as onnxruntime's QLinearLookupBase computes it: a table of
        its 256 inputs, each dequantized in float32, mapped by `function` (float32) and
        quantized as MlasQuantizeLinear does (divided by the output scale, rounded half
        to even), indexed by the stored integer."""
        stand_in = np.arange(-128, 128)
        real = np.float32(x.scale) * (stand_in - x.zero_point).astype(np.float32)
        mapped = np.asarray(function(real), np.float32) / np.float32(out.scale)
        low, high = _activation_range(out.dtype)
        table = np.clip(np.rint(mapped) + out.zero_point, low, high).astype(out.dtype)
        index = self.ints.emit(
            relax.op.add(self.ints.cast(x.data, "int32"), self.ints.const(128, "int32"))
        )
        # Indices are 0..255 by construction; "clip" only spares the "fast" mode's warning.
        return self.ints.emit(relax.op.take(relax.const(table), index, axis=0, mode="clip"))

    def _requantize(self, value, out, low, high) -> relax.Expr | None:
        """A requantize, or an activation between two quantized tensors (TFLite's
        int8 RELU and RELU6: the requantized value clamped)."""
        x = self._dequantized(value)
        if x is None:
            return None
        return self._rescale(x.data, x, out, (low, high))

    def _rescale(
        self,
        values,
        x: _QuantizedActivation,
        out: _QuantizedActivation,
        clamp: tuple[int, int] | None = None,
    ) -> relax.Expr:
        """`values`, quantized with x's parameters, requantized to out's and clamped
        (to out's whole range unless `clamp` says otherwise)."""
        multiplier, shift = quantize_multiplier(np.float64(x.scale) / np.float64(out.scale))
        centred = self.ints.centre(values, x.zero_point)
        scaled = self.ints.multiply_by_quantized_multiplier(centred, multiplier, shift)
        return self._output(scaled, out, *(clamp or _activation_range(out.dtype)))

    def _dynamic(self, call: relax.Call) -> relax.Expr | None:
        """A weighted op on a run-time quantized input: (x - zero point) as int16 times
        int8 weights into int32, then float32 * (input scale * weight scale)."""
        x = self._dynamically_quantized(call.args[0])
        weight = self._quantized_constant(call.args[1])
        if x is None or weight is None or np.any(weight.zero_point != 0):
            return None
        data, scale, zero_point = x
        # Centred values span [-255, 255]: int16 holds them, and padding with zeros
        # then adds nothing, as padding with the zero point does in ONNX Runtime.
        centred = self.ints.emit(
            relax.op.subtract(self.ints.cast(data, "int16"), relax.op.astype(zero_point, "int16"))
        )
        if _op_name(call) == "relax.nn.conv2d":
            attrs = call.attrs
            if str(attrs.out_layout) != str(attrs.data_layout):
                return None
            out_axis = str(attrs.kernel_layout).index("O")
            channel_axis = str(attrs.out_layout).index("C")
            accumulator = conv2d_like(attrs, centred, relax.const(weight.values), "int32")
        else:
            if weight.values.ndim != 2:
                return None
            out_axis, channel_axis = 1, len(_shape(call)) - 1
            accumulator = relax.op.matmul(centred, relax.const(weight.values), out_dtype="int32")
        weight_scale = weight.per_channel(out_axis)
        if weight_scale is None:
            return None
        channel_shape = [1] * len(_shape(call))
        channel_shape[channel_axis] = weight_scale.size
        scales = self.ints.emit(
            relax.op.multiply(
                scale, self.ints.const(weight_scale.astype(np.float32), "float32", channel_shape)
            )
        )
        real = self.ints.cast(self.ints.emit(accumulator), "float32")
        return relax.op.multiply(real, scales)

    def _passthrough(self, call: relax.Call) -> relax.Expr | None:
        """op(dequantize(x)) -> dequantize(op(x)) for ops that commute with it."""
        name, producer = self._producer_op(call.args[0])
        x = self._dequantized(call.args[0], signed=False) if name == "relax.dequantize" else None
        if x is None:
            return None
        if _op_name(call) == "relax.nn.pad":
            integer = self._pad(call, x)
            if integer is None:
                return None
        else:
            integer = self.ints.emit(
                relax.Call(call.op, [x.data, *call.args[1:]], call.attrs, call.ty_args)
            )
        return relax.op.dequantize(
            integer,
            producer.args[1],
            producer.args[2],
            axis=int(producer.attrs.axis),
            out_dtype="float32",
        )

    def _mean_uint8(self, mean: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """TFLite's uint8 MEAN (QuantizedMeanOrSum) into the int8 stand-in of `out`:
        the centred sum times a multiplier that folds the division by the count in
        (:func:`tvmq.quantize.legacy.mean_multiplier`)."""
        x = self._dequantized(mean.args[0])
        if x is None or not x.legacy:
            return None
        shape = _shape(x.data)
        axes = sorted(int(a) % len(shape) for a in mean.attrs.axis)
        count = int(np.prod([shape[a] for a in axes]))
        sums = self.ints.emit(
            relax.op.sum(self.ints.cast(x.data, "int32"), axes, keepdims=mean.attrs.keepdims)
        )
        centred = self.ints.emit(
            relax.op.subtract(sums, self.ints.const(x.zero_point * count, "int32"))
        )
        multiplier, shift = legacy.mean_multiplier(x.scale, out.scale, count)
        scaled = self.ints.multiply_by_quantized_multiplier(centred, multiplier, shift)
        return self._output(scaled, out, *_activation_range("int8"))

    def _activation_uint8(self, act: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """TFLite's uint8 RELU, RELU6, RELU_N1_TO_1 (ReluX) and LEAKY_RELU as ops of
        their own: the centred input rescaled to the output (by alpha too where it is
        negative), clamped to the activation's bounds
        (:func:`tvmq.quantize.legacy.relu_bounds`)."""
        x = self._dequantized(act.args[0])
        if x is None or not x.legacy:
            return None
        centred = self.ints.centre(x.data, x.zero_point)
        identity = legacy.activation_multiplier(x.scale, out.scale)
        scaled = self.ints.multiply_by_quantized_multiplier(centred, *identity)
        low, high = _activation_range("int8")
        if _op_name(act) == "relax.nn.leakyrelu":
            alpha = legacy.activation_multiplier(x.scale, out.scale, float(act.attrs.alpha))
            negative = self.ints.multiply_by_quantized_multiplier(centred, *alpha)
            scaled = self.ints.emit(
                relax.op.where(
                    relax.op.less(centred, self.ints.const(0, "int32")), negative, scaled
                )
            )
        else:
            bounds = (0.0, None) if _op_name(act) == "relax.nn.relu" else act.args[1:3]
            real = [_prim_value(b) if isinstance(b, relax.Expr) else b for b in bounds]
            if real[0] is None:
                return None
            zero = out.zero_point + legacy.OFFSET
            low, high = (
                bound - legacy.OFFSET for bound in legacy.relu_bounds(*real, out.scale, zero)
            )
        return self._output(scaled, out, low, high)

    def _sink_uint8(self, call: relax.Call) -> relax.Expr | None:
        """A layout op, max pooling or clamp on a uint8 tensor that stands for an int8
        one: done on the int8 value (clamp bounds less 128), so that the next integer
        op reads it with no conversion."""
        source = self._uint8_source(call.args[0])
        if source is None:
            return None
        args = [source, *call.args[1:]]
        if _op_name(call) == "relax.clip":
            bounds = [_prim_value(a) for a in call.args[1:3]]
            if any(b is None for b in bounds):
                return None
            low, high = (int(b) - legacy.OFFSET for b in bounds)
            signed = relax.op.clip(source, max(low, -128), min(high, 127))
        else:
            signed = relax.Call(call.op, args, call.attrs, call.ty_args)
        return self._to_uint8(self.ints.emit(signed))

    def _pad(self, pad: relax.Call, x: _QuantizedActivation) -> relax.Expr | None:
        """Zero padding pads the integers with the zero point (other values stay float)."""
        attrs = pad.attrs
        value = float(attrs.pad_value)
        if str(attrs.pad_mode) == "constant" and value != 0.0:
            return None
        return self.ints.emit(
            relax.op.nn.pad(x.data, attrs.pad_width, str(attrs.pad_mode), x.zero_point)
        )

    def _resize_bilinear(self, resize: relax.Call, out) -> relax.Expr | None:
        """TFLite's int8 bilinear resize (ResizeBilinearInteger): the four neighbours
        weighted in 1/1024 steps, the sum rounded half away from zero by 2**20; input
        and output share their parameters in TFLite; where tvmq's quantizer gave them
        different ones, the interpolated integers are requantized. An ONNX Resize is
        :meth:`_resize_onnx`."""
        attrs = resize.attrs
        x = self._dequantized(resize.args[0])
        if (
            x is None
            # TFLite's uint8 kernel interpolates in float: a float island
            or (x.legacy and not self.onnx_resize)
            or str(attrs.method) != "linear"
            or str(attrs.coordinate_transformation_mode) not in RESIZE_MODES
        ):
            return None
        if self.onnx_resize:
            return self._resize_onnx(resize, x, out)
        layout, mode = str(attrs.layout), str(attrs.coordinate_transformation_mode)
        in_shape, out_shape = _shape(x.data), _shape(resize)
        data = self.ints.cast(x.data, "int32")
        for axis in (layout.index("H"), layout.index("W")):
            low, high, fraction = _bilinear_taps(in_shape[axis], out_shape[axis], mode)
            data = self._interpolate(data, axis, low, high, fraction, 1024)
        rounded = self.ints.rounding_divide(data, np.array(1 << 20, np.int32))
        if np.float32(x.scale) != np.float32(out.scale) or x.zero_point != out.zero_point:
            return self._rescale(rounded, x, out)
        return self.ints.saturate(rounded, *_activation_range(out.dtype), out.dtype)

    def _resize_onnx(self, resize: relax.Call, x: _QuantizedActivation, out) -> relax.Expr:
        """ONNX's quantized Resize means dequantize -> float resize -> quantize: the
        centred neighbours weighted by the exact rational taps (integer numerators over
        one denominator per axis), the sum divided by both denominators and rounded
        half to even, once, as QuantizeLinear rounds the exact value. onnxruntime's
        float32 arithmetic rounds on the way, so it can land one step off where the
        exact value is within its rounding error of a half."""
        layout, mode = str(resize.attrs.layout), str(resize.attrs.coordinate_transformation_mode)
        in_shape, out_shape = _shape(x.data), _shape(resize)
        axes = (layout.index("H"), layout.index("W"))
        taps = [_exact_taps(in_shape[axis], out_shape[axis], mode) for axis in axes]
        denominator = taps[0][3] * taps[1][3]
        low, high = _activation_range(x.dtype)
        reach = max(high - x.zero_point, x.zero_point - low)
        wide = "int32" if denominator * reach <= INT32_MAX else "int64"
        data = self.ints.cast(self.ints.centre(x.data, x.zero_point), wide)
        for axis, (near, far, weight, total) in zip(axes, taps, strict=True):
            data = self._interpolate(data, axis, near, far, weight, total)
        rounded = self.ints.divide_round_half_even(data, denominator)
        if str(rounded.ty.dtype) != "int32":
            rounded = self.ints.cast(rounded, "int32")
        if np.float32(x.scale) != np.float32(out.scale):
            multiplier, shift = quantize_multiplier(np.float64(x.scale) / np.float64(out.scale))
            rounded = self.ints.multiply_by_quantized_multiplier(rounded, multiplier, shift)
        return self._output(rounded, out, *_activation_range(out.dtype))

    def _interpolate(self, data, axis: int, low, high, weight, total: int) -> relax.Expr:
        """Linear interpolation of integer `data` along `axis`: the values at `low` and
        at `high` weighted (total - weight) and weight, summed (scaled by `total`)."""
        shape = [1] * len(_shape(data))
        shape[axis] = -1
        dtype = str(data.ty.dtype)
        near = self.ints.emit(
            relax.op.take(data, relax.const(low.astype("int32")), axis, mode="clip")
        )
        far = self.ints.emit(
            relax.op.take(data, relax.const(high.astype("int32")), axis, mode="clip")
        )
        complement = self.ints.const(total - weight.reshape(shape), dtype)
        weight = self.ints.const(weight.reshape(shape), dtype)
        return self.ints.emit(
            relax.op.add(relax.op.multiply(near, complement), relax.op.multiply(far, weight))
        )

    def _pool(self, pool: relax.Call, out: _QuantizedActivation) -> relax.Expr | None:
        """quantize(average(dequantize(x))): TFLite's rounded integer average, then a
        requantize when the output parameters differ from the input's."""
        x = self._dequantized(pool.args[0])
        if x is None or x.legacy:  # uint8 into uint8 is _mean_uint8; no other mix exists
            return None
        if _op_name(pool) == "relax.mean":
            return self._mean(x, pool, out)
        pooled = self._pool_sums(x.data, pool)
        if pooled is None:
            return None
        averaged = self.ints.rounding_divide(*pooled)
        if np.float32(x.scale) == np.float32(out.scale) and x.zero_point == out.zero_point:
            return self.ints.saturate(averaged, *_activation_range(out.dtype), out.dtype)
        return self._rescale(averaged, x, out)

    def _mean(self, x: _QuantizedActivation, mean: relax.Call, out) -> relax.Expr:
        """TFLite's quantized MEAN (reduce.h QuantizedMeanOrSum): the sum of centred
        inputs, then ONE requantization by s_in / s_out with 1/N folded into the
        multiplier, rounded once."""
        shape = _shape(x.data)
        given = mean.attrs.axis  # None: every axis
        axes = sorted(
            {int(a) % len(shape) for a in (range(len(shape)) if given is None else given)}
        )
        count = int(np.prod([shape[a] for a in axes]))
        sums = self.ints.emit(
            relax.op.sum(self.ints.cast(x.data, "int32"), axes, keepdims=mean.attrs.keepdims)
        )
        centred = self.ints.emit(
            relax.op.subtract(sums, self.ints.const(x.zero_point * count, "int32"))
        )
        low, high = _activation_range(out.dtype)
        if self.onnx_requantize:  # MLAS's QLinearGlobalAveragePool (x86)
            scale = np.float32(x.scale) / (np.float32(out.scale) * np.float32(count))
            rounded = self.ints.scale_round_half_even(
                centred, np.array([scale]), [1], low - out.zero_point, high - out.zero_point
            )
            return self._output(rounded, out, low, high)
        multiplier, shift = quantize_multiplier(np.float64(x.scale) / np.float64(out.scale))
        # 1/N as a left shift of the multiplier by log2(N), then an integer division.
        fold = min(count.bit_length() - 1, 32, 31 + shift)
        multiplier, shift = (multiplier << fold) // count, shift - fold
        scaled = self.ints.multiply_by_quantized_multiplier(centred, multiplier, shift)
        return self._output(scaled, out, low, high)

    def _pool_sums(self, data: relax.Expr, pool: relax.Call):
        """Window sums of an integer tensor (int32) and how many inputs each covers."""
        attrs = pool.attrs
        layout = str(attrs.layout)
        if layout not in ("NHWC", "NCHW") or str(attrs.out_layout) != layout:
            return None
        in_shape, out_shape = _shape(data), _shape(pool)
        channels = in_shape[layout.index("C")]
        pool_h, pool_w = (int(p) for p in attrs.pool_size)
        dtype = str(data.ty.dtype)
        if layout == "NHWC":
            kernel, kernel_layout = np.ones((pool_h, pool_w, channels, 1), dtype), "HWOI"
        else:
            kernel, kernel_layout = np.ones((channels, 1, pool_h, pool_w), dtype), "OIHW"
        sums = self.ints.emit(
            relax.op.nn.conv2d(
                data,
                relax.const(kernel),
                strides=attrs.strides,
                padding=attrs.padding,
                dilation=attrs.dilation,
                groups=channels,
                data_layout=layout,
                kernel_layout=kernel_layout,
                out_dtype="int32",
            )
        )
        return sums, _window_counts(attrs, in_shape, out_shape, layout)

    def _average_pool(self, cast: relax.Call) -> relax.Expr | None:
        """astype(avg_pool2d(astype(x, int32)), int8), as TVM imports TFLite's
        quantized average pooling: TFLite's rounded integer average instead."""
        out_dtype = str(cast.attrs.dtype)
        name, pool = self._producer_op(cast.args[0])
        if name != "relax.nn.avg_pool2d" or out_dtype not in ("int8", "uint8", "int16"):
            return None
        inner_name, widen = self._producer_op(pool.args[0])
        if inner_name != "relax.astype" or str(widen.args[0].ty.dtype) != out_dtype:
            return None
        if out_dtype == "uint8":
            return self._average_pool_uint8(widen.args[0], pool)
        pooled = self._pool_sums(widen.args[0], pool)
        if pooled is None:
            return None
        averaged = self.ints.rounding_divide(*pooled)
        return self.ints.saturate(averaged, *_activation_range(out_dtype), out_dtype)

    def _average_pool_uint8(self, data: relax.Expr, pool: relax.Call) -> relax.Expr | None:
        """TFLite's uint8 average, (sum + count / 2) / count, on the int8 stand-in:
        sums shift by 128 x count, so the division floors and halves round up."""
        pooled = self._pool_sums(self._to_int8(data), pool)
        if pooled is None:
            return None
        sums, counts = pooled
        rounded = self.ints.emit(
            relax.op.floor_divide(
                relax.op.add(sums, self.ints.const(counts // 2, "int32")),
                self.ints.const(counts, "int32"),
            )
        )
        signed = self.ints.saturate(rounded, *_activation_range("int8"), "int8")
        return self._to_uint8(self.ints.emit(signed))


def _stored_offset(x: _QuantizedActivation) -> int:
    """What turns x's values into the integers stored in the file: 128 for a uint8
    tensor's int8 stand-in."""
    return legacy.OFFSET if x.legacy else 0


def _single_zero_point(weight: _QuantizedConstant) -> bool:
    """One zero point for the whole weight tensor (per-channel zero points must be 0)."""
    return bool(np.all(weight.zero_point == weight.zero_point.flat[0]))


def _centred(weight: _QuantizedConstant) -> np.ndarray:
    """The integer weights less their zero point, as int64."""
    return weight.values.astype(np.int64) - weight.zero_point


def _bilinear_taps(size: int, out_size: int, mode: str):
    """TFLite's ComputeInterpolationValuesInteger for each output position: the lower
    and upper source index and the upper one's weight in 1/1024 steps."""
    scale = ((1 << 10) * size + out_size // 2) // out_size
    if mode == "align_corners" and out_size > 1:
        scale = ((1 << 10) * (size - 1) + (out_size - 1) // 2) // (out_size - 1)
    scaled = np.arange(out_size, dtype=np.int64) * scale
    if mode == "half_pixel":
        scaled += scale // 2 - (1 << 9)
    low = np.maximum(np.trunc(scaled / 1024).astype(np.int64), 0)
    high = np.minimum((scaled + 1023) // 1024, size - 1)
    return low, high, scaled - 1024 * low


def _exact_taps(size: int, out_size: int, mode: str):
    """ONNX Resize's source coordinate of each output position, exactly: the lower and
    upper source index, and the upper one's weight as a numerator over the returned
    denominator, common to the axis (coordinates clamped to the input, as onnxruntime
    clamps them)."""
    position = np.arange(out_size, dtype=np.int64)
    if mode == "align_corners":  # o * (size - 1) / (out_size - 1); 0 for one output
        numerator, denominator = position * (size - 1), max(out_size - 1, 1)
    elif mode == "asymmetric":  # o * size / out_size
        numerator, denominator = position * size, out_size
    else:  # half_pixel: (o + 1/2) * size / out_size - 1/2
        numerator, denominator = (2 * position + 1) * size - out_size, 2 * out_size
    numerator = np.clip(numerator, 0, (size - 1) * denominator)
    low = numerator // denominator
    weight = numerator - low * denominator
    common = int(np.gcd.reduce(np.append(weight, denominator)))
    return low, np.minimum(low + 1, size - 1), weight // common, denominator // common


def _accumulator_dtype(x: _QuantizedActivation) -> str:
    """int32 sums for 8-bit inputs; int64 for int16 ones (TFLite's 16x8 kernels)."""
    return "int64" if x.dtype == "int16" else "int32"


def _window_counts(attrs, in_shape, out_shape, layout) -> np.ndarray:
    """How many input elements each pooling window covers (padding excluded)."""
    padding = [int(p) for p in attrs.padding]
    per_axis = []
    for axis, (size, stride, dilation, pool, pad_before) in enumerate(
        zip(
            (in_shape[layout.index("H")], in_shape[layout.index("W")]),
            (int(s) for s in attrs.strides),
            (int(d) for d in attrs.dilation),
            (int(p) for p in attrs.pool_size),
            (padding[0], padding[1]),
            strict=True,
        )
    ):
        outputs = out_shape[layout.index("HW"[axis])]
        counts = []
        for o in range(outputs):
            taps = o * stride - pad_before + dilation * np.arange(pool)
            counts.append(
                pool if attrs.count_include_pad else int(np.sum((taps >= 0) & (taps < size)))
            )
        per_axis.append(np.array(counts, np.int32))
    grid = np.outer(per_axis[0], per_axis[1])
    shape = [1, 1, 1, 1]
    shape[layout.index("H")], shape[layout.index("W")] = grid.shape
    return grid.reshape(shape)
