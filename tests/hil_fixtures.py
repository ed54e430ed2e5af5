"""Shared by the tests/test_hil_*.py files: firmware builds, skipped with the reason
when a toolchain or QEMU is missing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tvmq.hil.firmware import build_firmware

EMULATED = {
    "qemu-cortex-m4": "mps2-an386",
    "qemu-cortex-m7": "mps2-an500",
    "qemu-cortex-m55": "mps3-an547",
}


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="session")
def firmware(tmp_path_factory):
    """firmware(board, sanitize=False) -> the built ELF, built once per session."""
    built = {}

    def get(board: str, sanitize: bool = False):
        need("gcc" if board == "host" else "arm-none-eabi-gcc")
        key = (board, sanitize)
        if key not in built:
            out = tmp_path_factory.mktemp(f"fw-{board}{'-asan' if sanitize else ''}")
            built[key] = build_firmware(board, out, sanitize=sanitize)
        return built[key]

    return get


def expected_outputs(x: np.ndarray) -> list[np.ndarray]:
    """What firmware/test_model computes, independently in numpy."""
    y = np.clip(x.astype(np.int32) * 3 - 7, -128, 127).astype(np.int8)
    return [y, np.array([np.float32(y.astype(np.int32).sum()) / np.float32(1000)], np.float32)]
