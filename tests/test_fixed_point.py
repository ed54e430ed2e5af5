"""Requantization in Relax equals TFLite's integer formulas, written here in Python ints."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tvm
from tvm import relax

from tvmq.quantize.fixed_point import RESCALE, IntegerBuilder, quantize_multiplier


def reference_high_mul(a: int, b: int) -> int:
    product = a * b
    nudged = product + ((1 << 30) if product >= 0 else (1 - (1 << 30)))
    magnitude = abs(nudged) >> 31  # C++ division truncates towards zero
    return magnitude if nudged >= 0 else -magnitude


def reference_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def reference_multiply(x: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return reference_divide_by_pot(reference_high_mul(x * (1 << left), multiplier), right)


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.75, (1_610_612_736, 0)),
        (0.5 + 2.0**-32, ((1 << 30) + 1, 0)),  # a half rounds away from zero, as std::round
        (0.0, (0, 0)),
        (2.0**-40, (0, 0)),  # below TFLite's shift range
    ],
)
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


def _multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in reals]
    return np.array([m for m, _ in pairs]), np.array([s for _, s in pairs])


def test_multiply_by_quantized_multiplier_matches_tflite_bit_for_bit():
    rng = np.random.default_rng(11)
    channels = 48
    reals = np.concatenate([rng.uniform(1e-6, 0.99, channels - 4), [0.5, 1.5, 3.0, 0.0001]])
    edges = np.array([0, 1, -1, 2**20, -(2**20), 2**28 - 1, -(2**28)], np.int64)
    values = np.concatenate([edges, rng.integers(-(2**28), 2**28, 500)]).astype(np.int32)
    assert_requantization_matches_tflite(values, *_multipliers(reals))


def test_single_rounding_form_matches_tflite_over_the_whole_int32_range():
    """Multipliers below one half take the one-constant, high-word form."""
    rng = np.random.default_rng(12)
    reals = np.concatenate([rng.uniform(1e-9, 0.4999, 44), [0.25, 2.0**-20, 0.49999, 1e-7]])
    multipliers, shifts = _multipliers(reals)
    assert (shifts <= -1).all()
    edges = np.array([0, 1, -1, 2**31 - 1, -(2**31), 2**30, -(2**30), 12345, -12345], np.int64)
    values = np.concatenate([edges, rng.integers(-(2**31), 2**31, 400)]).astype(np.int32)
    assert_requantization_matches_tflite(values, multipliers, shifts)


def assert_requantization_matches_tflite(values, multipliers, shifts) -> None:
    channels = len(multipliers)
    values = np.repeat(values[:, None], channels, axis=1)

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(values.shape, "int32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            ints = IntegerBuilder(builder)
            result = ints.multiply_by_quantized_multiplier(x, multipliers, shifts, (1, channels))
            output = builder.emit_output(result)
        builder.emit_func_output(output)
    executable = tvm.compile(builder.get(), tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(values)).numpy()

    expected = np.array(
        [
            [
                reference_multiply(int(v), int(multipliers[c]), int(shifts[c]))
                for c, v in enumerate(row)
            ]
            for row in values
        ]
    )
    np.testing.assert_array_equal(got, expected)


def test_requantize_step_of_any_shift_matches_tflite():
    """Multipliers of one half and more (shift >= 0) make the one step
    :func:`~tvmq.quantize.fixed_point.rescale_te`, which the SIMD kernels replace:
    clamp(MultiplyByQuantizedMultiplier(acc + bias) + zero point) as TFLite."""
    rng = np.random.default_rng(13)
    reals = np.concatenate([rng.uniform(0.5, 3.9, 20), rng.uniform(1e-6, 0.49, 12), [0.5, 1.0]])
    multipliers, shifts = _multipliers(reals)
    assert (shifts >= 0).any() and (shifts <= -1).any()
    channels = len(reals)
    bias = rng.integers(-(2**16), 2**16, channels)
    edges = np.array([0, 1, -1, 2**20, -(2**20), 2**26 - 1, -(2**26)], np.int64)
    values = np.concatenate([edges, rng.integers(-(2**26), 2**26, 300)]).astype(np.int32)
    values = np.repeat(values[:, None], channels, axis=1)
    out, low, high = SimpleNamespace(zero_point=-7, dtype="int8"), -128, 100

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(values.shape, "int32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            ints = IntegerBuilder(builder)
            result = ints.requantize(x, bias, multipliers, shifts, 1, out, low, high)
            output = builder.emit_output(result)
        builder.emit_func_output(output)
    module = builder.get()
    assert any(name.name_hint.startswith(RESCALE) for name in module.get_global_vars())
    executable = tvm.compile(module, tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(values)).numpy()

    expected = np.array(
        [
            [
                reference_multiply(int(v) + int(bias[c]), int(multipliers[c]), int(shifts[c]))
                for c, v in enumerate(row)
            ]
            for row in values
        ]
    )
    np.testing.assert_array_equal(got, np.clip(expected + out.zero_point, low, high))
