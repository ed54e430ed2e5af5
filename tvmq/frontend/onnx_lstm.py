"""ONNX LSTM (TVM's Relax importer has no converter for it), unrolled over time.

Follows onnxruntime's CPU kernel (deep_cpu_lstm): the input projection of every step
is one matmul; each step adds the recurrent projection, gates in ONNX's i, o, f, c
order, peepholes (the output gate's on the new cell), `clip` on every gate's input to
its activation, `input_forget` as f = 1 - i. Forward, reverse and bidirectional
directions, layout 0 (time major) and 1 (batch major). sequence_lens is accepted only
when it is a constant equal to the full length for every batch entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tvm
from tvm import relax

GATES = 4  # input, output, forget, cell: ONNX's order in W, R and B
DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")
# ONNX's RNN activations that take alpha and/or beta, with their defaults.
ACTIVATION_PARAMETERS = {"hardsigmoid": (0.2, 0.5), "leakyrelu": (0.01, None)}

Activation = Callable[[relax.Expr], relax.Expr]


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Tuple:
    """Y, Y_h and Y_c of an ONNX LSTM node as Relax expressions in ONNX's layouts."""
    x, weights, recurrent = inputs[0], inputs[1], inputs[2]
    bias, lengths, initial_h, initial_c, peephole = (_input(inputs, i) for i in range(3, 8))
    x = bb.normalize(x)
    dtype = x.ty.dtype
    if dtype != "float32":
        raise ValueError(f"{dtype} input: only float32 LSTMs are supported")
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise ValueError(f"layout {layout} is not 0 or 1")
    if layout == 1:  # [batch, time, input] -> time major
        x = bb.normalize(relax.op.permute_dims(x, [1, 0, 2]))
    steps, batch, _ = (int(d) for d in x.ty.shape)
    hidden = int(attrs["hidden_size"])
    direction = _text(attrs.get("direction", b"forward"))
    reverse = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
    if direction not in reverse:
        raise ValueError(f"direction '{direction}' is not forward, reverse or bidirectional")
    _check_lengths(lengths, steps, batch)
    directions = reverse[direction]
    activations = _activations(attrs, len(directions))
    clip = attrs.get("clip")
    cell = _Cell(bb, hidden, clip, bool(attrs.get("input_forget", 0)))

    def state(value: relax.Expr | None, index: int) -> relax.Expr | None:
        """One direction's initial state; None for zeros, whose products are left out."""
        if value is None:
            return None
        axis = 1 if layout == 1 else 0  # [batch, directions, hidden] in layout 1
        return relax.op.squeeze(relax.op.strided_slice(value, [axis], [index], [index + 1]), [axis])

    outputs, last_h, last_c = [], [], []
    for index, backwards in enumerate(directions):
        input_weights = _of(weights, index, transpose=True)
        biases = _bias(bias, index, GATES * hidden)
        projected = _project(bb, x, input_weights, biases, steps, batch, hidden)
        recurrent_t = _of(recurrent, index, transpose=True)
        peepholes = _of(peephole, index)
        h, c = state(initial_h, index), state(initial_c, index)
        hs: list[relax.Expr] = [None] * steps
        for step in reversed(range(steps)) if backwards else range(steps):
            gates = _index(projected, step)
            if h is not None:
                gates = relax.op.add(gates, relax.op.matmul(h, recurrent_t))
            h, c = cell(bb.emit(gates), c, peepholes, activations[index])
            hs[step] = h
        outputs.append(_stack(hs, axis=0))  # [time, batch, hidden]
        last_h.append(h)
        last_c.append(c)
    y = _stack(outputs, axis=1)  # [time, directions, batch, hidden]
    y_h, y_c = _stack(last_h, axis=0), _stack(last_c, axis=0)
    if layout == 1:
        y = relax.op.permute_dims(y, [2, 0, 1, 3])
        y_h, y_c = (relax.op.permute_dims(v, [1, 0, 2]) for v in (y_h, y_c))
    return relax.Tuple([bb.emit(y), bb.emit(y_h), bb.emit(y_c)])


class _Cell:
    """One LSTM step from the step's summed gate inputs, in onnxruntime's order."""

    def __init__(self, bb: relax.BlockBuilder, hidden: int, clip, input_forget: bool):
        self.bb, self.hidden, self.clip, self.input_forget = bb, hidden, clip, input_forget

    def gate(self, gates: relax.Expr, index: int) -> relax.Expr:
        begin = index * self.hidden
        return relax.op.strided_slice(gates, [1], [begin], [begin + self.hidden])

    def bounded(self, value: relax.Expr) -> relax.Expr:
        if self.clip is None:
            return value
        return relax.op.clip(value, -float(self.clip), float(self.clip))

    def __call__(self, gates, c, peepholes, activations) -> tuple[relax.Expr, relax.Expr]:
        """(h, c) after one step from the previous cell `c` (None: zero)."""
        f, g, h = activations

        def peep(value: relax.Expr, index: int, cell: relax.Expr | None) -> relax.Expr:
            if peepholes is None or cell is None:
                return value
            begin = index * self.hidden
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


def _project(bb, x, weights, bias, steps: int, batch: int, hidden: int) -> relax.Expr:
    """Every step's input projection plus both biases, [time, batch, 4 * hidden]."""
    flat = relax.op.reshape(x, [steps * batch, -1])
    total = relax.op.matmul(flat, weights)
    if bias is not None:
        total = relax.op.add(total, bias)
    return bb.emit(relax.op.reshape(total, [steps, batch, GATES * hidden]))


def _input(inputs: Sequence, index: int) -> relax.Expr | None:
    return inputs[index] if index < len(inputs) else None


def _stack(values: Sequence[relax.Expr], axis: int) -> relax.Expr:
    """relax.op.stack as expand_dims + concat: TVM's ConvertLayout (run on every ONNX
    model with convolutions) fails on stack ("Index -1 out of bounds")."""
    return relax.op.concat([relax.op.expand_dims(v, [axis]) for v in values], axis)


def _of(value: relax.Expr | None, direction: int, transpose: bool = False):
    """One direction's slice of W, R or P (their first axis), transposed for a
    matmul where asked: sliced here when a constant, so that the weights stay
    constants for quantization."""
    if value is None:
        return None
    array = _constant(value)
    if array is not None:
        part = array[direction]
        return relax.const(np.ascontiguousarray(part.T if transpose else part))
    part = _index(value, direction)
    return relax.op.permute_dims(part) if transpose else part


def _bias(bias: relax.Expr | None, direction: int, width: int) -> relax.Expr | None:
    """One direction's Wb + Rb (onnxruntime adds the two first)."""
    if bias is None:
        return None
    array = _constant(bias)
    if array is not None:
        return relax.const(array[direction, :width] + array[direction, width:])
    both = _index(bias, direction)
    return relax.op.add(
        relax.op.strided_slice(both, [0], [0], [width]),
        relax.op.strided_slice(both, [0], [width], [2 * width]),
    )


def _constant(value: relax.Expr) -> np.ndarray | None:
    if isinstance(value, tvm.ir.expr.Constant) and hasattr(value.value, "numpy"):
        return value.value.numpy()
    return None


def _index(value: relax.Expr, index: int) -> relax.Expr:
    """value[index] along the first axis (a slice: `take` warns about its fast mode)."""
    return relax.op.squeeze(relax.op.strided_slice(value, [0], [index], [index + 1]), [0])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_lengths(lengths: relax.Expr | None, steps: int, batch: int) -> None:
    """Only the trivial sequence_lens (every sequence the full length) is supported."""
    if lengths is None:
        return
    values = _constant(lengths)
    if values is not None:
        values = values.reshape(-1)
        if values.size == batch and np.all(values == steps):
            return
    raise ValueError(
        f"sequence_lens other than the full length {steps} for every sequence is not supported"
    )


def _activations(attrs: dict, directions: int) -> list[tuple[Activation, ...]]:
    """f, g, h per direction from `activations`, `activation_alpha`, `activation_beta`
    (alpha and beta consumed in order by the functions that take them)."""
    names = [_text(n) for n in attrs.get("activations", DEFAULT_ACTIVATIONS * directions)]
    if len(names) != 3 * directions:
        raise ValueError(f"{len(names)} activations given, {3 * directions} expected")
    alphas, betas = list(attrs.get("activation_alpha", ())), list(attrs.get("activation_beta", ()))
    functions = [_activation(name, alphas, betas) for name in names]
    return [tuple(functions[3 * d : 3 * d + 3]) for d in range(directions)]


def _activation(name: str, alphas: list[float], betas: list[float]) -> Activation:
    key = name.lower()
    default_alpha, default_beta = ACTIVATION_PARAMETERS.get(key, (None, None))
    alpha = (alphas.pop(0) if alphas else default_alpha) if default_alpha is not None else None
    beta = (betas.pop(0) if betas else default_beta) if default_beta is not None else None
    if key == "sigmoid":
        return relax.op.sigmoid
    if key == "tanh":
        return relax.op.tanh
    if key == "relu":
        return relax.op.nn.relu
    if key == "hardsigmoid":
        return lambda v: relax.op.clip(
            relax.op.add(
                relax.op.multiply(v, relax.const(alpha, "float32")), relax.const(beta, "float32")
            ),
            0.0,
            1.0,
        )
    if key == "leakyrelu":
        return lambda v: relax.op.nn.leakyrelu(v, alpha)
    raise ValueError(
        f"activation '{name}' is not supported (Sigmoid, Tanh, Relu, HardSigmoid, LeakyRelu are)"
    )
