"""Learned rounding (tvmq.train.adaround) on the bundled digits CNN."""

from __future__ import annotations

import numpy as np
import pytest

from tests import kernel_checks
from tvmq.backend.aot import lower_model
from tvmq.cli import main
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train import adaround
from tvmq.train.engine import Engine


@pytest.fixture(scope="module")
def rounded():
    """A 4-bit digits model (first and last layers int8) after learned rounding on 128
    even-indexed images, with the nearest-rounded integers it started from."""
    x, _ = digits_split("train")
    float_model = load_model(DIGITS_MODEL)
    ptq = quantize_model(float_model, [[s] for s in x[0::2][:100]])
    four_bit = adaround.with_weight_bits(ptq, float_model, 4)
    engine = Engine(four_bit, batch=32, float_model=float_model)
    nearest = [layer.integer_weight() for layer in engine.layers]
    options = adaround.AdaroundOptions(weight_bits=4, iterations=300)
    bits = four_bit.quantization["weight_bits"]
    report = adaround.adaround(engine, x[0::2][:128, 0], options, bits)
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
    bits = [8] + [4] * (len(engine.layers) - 2) + [8]  # as `tvmq quantize --weight-bits 4`
    assert engine.export().quantization["weight_bits"] == {
        layer.name: b for layer, b in zip(engine.layers, bits, strict=True)
    }
    for layer, b in zip(engine.layers, bits, strict=True):  # on its grid, stored in int8
        assert np.abs(layer.integer_weight()).max() <= (7 if b == 4 else 127)


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


@kernel_checks.needs_cortex_m
def test_rounded_4_bit_model_runs_packed_on_the_m4_as_on_the_host(rounded):
    """The inner layers' learned 4-bit weights are packed two per byte on the board."""
    engine, _, _ = rounded
    model = engine.export()
    assert "tvmq_dot_s4_" in lower_model(model).tir.script()
    x_test, _ = digits_split("test")
    host = model.build("host")
    with model.build("qemu-cortex-m4") as board:
        for x in x_test[:4]:
            np.testing.assert_array_equal(board(x)[0], host(x)[0])


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
