"""The channel groups of a Relax graph that must be pruned together.

Every tensor's channel axis is a list of *atoms*: output channels of the layers
(conv2d, matmul) that produced them. Ops that keep channels in place (bias adds,
activations, quantize/dequantize per tensor, pools, pads, depthwise convolutions)
pass the list on; a concat along channels joins lists; an add or multiply of two
activations (a residual) ties their atoms position by position (union-find); a
flatten repeats the list once per pixel. Atoms tied together form a *group*: one
channel that is removed everywhere at once. Atoms reaching an op this analysis
does not know (or the model's output) are fixed: their groups are never pruned.

The analysis runs on the imported Relax graph, float or QDQ alike, so one pass
serves ONNX and TFLite files and int8 models whose float original is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from tvmq.quantize.annotate import main_bindings
from tvmq.train.rewrite import op_name

# Ops that map each channel onto itself (their other operands are per-tensor or
# per-channel constants, sliced with the channels).
CHANNELWISE_OPS = {
    "relax.add",
    "relax.subtract",
    "relax.multiply",
    "relax.divide",
    "relax.maximum",
    "relax.minimum",
    "relax.nn.relu",
    "relax.nn.gelu",
    "relax.nn.silu",
    "relax.sigmoid",
    "relax.tanh",
    "relax.clip",
    "relax.astype",
    "relax.quantize",
    "relax.dequantize",
    "relax.nn.max_pool2d",
    "relax.nn.avg_pool2d",
    "relax.nn.adaptive_avg_pool2d",
    "relax.nn.pad",
    "relax.image.resize2d",
}
LAYER_OPS = ("relax.nn.conv2d", "relax.matmul")


@dataclass
class Layer:
    """A conv2d or matmul whose output channels may be pruned."""

    name: str  # its variable in main
    op: str
    channels: int
    atoms: list[int]  # atom ids of its output channels, in order
    weight: relax.Expr  # the weight argument (a constant chain)
    out_axis: int  # the weight's output-channel axis
    in_axis: int  # the weight's input-channel axis
    macs: int
    data: relax.Expr  # the activation it reads
    output: relax.Var


@dataclass
class ChannelGraph:
    """The result of :func:`analyse`: layers, channel lists and groups."""

    layers: list[Layer]
    channels: dict[relax.Var, tuple[int, list[int]]]  # var -> (axis, atoms)
    constants: set[relax.Var]  # vars computed from constants only (weights)
    fixed: set[int]  # atom ids that cannot be removed
    notes: list[str]
    parent: list[int] = field(default_factory=list)  # union-find over atoms

    def find(self, atom: int) -> int:
        while self.parent[atom] != atom:
            self.parent[atom] = self.parent[self.parent[atom]]
            atom = self.parent[atom]
        return atom

    def groups(self) -> dict[int, list[int]]:
        """Group root -> its atoms."""
        found: dict[int, list[int]] = {}
        for atom in range(len(self.parent)):
            found.setdefault(self.find(atom), []).append(atom)
        return found

    def prunable(self, root: int) -> bool:
        return not any(self.find(atom) == root for atom in self.fixed)


def _shape(expr) -> list[int] | None:
    shape = getattr(expr.ty, "shape", None)
    if shape is None:
        return None
    try:
        return [int(d) for d in shape]
    except (TypeError, ValueError):
        return None


def _is_per_tensor(expr) -> bool:
    shape = _shape(expr)
    return shape is not None and int(np.prod(shape)) == 1


def layer_macs(call: relax.Call, out_shape: list[int], weight_shape: list[int]) -> int:
    """Multiply-accumulates of one conv2d (the weight's size per output pixel) or matmul."""
    if op_name(call) == "relax.nn.conv2d":
        layout = str(call.attrs.kernel_layout)
        per_output = int(np.prod(weight_shape)) // weight_shape[layout.index("O")]
        return int(np.prod(out_shape)) * per_output
    return int(np.prod(out_shape)) * weight_shape[-2]


def analyse(mod: tvm.IRModule) -> ChannelGraph:
    """The layers and channel groups of `mod`'s main."""
    bindings = main_bindings(mod)
    graph = ChannelGraph([], {}, set(), set(), [], [])
    constants = graph.constants

    def new_atoms(count: int) -> list[int]:
        start = len(graph.parent)
        graph.parent.extend(range(start, start + count))
        return list(range(start, start + count))

    def fix(expr, reason: str | None = None) -> None:
        entry = graph.channels.get(expr) if isinstance(expr, relax.Var) else None
        if entry is not None:
            graph.fixed.update(entry[1])
            if reason and reason not in graph.notes:
                graph.notes.append(reason)

    for binding in bindings:
        var, call = binding.var, binding.value
        free = relax.analysis.free_vars(call)
        if all(v in constants for v in free):
            constants.add(var)
            continue
        name = op_name(call)
        args = list(call.args) if isinstance(call, relax.Call) else []
        activations = [a for a in args if isinstance(a, relax.Var) and a in graph.channels]
        out_shape = _shape(var)
        handled = False
        if name in LAYER_OPS and len(args) >= 2 and is_weight(args[1], constants):
            handled = _layer(graph, var, call, out_shape, new_atoms, fix)
        elif name in CHANNELWISE_OPS and out_shape and activations:
            handled = _channelwise(graph, var, call, out_shape, activations)
        elif name == "relax.concat" and out_shape:
            handled = _concat(graph, var, call, out_shape)
        elif name == "relax.reshape" and activations:
            handled = _reshape(graph, var, args[0], out_shape)
        elif name == "relax.permute_dims" and activations:
            axis, atoms = graph.channels[args[0]]
            axes = [int(a) for a in call.attrs.axes]
            graph.channels[var] = (axes.index(axis), atoms)
            handled = True
        elif name == "relax.mean" and activations:
            axis, atoms = graph.channels[args[0]]
            reduced = [int(a) % len(_shape(args[0])) for a in call.attrs.axis]
            if axis not in reduced:
                kept = axis if call.attrs.keepdims else axis - sum(a < axis for a in reduced)
                graph.channels[var] = (kept, atoms)
                handled = True
        if not handled:
            for arg in _tensor_args(call):
                fix(arg, f"{var.name} ({name}): channels it reads are kept")
    body = mod["main"].body.body
    for output in body.fields if isinstance(body, relax.Tuple) else [body]:
        fix(output)
    return graph


def is_weight(expr, constants: set) -> bool:
    """A constant, or computed from constants only (dequantize, reshape, ...)."""
    return isinstance(expr, tvm.ir.expr.Constant) or expr in constants


def _tensor_args(call) -> list:
    if isinstance(call, relax.Tuple):
        return list(call.fields)
    if not isinstance(call, relax.Call):
        return [call]
    found = []
    for arg in call.args:
        found.extend(arg.fields if isinstance(arg, relax.Tuple) else [arg])
    return found


def _layer(graph: ChannelGraph, var, call, out_shape, new_atoms, fix) -> bool:
    data, weight = call.args[0], call.args[1]
    weight_shape, in_shape = _shape(weight), _shape(data)
    if out_shape is None or weight_shape is None or in_shape is None:
        return False
    if op_name(call) == "relax.matmul":
        if len(weight_shape) != 2 or len(out_shape) != 2:
            return False
        entry = graph.channels.get(data)
        if entry is not None and entry[0] != len(in_shape) - 1:
            return False
        channels, out_axis, in_axis, out_channel_axis = weight_shape[1], 1, 0, 1
    else:
        if str(call.attrs.data_layout) != "NHWC" or str(call.attrs.out_layout) != "NHWC":
            return False
        layout = str(call.attrs.kernel_layout)
        out_axis, in_axis = layout.index("O"), layout.index("I")
        channels, out_channel_axis = weight_shape[out_axis], 3
        groups = int(call.attrs.groups)
        if groups > 1:
            depthwise = groups == in_shape[3] == channels and weight_shape[in_axis] == 1
            if not depthwise or data not in graph.channels:
                return False
            graph.channels[var] = (3, graph.channels[data][1])
            return True
    atoms = new_atoms(channels)
    graph.channels[var] = (out_channel_axis, atoms)
    graph.layers.append(
        Layer(
            var.name,
            op_name(call),
            channels,
            atoms,
            weight,
            out_axis,
            in_axis,
            layer_macs(call, out_shape, weight_shape),
            data,
            var,
        )
    )
    if data not in graph.channels:
        fix(data)
    return True


def _channelwise(graph: ChannelGraph, var, call, out_shape, activations) -> bool:
    axis, atoms = graph.channels[activations[0]]
    if len(_shape(activations[0])) != len(out_shape) or out_shape[axis] != len(atoms):
        return False
    quantizes = op_name(call) in ("relax.quantize", "relax.dequantize")
    if quantizes and not (_is_per_tensor(call.args[1]) and _is_per_tensor(call.args[2])):
        return False
    for other in activations[1:]:
        other_axis, other_atoms = graph.channels[other]
        if other_axis != axis or len(other_atoms) != len(atoms):
            return False
        for a, b in zip(atoms, other_atoms, strict=True):
            graph.parent[graph.find(a)] = graph.find(b)
    for arg in call.args[1:]:
        shape = _shape(arg) if isinstance(arg.ty, relax.TensorType) else None
        if arg in activations or shape is None:
            continue
        aligned = len(shape) - (len(out_shape) - axis)
        if arg not in graph.constants and not isinstance(arg, tvm.ir.expr.Constant):
            return False
        if any(d != 1 for i, d in enumerate(shape) if i != aligned):
            return False
    graph.channels[var] = (axis, atoms)
    return True


def _concat(graph: ChannelGraph, var, call, out_shape) -> bool:
    fields = call.args[0].fields
    axis = int(call.attrs.axis) % len(out_shape)
    if not all(f in graph.channels and graph.channels[f][0] == axis for f in fields):
        return False
    graph.channels[var] = (axis, [a for f in fields for a in graph.channels[f][1]])
    return True


def _reshape(graph: ChannelGraph, var, data, out_shape) -> bool:
    """Reshapes that only add or drop unit dims, or flatten the channels last."""
    in_shape = _shape(data)
    axis, atoms = graph.channels[data]
    if in_shape is None or out_shape is None:
        return False
    big_in = [i for i, d in enumerate(in_shape) if d != 1]
    big_out = [i for i, d in enumerate(out_shape) if d != 1]
    if big_in == [axis] and len(big_out) == 1 and out_shape[big_out[0]] == len(atoms):
        graph.channels[var] = (big_out[0], atoms)
        return True
    tail = int(np.prod(in_shape[1:]))
    if axis == len(in_shape) - 1 and len(out_shape) == 2 and out_shape[1] == tail:
        graph.channels[var] = (1, atoms * (tail // len(atoms)))
        return True
    return False
