"""Learned rounding (AdaRound, Nagel et al. 2020), layer by layer, for 8 and 4 bits.

Nearest rounding minimises each weight's own error, not the layer's output error.
AdaRound learns, per weight, whether to round down or up: the weight is
``scale * (floor(w / scale) + h(V))`` with ``h`` a rectified sigmoid of a free
variable ``V``, optimised to reconstruct the layer's float output on calibration
data, with a regulariser whose exponent anneals from 20 to 2 and pushes every
``h`` to 0 or 1; the rounding is then hard (``V >= 0``: up).

Layers are done in graph order; each one's inputs come from the quantized model
with the layers before it already rounded (so later layers correct for earlier
ones). The output a layer must reconstruct is its accumulator, float weights times
the quantized inputs it receives: for a convolution or a matmul that error is
``d^T G d`` per output channel, ``d`` the channel's weight error and ``G`` the Gram
matrix of the input patches, so the inputs are read once and each step is small
numpy algebra. Inputs are read through the fake-quantized (float) simulation of
the graph, which may differ from the integer model by one step here and there:
good enough to reconstruct from, while the result is exported and checked on the
integer model as always.

`--weight-bits 4` first moves every trained layer but the first and the last (kept
int8, as `tvmq quantize --weight-bits 4` keeps them) to the symmetric per-channel
4-bit grid of `tvmq quantize` (values -7..7, the clipping scale of least squared
error) stored in the model's int8 tensors, with an imported int32 bias re-expressed
at the new scale, so every target runs it on its int8 kernels bit for bit;
activations stay int8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tvm
from tqdm import tqdm
from tvm import relax

from tvmq.constants import constant_array
from tvmq.data import LabelledData
from tvmq.errors import TvmqError, first_line
from tvmq.model import Model
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.low_bit import end_layers
from tvmq.quantize.scheme import QuantConfig, quantize_weight
from tvmq.train.engine import TARGET, Engine, replace_constants
from tvmq.train.layers import (
    Layer,
    find_layers,
    plain_weights,
    start_from_float,
)
from tvmq.train.rewrite import op_name, rebuild_main

WEIGHT_BITS = (4, 8)
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)
# Weight of the mean rounding regulariser, the reconstruction error being 1 at nearest
# rounding: on the digits CNN's 4-bit layers, 0.01 left h fractional (hard rounding
# then lost what was learned), 1 to 10 cut the error 2 to 10 times.
REGULARISATION = 3.0
WARMUP = 0.2  # fraction of iterations without the regulariser
BETA = (20.0, 2.0)  # the regulariser's exponent, annealed
CHUNK = 16  # samples per Gram-matrix update: bounds the patch matrix's memory


@dataclass(frozen=True)
class AdaroundOptions:
    weight_bits: int = 8
    samples: int = 256  # calibration samples (even-indexed) that reconstruct
    iterations: int = 1000  # per layer
    lr: float = 1e-2
    batch: int = 32

    def check(self) -> None:
        if self.weight_bits not in WEIGHT_BITS:
            raise TvmqError(
                f"--weight-bits {self.weight_bits} is not supported "
                f"(supported: {', '.join(map(str, WEIGHT_BITS))})"
            )
        if self.samples < 1 or self.iterations < 1 or self.batch < 1:
            raise TvmqError("--adaround-samples, --adaround-iterations must be at least 1")


@dataclass(frozen=True)
class LayerRounding:
    """One layer's reconstruction error (mean squared accumulator error per position,
    summed over channels) with nearest and with learned rounding."""

    name: str
    nearest: float
    learned: float
    flipped: int  # weights rounded the other way than nearest
    weights: int


def qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def with_weight_bits(model: Model, float_model: Model | None, bits: int) -> Model:
    """`model` with every trainable layer but the first and last nearest-rounded onto
    `tvmq quantize`'s symmetric `bits` grid (per channel where the model is, else per
    tensor) from the float weights (`float_model`'s where it matches, else the
    dequantized integers); the bits per layer go into the model's quantization report."""
    if bits == 8:
        return model
    model = dataclasses.replace(model, mod=plain_weights(model.mod))
    layers = find_layers(model.mod)
    if float_model is not None:
        start_from_float(layers, float_model.mod)
    ends = end_layers([layer.name for layer in layers])
    value = {b.var: b.value for b in main_bindings(model.mod)}
    replacements: dict = {}
    for layer in layers:
        if layer.name in ends:
            continue
        dequantize = value[layer.weight_var]
        old_scale = constant_array(dequantize.args[1])
        config = QuantConfig(per_channel=old_scale.size != 1)
        quantized = quantize_weight(layer.weight, layer.axis, config, bits)
        replacements[dequantize.args[0]] = relax.const(quantized.values)
        replacements[dequantize.args[1]] = relax.const(quantized.scale.reshape(old_scale.shape))
        if layer.bias_var is not None:
            scale = np.broadcast_to(quantized.scale, layer.weight.shape[layer.axis])
            _rescale_bias(value, layer, np.broadcast_to(scale, layer.bias.shape), replacements)
    rewritten = replace_constants(model.mod, replacements)
    chosen = {layer.name: 8 if layer.name in ends else bits for layer in layers}
    quantization = {**(model.quantization or {}), "weight_bits": chosen}
    return dataclasses.replace(model, mod=rewritten, quantization=quantization)


def _rescale_bias(value: dict, layer: Layer, scale: np.ndarray, replacements: dict) -> None:
    """An imported int32 bias (dequantize of a constant at input x weight scale) moved
    to the new weight scale; a float bias needs nothing (realize rounds it)."""
    bias = value[layer.bias_var].args[1]
    dequantize = value.get(bias) if isinstance(bias, relax.Var) else None
    if op_name(dequantize) != "relax.dequantize":
        return
    bias_scale = np.float64(layer.input_scale) * scale.astype(np.float64)
    old = constant_array(dequantize.args[1])
    integers = np.round(layer.bias.astype(np.float64) / bias_scale)
    old_values = constant_array(dequantize.args[0])
    replacements[dequantize.args[0]] = relax.const(
        integers.reshape(old_values.shape).astype(np.int32)
    )
    replacements[dequantize.args[1]] = relax.const(
        bias_scale.astype(np.float32).reshape(old.shape)
        if old.size > 1
        else np.float32(bias_scale[0])
    )


class _Probe:
    """The batched QDQ graph (float simulation) with the layers' weights as inputs,
    returning every layer's input tensor."""

    def __init__(self, engine: Engine):
        self.engine = engine
        mod = engine.batched
        main = mod["main"]
        by_name = {b.var.name: b for b in main_bindings(mod)}
        self.calls = [by_name[layer.name].value for layer in engine.layers]
        inputs = [relax.Var(p.name, p.ty) for p in main.params]
        weights = {
            layer.weight_var: relax.Var(f"{layer.name}.w", layer.weight_var.ty)
            for layer in engine.layers
        }
        env = dict(zip(main.params, inputs, strict=True))

        def output(_, env):
            return relax.Tuple([env[call.args[0]] for call in self.calls])

        probe = rebuild_main(
            mod,
            "probe",
            [*inputs, *weights.values()],
            env,
            lambda binding, _: weights.get(binding.var),
            output,
        )
        try:
            self._vm = relax.VirtualMachine(
                tvm.compile(probe, tvm.target.Target(TARGET)), tvm.cpu()
            )
        except Exception as error:  # TVM raises many types: users get one line
            raise TvmqError(f"cannot compile the rounding probe: {first_line(error)}") from error

    def inputs(self, x: np.ndarray, index: int) -> np.ndarray:
        """Layer `index`'s input for every sample of `x`, with the current weights."""
        batch = self.engine.batch
        weights = [
            tvm.runtime.tensor(
                (layer.integer_weight() * layer.weight_scale.reshape(layer.channel_shape())).astype(
                    np.float32
                )
            )
            for layer in self.engine.layers
        ]
        parts = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            count = len(chunk)
            if count < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - count, axis=0)])
            result = self._vm["probe"](tvm.runtime.tensor(chunk), *weights)
            parts.append(result[index].numpy()[:count])
        return np.concatenate(parts)


def canonical(layer: Layer, call: relax.Call) -> tuple[np.ndarray, int]:
    """The layer's weight as (out channels, inputs per output) in the order of the
    patches :func:`gram` builds, and the number of groups."""
    if op_name(call) == "relax.matmul":
        return np.moveaxis(layer.weight, layer.axis, 0).reshape(
            layer.weight.shape[layer.axis], -1
        ), 1
    layout = str(call.attrs.kernel_layout)
    ohwi = np.transpose(layer.weight, [layout.index(c) for c in "OHWI"])
    return ohwi.reshape(ohwi.shape[0], -1), int(call.attrs.groups)


def from_canonical(layer: Layer, call: relax.Call, values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`canonical`."""
    if op_name(call) == "relax.matmul":
        moved = np.moveaxis(layer.weight, layer.axis, 0)
        return np.moveaxis(values.reshape(moved.shape), 0, layer.axis)
    layout = str(call.attrs.kernel_layout)
    order = [layout.index(c) for c in "OHWI"]
    ohwi = values.reshape([layer.weight.shape[a] for a in order])
    return np.transpose(ohwi, np.argsort(order))


def gram(call: relax.Call, x: np.ndarray, groups: int) -> tuple[np.ndarray, int]:
    """Per group, the Gram matrix of the op's input patches (G, K, K) and the number
    of output positions they came from."""
    if op_name(call) == "relax.matmul":
        rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
        return (rows.T @ rows)[None], len(rows)
    if str(call.attrs.data_layout) != "NHWC":
        raise TvmqError(f"layer '{call}': learned rounding needs NHWC convolutions")
    kernel = [int(d) for d in call.args[1].ty.shape]
    layout = str(call.attrs.kernel_layout)
    kh, kw = kernel[layout.index("H")], kernel[layout.index("W")]
    sh, sw = (int(s) for s in call.attrs.strides)
    dh, dw = (int(d) for d in call.attrs.dilation)
    top, left, bottom, right = (int(p) for p in call.attrs.padding)
    total, positions = None, 0
    for start in range(0, len(x), CHUNK):
        chunk = np.pad(x[start : start + CHUNK], [(0, 0), (top, bottom), (left, right), (0, 0)])
        windows = np.lib.stride_tricks.sliding_window_view(
            chunk, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2)
        )[:, ::sh, ::sw, :, ::dh, ::dw]  # (N, Ho, Wo, C, kh, kw)
        n, ho, wo, channels = windows.shape[:4]
        per_group = channels // groups
        patches = windows.reshape(n * ho * wo, groups, per_group, kh, kw)
        patches = patches.transpose(1, 0, 3, 4, 2).reshape(groups, n * ho * wo, -1)
        patches = patches.astype(np.float64)
        update = np.matmul(patches.transpose(0, 2, 1), patches)
        total = update if total is None else total + update
        positions += n * ho * wo
    return total, positions


def reconstruction_error(
    integers: np.ndarray, scale: np.ndarray, weight: np.ndarray, grams: np.ndarray, positions: int
) -> float:
    """Mean over output positions of the summed squared accumulator error."""
    difference = scale[:, None] * integers - weight
    return float((difference * _apply(grams, difference)).sum() / positions)


def _apply(grams: np.ndarray, difference: np.ndarray) -> np.ndarray:
    """Each channel's row times its group's Gram matrix."""
    groups, channels = len(grams), len(difference)
    if groups == 1:
        return difference @ grams[0]
    per_group = channels // groups
    rows = difference.reshape(groups, per_group, -1)
    return np.matmul(rows, grams).reshape(channels, -1)


def learn_rounding(
    weight: np.ndarray,
    scale: np.ndarray,
    grams: np.ndarray,
    positions: int,
    bits: int,
    options: AdaroundOptions,
) -> np.ndarray:
    """The integers (out channels, K) of learned rounding of `weight` on grid `scale`."""
    limit = qmax(bits)
    steps = weight / scale[:, None]
    floor = np.floor(steps)
    rest = np.clip(steps - floor, 1e-3, 1 - 1e-3)
    v = -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1)  # h(v) = rest: start at the float weight
    nearest = np.clip(np.round(steps), -limit, limit)
    norm = max(reconstruction_error(nearest, scale, weight, grams, positions), 1e-12)
    mean, square = np.zeros_like(v), np.zeros_like(v)
    warmup = int(WARMUP * options.iterations)
    for iteration in range(options.iterations):
        sigmoid = 1 / (1 + np.exp(-v))
        stretched = sigmoid * (ZETA - GAMMA) + GAMMA
        h = np.clip(stretched, 0, 1)
        difference = scale[:, None] * (floor + h) - weight
        grad_h = 2 * scale[:, None] * _apply(grams, difference) / positions / norm
        if iteration >= warmup:
            progress = (iteration - warmup) / max(options.iterations - warmup, 1)
            beta = BETA[0] + (BETA[1] - BETA[0]) * progress
            centred = 2 * h - 1
            magnitude = np.abs(centred)
            grad_reg = -beta * np.power(magnitude, beta - 1) * np.sign(centred) * 2
            grad_h = grad_h + REGULARISATION * grad_reg / h.size
        inside = (stretched > 0) & (stretched < 1)
        grad = grad_h * sigmoid * (1 - sigmoid) * (ZETA - GAMMA) * inside
        mean = 0.9 * mean + 0.1 * grad
        square = 0.999 * square + 0.001 * grad * grad
        t = iteration + 1
        v -= options.lr * (mean / (1 - 0.9**t)) / (np.sqrt(square / (1 - 0.999**t)) + 1e-8)
    return np.clip(floor + (v >= 0), -limit, limit)


def adaround(
    engine: Engine, x: np.ndarray, options: AdaroundOptions, layer_bits: dict[str, int]
) -> list[LayerRounding]:
    """Learn every layer's rounding on samples `x` (N, *input without batch), in graph
    order, at its bits (`layer_bits`, else `options.weight_bits`), setting each
    layer's weight to its learned integers."""
    probe = _Probe(engine)
    report = []
    for index, (layer, call) in enumerate(
        tqdm(list(zip(engine.layers, probe.calls, strict=True)), desc="adaround", unit="layer")
    ):
        weight, groups = canonical(layer, call)
        grams, positions = gram(call, probe.inputs(x, index), groups)
        scale = layer.weight_scale.astype(np.float64)
        bits = layer_bits.get(layer.name, options.weight_bits)
        nearest = np.clip(np.round(weight / scale[:, None]), -qmax(bits), qmax(bits))
        learned = learn_rounding(weight.astype(np.float64), scale, grams, positions, bits, options)
        before = reconstruction_error(nearest, scale, weight, grams, positions)
        after = reconstruction_error(learned, scale, weight, grams, positions)
        if after > before:  # the paper's objective is a surrogate: never make a layer worse
            learned, after = nearest, before
        integers = from_canonical(layer, call, learned)
        layer.weight = (integers * layer.weight_scale.reshape(layer.channel_shape())).astype(
            np.float32
        )
        if not np.array_equal(layer.integer_weight(), integers.astype(np.int8)):
            raise TvmqError(f"layer '{layer.name}': learned integers do not survive the grid")
        report.append(
            LayerRounding(layer.name, before, after, int((learned != nearest).sum()), learned.size)
        )
    return report


def learned_rounding(
    model: Model, data: LabelledData, teacher: Model | None, options: AdaroundOptions
) -> tuple[Model, list[LayerRounding], tuple[float, float] | None]:
    """`model` (float: calibrated first) with learned rounding at `options.weight_bits`
    on the first `options.samples` even-indexed samples of `data`; the float weights
    are the float model's (`teacher` for a quantized `model`), else the dequantized
    integers. Also the integer model's accuracy on the odd half before and after,
    when `data` has labels."""
    from tvmq.train.distill import distillation_split, unlabelled_arrays
    from tvmq.train.finetune import batched_samples, calibrated

    options.check()
    split = distillation_split(data)
    x = unlabelled_arrays(model, data, split.calibration)
    float_model, quantized = calibrated(model, x, data.source)  # as finetune calibrates
    x = x[: options.samples]
    reference = float_model or teacher
    if reference is not None and reference.is_quantized:
        raise TvmqError(f"{reference.source}: the float model must not be quantized")
    start = with_weight_bits(quantized, reference, options.weight_bits)
    engine = Engine(start, options.batch, reference)
    scored = None
    if data.labels is not None and len(split.evaluation):
        x_val = batched_samples(unlabelled_arrays(model, data, split.evaluation))
        labels = np.asarray([data.labels[i] for i in split.evaluation])
        before = _accuracy(engine, x_val, labels)
    layer_bits = (start.quantization or {}).get("weight_bits", {})
    report = adaround(engine, batched_samples(x), options, layer_bits)
    if data.labels is not None and len(split.evaluation):
        scored = (before, _accuracy(engine, x_val, labels))
    return engine.export(), report, scored


def _accuracy(engine: Engine, x: np.ndarray, labels: np.ndarray) -> float:
    hits = 0
    for start in range(0, len(x), engine.batch):
        scores = engine.predict(x[start : start + engine.batch])
        predicted = scores.reshape(len(scores), -1).argmax(axis=1)
        hits += int((predicted == labels[start : start + engine.batch]).sum())
    return hits / len(x)
