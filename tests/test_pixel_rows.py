"""Convolutions whose output rows hold an odd number of pixels (KWS's 25x5 maps) run
as whole rows on Cortex-M: pixel pairs and a one-pixel tail per call, depthwise rows
sharing each weight load between two pixels, one requantization call per row.

A small quantized CNN with odd rows, stride 2, padding and channel counts that are
not multiples of four must give, on the emulated M4 and M55 boards (whose build keeps
one pixel per call), exactly the host's outputs; the emitted kernels must call the
row micro-kernels (the SIMD row paths, not a scalar fallback). The row kernels'
Helium and NEON forms are checked in tests/kernels/dot_check.c.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from onnx import helper, numpy_helper

from tests.onnx_models import graph_model
from tests.test_mcu import assert_board_matches_host
from tvmq.backend.emit_c import emit_model
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


def _odd_rows_model():
    """9x9 conv (8 channels), depthwise stride 2 to 5x5, depthwise stride 1, pointwise
    to 6 channels (pairs of lanes), depthwise on 6 channels, pointwise to 4."""

    def conv(inputs, output, **attributes):
        return helper.make_node("Conv", inputs, [output], **attributes)

    pad = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    nodes = [
        conv(["x", "w1", "b1"], "c1", **pad),
        helper.make_node("Relu", ["c1"], ["r1"]),
        conv(["r1", "w2", "b2"], "c2", group=8, strides=[2, 2], **pad),
        conv(["c2", "w3", "b3"], "c3", group=8, **pad),
        helper.make_node("Relu", ["c3"], ["r3"]),
        conv(["r3", "w4", "b4"], "c4", kernel_shape=[1, 1]),
        conv(["c4", "w5", "b5"], "c5", group=6, **pad),
        conv(["c5", "w6", "b6"], "y", kernel_shape=[1, 1]),
    ]
    rng = np.random.default_rng(7)  # its own: the shared RNG's state depends on test order

    def weight(name: str, *shape: int):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)

    weights = [
        weight("w1", 8, 3, 3, 3),
        weight("b1", 8),
        weight("w2", 8, 1, 3, 3),
        weight("b2", 8),
        weight("w3", 8, 1, 3, 3),
        weight("b3", 8),
        weight("w4", 6, 8, 1, 1),
        weight("b4", 6),
        weight("w5", 6, 1, 3, 3),
        weight("b5", 6),
        weight("w6", 4, 6, 1, 1),
        weight("b6", 4),
    ]
    return graph_model(nodes, {"x": [1, 3, 9, 9]}, [1, 4, 5, 5], weights)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    import onnx

    path = tmp_path_factory.mktemp("odd") / "odd_rows.onnx"
    onnx.save(_odd_rows_model(), path)
    rng = np.random.default_rng(5)
    calibration = [[rng.standard_normal((1, 3, 9, 9)).astype(np.float32)] for _ in range(8)]
    return quantize_model(load_model(path), calibration)


def test_odd_rows_call_the_row_kernels(quantized, tmp_path):
    emit_model(quantized, tmp_path / "model", core="cortex-m4")
    kernels = (tmp_path / "model" / "tvmq_kernels.c").read_text()
    for function in ("tvmq_dot_s8_rowx", "tvmq_dw_s8x4_row", "tvmq_requant_s8x4_row"):
        assert function in kernels


@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m55"])
def test_odd_rows_on_board_are_identical_to_host(quantized, target):
    rng = np.random.default_rng(9)
    inputs = [rng.standard_normal((1, 3, 9, 9)).astype(np.float32) for _ in range(3)]
    assert_board_matches_host(quantized, inputs, target)


@pytest.mark.parametrize(("target", "rows"), [("qemu-cortex-m4", True), ("qemu-cortex-m55", False)])
def test_library_builds_choose_rows_by_core_like_the_cli(quantized, target, rows):
    """`tvmq.backend.build` without a schedule makes the kernel choice the CLI's
    builds make (odd rows of convolutions on the DSP cores only, depthwise rows on
    the M55 too), so both give the same firmware."""
    from tvmq.backend import build

    with build(quantized, target) as board:
        kernels = (board.directory / "model" / "tvmq_kernels.c").read_text()
    assert ("tvmq_dot_s8_rowx" in kernels) is rows
    assert "tvmq_dw_s8x4_row" in kernels
