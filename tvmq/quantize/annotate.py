"""Annotate: decide, op by op, what a float Relax graph quantizes.

Rules per op type, as in PyTorch's pt2e quantizer: conv2d (grouped and depthwise
too) and matmul/dense with their bias and activation fused, add and mul (with an
activation fused), concat, average pooling, mean, bilinear resize, PReLU (its
slope one int8 tensor), and softmax over the last axis (its output takes
TFLite's fixed parameters).
Reshape, transpose, flatten, slices, padding, nearest resize and max pooling
pass quantization through unchanged.
Anything else stays float, and the graph gets quantize/dequantize at its
boundary, never a failure.

The result names the tensors to observe during calibration and the weights to
quantize; nothing in the graph changes here (that is :mod:`tvmq.quantize.convert`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tvm
from tvm import relax

# Ops that pass quantization through: realize runs them on the integers.
from tvmq.quantize.realize import constant_value, passes_through, prelu_slope

WEIGHTED_OPS = {"relax.nn.conv2d": "conv2d", "relax.matmul": "matmul"}
ACTIVATION_OPS = ("relax.nn.relu", "relax.clip")
POOLING_OPS = {"relax.nn.avg_pool2d": "avg_pool2d", "relax.mean": "mean"}


@dataclass(frozen=True)
class QuantizedOp:
    """One op to run as integer code: its core binding and the tensor it produces."""

    kind: str
    core: relax.Var
    output: relax.Var
    inputs: tuple[relax.Var, ...]
    weight_axis: int | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.core.name


@dataclass
class Annotation:
    """What calibration observes and what conversion rewrites."""

    ops: list[QuantizedOp] = field(default_factory=list)
    observed: list[relax.Var] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def weighted(self) -> dict[relax.Var, QuantizedOp]:
        return {op.core: op for op in self.ops if op.weight_axis is not None}

    def subset(self, names: frozenset[str]) -> Annotation:
        """Only the ops named in `names`, observing just the tensors they need."""
        ops = [op for op in self.ops if op.name in names]
        needed = {var for op in ops for var in (*op.inputs, op.output)}
        return Annotation(ops, [var for var in self.observed if var in needed], self.skipped)

    def weighted_only(self) -> Annotation:
        """Only the ops with a weight, observing nothing (dynamic and weight-only modes)."""
        skipped = [s for s in self.skipped if s[1] in WEIGHTED_OPS.values()]
        return Annotation([op for op in self.ops if op.weight_axis is not None], [], skipped)

    def labels(self) -> dict[str, str]:
        """A readable layer name for each observed tensor: the op producing it as
        kind#index (conv2d#0, ...), else the tensor's own name (a model input)."""
        labels = {var.name: var.name for var in self.observed}
        labels.update({op.output.name: op.label for op in self.ops})
        return labels


def _op_name(expr) -> str | None:
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def main_bindings(mod: tvm.IRModule) -> list[relax.VarBinding]:
    return [b for block in mod["main"].body.blocks for b in block.bindings]


class MainGraph:
    """Producers and users of every variable of ``main``."""

    def __init__(self, mod: tvm.IRModule):
        self.bindings = main_bindings(mod)
        self.value = {b.var: b.value for b in self.bindings}
        self.users: dict[relax.Var, list[relax.Var]] = {}
        for binding in self.bindings:
            for var in relax.analysis.free_vars(binding.value):
                self.users.setdefault(var, []).append(binding.var)
        for var in relax.analysis.free_vars(mod["main"].body.body):
            self.users.setdefault(var, []).append(None)
        # Vars computed from constants alone, decided in binding order (a var's
        # arguments first): no recursion back through a deep graph.
        self._constants: set[relax.Var] = set()
        for binding in self.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and all(self.is_constant(a) for a in value.args):
                self._constants.add(binding.var)

    def only_user(self, var: relax.Var) -> relax.Var | None:
        users = self.users.get(var, [])
        return users[0] if len(users) == 1 else None

    def is_constant(self, expr) -> bool:
        """A constant, or a var computed from constants alone (a transposed weight)."""
        if isinstance(expr, tvm.ir.expr.Constant | relax.ShapeExpr | tvm.tirx.IntImm):
            return True
        if isinstance(expr, relax.Tuple):  # a slice's begin and end, say
            return all(self.is_constant(field) for field in expr.fields)
        return isinstance(expr, relax.Var) and expr in self._constants

    def source(self, var: relax.Var) -> relax.Var:
        """The tensor `var` is a pass-through view of (itself if none)."""
        while passes_through(self.value.get(var)):
            var = self.value[var].args[0]
        return var


def annotate(
    mod: tvm.IRModule,
    skip_ops: frozenset[str] = frozenset(),
    skip_names: frozenset[str] = frozenset(),
    symmetric: bool = False,
    int16_names: frozenset[str] | None = frozenset(),
) -> Annotation:
    """Choose the ops of ``main`` to quantize; `skip_*` keep ops float by kind or var
    name; `symmetric` (activations without zero point) keeps softmax float, and so
    do int16 activations (all when `int16_names` is None, else around those named)."""
    graph = MainGraph(mod)
    annotation = Annotation()
    observed: set[relax.Var] = set()

    def observe(var: relax.Var) -> None:
        if var not in observed:
            observed.add(var)
            annotation.observed.append(var)

    for binding in graph.bindings:
        var, call = binding.var, binding.value
        name = _op_name(call)
        kind = WEIGHTED_OPS.get(name) or POOLING_OPS.get(name)
        if name in ("relax.add", "relax.multiply") and not any(
            graph.is_constant(a) for a in call.args
        ):
            kind = "add" if name == "relax.add" else "mul"
        if name == "relax.concat" and isinstance(call.args[0], relax.Tuple):
            kind = "concat"
        if name == "relax.image.resize2d" and str(call.attrs.method) == "linear":
            kind = "resize"
        if name == "relax.nn.softmax" and _is_last_axis(call):
            kind = "softmax"
        if _constant_slope(graph, call):
            kind = "prelu"
        if kind is None:
            continue
        if kind in skip_ops or var.name in skip_names:
            annotation.skipped.append((var.name, kind, "skipped by request"))
            continue
        if kind == "softmax" and symmetric:
            reason = "symmetric activations, but TFLite's softmax output has zero point -128"
            annotation.skipped.append((var.name, kind, reason))
            continue
        if kind == "softmax" and (int16_names is None or var.name in int16_names):
            reason = "int16 activations: TFLite's int16 softmax (lookup tables) is not implemented"
            annotation.skipped.append((var.name, kind, reason))
            continue
        weight_axis = None
        activations = list(call.args[0].fields if kind == "concat" else call.args)
        if kind == "resize":
            activations = [call.args[0]]  # not its size
        if kind == "prelu":
            activations = [graph.value[call.args[0]].args[0]]  # maximum(x, 0)'s x
        if name in WEIGHTED_OPS:
            weight_axis = _weight_axis(call)
            if not graph.is_constant(call.args[1]) or weight_axis is None:
                annotation.skipped.append((var.name, kind, "weight is not a constant"))
                continue
            activations = [call.args[0]]
        if any(_dtype(a) != "float32" for a in activations):
            annotation.skipped.append((var.name, kind, "input is not float32"))
            continue
        inputs = tuple(graph.source(activation) for activation in activations)
        if any(not isinstance(a, relax.Var) or graph.is_constant(a) for a in inputs):
            # concat(x, a constant), or an embedding table reshaped: nothing to observe
            annotation.skipped.append((var.name, kind, "an input is a constant"))
            continue
        fuses = kind not in ("softmax", "concat", "resize", "prelu")
        output = _fused_output(graph, var, weight_axis is not None) if fuses else var
        # Order matters: conversion inserts quantize/dequantize in observation order.
        for source in inputs:
            observe(source)
        # Counting the skipped ops too keeps a layer's label whatever else is skipped.
        index = sum(op.kind == kind for op in annotation.ops)
        label = f"{kind}#{index + sum(skipped[1] == kind for skipped in annotation.skipped)}"
        annotation.ops.append(QuantizedOp(kind, var, output, inputs, weight_axis, label))
        observe(output)
    annotation.observed.sort(key=_order(mod, graph))
    return annotation


def _constant_slope(graph: MainGraph, call) -> bool:
    """A PReLU whose slope is a constant (PReLU with a computed slope stays float)."""
    slope = prelu_slope(call, graph.value.get)
    return slope is not None and constant_value(graph.value.get, slope) is not None


def _order(mod: tvm.IRModule, graph: MainGraph):
    position = {p: -1 for p in mod["main"].params}
    position.update({b.var: i for i, b in enumerate(graph.bindings)})
    return lambda var: position[var]


def _dtype(expr) -> str | None:
    dtype = getattr(expr.ty, "dtype", None)
    return None if dtype is None else str(dtype)


def _is_last_axis(call: relax.Call) -> bool:
    ndim = len(call.ty.shape)
    return int(call.attrs.axis) % ndim == ndim - 1


def _weight_axis(call: relax.Call) -> int | None:
    """Axis of the weight that indexes output channels."""
    if _op_name(call) == "relax.nn.conv2d":
        return str(call.attrs.kernel_layout).index("O")
    shape = call.args[1].ty.shape
    return 1 if shape is not None and len(shape) == 2 else None


def _fused_output(graph: MainGraph, var: relax.Var, with_bias: bool) -> relax.Var:
    """Follow a single-user chain through a constant bias add and one activation."""
    follower = graph.only_user(var)
    if with_bias and follower is not None:
        value = graph.value[follower]
        if _op_name(value) == "relax.add" and graph.is_constant(value.args[1]):
            var, follower = follower, graph.only_user(follower)
    if follower is not None and _op_name(graph.value[follower]) in ACTIVATION_OPS:
        var = follower
    return var
