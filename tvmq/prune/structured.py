"""Structured pruning: remove whole output channels and everything that reads them.

Channels are scored per layer (L1 or L2 norm of each filter, or the mean absolute
activation on calibration data), scores are summed over each group of channels
that must go together (:mod:`tvmq.prune.groups`), and the weakest groups are removed,
per layer (the same ratio everywhere) or globally (scores normalized by their
layer's mean, ranked across the model). The rewritten graph is physically smaller:
filters, biases and per-channel scales are sliced, the consumers' input channels
and depthwise filters too, so the build plans a smaller arena and fewer MACs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvmq.errors import TvmqError, first_line
from tvmq.model import Model
from tvmq.prune.compensation import lost_contribution, tap_coverage
from tvmq.prune.groups import ChannelGraph, Layer, analyse, is_weight, layer_macs
from tvmq.quantize.annotate import main_bindings
from tvmq.train.layers import constant_array
from tvmq.train.rewrite import op_name, rebuild_main

CRITERIA = ("l1", "l2", "activation")
ACTIVATION_SAMPLES = 64


@dataclass(frozen=True)
class LayerReport:
    name: str
    op: str
    channels: int
    kept: tuple[int, ...]  # indices of the output channels kept
    macs_before: int
    macs_after: int


@dataclass(frozen=True)
class PruneResult:
    model: Model
    layers: list[LayerReport]
    macs_before: int
    macs_after: int
    notes: list[str]


def model_macs(mod: tvm.IRModule) -> list[tuple[str, int]]:
    """Multiply-accumulates of every conv2d and matmul of main, in graph order."""
    macs = []
    for binding in main_bindings(mod):
        call = binding.value
        if op_name(call) in ("relax.nn.conv2d", "relax.matmul"):
            out = [int(d) for d in binding.var.ty.shape]
            weight = [int(d) for d in call.args[1].ty.shape]
            macs.append((binding.var.name, layer_macs(call, out, weight)))
    return macs


def check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise TvmqError(f"--structured {ratio}: the ratio of channels to remove must be in (0, 1)")


def prune(
    model: Model,
    ratio: float,
    criterion: str = "l1",
    scope: str = "layer",
    samples: list[np.ndarray] | None = None,
    keep: tuple[str, ...] = (),
    multiple: int = 4,
    compensate: bool = True,
) -> PruneResult:
    """`model` with `ratio` of the channels of each prunable layer (or of the whole
    model, `scope="global"`) removed by `criterion`; the layers named in `keep` are
    left whole; each layer keeps a multiple of `multiple` channels where it has one.
    `samples` (model inputs) feed the activation criterion and, with
    `compensate`, the bias compensation: each removed input channel's mean value times its
    weights is folded into the reading layer's bias, so that what is lost is the
    channel's variation, not its offset."""
    check_ratio(ratio)
    if criterion not in CRITERIA:
        raise TvmqError(f"unknown criterion '{criterion}': one of {', '.join(CRITERIA)}")
    if criterion == "activation" and not samples:
        raise TvmqError("the activation criterion needs calibration data (--data)")
    graph = analyse(model.mod)
    names = {layer.name for layer in graph.layers}
    for name in keep:
        if name not in names:
            raise TvmqError(
                f"{model.name}: no prunable layer '{name}' (layers: {', '.join(sorted(names))})"
            )
    notes = list(graph.notes)
    for layer in graph.layers:
        if layer.name in keep:
            graph.fixed.update(layer.atoms)
            notes.append(f"{layer.name}: kept whole, as asked")
    means = {}
    if samples:
        wanted = [layer.output for layer in graph.layers]
        wanted += [layer.data for layer in graph.layers if layer.data not in wanted]
        means = _channel_means(model, wanted, samples)
    if criterion == "activation":
        scores = {layer.name: means[layer.output][1] for layer in graph.layers}
    else:
        producers = {b.var: b.value for b in main_bindings(model.mod)}
        scores = {layer.name: _norm_scores(layer, criterion, producers) for layer in graph.layers}
    removed = _select(graph, scores, ratio, scope, multiple)
    for layer in graph.layers:
        if not any(graph.prunable(graph.find(a)) for a in layer.atoms):
            notes.append(f"{layer.name} ({layer.op}): its output channels cannot be pruned")
    inputs = {layer.name: means[layer.data][0] for layer in graph.layers if means and compensate}
    pruned = rewrite(model.mod, graph, removed, inputs)
    before, after = model_macs(model.mod), model_macs(pruned)
    # Rewriting keeps the order of the convolutions and matmuls, not their names.
    after_by_name = {name: macs for (name, _), (_, macs) in zip(before, after, strict=True)}
    reports = [
        LayerReport(
            layer.name,
            layer.op,
            layer.channels,
            tuple(i for i, a in enumerate(layer.atoms) if graph.find(a) not in removed),
            layer.macs,
            after_by_name[layer.name],
        )
        for layer in graph.layers
    ]
    return PruneResult(
        dataclasses.replace(model, mod=pruned),
        reports,
        sum(macs for _, macs in before),
        sum(macs for _, macs in after),
        notes,
    )


def _norm_scores(layer: Layer, criterion: str, producers: dict) -> np.ndarray:
    weight = _constant_value(layer.weight, producers).astype(np.float64)
    filters = np.moveaxis(weight, layer.out_axis, 0).reshape(layer.channels, -1)
    if criterion == "l1":
        return np.abs(filters).sum(axis=1)
    return np.sqrt((filters**2).sum(axis=1))


def _channel_means(
    model: Model, tensors: list[relax.Var], samples: list[np.ndarray]
) -> dict[relax.Var, tuple[np.ndarray, np.ndarray]]:
    """Mean and mean absolute value per channel (last axis) of the `tensors` of main
    over `samples`, by the float (or fake-quantized) graph."""
    main = model.mod["main"]
    env = {param: param for param in main.params}

    def outputs(builder: relax.BlockBuilder, env: dict) -> relax.Expr:
        return relax.Tuple([env[tensor] for tensor in tensors])

    probe = rebuild_main(model.mod, "main", list(main.params), env, lambda b, v: None, outputs)
    try:
        vm = relax.VirtualMachine(
            tvm.compile(probe, tvm.target.Target({"kind": "llvm", "opt-level": 0})), tvm.cpu()
        )
    except Exception as error:  # TVM raises many types: users get one line
        detail = first_line(error)
        raise TvmqError(f"{model.name}: cannot run it for activations: {detail}") from error
    sums = {tensor: [0.0, 0.0] for tensor in tensors}
    chosen = samples[:ACTIVATION_SAMPLES]
    for sample in chosen:
        values = vm["main"](tvm.runtime.tensor(sample))
        for index, tensor in enumerate(tensors):
            value = values[index].numpy().astype(np.float64)
            rows = value.reshape(-1, value.shape[-1])
            sums[tensor][0] = sums[tensor][0] + rows.mean(axis=0)
            sums[tensor][1] = sums[tensor][1] + np.abs(rows).mean(axis=0)
    count = len(chosen)
    return {tensor: (total[0] / count, total[1] / count) for tensor, total in sums.items()}


def _select(
    graph: ChannelGraph, scores: dict[str, np.ndarray], ratio: float, scope: str, multiple: int
) -> set[int]:
    """The roots of the groups to remove: the weakest `ratio` of each set of layers
    tied together (scope "layer") or of the whole model (scope "global"), each set
    keeping at least one channel, and a multiple of `multiple` where its size is one."""
    if scope not in ("layer", "global"):
        raise TvmqError(f"unknown scope '{scope}': layer or global")
    importance: dict[int, float] = {}
    owners: dict[int, set[str]] = {}
    for layer in graph.layers:
        normalized = scores[layer.name] / max(float(np.mean(scores[layer.name])), 1e-12)
        for atom, score in zip(layer.atoms, normalized, strict=True):
            root = graph.find(atom)
            importance[root] = importance.get(root, 0.0) + float(score)
            owners.setdefault(root, set()).add(layer.name)
    sets: dict[frozenset, list[int]] = {}
    for root, names in owners.items():
        sets.setdefault(frozenset(names), []).append(root)
    removed: set[int] = set()
    if scope == "layer":
        for roots in sets.values():
            candidates = sorted(
                (r for r in roots if graph.prunable(r)), key=lambda r: importance[r]
            )
            count = min(int(ratio * len(roots)), len(roots) - 1, len(candidates))
            removed.update(candidates[:count])
        return _aligned(graph, sets, importance, removed, multiple)
    ranked = sorted(
        (r for r in importance if graph.prunable(r)),
        key=lambda r: importance[r] / len(owners[r]),
    )
    left = {names: len(roots) for names, roots in sets.items()}
    budget = int(ratio * len(ranked))
    for root in ranked:
        if len(removed) >= budget:
            break
        names = frozenset(owners[root])
        if left[names] > 1:
            removed.add(root)
            left[names] -= 1
    return _aligned(graph, sets, importance, removed, multiple)


def _aligned(
    graph: ChannelGraph,
    sets: dict[frozenset, list[int]],
    importance: dict[int, float],
    removed: set[int],
    multiple: int,
) -> set[int]:
    """`removed` changed so that each set keeps a multiple of `multiple` channels (the
    int8 kernels compute four output channels per call: 47 channels run slower than 48),
    the nearest one, at least `multiple`; sets of other sizes are left as chosen."""
    removed = set(removed)
    for roots in sets.values():
        if multiple <= 1 or len(roots) % multiple:
            continue
        kept = len(roots) - len(removed.intersection(roots))
        target = max(multiple, int(kept / multiple + 0.5) * multiple)
        ranked = sorted(roots, key=lambda r: importance[r])
        more = [r for r in ranked if r not in removed and graph.prunable(r)]
        back = [r for r in reversed(ranked) if r in removed]
        removed.update(more[: max(kept - target, 0)])
        removed.difference_update(back[: max(target - kept, 0)])
    return removed


def _constant_value(expr, producers: dict) -> np.ndarray:
    """The value of a weight (constants through dequantize, reshape, permute_dims,
    astype), computed in numpy."""
    value = constant_array(expr)
    if value is not None:
        return value
    if isinstance(expr, relax.Var):
        return _constant_value(producers[expr], producers)
    name = op_name(expr)
    inner = _constant_value(expr.args[0], producers) if name else None
    if name == "relax.dequantize":
        scale = _constant_value(expr.args[1], producers).astype(np.float64)
        zero_point = _constant_value(expr.args[2], producers).astype(np.float64)
        if scale.size > 1 or zero_point.size > 1:
            shape = [1] * inner.ndim
            shape[int(expr.attrs.axis)] = -1
            scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
        return ((inner - zero_point) * scale).astype(np.float32)
    if name == "relax.reshape":
        return inner.reshape([int(d) for d in expr.ty.shape])
    if name == "relax.permute_dims":
        return np.transpose(inner, [int(a) for a in expr.attrs.axes])
    if name == "relax.astype":
        return inner.astype(str(expr.attrs.dtype))
    raise TvmqError(f"cannot read a weight computed by {name}")


def rewrite(
    mod: tvm.IRModule,
    graph: ChannelGraph,
    removed: set[int],
    input_means: dict[str, np.ndarray] | None = None,
) -> tvm.IRModule:
    """`mod` with the channels of the `removed` groups sliced out everywhere; with
    `input_means` (per layer, the mean of each channel it reads) the removed input
    channels' mean contribution is added to each layer's bias."""
    producers = {b.var: b.value for b in main_bindings(mod)}
    layers = {layer.name: layer for layer in graph.layers}
    compensation: dict[relax.Var, np.ndarray] = {}  # layer var -> bias change, kept channels

    def kept(var) -> list[int] | None:
        entry = graph.channels.get(var) if isinstance(var, relax.Var) else None
        if entry is None:
            return None
        positions = [i for i, a in enumerate(entry[1]) if graph.find(a) not in removed]
        return None if len(positions) == len(entry[1]) else positions

    def sliced(expr, axis: int, positions: list[int] | None) -> relax.Expr:
        return expr if positions is None else _slice(expr, axis, positions, producers)

    def rewrite_binding(binding: relax.VarBinding, value: relax.Expr) -> relax.Expr | None:
        var, original = binding.var, binding.value
        name = op_name(original)
        if var in graph.constants:
            return None
        if name in ("relax.nn.conv2d", "relax.matmul") and var in graph.channels:
            data = original.args[0]
            weight = original.args[1]
            layer = layers.get(var.name)
            if kept(var) is None and kept(data) is None:
                return None  # nothing it reads or writes is removed
            if layer is None:  # depthwise: its filters follow its input's channels
                positions = kept(data)
                axis = str(original.attrs.kernel_layout).index("O")
                attrs = original.attrs
                groups = len(positions) if positions is not None else int(attrs.groups)
                return relax.op.nn.conv2d(
                    value.args[0],
                    sliced(weight, axis, positions),
                    attrs.strides,
                    attrs.padding,
                    attrs.dilation,
                    groups,
                    attrs.data_layout,
                    attrs.kernel_layout,
                    attrs.out_layout,
                    attrs.out_dtype or None,
                )
            positions = kept(data)
            if positions is not None and input_means and layer.name in input_means:
                weight_value = _constant_value(weight, producers)
                coverage = tap_coverage(original) if name == "relax.nn.conv2d" else None
                gone = np.setdiff1d(np.arange(weight_value.shape[layer.in_axis]), positions)
                delta = lost_contribution(
                    np.take(weight_value, gone, axis=layer.in_axis),
                    layer.out_axis,
                    layer.in_axis,
                    input_means[layer.name][gone],
                    coverage,
                )
                out_positions = kept(var)
                compensation[var] = delta if out_positions is None else delta[out_positions]
            weight = sliced(weight, layer.out_axis, kept(var))
            weight = sliced(weight, layer.in_axis, positions)
            return relax.Call(value.op, [value.args[0], weight], value.attrs)
        compensated = name == "relax.add" and original.args[0] in compensation
        if compensated and is_weight(bias := original.args[1], graph.constants):
            delta = compensation.pop(original.args[0])
            if kept(var) is not None:
                bias = _slice(bias, len(bias.ty.shape) - 1, kept(var), producers)
            return relax.op.add(value.args[0], _add_to_bias(bias, delta, producers))
        positions = kept(var)
        if positions is None:
            return None
        axis, atoms = graph.channels[var]
        if name == "relax.reshape":
            shape = [int(d) for d in var.ty.shape]
            shape[axis] = len(positions)
            return relax.op.reshape(value.args[0], shape)
        if name in ("relax.quantize", "relax.dequantize", "relax.concat"):
            return None
        args = list(value.args)
        rank = len(var.ty.shape)
        for index, arg in enumerate(original.args):
            if isinstance(arg, relax.Var) and arg not in graph.constants:
                continue
            shape = getattr(arg.ty, "shape", None)
            if shape is None:
                continue
            aligned = len(shape) - (rank - axis)
            if aligned >= 0 and int(shape[aligned]) == len(atoms):
                args[index] = _slice(arg, aligned, positions, producers)
        return relax.Call(value.op, args, value.attrs)

    main = mod["main"]
    env = {param: param for param in main.params}
    try:
        pruned = rebuild_main(
            mod, "main", list(main.params), env, rewrite_binding, lambda _, e: e[main.body.body]
        )
    except TvmqError as error:
        raise TvmqError(f"cannot prune: {error}") from error
    function = relax.analysis.remove_all_unused(pruned["main"])
    if main.attrs is not None:
        for key, attr in main.attrs.items():
            if key != "params":
                function = function.with_attr(key, attr)
    functions = dict(mod.functions_items())
    functions[mod.get_global_var("main")] = function
    return relax.transform.Normalize()(tvm.IRModule(functions, attrs=mod.attrs))


def _add_to_bias(expr, delta: np.ndarray, producers: dict) -> relax.Expr:
    """A bias (a float constant, or dequantize of an int32 constant) plus `delta`."""
    if isinstance(expr, relax.Var) and expr in producers:
        expr = producers[expr]
    value = constant_array(expr)
    if value is not None and value.dtype == np.float32 and value.size == delta.size:
        return relax.const((value + delta.reshape(value.shape)).astype(np.float32))
    if op_name(expr) == "relax.dequantize":
        integers = constant_array(expr.args[0])
        scale = constant_array(expr.args[1])
        if integers is not None and integers.dtype == np.int32 and integers.size == delta.size:
            steps = np.round(delta / np.broadcast_to(scale, delta.shape).astype(np.float64))
            total = np.clip(
                integers.astype(np.int64) + steps.reshape(integers.shape), -(2**31), 2**31 - 1
            )
            return relax.op.dequantize(
                relax.const(total.astype(np.int32)),
                expr.args[1],
                expr.args[2],
                int(expr.attrs.axis),
                str(expr.attrs.out_dtype),
            )
    return expr  # a bias of another form: left as it is


def _slice(expr, axis: int, positions: list[int], producers: dict) -> relax.Expr:
    """A constant chain (constants through dequantize, reshape, permute_dims, astype)
    keeping only `positions` along `axis` of its value."""
    value = constant_array(expr)
    if value is not None:
        if value.ndim == 0 or value.shape[axis] == 1:
            return expr
        return relax.const(np.take(value, positions, axis=axis), str(value.dtype))
    if isinstance(expr, relax.Var):
        return _slice(producers[expr], axis, positions, producers)
    name = op_name(expr)
    if name in ("relax.quantize", "relax.dequantize"):
        data, scale, zero_point = expr.args
        quant_axis = int(expr.attrs.axis) % len(data.ty.shape)
        if quant_axis == axis:
            scale = _slice(scale, 0, positions, producers)
            zero_point = _slice(zero_point, 0, positions, producers)
        make = relax.op.quantize if name == "relax.quantize" else relax.op.dequantize
        return make(
            _slice(data, axis, positions, producers),
            scale,
            zero_point,
            quant_axis,
            str(expr.attrs.out_dtype),
        )
    if name == "relax.permute_dims":
        axes = [int(a) for a in expr.attrs.axes]
        return relax.op.permute_dims(_slice(expr.args[0], axes[axis], positions, producers), axes)
    if name == "relax.astype":
        return relax.op.astype(_slice(expr.args[0], axis, positions, producers), expr.attrs.dtype)
    if name == "relax.reshape":
        source = [int(d) for d in expr.args[0].ty.shape]
        target = [int(d) for d in expr.ty.shape]
        big_source = [i for i, d in enumerate(source) if d != 1]
        big_target = [i for i, d in enumerate(target) if d != 1]
        if [source[i] for i in big_source] == [target[i] for i in big_target]:
            inner = big_source[big_target.index(axis)]
            target[axis] = len(positions)
            return relax.op.reshape(_slice(expr.args[0], inner, positions, producers), target)
    raise TvmqError(f"cannot slice the channels of a weight computed by {name}")
