"""com.microsoft DynamicQuantizeLSTM: the LSTM that onnxruntime's `quantize_dynamic`
writes, with its arithmetic (deep_cpu_lstm over rnn_helpers' quantized ComputeGemm).

W [directions, input, 4 hidden] and R [directions, hidden, 4 hidden] are int8 or uint8
with a scale per direction or per gate column and one zero point per direction (zero
for int8: onnxruntime refuses others). Each projection quantizes its float operand
at run time to uint8 (range widened to include zero, scale (max - min) / 255, zero
point rounded half to even), sums the integer products exactly in int32, and scales
the sum by operand scale x weight scale. The input projection quantizes every step's
x together, once; the recurrent one quantizes the whole batch's h at each step. The
gate inputs are (x W + h R) + (Wb + Rb), then the LSTM's cell as for the float node.

onnxruntime splits a batch over its threads when the batch is above 4 (or above 1
with hidden <= 256) and then quantizes h per split: such batches agree with it run
on one thread only as far as the quantized h agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import relax

from tvmq.constants import constant_array
from tvmq.frontend.onnx_lstm import GATES, Projections, fused_bias, unrolled
from tvmq.frontend.onnx_rnn import optional_input
from tvmq.quantize.dynamic import emit_dynamic_range, f32

WEIGHT_INPUTS = {"W": (1, 8, 9), "R": (2, 10, 11)}  # tensor, scale, zero point positions


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Tuple:
    """Y, Y_h and Y_c of a DynamicQuantizeLSTM node, in ONNX's LSTM layouts."""
    hidden = int(attrs["hidden_size"])
    weights = {name: _QuantizedWeights(inputs, name, hidden) for name in WEIGHT_INPUTS}
    bias = optional_input(inputs, 3)

    def projections(direction: int) -> Projections:
        input_weights, recurrent = weights["W"], weights["R"]

        def project_inputs(x: relax.Expr) -> relax.Expr:
            steps, batch, size = (int(d) for d in x.ty.shape)
            flat = relax.op.reshape(x, [steps * batch, size])
            product = input_weights.times(bb, flat, direction)
            return bb.emit(relax.op.reshape(product, [steps, batch, GATES * hidden]))

        return Projections(
            project_inputs,
            lambda h: recurrent.times(bb, h, direction),
            fused_bias(bias, direction, GATES * hidden),
        )

    return unrolled(bb, inputs, attrs, projections)


class _QuantizedWeights:
    """W or R with its scales and zero points, checked as onnxruntime checks them."""

    def __init__(self, inputs: Sequence, name: str, hidden: int):
        position, scale_at, zero_point_at = WEIGHT_INPUTS[name]
        values = [
            constant_array(inputs[i]) if i < len(inputs) and inputs[i] is not None else None
            for i in (position, scale_at, zero_point_at)
        ]
        if any(v is None for v in values):
            raise ValueError(f"{name}, its scale and its zero point must be initializers")
        tensor, scale, zero_point = values
        if tensor.dtype not in (np.int8, np.uint8) or tensor.ndim != 3:
            raise ValueError(f"{name} is {tensor.dtype}{list(tensor.shape)}: 3-D int8 or uint8")
        directions, width = tensor.shape[0], GATES * hidden
        if tensor.shape[2] != width:
            raise ValueError(f"{name} has {tensor.shape[2]} columns, 4 x hidden_size is {width}")
        for what, array in (("scale", scale), ("zero point", zero_point)):
            if array.shape not in ((directions,), (directions, width)):
                raise ValueError(
                    f"{name}'s {what} has shape {list(array.shape)}: "
                    f"[{directions}] or [{directions}, {width}] expected"
                )
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"{name}'s scale must be finite and positive")
        rows = zero_point.reshape(directions, -1)
        if tensor.dtype == np.int8 and rows.any():
            raise ValueError(f"{name}'s zero point must be 0 for int8 weights")
        if (rows != rows[:, :1]).any():
            raise ValueError(f"{name}'s zero point must be one value per direction")
        self.tensor = tensor
        self.scale = scale.astype(np.float32)
        self.zero_point = rows[:, 0].astype(np.int32)
        self._centred: dict[int, relax.Var] = {}

    def centred(self, bb: relax.BlockBuilder, direction: int) -> relax.Var:
        """This direction's weights less their zero point in int32, bound once for
        every step (a constant per step would repeat the weights in the module)."""
        if direction not in self._centred:
            weights = relax.op.astype(relax.const(self.tensor[direction]), "int32")
            if self.zero_point[direction]:
                weights = relax.op.subtract(weights, relax.const(self.zero_point[direction]))
            self._centred[direction] = bb.emit(weights)
        return self._centred[direction]

    def times(self, bb: relax.BlockBuilder, operand: relax.Expr, direction: int) -> relax.Expr:
        """operand [rows, K] @ this direction's weights [K, 4 hidden], as onnxruntime's
        quantized GEMM computes it."""
        quantized, scale = _quantized(bb, operand)
        total = relax.op.matmul(quantized, self.centred(bb, direction), out_dtype="int32")
        factor = relax.op.multiply(scale, relax.const(self.scale[direction]))
        return bb.emit(relax.op.multiply(relax.op.astype(total, "float32"), factor))


def _quantized(bb: relax.BlockBuilder, x: relax.Expr) -> tuple[relax.Expr, relax.Expr]:
    """x quantized to uint8 over its whole range, less its zero point (int32), and the
    scale: onnxruntime's GetQuantizationParameter and MlasQuantizeLinear."""
    low, scale = emit_dynamic_range(bb, x, "lstm_operand")
    # qmin - min / scale, clamped to [0, 255], rounded half to even.
    shifted = relax.op.subtract(f32(0.0), relax.op.divide(low, scale))
    zero_point = bb.emit(relax.op.astype(relax.op.round(relax.op.clip(shifted, 0, 255)), "int32"))
    quantized = relax.op.quantize(x, scale, zero_point, out_dtype="uint8")
    centred = relax.op.subtract(relax.op.astype(quantized, "int32"), zero_point)
    return bb.emit(centred), scale
