"""Learned rounding (tvmq.train.adaround) on the bundled digits CNN."""

from __future__ import annotations

import numpy as np
import pytest

from tvmq.cli import main
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train import adaround
from tvmq.train.engine import Engine


@pytest.fixture(scope="module")
def rounded():
    """A 4-bit digits model after learned rounding on 128 even-indexed images, with the
    nearest-rounded integers it started from."""
    x, _ = digits_split("train")
    float_model = load_model(DIGITS_MODEL)
    ptq = quantize_model(float_model, [[s] for s in x[0::2][:100]])
    four_bit = adaround.with_weight_bits(ptq, float_model, 4)
    engine = Engine(four_bit, batch=32, float_model=float_model)
    nearest = [layer.integer_weight() for layer in engine.layers]
    options = adaround.AdaroundOptions(weight_bits=4, iterations=300)
    report = adaround.adaround(engine, x[0::2][:128, 0], options)
    return engine, nearest, report


def test_learned_rounding_reconstructs_every_layer_at_least_as_well_as_nearest(rounded):
    engine, nearest, report = rounded
    assert [r.name for r in report] == [layer.name for layer in engine.layers]
    for layer in report:
        assert layer.learned <= layer.nearest
    assert sum(r.learned for r in report) < 0.8 * sum(r.nearest for r in report)
    flipped = sum(
        int((a != layer.integer_weight()).sum())
        for a, layer in zip(nearest, engine.layers, strict=True)
    )
    assert flipped == sum(r.flipped for r in report) > 0
    for layer in engine.layers:  # on the 4-bit grid, stored in int8
        assert np.abs(layer.integer_weight()).max() <= 7


def test_gram_reconstruction_error_is_the_layer_output_error(rounded):
    """The fully connected layer's error from its Gram matrix equals the squared error
    of its accumulator computed directly."""
    engine, nearest, _ = rounded
    probe = adaround._Probe(engine)
    layer, call = engine.layers[-1], probe.calls[-1]
    x, _ = digits_split("train")
    inputs = probe.inputs(x[0::2][:64, 0], len(engine.layers) - 1)
    weight, groups = adaround.canonical(layer, call)
    grams, positions = adaround.gram(call, inputs, groups)
    integers = nearest[-1].T.astype(np.float64)
    scale = layer.weight_scale.astype(np.float64)
    error = adaround.reconstruction_error(integers, scale, weight, grams, positions)
    direct = inputs.reshape(len(inputs), -1) @ (scale[:, None] * integers - weight).T
    assert error == pytest.approx((direct**2).sum() / len(inputs), rel=1e-6)


def test_rounded_model_builds_and_equals_the_host_integer_build(rounded):
    engine, _, _ = rounded
    x_test, _ = digits_split("test")
    x_test = x_test[:64]
    host = engine.export().build("host")
    built = np.concatenate([host(sample)[0] for sample in x_test])
    trained = np.concatenate([engine.predict(x_test[i : i + 32, 0]) for i in (0, 32)])
    np.testing.assert_array_equal(trained, built)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--adaround", "--weight-bits", "3"], "--weight-bits 3 is not supported"),
        (["--weight-bits", "4"], "--weight-bits needs --adaround"),
        (["--adaround", "--distill"], "choose one"),
    ],
)
def test_bad_rounding_options_are_one_line(tmp_path, capsys, flags, message):
    x, _ = digits_split("train")
    data, output = tmp_path / "x.npz", tmp_path / "out.tvmq"
    np.savez(data, x=x[:64])
    args = ["finetune", str(DIGITS_MODEL), "--data", str(data), "-o", str(output), *flags]
    assert main(args) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not output.exists()
