"""Bias compensation of structured pruning: a removed channel's mean moves into the
reading layer's bias, so removing a (nearly) constant channel changes almost nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tvm import relax

from tests.test_prune_structured import _run
from tvmq.model import Model, TensorSpec
from tvmq.prune.structured import prune
from tvmq.quantize.quantizer import quantize_model

SHAPE = (1, 5, 5, 3)
CONSTANT = 5  # the channel of the first conv that is (nearly) constant after its ReLU


def _two_convs() -> Model:
    """conv 1x1 (8 channels; channel CONSTANT ~ 2.0 everywhere) -> ReLU -> conv 1x1
    (4 channels, the model's output, so only the first conv's channels can go)."""
    rng = np.random.default_rng(0)
    first = rng.normal(0, 0.5, (8, 1, 1, 3)).astype(np.float32)
    first[CONSTANT] = 1e-3  # the smallest L1 norm: the channel pruned first
    first_bias = rng.normal(0, 0.2, 8).astype(np.float32)
    first_bias[CONSTANT] = 2.0
    second = rng.normal(0, 0.5, (4, 1, 1, 8)).astype(np.float32)
    second[:, :, :, CONSTANT] = 0.8  # what it reads from the constant channel matters
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    builder = relax.BlockBuilder()

    def conv(data, weight, bias):
        out = builder.emit(
            relax.op.nn.conv2d(data, relax.const(weight), data_layout="NHWC", kernel_layout="OHWI")
        )
        return builder.emit(out + relax.const(bias))

    with builder.function("main", [x]):
        with builder.dataflow():
            hidden = builder.emit(relax.op.nn.relu(conv(x, first, first_bias)))
            out = builder.emit_output(conv(hidden, second, np.zeros(4, np.float32)))
        builder.emit_func_output(out)
    mod = relax.transform.Normalize()(builder.get())
    return Model(
        "two_convs",
        Path("two_convs.onnx"),
        "onnx",
        mod,
        [TensorSpec("x", SHAPE, "float32")],
        [TensorSpec("out", (1, 5, 5, 4), "float32")],
    )


def _errors(model: Model, samples: list[np.ndarray]) -> dict[bool, float]:
    """Mean absolute output error against `model`, pruned with and without compensation."""
    reference = [_run(model, x) for x in samples]
    errors = {}
    for compensate in (False, True):
        result = prune(model, 0.125, "l1", samples=samples, multiple=1, compensate=compensate)
        assert result.layers[0].kept == tuple(c for c in range(8) if c != CONSTANT)
        outputs = [_run(result.model, x).astype(np.float64) for x in samples]
        gaps = [np.abs(o - r) for o, r in zip(outputs, reference, strict=True)]
        errors[compensate] = float(np.mean(gaps))
    return errors


def _samples() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=SHAPE).astype(np.float32) for _ in range(8)]


def test_compensation_restores_a_removed_constant_channel_in_float():
    errors = _errors(_two_convs(), _samples())
    assert errors[False] > 1.0  # 0.8 x 2.0 lost on every output channel
    assert errors[True] < 0.01 * errors[False]


def test_compensation_restores_a_removed_constant_channel_in_int8():
    """The int8 (QDQ) graph: the bias is an int32 constant in steps of input scale x
    weight scale, the mean is that of the dequantized post-ReLU activation."""
    samples = _samples()
    quantized = quantize_model(_two_convs(), [[x] for x in samples])
    errors = _errors(quantized, samples)
    assert errors[False] > 10 * errors[True]
