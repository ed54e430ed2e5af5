"""int4 weights (int8 activations): per-channel PTQ at 4 bits, the packed-weight C
kernels on every core, and the packed build against the host's integer model."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from tests import kernel_checks
from tvmq.backend.aot import lower_model
from tvmq.backend.int4 import pack_int4
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_DATA, DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.scheme import QuantConfig

CHECK = "s4_check.c"


def test_s4_kernels_match_their_reference_on_the_host(tmp_path):
    kernel_checks.run_on_host(kernel_checks.build_for_host(CHECK, tmp_path, ("-Wall",)))


@kernel_checks.needs_cortex_m
@pytest.mark.parametrize("core", sorted(kernel_checks.CORTEX_M))
def test_s4_kernels_match_their_reference_on_cortex_m(core, tmp_path):
    """The DSP path (SXTB16 of masked nibbles into SMLAD) on the M4 and the M55."""
    elf = kernel_checks.build_for_cortex_m(CHECK, core, tmp_path)
    assert "path dsp" in kernel_checks.run_on_cortex_m(elf, core)


@kernel_checks.needs_aarch64
def test_s4_kernels_match_their_reference_on_aarch64(tmp_path):
    kernel_checks.run_on_aarch64(kernel_checks.build_for_aarch64(CHECK, tmp_path))


@pytest.fixture(scope="module")
def digits():
    model = load_model(DIGITS_MODEL)
    x_train, _ = digits_split("train")
    x_test, y_test = digits_split("test")
    return model, [[x] for x in x_train[:16]], x_test, y_test


def _weights(model) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in model.params.items()}


@pytest.fixture(scope="module")
def int4_digits(digits):
    model, samples, x_test, _ = digits
    return quantize_model(model, samples, QuantConfig(weight_bits=4)), x_test


def test_weight_bits_4_quantizes_inner_layers_to_the_4_bit_range(digits, int4_digits):
    model, samples, _, _ = digits
    quantized, _ = int4_digits
    bits = quantized.quantization["weight_bits"]
    layers = list(bits)
    # The first and last weighted layers stay int8 unless named with --bits.
    assert bits[layers[0]] == 8 and bits[layers[-1]] == 8
    assert all(bits[name] == 4 for name in layers[1:-1])
    peaks = sorted(int(np.abs(w).max()) for w in _weights(quantized).values())
    assert peaks.count(7) == len(layers) - 2 and peaks.count(127) == 2
    assert quantized.name.endswith("_w4a8")
    explicit = quantize_model(
        model, samples[:2], QuantConfig(weight_bits=4, layer_bits=frozenset({(layers[0], 4)}))
    )
    assert explicit.quantization["weight_bits"][layers[0]] == 4


@pytest.mark.parametrize(
    "layer_bits, message",
    [
        (("mean#0", 4), "mean#0 (mean) has no weights"),
        (("conv2d#1", 2), "conv2d supports 4- or 8-bit weights, not 2"),
        (("nosuch", 4), "no layer named 'nosuch' for --bits"),
    ],
)
def test_unsupported_bit_widths_are_refused_by_layer(digits, layer_bits, message):
    model, samples, _, _ = digits
    config = QuantConfig(weight_bits=4, layer_bits=frozenset({layer_bits}))
    with pytest.raises(TvmqError, match=re.escape(message)):
        quantize_model(model, samples[:2], config)


def test_cli_refuses_a_bit_width_in_one_line(tmp_path):
    output = tmp_path / "out.tvmq"
    result = subprocess.run(
        [sys.executable, "-m", "tvmq", "quantize", str(DIGITS_MODEL), "--calib",
         str(DIGITS_DATA), "--weight-bits", "3", "-o", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0 and not output.exists()
    assert result.stderr.strip().splitlines() == [
        "tvmq: error: --weight-bits 3: supported are 4 and 8"
    ]


def test_pack_int4_is_cmsis_nn_order():
    values = np.array([[1, -1, 7], [-8, 0, 3]], dtype=np.int8)
    assert pack_int4(values).tolist() == [0xF1, 0x87, 0x30]


def test_build_packs_the_4_bit_weights_only(int4_digits):
    quantized, _ = int4_digits
    compiled = lower_model(quantized)
    packed = [t for t in compiled.graph.tensors.values() if t.dtype == "uint8"]
    int8_weights = [
        t for t in compiled.graph.tensors.values() if t.kind == "constant" and t.dtype == "int8"
    ]
    assert len(packed) == 3 and len(int8_weights) == 2  # the first conv and the dense stay int8
    kernels = compiled.tir.script()
    assert "tvmq_dot_s4_" in kernels and "tvmq_dw_s4x4" in kernels


@kernel_checks.needs_cortex_m
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m55"])
def test_int4_model_on_board_is_identical_to_host(int4_digits, target):
    """The packed weights, unpacked in registers on the board, give the host's integers."""
    quantized, x_test = int4_digits
    host = quantized.build("host")
    with quantized.build(target) as board:
        for x in x_test[:4]:
            for got, expected in zip(board(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)
