"""Quantized SVDF in a TFLite file as TFLite Micro's integer kernel
(svdf_common.cc, EvalIntegerSvdfReference), bit for bit: int8 input and output,
int8 feature weights, int8 or int16 time weights and state of the same type.

Like tvmq's LSTM, the compiled model keeps no state between calls: it computes what
TFLite Micro computes on its first invocation after a reset, when the state holds
its reset value (the zero point for int8, 0 for int16) before the op shifts it and
appends the newest feature column. So:

- feature = clamp_T(MultiplyByQuantizedMultiplier(W_f (x - zp_x), s_x s_f / s_state)),
  stored as zp_state + feature in T (wrapping, as the C cast does);
- per filter: time = W_t[:, -1] (stored - zp_state) + sum(W_t[:, :-1]) (reset - zp_state);
- out = clamp8(zp_out + MultiplyByQuantizedMultiplier(bias + the filters of each
  unit summed, s_state s_t / s_out)); TFLite Micro applies no fused activation here.
"""

from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType
from tvm import relax

from tvmq.frontend.tflite_import import per_tensor_params
from tvmq.quantize.fixed_point import IntegerBuilder, quantize_multiplier

_INPUT, _FEATURE_WEIGHTS, _TIME_WEIGHTS, _BIAS, _STATE = range(5)
_STATE_TYPES = {TensorType.INT8: "int8", TensorType.INT16: "int16"}


def refusal(converter, op) -> str | None:
    """Why tvmq cannot run this quantized SVDF exactly, or None when it can."""
    inputs = converter.get_input_tensors(op)
    outputs = converter.get_output_tensors(op)
    if (
        len(inputs) != 5
        or len(outputs) != 1
        or op.BuiltinOptions() is None
        or any(inputs[i].tensor_idx == -1 for i in (0, 1, 2, 4))
    ):
        return "quantized SVDF needs its input, weights, state, one output and its options"
    (output,) = outputs
    types = [t.tensor.Type() if t.tensor_idx != -1 else None for t in inputs]
    quantized = [inputs[i].tensor for i in (0, 1, 2, 4)] + [output.tensor]
    checks = [
        (
            all(per_tensor_params(t) is not None for t in quantized),
            "quantization must be per tensor",
        ),
        (
            types[_INPUT] == types[_FEATURE_WEIGHTS] == output.tensor.Type() == TensorType.INT8,
            "input, feature weights and output must be int8",
        ),
        (
            types[_TIME_WEIGHTS] in _STATE_TYPES and types[_STATE] == types[_TIME_WEIGHTS],
            "time weights and state must both be int8 or both int16",
        ),
        (types[_BIAS] in (None, TensorType.INT32), "the bias must be int32"),
        (len(converter.get_tensor_shape(inputs[_INPUT])) == 2, "the input must be 2-D"),
    ]
    reason = next((reason for ok, reason in checks if not ok), None)
    if reason is None and types[_BIAS] is not None and not _bias_scale_matches(inputs):
        reason = "bias scale is not state scale x time weights scale (TFLite Micro refuses it)"
    return reason


def _bias_scale_matches(inputs) -> bool:
    """SVDF Prepare's check: |s_bias - s_state * s_time| < 1e-5 (product in float32)."""
    bias = per_tensor_params(inputs[_BIAS].tensor)
    if bias is None:
        return False
    state, time = (per_tensor_params(inputs[i].tensor)[0] for i in (_STATE, _TIME_WEIGHTS))
    return abs(bias[0] - float(np.float32(state) * np.float32(time))) < 1e-5


def _ratio(a: float, b: float, c: float) -> tuple[int, int]:
    """QuantizeMultiplier of a * b / c computed in float32, as Prepare does."""
    return quantize_multiplier(float(np.float32(np.float32(a) * np.float32(b)) / np.float32(c)))


def convert(converter, op) -> relax.Expr:
    """The int8 output of a quantized SVDF (see :func:`refusal`) on a reset state."""
    from tflite.SVDFOptions import SVDFOptions

    inputs = converter.get_input_tensors(op)
    (output,) = converter.get_output_tensors(op)
    options = SVDFOptions()
    options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    state_dtype = _STATE_TYPES[inputs[_STATE].tensor.Type()]
    info = np.iinfo(state_dtype)
    x_scale, x_zero = per_tensor_params(inputs[_INPUT].tensor)
    feature_scale, _ = per_tensor_params(inputs[_FEATURE_WEIGHTS].tensor)
    time_scale, _ = per_tensor_params(inputs[_TIME_WEIGHTS].tensor)
    state_scale, state_zero = per_tensor_params(inputs[_STATE].tensor)
    out_scale, out_zero = per_tensor_params(output.tensor)
    feature = converter.get_tensor_value(inputs[_FEATURE_WEIGHTS]).astype(np.int32)
    time = converter.get_tensor_value(inputs[_TIME_WEIGHTS]).astype(np.int32)
    filters = feature.shape[0]
    units = filters // options.Rank()
    reset = state_zero if state_dtype == "int8" else 0
    older = time[:, :-1].sum(axis=1) * (reset - state_zero)

    ints = IntegerBuilder(converter.bb)
    data = converter.get_tensor_expr(inputs[_INPUT])
    product = ints.emit(
        relax.op.matmul(
            data, relax.const(np.ascontiguousarray(feature.T).astype(np.int8)), out_dtype="int32"
        )
    )
    product = ints.emit(relax.op.add(product, ints.const(-x_zero * feature.sum(axis=1), "int32")))
    newest = ints.multiply_by_quantized_multiplier(
        product, *_ratio(x_scale, feature_scale, state_scale)
    )
    newest = ints.emit(relax.op.clip(newest, int(info.min), int(info.max)))
    # zp_state + feature stored in T wraps; centred again on the zero point.
    stored = ints.emit(
        relax.op.bitwise_and(
            relax.op.add(newest, ints.const(state_zero - int(info.min), "int32")),
            ints.const(int(info.max) - int(info.min), "int32"),
        )
    )
    centred = ints.emit(relax.op.add(stored, ints.const(int(info.min) - state_zero, "int32")))
    filtered = ints.emit(
        relax.op.add(
            relax.op.multiply(centred, ints.const(time[:, -1], "int32")),
            ints.const(older, "int32"),
        )
    )
    batch = int(converter.get_tensor_shape(inputs[_INPUT])[0])
    total = ints.emit(relax.op.sum(relax.op.reshape(filtered, (batch, units, -1)), axis=[2]))
    if inputs[_BIAS].tensor_idx != -1:
        bias = converter.get_tensor_value(inputs[_BIAS]).astype(np.int32)
        total = ints.emit(relax.op.add(total, ints.const(bias, "int32")))
    scaled = ints.multiply_by_quantized_multiplier(
        total, *_ratio(state_scale, time_scale, out_scale)
    )
    shifted = ints.emit(relax.op.add(scaled, ints.const(out_zero, "int32")))
    return ints.saturate(shifted, -128, 127, "int8")
