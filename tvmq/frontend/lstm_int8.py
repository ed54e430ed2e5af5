"""Quantized UNIDIRECTIONAL_SEQUENCE_LSTM in a TFLite file: the variant TFLite Micro
runs (int8 input, hidden state and weights, int16 cell state, no CIFG, peephole,
projection or layer norm: lstm_eval.cc's ValidateTensorStatus) becomes
:mod:`tvmq.quantize.lstm`'s integer code; any other is refused in one line."""

from __future__ import annotations

import numpy as np
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.TensorType import TensorType
from tvm import relax

from tvmq.frontend.tflite_import import per_tensor_params
from tvmq.quantize.lstm import GATES, LstmQuantization, emit_lstm, lstm_params

# Input indices (lstm_shared.h): gate weights on the input, then on the hidden
# state, peepholes, biases, projection, the two states, then layer norm.
_INPUT_WEIGHTS, _RECURRENT_WEIGHTS, _BIASES = 1, 5, 12
_PEEPHOLE, _PROJECTION, _LAYER_NORM = (9, 10, 11), (16, 17), (20, 21, 22, 23)
_HIDDEN_STATE, _CELL_STATE = 18, 19


def refusal(converter, op) -> str | None:
    """Why tvmq cannot run this quantized LSTM exactly, or None when it can."""
    inputs = converter.get_input_tensors(op)
    outputs = converter.get_output_tensors(op)
    if len(inputs) != 24 or len(outputs) != 1 or op.BuiltinOptions() is None:
        return "quantized LSTM needs its 24 inputs, one output and its options"
    (output,) = outputs

    def present(index: int) -> bool:
        return inputs[index].tensor_idx != -1

    def typed(index: int, tensor_type: int) -> bool:
        return present(index) and inputs[index].tensor.Type() == tensor_type

    weights = range(_INPUT_WEIGHTS, _INPUT_WEIGHTS + 2 * GATES)
    checks = [
        (
            not any(present(i) for i in _PROJECTION + _LAYER_NORM),
            "projection or layer normalisation is not supported",
        ),
        (not any(present(i) for i in _PEEPHOLE), "quantized peephole weights are not supported"),
        (
            all(present(i) for i in weights),
            "quantized LSTM without an input gate (CIFG) is not supported",
        ),
        (
            typed(0, TensorType.INT8) and output.tensor.Type() == TensorType.INT8,
            "only int8 activations are supported (int8 x int8 weights, int16 cell state)",
        ),
        (
            per_tensor_params(inputs[0].tensor) is not None
            and len(converter.get_tensor_shape(inputs[0])) == 3,
            "the input must be 3-D and quantized per tensor",
        ),
        (
            all(typed(i, TensorType.INT8) and _symmetric(inputs[i]) for i in weights),
            "weights must be int8 with one scale and zero point 0",
        ),
        (
            all(typed(_BIASES + g, TensorType.INT32) for g in range(GATES)),
            "gate biases must be int32",
        ),
        (
            typed(_HIDDEN_STATE, TensorType.INT8)
            and per_tensor_params(inputs[_HIDDEN_STATE].tensor),
            "the hidden state must be per-tensor int8",
        ),
        (
            typed(_CELL_STATE, TensorType.INT16) and per_tensor_params(inputs[_CELL_STATE].tensor),
            "the cell state must be per-tensor int16",
        ),
        (
            _options(op).FusedActivationFunction() == ActivationFunctionType.TANH,
            "only a tanh cell activation is supported",
        ),
    ]
    return next((reason for ok, reason in checks if not ok), None)


def _symmetric(tensor) -> bool:
    params = per_tensor_params(tensor.tensor)
    return params is not None and params[1] == 0


def _options(op):
    from tflite.UnidirectionalSequenceLSTMOptions import UnidirectionalSequenceLSTMOptions

    options = UnidirectionalSequenceLSTMOptions()
    options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    return options


def convert(converter, op) -> relax.Expr:
    """The int8 output sequence, as TFLite Micro computes it (see :func:`refusal`)."""
    inputs = converter.get_input_tensors(op)
    options = _options(op)

    def values(index: int) -> np.ndarray:
        return converter.get_tensor_value(inputs[index])

    def scales(first: int) -> tuple[float, ...]:
        return tuple(per_tensor_params(inputs[first + g].tensor)[0] for g in range(GATES))

    quant = LstmQuantization(
        input=per_tensor_params(inputs[0].tensor),
        hidden=per_tensor_params(inputs[_HIDDEN_STATE].tensor),
        cell_scale=per_tensor_params(inputs[_CELL_STATE].tensor)[0],
        input_weight_scales=scales(_INPUT_WEIGHTS),
        recurrent_weight_scales=scales(_RECURRENT_WEIGHTS),
        cell_clip=float(options.CellClip()),
    )
    params = lstm_params(
        [values(_INPUT_WEIGHTS + g) for g in range(GATES)],
        [values(_RECURRENT_WEIGHTS + g) for g in range(GATES)],
        [values(_BIASES + g) for g in range(GATES)],
        quant,
    )
    data = converter.get_tensor_expr(inputs[0])
    return emit_lstm(converter.bb, data, params, bool(options.TimeMajor()))
