"""The harness built for the host with AddressSanitizer and UBSan, over TCP:
correct results, the EEMBC text protocol, and fuzzing with random and mutated
frames (hypothesis): the firmware never crashes, never acts on a damaged frame,
and always answers the next good one."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import hil_fixtures
from tests.hil_fixtures import expected_outputs
from tvmq.hil.device import Device
from tvmq.hil.protocol import HEADER, Command, Frame, Status, cobs_decode, cobs_encode

firmware = hil_fixtures.firmware


@pytest.fixture
def host_board(firmware):
    """(process, url) of the sanitized host firmware, listening on a free port."""
    env = dict(os.environ, TVMQ_HOST_PORT="0", ASAN_OPTIONS="abort_on_error=0")
    process = subprocess.Popen(
        [str(firmware("host", sanitize=True))],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    line = process.stderr.readline().decode()
    match = re.match(r"listening on (\d+)", line)
    assert match, line
    yield process, f"socket://127.0.0.1:{match.group(1)}"
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    assert "Sanitizer" not in errors and "runtime error" not in errors, errors


def test_host_board_runs_the_test_model(host_board):
    _, url = host_board
    with Device(url) as device:
        info = device.hello()
        assert (info.board, info.tick_hz) == ("host", 1_000_000_000)
        x = np.random.default_rng(1).integers(-128, 128, 1000, dtype=np.int8)
        outputs, timing = device.infer([x], runs=3)
        for got, want in zip(outputs, expected_outputs(x), strict=True):
            np.testing.assert_array_equal(got, want)
        assert timing.runs == 3 and 0 < timing.min <= timing.max


def test_cobs_round_trip_matches_the_firmware_rules():
    for data in (b"", b"\0", b"\0\0", bytes(range(1, 256)), bytes(300), b"a" * 254 + b"\0"):
        encoded = cobs_encode(data)
        assert b"\0" not in encoded and cobs_decode(encoded) == data
    assert cobs_decode(b"\x05ab") is None and cobs_decode(b"\x02\x00") is None


def _text(sock: socket.socket, command: bytes, until: bytes = b"m-ready\r\n") -> bytes:
    sock.sendall(command)
    data = b""
    deadline = time.monotonic() + 5
    while not data.endswith(until) and time.monotonic() < deadline:
        data += sock.recv(65536)
    return data


def test_eembc_text_protocol(firmware):
    """The runner's commands, through stdin/stdout as a runner would see them."""
    x = np.arange(-500, 500).astype(np.int8)
    commands = (
        b"name%profile%db load 1000%"
        + b"".join(
            b"db " + x[i : i + 100].tobytes().hex().encode() + b"%" for i in range(0, 1000, 100)
        )
        + b"infer 3 1%results%db 0g%infer 0%bogus%"
    )
    result = subprocess.run(
        [str(firmware("host", sanitize=True))], input=commands, capture_output=True, timeout=20
    )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert out.startswith("m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n")
    assert "m-name-dut-[tvmq host]\r\n" in out and "m-model-[tvmq-test-model]" in out
    assert "m-[Expecting 1000 bytes]" in out and out.count("m-load-done") == 1
    assert re.search(r"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-3\r\nm-lap-us-\d+", out)
    y = expected_outputs(x)[0]
    assert out.count(f"m-results-[{','.join(map(str, y))}]") == 2
    assert "e-[db: odd hex length or more bytes than loaded]" in out
    assert "e-[infer: expected" in out
    assert "e-[Unknown command: bogus]" in out


def _valid(command: int, payload: bytes, session: int, sequence: int) -> bytes:
    return Frame(command, sequence, session, payload).encode()


@st.composite
def hostile_input(draw, session: int) -> bytes:
    """Random bytes, mutated frames, and well-formed frames with hostile fields."""
    kind = draw(st.sampled_from(["random", "mutated", "semantic", "oversized"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "oversized":
        return b"\0" + draw(st.binary(min_size=1, max_size=8)).replace(b"\0", b"\1") * 400 + b"\0"
    command = draw(st.sampled_from([1, 2, 3, 4, 5, 0x7E, 0xFF, draw(st.integers(0, 255))]))
    if command == Command.RESET:
        command = Command.READ_TIMING
    payload = draw(st.binary(max_size=40))
    if command == Command.RUN and len(payload) == 8:
        payload = struct.pack("<II", draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    frame = _valid(command, payload, session, draw(st.integers(0, 0xFFFF)))
    if kind == "semantic":
        return frame
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "drop":
            del data[at]
        else:
            data.insert(at, draw(st.integers(0, 255)))
    return bytes(data)


def test_fuzzed_frames_never_crash_the_firmware(host_board):
    process, url = host_board
    with Device(url, timeout=1.0) as device:
        device.hello()
        started = time.monotonic()

        @settings(
            max_examples=400,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def fuzz(data):
            device._port.write(data.draw(hostile_input(device._session)))
            # Whatever came before, the next good frame is answered correctly.
            info = device.hello()
            assert info.model == "tvmq-test-model"
            assert process.poll() is None

        fuzz()
        assert time.monotonic() - started < 60
    print(f"\nlink counts after fuzzing: {dict(device.counts)}")


def test_damaged_frames_are_never_acted_on(host_board):
    """A WRITE_INPUT with one bit flipped anywhere is NAKed and changes nothing."""
    _, url = host_board
    with Device(url) as device:
        device.hello()
        device.write_input(0, np.zeros(1000, np.int8))
        payload = struct.pack("<BI", 0, 0) + bytes([5]) * 20
        good = _valid(Command.WRITE_INPUT, payload, device._session, 7)[1:-1]
        for bit in range(0, len(good) * 8, 3):
            damaged = bytearray(good)
            damaged[bit // 8] ^= 1 << (bit % 8)
            if 0 in damaged:
                continue
            device._port.write(b"\0" + bytes(damaged) + b"\0")
        device._port.write(b"\0\x03\x01\x02\0")  # a truncated one too
        time.sleep(0.2)
        device.run(1)
        y = device.read_output(0)
        assert (y == -7).all()  # inputs still all zero: no damaged write was applied
        assert Frame.decode(good).command == Command.WRITE_INPUT
        assert HEADER.size == 10 and Status.BAD_FRAME == 1
        assert zlib.crc32(b"123456789") == 0xCBF43926  # the CRC the firmware uses
