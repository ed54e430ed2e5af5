"""Post-training quantization of a float model: annotate, calibrate, convert.

The three steps stay apart, as in PyTorch's pt2e quantizer; the quantized model is
in QDQ form and becomes integer code when it is built. Calibration runs once;
conversion can then quantize any subset of the annotated ops (the sensitivity
search falls layers back to float this way). The dynamic and weight-only modes
quantize the weighted ops' weights alone and need no calibration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import tvm_ffi

from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.quantize.annotate import Annotation, annotate
from tvmq.quantize.codebook import (
    check_codebook_options,
    check_per_channel,
    codebook_table,
    layer_codebooks,
)
from tvmq.quantize.convert import convert
from tvmq.quantize.hybrid import normalize_hybrid
from tvmq.quantize.low_bit import layer_weight_bits
from tvmq.quantize.observe import calibrate
from tvmq.quantize.options import MODES
from tvmq.quantize.scheme import (
    SOFTMAX_OUTPUT,
    ActivationParams,
    QuantConfig,
    activation_params,
)


@dataclass(frozen=True)
class Calibrated:
    """A float model with its annotation and every observed tensor's parameters."""

    model: Model
    config: QuantConfig
    annotation: Annotation
    ranges: list[tuple[float, float]]
    params: list[ActivationParams]

    @property
    def op_names(self) -> list[str]:
        return [op.name for op in self.annotation.ops]


def calibrate_model(
    model: Model,
    samples: Iterable[Sequence[np.ndarray]],
    config: QuantConfig | None = None,
    origin: str = "calibration data",
) -> Calibrated:
    """Annotate `model` and calibrate every tensor it observes on `samples`."""
    config = config or QuantConfig()
    if config.mode != "static":
        raise TvmqError(f"mode {config.mode} needs no calibration: use quantize_model")
    model = _float_model(model)
    annotation, config = _annotate(model, config)
    ranges = calibrate(model.mod, annotation, samples, model.inputs, config, origin)
    fixed = {op.output: SOFTMAX_OUTPUT for op in annotation.ops if op.kind == "softmax"}
    wide = _int16_tensors(annotation, config)
    params = [
        fixed.get(var) or activation_params(low, high, config, "int16" if var in wide else "int8")
        for var, (low, high) in zip(annotation.observed, ranges, strict=True)
    ]
    return Calibrated(model, config, annotation, ranges, params)


def _int16_tensors(annotation: Annotation, config: QuantConfig) -> set:
    """Tensors held in int16: all, or the inputs and outputs of the layers named."""
    return {
        var
        for op in annotation.ops
        if config.int16_activations or op.name in config.int16_names
        for var in (*op.inputs, op.output)
    }


def _float_model(model: Model) -> Model:
    """`model` ready to annotate: float, its hybrid layers on dequantized weights."""
    if model.is_quantized:
        raise TvmqError(f"{model.source}: already quantized")
    return normalize_hybrid(model)


def _annotate(model: Model, config: QuantConfig) -> tuple[Annotation, QuantConfig]:
    """The ops to quantize, and `config` with its layer names as annotate knows them."""
    if config.mode not in MODES:
        raise TvmqError(f"unknown quantization mode '{config.mode}' (known: {', '.join(MODES)})")
    if config.skip_names or config.int16_names or config.layer_bits or config.layer_codebook:
        names = layer_names(model)
        requested = dict(config.layer_bits)
        _resolve(model, names, frozenset(requested), "for --bits")  # unknown names refused
        codebooks = dict(config.layer_codebook)
        _resolve(model, names, frozenset(codebooks), "for --codebook-layer")
        config = dataclasses.replace(
            config,
            skip_names=_resolve(model, names, config.skip_names, "to keep float"),
            int16_names=_resolve(model, names, config.int16_names, "for int16 activations"),
            layer_bits=frozenset((names[name], bits) for name, bits in requested.items()),
            layer_codebook=frozenset((names[name], k) for name, k in codebooks.items()),
        )
    annotation = annotate(
        model.mod,
        config.skip_ops,
        config.skip_names,
        config.symmetric_activations,
        None if config.int16_activations else config.int16_names,
    )
    if config.mode != "static":
        annotation = annotation.weighted_only()
    if not annotation.ops:
        raise TvmqError(f"{model.source}: no operator that tvmq can quantize")
    # Refuses bits or codebooks a layer does not support, before calibrating.
    _codebooks(annotation, config, _weight_bits(annotation, config))
    return annotation, config


def layer_names(model: Model) -> dict[str, str]:
    """Every name a quantizable layer is printed under (its label conv2d#0, its op's
    and its output tensor's Relax names, their source nodes) -> the op's Relax name,
    which annotate matches."""
    everything = annotate(model.mod)
    sources = model.source_names
    names: dict[str, str] = {}
    for op in everything.ops:
        for alias in (op.label, op.name, op.output.name):
            names.setdefault(alias, op.name)
        for var in (op.name, op.output.name):
            if sources.get(var):
                names.setdefault(sources[var], op.name)
    for name, _, _ in everything.skipped:  # kept float anyway (an input not float32, ...)
        names.setdefault(name, name)
        if sources.get(name):
            names.setdefault(sources[name], name)
    return names


def _resolve(
    model: Model, names: dict[str, str], requested: frozenset[str], purpose: str
) -> frozenset[str]:
    """The Relax op names of the layers `requested`; an unknown one is an error
    listing some that exist."""
    unknown = sorted(name for name in requested if name not in names)
    if unknown:
        labels = [name for name in names if "#" in name][:6]
        raise TvmqError(
            f"{model.source}: no layer named {', '.join(map(repr, unknown))} {purpose} "
            f"(layers: {', '.join(labels)}{', ...' if len(names) > len(labels) else ''}; "
            "a tensor or source node name that quantize prints works too)"
        )
    return frozenset(names[name] for name in requested)


def _sources(model: Model, annotation: Annotation) -> dict[str, str]:
    """The source file's node behind each op and observed tensor (by Relax name): the
    node of the op's core (a conv's, not its fused relu's), a model input's own
    name, or '' when the frontend recorded none."""
    names = model.source_names
    sources = {var.name: names.get(var.name, var.name) for var in annotation.observed}
    for op in annotation.ops:
        sources[op.name] = sources[op.output.name] = names.get(op.name, "")
    return sources


def float_graph_hash(model: Model) -> str:
    """Structural hash of a float model's graph: ties a quantized model to its source
    (the graph as quantized, hybrid layers normalized: the same from either)."""
    return str(tvm_ffi.structural_hash(normalize_hybrid(model).mod, map_free_vars=True))


def convert_model(calibrated: Calibrated, fallback: dict[str, str] | None = None) -> Model:
    """The int8 model, keeping the ops named in `fallback` float (name -> reason)."""
    fallback = fallback or {}
    full = calibrated.annotation
    annotation = full.subset(frozenset(calibrated.op_names) - fallback.keys())
    chosen = {var: i for i, var in enumerate(full.observed)}
    params = [calibrated.params[chosen[var]] for var in annotation.observed]
    config, labels = calibrated.config, full.labels()
    bits = _weight_bits(full, config)
    codebooks = _codebooks(full, config, bits)
    mod, weights = convert(calibrated.model.mod, annotation, params, config, bits, codebooks)
    sources = _sources(calibrated.model, full)
    kinds = {op.name: op.kind for op in full.ops}
    report = {
        "float_graph_hash": float_graph_hash(calibrated.model),
        "mode": config.mode,
        "calibrator": config.calibrator,
        "per_channel": config.per_channel,
        "symmetric_activations": config.symmetric_activations,
        "int16_activations": config.int16_activations,
        "int16_layers": sorted(config.int16_names),
        "power_of_two": config.power_of_two,
        "quantized_ops": [
            {"name": op.name, "kind": op.kind, "layer": op.label, "source": sources[op.name]}
            for op in annotation.ops
        ],
        "skipped_ops": [
            {"name": name, "kind": kind, "reason": reason} for name, kind, reason in full.skipped
        ]
        + [{"name": name, "kind": kinds[name], "reason": why} for name, why in fallback.items()],
        "tensors": [
            {
                "name": var.name,
                "layer": labels[var.name],
                "source": sources[var.name],
                "range": list(calibrated.ranges[chosen[var]]),
                "scale": float(p.scale),
                "zero_point": p.zero_point,
                "dtype": p.dtype,
            }
            for var, p in zip(annotation.observed, params, strict=True)
        ],
    }
    model = calibrated.model
    low_bit = any(b != 8 for b in bits.values())
    if low_bit:
        label = {op.name: op.label for op in full.ops}
        report["weight_bits"] = {label[name]: b for name, b in bits.items()}
    if codebooks:
        report["codebook"] = {
            op.label: codebook_table(weights[op.name], config.codebook_per_channel)
            for op in full.ops
            if op.name in codebooks and op.name in weights
        }
        report["codebook_per_channel"] = config.codebook_per_channel
    suffix = "w4a8" if low_bit else "cb" if codebooks else "int8"
    return dataclasses.replace(
        model,
        name=f"{model.name}_{suffix}",
        mod=mod,
        params={name: w.values for name, w in weights.items()},
        quantization=report,
    )


def _weight_bits(annotation: Annotation, config: QuantConfig) -> dict[str, int]:
    """Weight bits by op name; empty (all int8) unless low bits were asked for."""
    if config.weight_bits == 8 and not config.layer_bits:
        return {}
    return layer_weight_bits(annotation, config.weight_bits, dict(config.layer_bits))


def _codebooks(annotation: Annotation, config: QuantConfig, bits: dict[str, int]) -> dict[str, int]:
    """Codebook centroids by op name; empty unless codebooks were asked for."""
    check_per_channel(config.codebook_per_channel, config.codebook, config.layer_codebook)
    if not config.codebook and not config.layer_codebook:
        return {}
    check_codebook_options(config.codebook, config.weight_bits)
    explicit_bits = dict(config.layer_bits)
    return layer_codebooks(
        annotation,
        config.codebook,
        dict(config.layer_codebook),
        {name: b for name, b in bits.items() if name in explicit_bits or b != 8},
    )


def quantize_weights(model: Model, config: QuantConfig) -> Model:
    """`model` with int8 weights for the dynamic and weight-only modes (no calibration)."""
    model = _float_model(model)
    annotation, config = _annotate(model, config)
    sources = _sources(model, annotation)
    mod, weights = convert(model.mod, annotation, [], config)
    report = {
        "float_graph_hash": float_graph_hash(model),
        "mode": config.mode,
        "per_channel": config.per_channel,
        "power_of_two": config.power_of_two,
        "quantized_ops": [
            {"name": op.name, "kind": op.kind, "layer": op.label, "source": sources[op.name]}
            for op in annotation.ops
        ],
        "skipped_ops": [
            {"name": name, "kind": kind, "reason": reason}
            for name, kind, reason in annotation.skipped
        ],
        "tensors": [],
    }
    suffix = "dynamic" if config.mode == "dynamic" else "w8"
    return dataclasses.replace(
        model,
        name=f"{model.name}_{suffix}",
        mod=mod,
        params={name: w.values for name, w in weights.items()},
        quantization=report,
    )


def quantize_model(
    model: Model,
    samples: Iterable[Sequence[np.ndarray]] | None = None,
    config: QuantConfig | None = None,
    origin: str = "calibration data",
) -> Model:
    """A quantized version of float `model`; static mode (the default) calibrates on
    `samples` (each a list of inputs), the other modes need none."""
    config = config or QuantConfig()
    if config.mode != "static":
        return quantize_weights(model, config)
    if samples is None:
        raise TvmqError("static quantization needs calibration samples")
    return convert_model(calibrate_model(model, samples, config, origin))
