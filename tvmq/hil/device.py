"""A board running the harness, over any pySerial URL.

Every request carries a sequence number and the session set by HELLO. The
harness keeps its last reply and answers a repeated request (same sequence,
session and CRC) from it without executing it again, so every command is
retried safely, RUN included: a RUN whose reply was lost is answered from the
cache, never run twice. What the cache cannot cover is a board reset; then the
session is gone, the board answers NO_SESSION, and ``Device`` raises
``BoardResetError`` instead of retrying: the inputs it held are lost too.
``infer`` turns that into a restart of the whole write-run-read transaction.

A RUN's reply comes after its inferences, so its timeout is made of the time
per inference measured on this link: until one was measured, a RUN of several
inferences is preceded by a RUN of one (a warm-up) to measure it, so that a
reset during the first timed RUN costs seconds, not a guess times the runs.
A request that times out is sent again with twice the wait, at most ``tries``
times: a loaded host (an emulator starved of CPU) gets time, a dead board is
still named within a bounded time.
"""

from __future__ import annotations

import os
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
import serial

from tvmq.errors import TvmqError
from tvmq.hil.protocol import MAX_PAYLOAD, REPLY, Command, Frame, Reader, Status
from tvmq.scratch import raise_if_stopped

DTYPES = {
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
    "float32": np.float32,
}
TIMING = struct.Struct("<iIQQQ")
_DAMAGED, _TIMEOUT = "damaged", "timeout"
FIRST_INFERENCE_S = 1.0  # what one inference may take before any was measured
RUN_MARGIN = 3  # a RUN may take this many times its measured time per inference
MAX_DOUBLINGS = 3  # a retried request waits at most 8 times its timeout


class BoardResetError(TvmqError):
    """The board restarted since HELLO: its inputs and session are gone."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    bytes: int


@dataclass(frozen=True)
class DeviceInfo:
    protocol: int
    tick_hz: int
    max_payload: int
    arena_bytes: int
    board: str
    model: str
    build_id: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


@dataclass(frozen=True)
class Timing:
    """On-device timing of one RUN, in ticks of ``DeviceInfo.tick_hz``."""

    runs: int
    total: int
    min: int
    max: int

    @property
    def mean(self) -> float:
        return self.total / self.runs


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def text(self) -> str:
        n = self.take("B")
        self.at += n
        return self.data[self.at - n : self.at].decode("utf-8", "replace")


def _is_text(chunk: bytes) -> bool:
    """The harness's text-mode lines (its boot banner) before binary mode."""
    return chunk.endswith(b"\r\n") and all(32 <= b < 127 or b in (10, 13) for b in chunk)


class Device:
    """The binary protocol with timeouts, retries and resynchronisation.

    ``counts`` tallies what the link did: retries, timeouts, NAKs, corrupt and
    stale replies, board resets, restarted transactions.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        tries: int = 3,
        baudrate: int = 115200,
        seconds_per_inference: float | None = None,
    ):
        self.url, self.timeout, self.tries, self.baudrate = url, timeout, tries, baudrate
        self.seconds_per_inference = seconds_per_inference
        self.counts: Counter[str] = Counter()
        self.info: DeviceInfo | None = None
        self._port: serial.SerialBase | None = None
        self._reader = Reader()
        self._pending: deque[bytes] = deque()
        self._sequence = int.from_bytes(os.urandom(2), "little")
        self._session = 0

    def open(self) -> Device:
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as error:
            raise TvmqError(f"cannot open {self.url}: {error}") from error
        return self

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def __enter__(self) -> Device:
        return self.open() if self._port is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the commands ---------------------------------------------------------------

    def hello(self) -> DeviceInfo:
        """Starts a new session and reads what the board runs."""
        session = 0
        while session == 0:
            session = int.from_bytes(os.urandom(4), "little")
        self._session = session
        c = _Cursor(self._transact(Command.HELLO, struct.pack("<I", session)))
        protocol, tick_hz, max_payload, arena = c.take("BIII")
        board, model, build_id = c.text(), c.text(), c.text()
        n_in, n_out = c.take("BB")
        tensors = []
        for _ in range(n_in + n_out):
            size, dtype, name = c.take("I"), c.text(), c.text()
            tensors.append(Tensor(name, dtype, size))
        self.info = DeviceInfo(
            protocol,
            tick_hz,
            max_payload,
            arena,
            board,
            model,
            build_id,
            tuple(tensors[:n_in]),
            tuple(tensors[n_in:]),
        )
        return self.info

    def write_input(self, index: int, data: np.ndarray | bytes) -> None:
        spec = self._tensor(self._info().inputs, index, "input")
        if isinstance(data, np.ndarray):
            if data.dtype != DTYPES.get(spec.dtype):
                raise TvmqError(f"input {index} ({spec.name}) is {spec.dtype}, got {data.dtype}")
            data = np.ascontiguousarray(data).tobytes()
        if len(data) != spec.bytes:
            raise TvmqError(
                f"input {index} ({spec.name}) holds {spec.bytes} bytes, got {len(data)}"
            )
        step = self._info().max_payload - 5
        for offset in range(0, len(data), step):
            chunk = data[offset : offset + step]
            self._transact(Command.WRITE_INPUT, struct.pack("<BI", index, offset) + chunk)

    def run(self, runs: int = 1, warmup: int = 0) -> Timing:
        """N timed inferences after W warm-ups; safe to retry (see the module doc)."""
        if runs < 1:
            raise TvmqError(f"runs must be at least 1, got {runs}")
        if self.seconds_per_inference is None and runs + warmup > 1:
            self._run(1, 0)  # measures the time per inference the timeout needs
        return self._run(runs, warmup)

    def run_timeout(self, inferences: int) -> float:
        """How long a RUN of `inferences` may take before it is sent again."""
        each = self.seconds_per_inference
        each = FIRST_INFERENCE_S if each is None else each
        return self.timeout + RUN_MARGIN * each * inferences

    def _run(self, runs: int, warmup: int) -> Timing:
        started = time.monotonic()
        reply = self._transact(
            Command.RUN, struct.pack("<II", runs, warmup), self.run_timeout(runs + warmup)
        )
        self.seconds_per_inference = (time.monotonic() - started) / (runs + warmup)
        return self._timing(reply)

    def read_timing(self) -> Timing:
        return self._timing(self._transact(Command.READ_TIMING, b""))

    def read_output(self, index: int) -> np.ndarray:
        spec = self._tensor(self._info().outputs, index, "output")
        step = self._info().max_payload - 1
        data = b"".join(
            self._transact(
                Command.READ_OUTPUT,
                struct.pack("<BII", index, offset, min(step, spec.bytes - offset)),
            )
            for offset in range(0, spec.bytes, step)
        )
        return np.frombuffer(data, dtype=DTYPES.get(spec.dtype, np.uint8)).copy()

    def reset(self) -> None:
        """Restarts the board; the session ends with it."""
        self._transact(Command.RESET, b"")
        self.info = None

    def infer(
        self, inputs: list[np.ndarray | bytes], runs: int = 1, warmup: int = 0
    ) -> tuple[list[np.ndarray], Timing]:
        """Write the inputs, run, read every output: restarted from HELLO when the board resets."""
        for _ in range(self.tries):
            try:
                info = self.info or self.hello()
                if len(inputs) != len(info.inputs):
                    raise TvmqError(
                        f"model {info.model} has {len(info.inputs)} input(s), got {len(inputs)}"
                    )
                for index, data in enumerate(inputs):
                    self.write_input(index, data)
                timing = self.run(runs, warmup)
                outputs = [self.read_output(i) for i in range(len(info.outputs))]
                return outputs, timing
            except BoardResetError:
                self.info = None
                self.counts["restarted_transactions"] += 1
        raise TvmqError(f"{self.url}: the board reset {self.tries} times during one inference")

    # -- the link -------------------------------------------------------------------

    def _info(self) -> DeviceInfo:
        return self.info or self.hello()

    @staticmethod
    def _tensor(tensors: tuple[Tensor, ...], index: int, kind: str) -> Tensor:
        if not 0 <= index < len(tensors):
            raise TvmqError(f"no {kind} {index}: the model has {len(tensors)} {kind}(s)")
        return tensors[index]

    def _timing(self, reply: bytes) -> Timing:
        _, runs, total, low, high = TIMING.unpack_from(reply)
        return Timing(runs, total, low, high)

    def _transact(self, command: int, payload: bytes, timeout: float | None = None) -> bytes:
        """Send one request and return its reply's data (after the status byte)."""
        if self._port is None:
            self.open()
        if len(payload) > MAX_PAYLOAD:
            raise TvmqError(f"{_name(command)}: payload of {len(payload)} bytes is too long")
        self._sequence = (self._sequence + 1) & 0xFFFF
        request = Frame(command, self._sequence, self._session, payload).encode()
        self._discard_input()  # nothing received so far can answer this request
        # A timeout uses up a try; a NAK or a damaged reply is answered by sending
        # again at once, within a budget: garbage on the line can cause NAKs that
        # were not about this request at all.
        timeouts = damaged = 0
        while timeouts < self.tries and damaged <= 4 * self.tries:
            if timeouts or damaged:
                self.counts["retries"] += 1
            self._port.write(request)
            wait = (timeout or self.timeout) * 2 ** min(timeouts, MAX_DOUBLINGS)
            reply = self._await(command, time.monotonic() + wait)
            if isinstance(reply, Frame):
                return self._check(command, reply)
            if reply == _TIMEOUT:
                timeouts += 1
            else:
                damaged += 1
        tries = timeouts + damaged
        raise TvmqError(f"no answer from {self.url} after {tries} tries ({_name(command)})")

    def _discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as error:
            raise TvmqError(f"{self.url}: link lost ({error})") from error
        self._pending.clear()
        self._reader = Reader()

    def _await(self, command: int, deadline: float) -> Frame | str:
        """The reply to the current request, or why there is none (_DAMAGED, _TIMEOUT)."""
        while True:
            while self._pending:
                chunk = self._pending.popleft()
                frame = Frame.decode(chunk)
                if frame is None:
                    self.counts["text" if _is_text(chunk) else "corrupt"] += 1
                    if not _is_text(chunk):
                        return _DAMAGED
                    continue
                if frame.command == Command.NAK:
                    self.counts["naks"] += 1
                    return _DAMAGED
                if frame.command == Command.FAULT:
                    raise TvmqError(f"{self.url}: the board faulted: {_fault(frame.payload)}")
                if frame.sequence != self._sequence or frame.command != command | REPLY:
                    self.counts["stale"] += 1
                    continue
                return frame
            raise_if_stopped()  # a stop swallowed earlier (inside TVM) ends the wait
            left = deadline - time.monotonic()
            if left <= 0:
                self.counts["timeouts"] += 1
                return _TIMEOUT
            try:
                self._port.timeout = min(left, 0.1)
                data = self._port.read(1)
                if data:  # and whatever else has arrived, without waiting
                    self._port.timeout = 0
                    data += self._port.read(65536)
            except (serial.SerialException, OSError) as error:
                raise TvmqError(f"{self.url}: link lost ({error})") from error
            self._pending.extend(self._reader.feed(data))

    def _check(self, command: int, reply: Frame) -> bytes:
        if not reply.payload:
            raise TvmqError(f"{self.url}: empty reply to {_name(command)}")
        status = reply.payload[0]
        if status == Status.OK:
            return reply.payload[1:]
        if status == Status.NO_SESSION:
            self.counts["board_resets"] += 1
            raise BoardResetError(
                f"{self.url}: the board was reset (no session for {_name(command)})"
            )
        if status == Status.MODEL_FAILED:
            code = TIMING.unpack_from(reply.payload, 1)[0]
            raise TvmqError(f"{self.url}: the model's run() returned {code} on the board")
        name = Status(status).name if status in Status._value2member_map_ else str(status)
        raise TvmqError(f"{self.url}: the board refused {_name(command)}: {name}")


def _name(command: int) -> str:
    return Command(command).name if command in Command._value2member_map_ else f"0x{command:02x}"


def _fault(payload: bytes) -> str:
    c = _Cursor(payload)
    pc, lr, cfsr, address = c.take("IIII")
    return f"{c.text()} at pc=0x{pc:08x} lr=0x{lr:08x} cfsr=0x{cfsr:08x} address=0x{address:08x}"
