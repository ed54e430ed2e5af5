"""What ONNX's recurrent nodes (LSTM, GRU) share, unrolled over time: optional
inputs, one direction's slices of W, R and B, steps stacked into Y, sequence_lens,
and the activations list with its alpha and beta."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tvm import relax

from tvmq.constants import constant_array

# ONNX's RNN activations that take alpha and/or beta, with their defaults.
ACTIVATION_PARAMETERS = {"hardsigmoid": (0.2, 0.5), "leakyrelu": (0.01, None)}
DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}

Activation = Callable[[relax.Expr], relax.Expr]


def optional_input(inputs: Sequence, position: int) -> relax.Expr | None:
    return inputs[position] if position < len(inputs) else None


def time_major(bb: relax.BlockBuilder, x: relax.Expr, attrs: dict) -> tuple[relax.Expr, int]:
    """X as [time, batch, input] (layout 1 is batch major), and the layout."""
    x = bb.normalize(x)
    if x.ty.dtype != "float32":
        raise ValueError(f"{x.ty.dtype} input: only float32 recurrent nodes are supported")
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise ValueError(f"layout {layout} is not 0 or 1")
    if layout == 1:
        x = bb.normalize(relax.op.permute_dims(x, [1, 0, 2]))
    return x, layout


def directions(attrs: dict) -> tuple[bool, ...]:
    """For each direction, whether it runs backwards."""
    direction = text(attrs.get("direction", b"forward"))
    if direction not in DIRECTIONS:
        raise ValueError(f"direction '{direction}' is not forward, reverse or bidirectional")
    return DIRECTIONS[direction]


def initial_state(value: relax.Expr | None, direction: int, layout: int) -> relax.Expr | None:
    """One direction's initial state; None for zeros, whose products are left out."""
    if value is None:
        return None
    axis = 1 if layout == 1 else 0  # [batch, directions, hidden] in layout 1
    sliced = relax.op.strided_slice(value, [axis], [direction], [direction + 1])
    return relax.op.squeeze(sliced, [axis])


def outputs_in_layout(
    bb: relax.BlockBuilder, steps: list[relax.Expr], finals: list[list[relax.Expr]], layout: int
) -> relax.Tuple:
    """Y from every direction's per-step outputs ([time, batch, hidden] each), and the
    final states (one list per state, a value per direction), in ONNX's layouts."""
    y = stack(steps, axis=1)  # [time, directions, batch, hidden]
    states = [stack(values, axis=0) for values in finals]  # [directions, batch, hidden]
    if layout == 1:
        y = relax.op.permute_dims(y, [2, 0, 1, 3])
        states = [relax.op.permute_dims(v, [1, 0, 2]) for v in states]
    return relax.Tuple([bb.emit(y), *(bb.emit(v) for v in states)])


def project(bb, x, weights, bias, width: int) -> relax.Expr:
    """Every step's input projection plus `bias`, [time, batch, width]."""
    steps, batch = int(x.ty.shape[0]), int(x.ty.shape[1])
    flat = relax.op.reshape(x, [steps * batch, -1])
    total = relax.op.matmul(flat, weights)
    if bias is not None:
        total = relax.op.add(total, bias)
    return bb.emit(relax.op.reshape(total, [steps, batch, width]))


def stack(values: Sequence[relax.Expr], axis: int) -> relax.Expr:
    """relax.op.stack as expand_dims + concat: TVM's ConvertLayout (run on every ONNX
    model with convolutions) fails on stack ("Index -1 out of bounds")."""
    return relax.op.concat([relax.op.expand_dims(v, [axis]) for v in values], axis)


def of_direction(value: relax.Expr | None, direction: int, transpose: bool = False):
    """One direction's slice of W, R or P (their first axis), transposed for a
    matmul where asked: sliced here when a constant, so that the weights stay
    constants for quantization."""
    if value is None:
        return None
    array = constant_array(value)
    if array is not None:
        part = array[direction]
        return relax.const(np.ascontiguousarray(part.T if transpose else part))
    part = index(value, direction)
    return relax.op.permute_dims(part) if transpose else part


def columns(value: relax.Expr | None, begin: int, end: int) -> relax.Expr | None:
    """value[..., begin:end] (a gate's part of a weight or bias), folded when constant."""
    if value is None:
        return None
    array = constant_array(value)
    if array is not None:
        return relax.const(np.ascontiguousarray(array[..., begin:end]))
    return relax.op.strided_slice(value, [-1], [begin], [end])


def index(value: relax.Expr, position: int) -> relax.Expr:
    """value[position] along the first axis (a slice: `take` warns about its fast mode)."""
    sliced = relax.op.strided_slice(value, [0], [position], [position + 1])
    return relax.op.squeeze(sliced, [0])


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_lengths(lengths: relax.Expr | None, steps: int, batch: int) -> None:
    """Only the trivial sequence_lens (every sequence the full length) is supported."""
    if lengths is None:
        return
    values = constant_array(lengths)
    if values is not None:
        values = values.reshape(-1)
        if values.size == batch and np.all(values == steps):
            return
    raise ValueError(
        f"sequence_lens other than the full length {steps} for every sequence is not supported"
    )


def activations(
    attrs: dict, directions: int, defaults: tuple[str, ...]
) -> list[tuple[Activation, ...]]:
    """The functions per direction from `activations` (`defaults` per direction when
    absent), `activation_alpha`, `activation_beta` (alpha and beta consumed in order by
    the functions that take them)."""
    count = len(defaults)
    names = [text(n) for n in attrs.get("activations", defaults * directions)]
    if len(names) != count * directions:
        raise ValueError(f"{len(names)} activations given, {count * directions} expected")
    alphas, betas = list(attrs.get("activation_alpha", ())), list(attrs.get("activation_beta", ()))
    functions = [_activation(name, alphas, betas) for name in names]
    return [tuple(functions[count * d : count * d + count]) for d in range(directions)]


def bounded(value: relax.Expr, clip) -> relax.Expr:
    """`clip` (the node's attribute) applied to a gate's input, when given."""
    if clip is None:
        return value
    return relax.op.clip(value, -float(clip), float(clip))


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
