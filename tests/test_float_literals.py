"""Float constants in the emitted C keep every bit: TVM's C printer writes seven
significant digits, which about half of float32 scales do not survive, and the
board then quantized or dequantized with a scale an ulp away from the host's."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from tests.test_mcu import assert_board_matches_host
from tests.test_pixel_rows import _odd_rows_model
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


def _output_scale(model) -> np.float32:
    dequantize = model.mod["main"].body.blocks[-1].bindings[-2].value
    assert dequantize.op.name == "relax.dequantize"
    return np.float32(dequantize.args[1].value.numpy())


def test_float_outputs_on_board_equal_the_host_when_the_scale_needs_nine_digits(tmp_path):
    path = tmp_path / "odd_rows.onnx"
    onnx.save(_odd_rows_model(), path)
    rng = np.random.default_rng(2)
    calibration = [[rng.standard_normal((1, 3, 9, 9)).astype(np.float32)] for _ in range(8)]
    model = quantize_model(load_model(path), calibration)
    scale = _output_scale(model)
    assert np.float32(f"{float(scale):.6e}") != scale  # the case seven digits lose
    inputs = [rng.standard_normal((1, 3, 9, 9)).astype(np.float32) for _ in range(2)]
    assert_board_matches_host(model, inputs, "qemu-cortex-m4")
