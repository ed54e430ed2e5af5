"""TFLite Micro's integer UNIDIRECTIONAL_SEQUENCE_LSTM (int8 activations and weights,
int16 cell state: the "8x8_16" scheme) as integer Relax code, bit for bit.

Transcribed from tensorflow/lite/micro/kernels/lstm_eval.h, lstm_eval.cc and
lstm_eval_common.cc (PrepareGateParametersInteger):

- each gate is two fully connected layers, on the input and on the previous hidden
  state, each requantized to int16 at scale 2**-12 (its multiplier from the float32
  product of input and weight scales) and summed with int16 saturation; only the
  input one has a bias;
- sigmoid and tanh on int16 are reference_integer_ops' Logistic and Tanh: a table of
  sigmoid(i / 24) interpolated linearly, outputs at scale 2**-15;
- cell = sat16(sat16(f * c) + sat16(i * g)), each product requantized as an int16
  MUL, then clipped to the quantized cell clip;
- hidden = sat8(zp + (tanh(cell) * o) requantized), tanh's input scaled from the
  cell scale's power of two; the hidden state is the output at each time step.

The state starts at zero, as TFLite Micro resets its variable tensors (to their zero
point) when it allocates them. The input products of all time steps are one matrix
product; the time steps are unrolled, each a recurrent product and small element-wise
kernels (gate sum, activations, cell, hidden) whose PrimFuncs all steps share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te

from tvmq.quantize.fixed_point import (
    ELEMENTWISE,
    _multiply_by_quantized_multiplier,
    quantize_multiplier,
)

GATES = 4  # input, forget, cell, output: TFLite's order of weights and biases
GATE_INPUT_SCALE = 2.0**-12  # Q3.12, what the gates' products are requantized to
GATE_OUTPUT_SCALE = 2.0**-15  # Q0.15, what sigmoid and tanh give
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT8_MIN, INT8_MAX = -128, 127
# TFLite's sigmoid_table_uint16 (kernels/internal/common.h): sigmoid(i / 24) in
# unsigned 0.16 fixed point, rounded as TFLite ships it (no formula reproduces all
# 256 entries), shared by its int16 Logistic and Tanh.
# fmt: off
SIGMOID_TABLE = np.array(
    [
        32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
        40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
        46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
        52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
        56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
        59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
        61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
        62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
        63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
        64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
        64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
        65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
        65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
        65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
        65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
        65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
        65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
        65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
        65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
        65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
        65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
        65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
        65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
        65534, 65534, 65535,
    ],
    np.int32,
)
# fmt: on


@dataclass(frozen=True)
class LstmQuantization:
    """The scales and zero points an integer LSTM reads: TFLite's tensors' float32
    values (weights per tensor, symmetric)."""

    input: tuple[float, int]
    hidden: tuple[float, int]
    cell_scale: float
    input_weight_scales: tuple[float, ...]  # one per gate
    recurrent_weight_scales: tuple[float, ...]
    cell_clip: float  # 0: none


@dataclass(frozen=True)
class LstmParams:
    """Everything the integer LSTM computes with, the four gates side by side on one
    channel axis of 4 x units. Per-channel rescales are int32 rows (Q31 multiplier,
    left shift, right shift); the others are (multiplier, shift) of TFLite's
    MultiplyByQuantizedMultiplier."""

    units: int
    input_weights: np.ndarray  # [features, 4 x units] int8
    recurrent_weights: np.ndarray  # [units, 4 x units] int8
    input_bias: np.ndarray  # [4 x units] int32, the input's zero point folded in
    recurrent_bias: np.ndarray  # [4 x units] int32: the hidden zero point folded in
    input_rescale: np.ndarray  # [3, 4 x units] int32
    recurrent_rescale: np.ndarray  # [3, 4 x units] int32
    forget_rescale: tuple[int, int]  # forget gate x cell -> cell
    update_rescale: tuple[int, int]  # input gate x cell gate -> cell
    hidden_rescale: tuple[int, int]  # tanh(cell) x output gate -> hidden
    hidden_zero_point: int
    cell_clip: int | None  # quantized, None when the model sets no clip
    tanh_multiplier: int  # tanh(cell)'s input: (c x multiplier + round) >> shift
    tanh_shift: int


def lstm_params(
    input_weights: list[np.ndarray],
    recurrent_weights: list[np.ndarray],
    biases: list[np.ndarray],
    quant: LstmQuantization,
) -> LstmParams:
    """LstmParams as TFLite Micro's PrepareGateParametersInteger derives them."""
    units = recurrent_weights[0].shape[0]
    input_scale, input_zero_point = quant.input
    hidden_scale, hidden_zero_point = quant.hidden
    stacked_input = np.concatenate(input_weights).astype(np.int32)
    stacked_recurrent = np.concatenate(recurrent_weights).astype(np.int32)
    input_bias = np.concatenate(biases).astype(np.int64)
    input_bias -= input_zero_point * stacked_input.sum(axis=1, dtype=np.int64)
    recurrent_bias = -hidden_zero_point * stacked_recurrent.sum(axis=1, dtype=np.int64)
    return LstmParams(
        units=units,
        input_weights=np.ascontiguousarray(stacked_input.T.astype(np.int8)),
        recurrent_weights=np.ascontiguousarray(stacked_recurrent.T.astype(np.int8)),
        input_bias=input_bias.astype(np.int32),
        recurrent_bias=recurrent_bias.astype(np.int32),
        input_rescale=_gate_rescales(input_scale, quant.input_weight_scales, units),
        recurrent_rescale=_gate_rescales(hidden_scale, quant.recurrent_weight_scales, units),
        forget_rescale=quantize_multiplier(GATE_OUTPUT_SCALE * quant.cell_scale / quant.cell_scale),
        update_rescale=quantize_multiplier(GATE_OUTPUT_SCALE**2 / quant.cell_scale),
        hidden_rescale=quantize_multiplier(GATE_OUTPUT_SCALE**2 / hidden_scale),
        hidden_zero_point=hidden_zero_point,
        cell_clip=_quantized_cell_clip(quant.cell_clip, quant.cell_scale),
        **_tanh_input(quant.cell_scale),
    )


def _gate_rescales(input_scale: float, weight_scales, units: int) -> np.ndarray:
    """Each gate's fully connected requantization to 2**-12, repeated over its units:
    GetQuantizedConvolutionMultipler multiplies the two scales in float32."""
    rows = []
    for weight_scale in weight_scales:
        product = float(np.float32(input_scale) * np.float32(weight_scale))
        multiplier, shift = quantize_multiplier(product / GATE_INPUT_SCALE)
        rows.append([(multiplier, max(shift, 0), max(-shift, 0))] * units)
    return np.array(rows, np.int64).reshape(-1, 3).T.astype(np.int32)


def _quantized_cell_clip(cell_clip: float, cell_scale: float) -> int | None:
    """CreateLstmCellStateInfo: clip / scale saturated to int16, truncated."""
    if cell_clip <= 0:
        return None
    return int(min(max(cell_clip / cell_scale, INT16_MIN), INT16_MAX))


def _tanh_input(cell_scale: float) -> dict[str, int]:
    """lstm_internal::Tanh's input scaling from the cell scale's power of two
    (CheckedLog2, rounded in float32; TFLite ignores whether it was exact)."""
    log2 = np.float32(np.log(np.float32(cell_scale))) * (
        np.float32(1.0) / np.float32(np.log(np.float32(2.0)))
    )
    power = int(math.copysign(math.floor(abs(float(log2)) + 0.5), float(log2)))
    shift = 15 + power - 3
    if shift < 0:
        return {"tanh_multiplier": 3, "tanh_shift": -shift}
    return {"tanh_multiplier": 3 << shift, "tanh_shift": 0}


def _i32(value: int) -> tvm.tirx.PrimExpr:
    return tvm.tirx.const(value, "int32")


def _clamp(x: tvm.tirx.PrimExpr, low: int, high: int) -> tvm.tirx.PrimExpr:
    return tvm.tirx.Max(tvm.tirx.Min(x, _i32(high)), _i32(low))


def _rescale(x: tvm.tirx.PrimExpr, multiplier, left, right) -> tvm.tirx.PrimExpr:
    """MultiplyByQuantizedMultiplier(x, M, left - right): x shifted left in int32 as
    TFLite does, then the double rounding of :mod:`tvmq.quantize.fixed_point`."""
    return _multiply_by_quantized_multiplier(tvm.tirx.shift_left(x, left), multiplier, right)


def _rescale_const(x: tvm.tirx.PrimExpr, rescale: tuple[int, int]) -> tvm.tirx.PrimExpr:
    multiplier, shift = rescale
    return _rescale(x, _i32(multiplier), _i32(max(shift, 0)), _i32(max(-shift, 0)))


def _signed_table_activation(value, table, bits: int, saturation: int, offsets, out_shift: int):
    """Logistic and Tanh's shared steps: the table at |value| in 2**bits steps,
    interpolated linearly (`saturation` from entry 255 on), plus offsets[0] for value
    >= 0 or subtracted from offsets[1] below, shifted right by `out_shift`."""
    magnitude = tvm.tirx.Select(value < 0, -value, value)
    step = tvm.tirx.shift_right(magnitude, _i32(bits))
    index = tvm.tirx.Min(step, _i32(254))
    low, high = table[index], table[index + 1]
    fraction = tvm.tirx.bitwise_and(magnitude, _i32((1 << bits) - 1))
    interpolated = tvm.tirx.shift_left(low, _i32(bits)) + fraction * (high - low)
    looked_up = tvm.tirx.Select(step >= _i32(255), _i32(saturation), interpolated)
    signed = tvm.tirx.Select(value >= 0, looked_up + _i32(offsets[0]), _i32(offsets[1]) - looked_up)
    return tvm.tirx.shift_right(signed, _i32(out_shift))


def sigmoid_int16(x: tvm.tirx.PrimExpr, table: te.Tensor) -> tvm.tirx.PrimExpr:
    """reference_integer_ops::Logistic(0, 0, ...) on one int16 value at scale 2**-12
    (int32 here): its output at scale 2**-15."""
    offsets = (1 << 9, (1 << 25) + (1 << 9) - 1)
    return _signed_table_activation(x * _i32(3), table, 9, 0x7FFF << 10, offsets, 10)


def tanh_int16(
    x: tvm.tirx.PrimExpr, table: te.Tensor, multiplier: int, shift: int
) -> tvm.tirx.PrimExpr:
    """reference_integer_ops::Tanh on one int16 value, its input scaled by
    (x * multiplier + round) >> shift: its output at scale 2**-15."""
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    value = tvm.tirx.shift_right(x * _i32(multiplier) + _i32(rounding), _i32(shift))
    offsets = ((1 << 7) - (1 << 23), (1 << 23) + (1 << 7) - 1)
    return _signed_table_activation(value, table, 8, 0xFFFF << 8, offsets, 8)


def gate_input_te(accumulator: te.Tensor, bias: te.Tensor, rescale: te.Tensor) -> te.Tensor:
    """The gates' input products of every time step: (acc + bias) requantized to
    int16 at 2**-12 per channel (last axis), as TFLite's int8 -> int16 FULLY_CONNECTED."""

    def element(*index):
        channel = index[-1]
        total = accumulator(*index) + bias[channel]
        scaled = _rescale(total, rescale[0, channel], rescale[1, channel], rescale[2, channel])
        return _clamp(scaled, INT16_MIN, INT16_MAX).astype("int16")

    return te.compute(accumulator.shape, element, name="lstm_gate_input")


def gate_sum_te(
    inputs: te.Tensor, recurrent: te.Tensor, bias: te.Tensor, rescale: te.Tensor
) -> te.Tensor:
    """One step's gates before their activations ([batch, 4 x units] int16): the
    input part plus the recurrent product requantized like :func:`gate_input_te`
    (no bias of its own: `bias` folds in the hidden zero point), saturated."""

    def element(batch, channel):
        product = recurrent[batch, channel] + bias[channel]
        scaled = _rescale(product, rescale[0, channel], rescale[1, channel], rescale[2, channel])
        total = inputs[0, batch, channel].astype("int32") + _clamp(scaled, INT16_MIN, INT16_MAX)
        return _clamp(total, INT16_MIN, INT16_MAX).astype("int16")

    return te.compute(recurrent.shape, element, name="lstm_gate_sum")


class StepKernels:
    """The element-wise kernels of one time step, TE functions of `params`: the
    gates' activations, then the new cell state, then the new hidden state."""

    def __init__(self, params: LstmParams):
        self.params = params

    def gates(self, totals: te.Tensor, table: te.Tensor) -> te.Tensor:
        """Sigmoid of the input, forget and output gates, tanh of the cell gate
        ([1, batch, 4 x units] or [batch, 4 x units] int16 in, [batch, 4 x units] out)."""
        units = self.params.units

        def element(batch, channel):
            index = (0, batch, channel) if len(totals.shape) == 3 else (batch, channel)
            total = totals[index].astype("int32")
            cell_gate = tvm.tirx.all(channel >= 2 * units, channel < 3 * units)
            activated = tvm.tirx.Select(
                cell_gate, tanh_int16(total, table, 3, 0), sigmoid_int16(total, table)
            )
            return activated.astype("int16")

        return te.compute(totals.shape[-2:], element, name="lstm_gates")

    def cell(self, gates: te.Tensor, *previous: te.Tensor) -> te.Tensor:
        """The new cell state (int16): sat16(i x g) + sat16(f x previous cell),
        saturated, then clipped; the first step has no previous cell."""
        p = self.params

        def element(batch, unit):
            def gate(index):
                return gates[batch, index * p.units + unit].astype("int32")

            update = _clamp(
                _rescale_const(gate(0) * gate(2), p.update_rescale), INT16_MIN, INT16_MAX
            )
            if previous:
                kept = _rescale_const(
                    gate(1) * previous[0][batch, unit].astype("int32"), p.forget_rescale
                )
                update = _clamp(update + _clamp(kept, INT16_MIN, INT16_MAX), INT16_MIN, INT16_MAX)
            if p.cell_clip is not None:
                update = _clamp(update, -p.cell_clip, p.cell_clip)
            return update.astype("int16")

        return te.compute((gates.shape[0], p.units), element, name="lstm_cell")

    def hidden(self, gates: te.Tensor, cell: te.Tensor, table: te.Tensor) -> te.Tensor:
        """The new hidden state (int8): tanh(cell) x output gate, requantized."""
        p = self.params

        def element(batch, unit):
            output_gate = gates[batch, 3 * p.units + unit].astype("int32")
            squashed = tanh_int16(
                cell[batch, unit].astype("int32"), table, p.tanh_multiplier, p.tanh_shift
            )
            scaled = _rescale_const(squashed * output_gate, p.hidden_rescale)
            return _clamp(scaled + _i32(p.hidden_zero_point), INT8_MIN, INT8_MAX).astype("int8")

        return te.compute(cell.shape, element, name="lstm_hidden")


def emit_lstm(
    bb: relax.BlockBuilder, data: relax.Expr, params: LstmParams, time_major: bool
) -> relax.Expr:
    """The int8 output sequence of the LSTM on int8 `data` ([batch, time, features],
    [time, batch, features] when `time_major`), emitted into `bb`."""
    data = bb.normalize(data)
    if not time_major:
        data = bb.emit(relax.op.permute_dims(data, [1, 0, 2]))
    steps = int(data.ty.shape[0])
    products = bb.emit(relax.op.matmul(data, relax.const(params.input_weights), out_dtype="int32"))
    gate_inputs = bb.emit(
        bb.call_te(
            gate_input_te,
            products,
            relax.const(params.input_bias),
            relax.const(params.input_rescale),
            primfunc_name_hint="lstm_gate_input",
            primfunc_attrs={"op_pattern": ELEMENTWISE},
        )
    )
    kernels = StepKernels(params)
    table = relax.const(SIGMOID_TABLE)
    weights = relax.const(params.recurrent_weights)
    recurrent = (relax.const(params.recurrent_bias), relax.const(params.recurrent_rescale))
    hidden = cell = None
    outputs = []
    for step in range(steps):
        totals = bb.emit(relax.op.strided_slice(gate_inputs, [0], [step], [step + 1]))
        if hidden is not None:  # the state is zero before the first step
            product = bb.emit(relax.op.matmul(hidden, weights, out_dtype="int32"))
            totals = bb.emit(
                bb.call_te(
                    gate_sum_te, totals, product, *recurrent, primfunc_name_hint="lstm_gate_sum"
                )
            )
        gates = bb.emit(bb.call_te(kernels.gates, totals, table, primfunc_name_hint="lstm_gates"))
        previous = [] if cell is None else [cell]
        cell = bb.emit(bb.call_te(kernels.cell, gates, *previous, primfunc_name_hint="lstm_cell"))
        hidden = bb.emit(
            bb.call_te(kernels.hidden, gates, cell, table, primfunc_name_hint="lstm_hidden")
        )
        outputs.append(hidden)
    return relax.op.stack(outputs, axis=0 if time_major else 1)
