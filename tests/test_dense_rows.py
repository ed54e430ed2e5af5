"""Dense layers on the DSP cores: four rows per call on interleaved weights
(tvmq.backend.dense, kernels/tvmq_dense.h). The kernel's own arithmetic is checked
in C by tests/test_kernels.py (dot_check.c); here the layout the build writes and a
whole layer on the M4 board against the host build."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests import tflite_op_models as models
from tvmq.backend.dense import calls_dense_kernel, interleave_rows
from tvmq.frontend import load_model


def test_interleave_rows_puts_each_group_of_four_rows_together():
    rows, depth = 8, 13  # three whole groups of four inputs and a tail of one
    weights = np.arange(rows * depth).reshape(rows, depth)
    flat = interleave_rows(weights).reshape(-1)
    for n in range(rows):
        block = (n // 4) * 4 * depth
        for k in range(depth):
            if k < 12:
                offset = block + 16 * (k // 4) + 4 * (n % 4) + k % 4
            else:
                offset = block + 48 + (n % 4) * (depth - 12) + (k - 12)
            assert flat[offset] == weights[n, k]


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_dense_rows_on_the_m4_match_the_host(tmp_path):
    # 37 inputs: two unrolled passes of 16, one group of four and a tail of one; six
    # input rows; eight units: two blocks of four rows.
    rng = np.random.default_rng(24)
    weights = rng.integers(-127, 128, (8, 37)).astype(np.int8)
    params = [(0.1, -3), (0.02, 0), (0.4, 5)]
    model = load_model(
        models.fully_connected_nd(tmp_path / "fc.tflite", (2, 3, 37), weights, params)
    )
    inputs = [rng.integers(-128, 128, (2, 3, 37)).astype(np.int8) for _ in range(2)]
    host = model.build("host")
    with model.build("qemu-cortex-m4") as board:
        assert any(calls_dense_kernel(f) for f in board.compiled.tir.functions.values())
        for x in inputs:
            np.testing.assert_array_equal(board(x)[0], host(x)[0])
