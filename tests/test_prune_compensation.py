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


def _two_convs(kernel: int = 1) -> Model:
    """conv 1x1 (8 channels; channel CONSTANT ~ 2.0 everywhere) -> ReLU -> conv
    `kernel` x `kernel`, zero-padded to keep the size (4 channels, the model's output,
    so only the first conv's channels can go)."""
    rng = np.random.default_rng(0)
    first = rng.normal(0, 0.5, (8, 1, 1, 3)).astype(np.float32)
    first[CONSTANT] = 1e-3  # the smallest L1 norm: the channel pruned first
    first_bias = rng.normal(0, 0.2, 8).astype(np.float32)
    first_bias[CONSTANT] = 2.0
    second = rng.normal(0, 0.5, (4, kernel, kernel, 8)).astype(np.float32)
    second[:, :, :, CONSTANT] = 0.8  # what it reads from the constant channel matters
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    builder = relax.BlockBuilder()

    def conv(data, weight, bias):
        pad = weight.shape[1] // 2
        out = builder.emit(
            relax.op.nn.conv2d(
                data, relax.const(weight), padding=pad, data_layout="NHWC", kernel_layout="OHWI"
            )
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


def _errors(model: Model, samples: list[np.ndarray], signed: bool = False) -> dict[bool, float]:
    """Mean absolute output error against `model`, pruned with and without compensation
    (`signed`: the largest per-channel mean of the signed error, over pixels and samples)."""
    reference = [_run(model, x) for x in samples]
    errors = {}
    for compensate in (False, True):
        result = prune(model, 0.125, "l1", samples=samples, multiple=1, compensate=compensate)
        assert result.layers[0].kept == tuple(c for c in range(8) if c != CONSTANT)
        outputs = [_run(result.model, x).astype(np.float64) for x in samples]
        gaps = np.stack([o - r for o, r in zip(outputs, reference, strict=True)])
        if signed:
            errors[compensate] = float(np.abs(gaps.reshape(-1, gaps.shape[-1]).mean(axis=0)).max())
        else:
            errors[compensate] = float(np.mean(np.abs(gaps)))
    return errors


def _samples() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=SHAPE).astype(np.float32) for _ in range(8)]


def test_compensation_restores_a_removed_constant_channel_in_float():
    errors = _errors(_two_convs(), _samples())
    assert errors[False] > 1.0  # 0.8 x 2.0 lost on every output channel
    assert errors[True] < 0.01 * errors[False]


def test_compensation_counts_only_the_taps_inside_the_image_of_a_padded_conv():
    """A 3x3 zero-padded conv reads the removed channel through fewer taps at the
    borders: on average over the pixels the compensation is exact, not too large."""
    errors = _errors(_two_convs(kernel=3), _samples(), signed=True)
    assert errors[False] > 1.0
    assert errors[True] < 1e-2


def test_compensation_restores_a_removed_constant_channel_in_int8():
    """The int8 (QDQ) graph: the bias is an int32 constant in steps of input scale x
    weight scale, the mean is that of the dequantized post-ReLU activation."""
    samples = _samples()
    quantized = quantize_model(_two_convs(), [[x] for x in samples])
    errors = _errors(quantized, samples)
    assert errors[False] > 10 * errors[True]
