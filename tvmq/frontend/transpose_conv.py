"""Transposed convolutions as zero insertion + an ordinary convolution.

TVM lowers ``conv2d_transpose`` only for NCHW data, so the NHWC graphs tvmq builds
(channels-last ONNX, every TFLite model) kept it as an operator no backend can emit.
A transposed convolution with stride s is the convolution, stride 1, of the input
with s-1 zeros inserted between its pixels, padded by dilation*(kernel-1)-pad, with
the kernel flipped and its in/out axes swapped. Written so, it is a reshape, a pad
and a conv2d: ops that every backend builds and that quantization already runs as
integer code. The zeros sum to exactly nothing, so an int8 result is TFLite's
TRANSPOSE_CONV bit for bit (same int32 sums, same requantization).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

OP = "relax.nn.conv2d_transpose"


def lower_transposed_convs(mod: tvm.IRModule, names: dict[str, str]) -> tvm.IRModule:
    """`mod` with each transposed convolution of main (constant kernel) as a conv2d;
    the new bindings take the source node (`names`) of the one they replace."""
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    if not any(_op(b.value) == OP for b in bindings):
        return mod
    lowering = _Lowering(mod, names)
    main = lowering.visit_expr(mod["main"])
    lowered = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    lowered["main"] = main
    return lowered


def _op(expr) -> str | None:
    return getattr(getattr(expr, "op", None), "name", None)


@mutator
class _Lowering(PyExprMutator):
    def __init__(self, mod: tvm.IRModule, names: dict[str, str]):
        super().__init__(mod)
        self.names = names

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.visit_expr(binding.value)
        if _op(value) == OP:
            lowered = self._lower(value, binding.var.name)
            value = value if lowered is None else lowered
        if isinstance(binding.var, relax.DataflowVar):
            new = self.builder_.emit(value, binding.var.name)
        else:
            new = self.builder_.emit_output(value, binding.var.name)
        self.set_var_remap(binding.var, new)

    def _emit(self, value: relax.Expr, name: str, suffix: str) -> relax.Var:
        var = self.builder_.emit(value, f"{name}_{suffix}")
        if name in self.names:
            self.names[var.name] = self.names[name]
        return var

    def _lower(self, call: relax.Call, name: str) -> relax.Expr | None:
        attrs = call.attrs
        layout = str(attrs.data_layout)
        if str(attrs.kernel_layout) != "IOHW" or str(attrs.out_layout) != layout:
            return None
        if sorted(layout) != sorted("NCHW"):
            return None
        kernel_layout = "OHWI" if layout == "NHWC" else "OIHW"
        groups = int(attrs.groups)
        weight = self._kernel(call.args[1], groups, kernel_layout)
        if weight is None:
            return None
        strides = [int(s) for s in attrs.strides]
        dilation = [int(d) for d in attrs.dilation]
        top, left, bottom, right = (int(p) for p in attrs.padding)
        kernel = [int(d) for d in call.args[1].ty.shape][2:]
        extra = [int(p) for p in attrs.output_padding]
        # Padding of the zero-inserted input; its tail already holds stride-1 zeros.
        before = [dilation[i] * (kernel[i] - 1) - (top, left)[i] for i in range(2)]
        after = [
            dilation[i] * (kernel[i] - 1) - (bottom, right)[i] + extra[i] - (strides[i] - 1)
            for i in range(2)
        ]
        data = self._insert_zeros(call.args[0], layout, strides, name)
        if min(before + after) < 0:
            data = self._crop(data, layout, before, after, name)
        return relax.op.nn.conv2d(
            data,
            weight,
            padding=[max(p, 0) for p in (before[0], before[1], after[0], after[1])],
            dilation=dilation,
            groups=groups,
            data_layout=layout,
            kernel_layout=kernel_layout,
            out_dtype=str(call.ty.dtype),
        )

    def _insert_zeros(self, data, layout: str, strides: list[int], name: str) -> relax.Expr:
        """(s-1) zeros after every pixel along H and W: [.., H, ..] -> [.., H*s, ..]."""
        if strides == [1, 1]:
            return data
        shape = [int(d) for d in data.ty.shape]
        spread, widths, merged = [], [], []
        for axis, size in enumerate(shape):
            spread.append(size)
            widths += [0, 0]
            merged.append(size)
            if layout[axis] in "HW":
                stride = strides["HW".index(layout[axis])]
                spread.append(1)
                widths += [0, stride - 1]
                merged[-1] = size * stride
        data = self._emit(relax.op.reshape(data, spread), name, "spread")
        data = self._emit(relax.op.nn.pad(data, widths, "constant", 0.0), name, "zeros")
        return self._emit(relax.op.reshape(data, merged), name, "dilated")

    def _crop(self, data, layout: str, before: list[int], after: list[int], name: str):
        """Negative padding: drop those rows and columns instead."""
        axes = [layout.index("H"), layout.index("W")]
        sizes = [int(data.ty.shape[a]) for a in axes]
        begin = [max(-b, 0) for b in before]
        end = [size - max(-a, 0) for size, a in zip(sizes, after, strict=True)]
        return self._emit(relax.op.strided_slice(data, axes, begin, end), name, "cropped")

    def _kernel(self, weight: relax.Expr, groups: int, layout: str) -> relax.Expr | None:
        """The conv2d kernel for an IOHW transposed-convolution kernel: a constant, or
        the dequantize of one (a quantized TFLite model's weights)."""
        if isinstance(weight, relax.Var):
            bound = self.lookup_binding(weight)
            weight = weight if bound is None else bound
        if isinstance(weight, tvm.ir.expr.Constant):
            return relax.const(_flipped(weight.value.numpy(), groups, layout))
        if _op(weight) != "relax.dequantize" or not isinstance(
            weight.args[0], tvm.ir.expr.Constant
        ):
            return None
        scale, zero_point = weight.args[1], weight.args[2]
        per_channel = any(
            isinstance(p, tvm.ir.expr.Constant) and p.value.numpy().size > 1
            for p in (scale, zero_point)
        )
        if per_channel and (groups != 1 or int(weight.attrs.axis) != 1):
            return None
        values = _flipped(weight.args[0].value.numpy(), groups, layout)
        return relax.op.dequantize(
            relax.const(values),
            scale,
            zero_point,
            axis=layout.index("O"),
            out_dtype=str(weight.attrs.out_dtype),
        )


def _flipped(iohw: np.ndarray, groups: int, layout: str) -> np.ndarray:
    """IOHW transposed-convolution kernel -> the equivalent convolution's kernel
    (OIHW or OHWI): in/out swapped within each group, spatially flipped."""
    inputs, group_outputs, height, width = iohw.shape
    oihw = (
        iohw.reshape(groups, inputs // groups, group_outputs, height, width)
        .transpose(0, 2, 1, 3, 4)
        .reshape(groups * group_outputs, inputs // groups, height, width)[:, :, ::-1, ::-1]
    )
    order = [("OIHW").index(axis) for axis in layout]
    return np.ascontiguousarray(oihw.transpose(order))
