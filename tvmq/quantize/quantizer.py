"""Post-training quantization of a float model: annotate, calibrate, convert.

The three steps stay apart, as in PyTorch's pt2e quantizer; the quantized model is
in QDQ form and becomes integer code when it is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.quantize.annotate import annotate
from tvmq.quantize.convert import convert
from tvmq.quantize.observe import calibrate
from tvmq.quantize.scheme import SOFTMAX_OUTPUT, QuantConfig, activation_params


def quantize_model(
    model: Model,
    samples: Iterable[Sequence[np.ndarray]],
    config: QuantConfig | None = None,
    origin: str = "calibration data",
) -> Model:
    """An int8 version of float `model`, calibrated on `samples` (each a list of inputs)."""
    config = config or QuantConfig()
    if model.is_quantized:
        raise TvmqError(f"{model.source}: already quantized")
    annotation = annotate(
        model.mod, config.skip_ops, config.skip_names, config.symmetric_activations
    )
    if not annotation.ops:
        raise TvmqError(f"{model.source}: no operator that tvmq can quantize")
    ranges = calibrate(model.mod, annotation, samples, model.inputs, config, origin)
    fixed = {op.output: SOFTMAX_OUTPUT for op in annotation.ops if op.kind == "softmax"}
    params = [
        fixed.get(var) or activation_params(low, high, config)
        for var, (low, high) in zip(annotation.observed, ranges, strict=True)
    ]
    mod, weights = convert(model.mod, annotation, params, config)
    report = {
        "calibrator": config.calibrator,
        "per_channel": config.per_channel,
        "symmetric_activations": config.symmetric_activations,
        "power_of_two": config.power_of_two,
        "quantized_ops": [{"name": op.name, "kind": op.kind} for op in annotation.ops],
        "skipped_ops": [
            {"name": name, "kind": kind, "reason": reason}
            for name, kind, reason in annotation.skipped
        ],
        "tensors": [
            {
                "name": var.name,
                "range": [low, high],
                "scale": float(p.scale),
                "zero_point": p.zero_point,
            }
            for var, (low, high), p in zip(annotation.observed, ranges, params, strict=True)
        ],
    }
    return dataclasses.replace(
        model,
        name=f"{model.name}_int8",
        mod=mod,
        params={name: w.values for name, w in weights.items()},
        quantization=report,
    )
