"""ONNX GRU (TVM's Relax importer has no converter for it), unrolled over time.

As ONNX defines it and onnxruntime computes it (deep_cpu_gru): gates z (update),
r (reset) and h in that order in W, R and B; z = f(x Wz + h Rz + Wbz + Rbz), likewise
r; the candidate is g(x Wh + (r * h) Rh + Rbh + Wbh), or with `linear_before_reset`
g(x Wh + r * (h Rh + Rbh) + Wbh); h' = (1 - z) * candidate + z * h. `clip` bounds
every gate's input to its activation. Directions, layouts and sequence_lens as
for the LSTM (:mod:`tvmq.frontend.onnx_lstm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import relax

from tvmq.constants import constant_array
from tvmq.frontend import onnx_rnn
from tvmq.frontend.onnx_rnn import bounded, columns, index, of_direction, optional_input

GATES = 3  # update, reset, hidden: ONNX's order in W, R and B
DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh")


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Tuple:
    """Y and Y_h of an ONNX GRU node as Relax expressions in ONNX's layouts."""
    x, layout = onnx_rnn.time_major(bb, inputs[0], attrs)
    weights, recurrent = inputs[1], inputs[2]
    bias, lengths, initial_h = (optional_input(inputs, i) for i in range(3, 6))
    steps, batch, _ = (int(d) for d in x.ty.shape)
    hidden = int(attrs["hidden_size"])
    directions = onnx_rnn.directions(attrs)
    onnx_rnn.check_lengths(lengths, steps, batch)
    activations = onnx_rnn.activations(attrs, len(directions), DEFAULT_ACTIVATIONS)
    linear_before_reset = bool(attrs.get("linear_before_reset", 0))
    clip = attrs.get("clip")

    outputs, last_h = [], []
    for direction, backwards in enumerate(directions):
        f, g = activations[direction]
        input_bias, hidden_bias = _biases(bias, direction, hidden, linear_before_reset)
        input_weights = of_direction(weights, direction, transpose=True)
        projected = onnx_rnn.project(bb, x, input_weights, input_bias, GATES * hidden)
        recurrent_t = of_direction(recurrent, direction, transpose=True)  # [hidden, 3 hidden]
        update_reset = columns(recurrent_t, 0, 2 * hidden)
        candidate_weights = columns(recurrent_t, 2 * hidden, 3 * hidden)
        h = onnx_rnn.initial_state(initial_h, direction, layout)
        hs: list[relax.Expr] = [None] * steps
        for step in reversed(range(steps)) if backwards else range(steps):
            gates = index(projected, step)
            zr = columns(gates, 0, 2 * hidden)
            if h is not None:
                zr = relax.op.add(zr, relax.op.matmul(h, update_reset))
            zr = bb.emit(f(bounded(zr, clip)))
            z, r = columns(zr, 0, hidden), columns(zr, hidden, 2 * hidden)
            candidate = columns(gates, 2 * hidden, 3 * hidden)
            if linear_before_reset:
                recalled = hidden_bias
                if h is not None:
                    recalled = relax.op.matmul(h, candidate_weights)
                    if hidden_bias is not None:
                        recalled = relax.op.add(recalled, hidden_bias)
                if recalled is not None:
                    candidate = relax.op.add(candidate, relax.op.multiply(r, recalled))
            elif h is not None:
                reset = relax.op.multiply(r, h)
                candidate = relax.op.add(candidate, relax.op.matmul(reset, candidate_weights))
            candidate = g(bounded(candidate, clip))
            kept = relax.op.subtract(relax.const(1.0, "float32"), z)
            new = relax.op.multiply(kept, candidate)
            if h is not None:  # a zero state keeps nothing of itself
                new = relax.op.add(new, relax.op.multiply(z, h))
            h = bb.emit(new)
            hs[step] = h
        outputs.append(onnx_rnn.stack(hs, axis=0))  # [time, batch, hidden]
        last_h.append(h)
    return onnx_rnn.outputs_in_layout(bb, outputs, [last_h], layout)


def _biases(
    bias: relax.Expr | None, direction: int, hidden: int, linear_before_reset: bool
) -> tuple[relax.Expr | None, relax.Expr | None]:
    """(the bias added to the input projection, Rbh where it is applied inside the
    reset product): Wb + Rb for z and r; Wbh, plus Rbh unless linear_before_reset.
    Computed here when B is a constant, so that they stay constants."""
    if bias is None:
        return None, None
    array = constant_array(bias)
    if array is not None:
        wb, rb = np.split(array[direction], 2)
        if not linear_before_reset:
            return relax.const(wb + rb), None
        gates = np.concatenate([wb[: 2 * hidden] + rb[: 2 * hidden], wb[2 * hidden :]])
        return relax.const(gates), relax.const(rb[2 * hidden :])
    both = index(bias, direction)
    wb, rb = columns(both, 0, 3 * hidden), columns(both, 3 * hidden, 6 * hidden)
    if not linear_before_reset:
        return relax.op.add(wb, rb), None
    summed = relax.op.add(columns(wb, 0, 2 * hidden), columns(rb, 0, 2 * hidden))
    gates = relax.op.concat([summed, columns(wb, 2 * hidden, 3 * hidden)], 0)
    return gates, columns(rb, 2 * hidden, 3 * hidden)
