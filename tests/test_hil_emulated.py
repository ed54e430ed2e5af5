"""The harness and the test model on the three emulated boards, over a real TCP
serial link to QEMU: results equal numpy, timing is exact under -icount."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading

import numpy as np
import pytest

from tests import hil_fixtures
from tests.hil_fixtures import EMULATED, expected_outputs, need
from tvmq.errors import TvmqError
from tvmq.hil.device import Device
from tvmq.hil.emulator import Emulator
from tvmq.hil.firmware import FIRMWARE_DIR
from tvmq.hil.protocol import Command

firmware = hil_fixtures.firmware
STARTED: list[int] = []


@pytest.fixture
def board(firmware, request):
    """A Device on a fresh QEMU board; the QEMU pid is kept for the leak test."""
    need("qemu-system-arm")
    target = request.param
    with Emulator(firmware(EMULATED[target]), target) as emulator:
        STARTED.append(emulator.process.pid)
        with Device(emulator.url) as device:
            yield device, emulator


@pytest.mark.parametrize("board", list(EMULATED), indirect=True)
def test_inference_matches_numpy_and_timing_is_exact(board):
    device, _ = board
    info = device.hello()
    assert info.model == "tvmq-test-model"
    assert [(t.name, t.dtype, t.bytes) for t in info.outputs] == [
        ("y", "int8", 1000),
        ("mean", "float32", 4),
    ]
    x = np.random.default_rng(7).integers(-128, 128, 1000, dtype=np.int8)
    outputs, timing = device.infer([x], runs=5, warmup=1)
    expected = expected_outputs(x)
    np.testing.assert_array_equal(outputs[0], expected[0])
    np.testing.assert_array_equal(outputs[1], expected[1])
    assert timing.runs == 5 and timing.min <= timing.mean <= timing.max
    again = device.run(5, warmup=1)
    assert again == timing == device.read_timing()
    instructions = timing.mean * 1e9 / info.tick_hz
    assert 2_000 < instructions < 100_000, instructions


@pytest.mark.parametrize("board", ["qemu-cortex-m4"], indirect=True)
def test_refusals_and_model_failure_are_clear_errors(board):
    device, emulator = board
    device.hello()
    with pytest.raises(TvmqError, match="holds 1000 bytes, got 3"):
        device.write_input(0, b"abc")
    with pytest.raises(TvmqError, match="is int8, got int16"):
        device.write_input(0, np.zeros(500, np.int16))
    with pytest.raises(TvmqError, match="refused RUN: BAD_ARGUMENT"):
        device._transact(Command.RUN, b"\0" * 8)
    with pytest.raises(TvmqError, match="refused WRITE_INPUT: OUT_OF_RANGE"):
        device._transact(Command.WRITE_INPUT, bytes([0]) + (999).to_bytes(4, "little") + b"ab")
    with pytest.raises(TvmqError, match="refused READ_OUTPUT: OUT_OF_RANGE"):
        device._transact(Command.READ_OUTPUT, bytes([2]) + bytes(8))
    with pytest.raises(TvmqError, match="refused 0x09: UNKNOWN_COMMAND"):
        device._transact(9, b"")
    x = np.zeros(1000, np.int8)
    x[:2] = (-128, 127)
    with pytest.raises(TvmqError, match=r"run\(\) returned 1 on the board"):
        device.infer([x])
    device.reset()  # the board restarts and a new session begins
    assert device.infer([np.ones(1000, np.int8)])[0][0][0] == -4
    assert emulator.process.poll() is None


def test_firmware_links_no_heap(firmware):
    elf = firmware("mps2-an386")
    symbols = subprocess.run(
        ["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"malloc", "_malloc_r", "free", "_sbrk", "_sbrk_r"}.isdisjoint(symbols)
    assert "tvmq_model" in symbols


def test_firmware_builds_from_a_copied_directory(tmp_path):
    """The layout `tvmq compile -o DIR` writes: Makefile, include, harness, one board, model."""
    need("arm-none-eabi-gcc")
    for part in ("include", "harness", "boards/mps3-an547"):
        shutil.copytree(FIRMWARE_DIR / part, tmp_path / part)
    shutil.copy(FIRMWARE_DIR / "Makefile", tmp_path)
    shutil.copytree(FIRMWARE_DIR / "test_model", tmp_path / "model")
    result = subprocess.run(
        ["make", "-s", "-C", str(tmp_path), "BOARD=mps3-an547"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "flash:" in result.stdout and "RAM:" in result.stdout
    assert (tmp_path / "build/mps3-an547/firmware.elf").is_file()
    assert (tmp_path / "build/mps3-an547/firmware.bin").is_file()


def test_a_silent_board_is_a_clear_error():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"socket://127.0.0.1:{server.getsockname()[1]}"
        accepted = []
        threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
        with Device(url, timeout=0.2) as device, pytest.raises(TvmqError) as error:
            device.hello()
        assert str(error.value) == f"no answer from {url} after 3 tries (HELLO)"
    with pytest.raises(TvmqError, match=r"cannot open socket://127\.0\.0\.1:1"):
        Device("socket://127.0.0.1:1").open()


def test_no_qemu_process_is_left_behind():
    """Runs after the board tests (file order): every QEMU they started is gone."""
    assert STARTED, "the board tests did not run"
    for pid in STARTED:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    children = [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == os.getpid()]
    assert not [p for p in children if b"qemu" in _read(f"/proc/{p}/cmdline")]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _parent(pid: str) -> int:
    stat = _read(f"/proc/{pid}/stat").rsplit(b")", 1)[-1].split()
    return int(stat[1]) if len(stat) > 1 else -1
