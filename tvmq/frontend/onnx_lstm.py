"""ONNX LSTM (TVM's Relax importer has no converter for it), unrolled over time.

Follows onnxruntime's CPU kernel (deep_cpu_lstm): the input projection of every step
is one matmul; each step adds the recurrent projection, gates in ONNX's i, o, f, c
order, peepholes (the output gate's on the new cell), `clip` on every gate's input to
its activation, `input_forget` as f = 1 - i. Forward, reverse and bidirectional
directions, layout 0 (time major) and 1 (batch major). sequence_lens is accepted only
when it is a constant equal to the full length for every batch entry.

The projections are a direction's choice (:class:`Projections`): float matmuls here,
onnxruntime's dynamically quantized ones in :mod:`tvmq.frontend.onnx_dynamic_lstm`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tvm import relax

from tvmq.constants import constant_array
from tvmq.frontend import onnx_rnn
from tvmq.frontend.onnx_rnn import index, of_direction, optional_input

GATES = 4  # input, output, forget, cell: ONNX's order in W, R and B
DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")


@dataclass
class Projections:
    """One direction's gate inputs: `inputs` projects every step's x at once
    ([time, batch, input] -> [time, batch, 4 hidden]), `recurrent` one step's h
    ([batch, hidden] -> [batch, 4 hidden]); `bias` is added after their sum (None
    when `inputs` holds it)."""

    inputs: Callable[[relax.Expr], relax.Expr]
    recurrent: Callable[[relax.Expr], relax.Expr]
    bias: relax.Expr | None = None


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Tuple:
    """Y, Y_h and Y_c of an ONNX LSTM node as Relax expressions in ONNX's layouts."""
    hidden = int(attrs["hidden_size"])
    weights, recurrent, bias = inputs[1], inputs[2], optional_input(inputs, 3)

    def projections(direction: int) -> Projections:
        biases = fused_bias(bias, direction, GATES * hidden)
        input_weights = of_direction(weights, direction, transpose=True)
        recurrent_t = of_direction(recurrent, direction, transpose=True)
        return Projections(
            lambda x: onnx_rnn.project(bb, x, input_weights, biases, GATES * hidden),
            lambda h: relax.op.matmul(h, recurrent_t),
        )

    return unrolled(bb, inputs, attrs, projections)


def unrolled(
    bb: relax.BlockBuilder,
    inputs: Sequence,
    attrs: dict,
    projections: Callable[[int], Projections],
) -> relax.Tuple:
    """Y, Y_h and Y_c of an LSTM whose inputs follow ONNX's LSTM from X to P, with
    each direction's gate inputs from `projections(direction)`."""
    x, layout = onnx_rnn.time_major(bb, inputs[0], attrs)
    lengths, initial_h, initial_c, peephole = (optional_input(inputs, i) for i in range(4, 8))
    steps, batch, _ = (int(d) for d in x.ty.shape)
    hidden = int(attrs["hidden_size"])
    directions = onnx_rnn.directions(attrs)
    onnx_rnn.check_lengths(lengths, steps, batch)
    activations = onnx_rnn.activations(attrs, len(directions), DEFAULT_ACTIVATIONS)
    cell = _Cell(bb, hidden, attrs.get("clip"), bool(attrs.get("input_forget", 0)))

    outputs, last_h, last_c = [], [], []
    for direction, backwards in enumerate(directions):
        projection = projections(direction)
        projected = projection.inputs(x)
        peepholes = of_direction(peephole, direction)
        h = onnx_rnn.initial_state(initial_h, direction, layout)
        c = onnx_rnn.initial_state(initial_c, direction, layout)
        hs: list[relax.Expr] = [None] * steps
        for step in reversed(range(steps)) if backwards else range(steps):
            gates = index(projected, step)
            if h is not None:
                gates = relax.op.add(gates, projection.recurrent(h))
            if projection.bias is not None:
                gates = relax.op.add(gates, projection.bias)
            h, c = cell(bb.emit(gates), c, peepholes, activations[direction])
            hs[step] = h
        outputs.append(onnx_rnn.stack(hs, axis=0))  # [time, batch, hidden]
        last_h.append(h)
        last_c.append(c)
    return onnx_rnn.outputs_in_layout(bb, outputs, [last_h, last_c], layout)


class _Cell:
    """One LSTM step from the step's summed gate inputs, in onnxruntime's order."""

    def __init__(self, bb: relax.BlockBuilder, hidden: int, clip, input_forget: bool):
        self.bb, self.hidden, self.clip, self.input_forget = bb, hidden, clip, input_forget

    def gate(self, gates: relax.Expr, position: int) -> relax.Expr:
        begin = position * self.hidden
        return relax.op.strided_slice(gates, [1], [begin], [begin + self.hidden])

    def bounded(self, value: relax.Expr) -> relax.Expr:
        return onnx_rnn.bounded(value, self.clip)

    def __call__(self, gates, c, peepholes, activations) -> tuple[relax.Expr, relax.Expr]:
        """(h, c) after one step from the previous cell `c` (None: zero)."""
        f, g, h = activations

        def peep(value: relax.Expr, position: int, cell: relax.Expr | None) -> relax.Expr:
            if peepholes is None or cell is None:
                return value
            begin = position * self.hidden
            weight = relax.op.strided_slice(peepholes, [0], [begin], [begin + self.hidden])
            return relax.op.add(value, relax.op.multiply(cell, weight))

        # P holds the input, output and forget gates' peepholes, in that order.
        input_gate = f(self.bounded(peep(self.gate(gates, 0), 0, c)))
        candidate = g(self.bounded(self.gate(gates, 3)))
        update = relax.op.multiply(input_gate, candidate)
        if c is not None:  # a zero cell (no initial_c, first step) forgets nothing
            if self.input_forget:
                forget = relax.op.subtract(relax.const(1.0, "float32"), input_gate)
            else:
                forget = f(self.bounded(peep(self.gate(gates, 2), 2, c)))
            update = relax.op.add(relax.op.multiply(forget, c), update)
        c = self.bb.emit(update)
        output = f(self.bounded(peep(self.gate(gates, 1), 1, c)))
        return self.bb.emit(relax.op.multiply(output, h(c))), c


def fused_bias(bias: relax.Expr | None, direction: int, width: int) -> relax.Expr | None:
    """One direction's Wb + Rb (onnxruntime adds the two first)."""
    if bias is None:
        return None
    array = constant_array(bias)
    if array is not None:
        return relax.const(array[direction, :width] + array[direction, width:])
    both = index(bias, direction)
    return relax.op.add(
        relax.op.strided_slice(both, [0], [0], [width]),
        relax.op.strided_slice(both, [0], [width], [2 * width]),
    )
