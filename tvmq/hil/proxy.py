"""A TCP proxy that damages a serial link on purpose, for tests.

It sits between a ``Device`` and a board's TCP serial port (QEMU, or the host
board) and drops, corrupts (one bit), duplicates, truncates or delays the byte
chunks it forwards, with rates given per byte (so that what a frame suffers
does not depend on how TCP happens to split it), from a seeded generator. It
can also reset the board (a callable, e.g. ``Emulator.reset``) a given time
after forwarding the Nth host-to-board chunk, to hit a RUN in progress, or in
place of forwarding it: the request is lost with the reset, so its reply can
only be missed by a timeout, whatever the machine's load.
``counts`` tallies every fault.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Faults:
    """The rate per forwarded byte of each fault, and when to reset the board."""

    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    truncate: float = 0.0
    delay: float = 0.0
    max_delay: float = 0.05
    reset_after_chunks: frozenset[int] = field(default_factory=frozenset)
    reset_delay: float = 0.0
    reset_instead_of_chunks: frozenset[int] = field(default_factory=frozenset)


class FaultProxy:
    """``with FaultProxy(("127.0.0.1", port), Faults(...), seed=1) as proxy: Device(proxy.url)``."""

    def __init__(
        self,
        upstream: tuple[str, int],
        faults: Faults,
        *,
        seed: int = 0,
        reset: Callable[[], None] | None = None,
    ):
        self.upstream, self.faults, self.reset = upstream, faults, reset
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._chunks_up = 0

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "no faults"

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        board = socket.create_connection(self.upstream)
        for s in (client, board):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sockets += [client, board]
        for source, sink, up in ((client, board, True), (board, client, False)):
            thread = threading.Thread(target=self._pump, args=(source, sink, up), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _chance(self, rate: float, n: int) -> bool:
        """Whether a fault with this per-byte rate hits a chunk of n bytes."""
        with self._lock:
            return self.random.random() < 1 - (1 - rate) ** n

    def _damage(self, data: bytes, direction: str) -> list[bytes]:
        """What to forward for one chunk: nothing, or one or two (damaged) copies."""
        f = self.faults
        if self._chance(f.drop, len(data)):
            self.counts[f"dropped {direction}"] += 1
            return []
        if len(data) > 1 and self._chance(f.truncate, len(data)):
            self.counts[f"truncated {direction}"] += 1
            with self._lock:
                data = data[: self.random.randrange(1, len(data))]
        if self._chance(f.corrupt, len(data)):
            self.counts[f"corrupted {direction}"] += 1
            with self._lock:
                at, bit = self.random.randrange(len(data)), self.random.randrange(8)
            data = data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :]
        if self._chance(f.delay, len(data)):
            self.counts[f"delayed {direction}"] += 1
            with self._lock:
                pause = self.random.uniform(0, f.max_delay)
            time.sleep(pause)
        if self._chance(f.duplicate, len(data)):
            self.counts[f"duplicated {direction}"] += 1
            return [data, data]
        return [data]

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        direction = "to board" if up else "to host"
        while not self._stopping.is_set():
            try:
                data = source.recv(4096)
                if not data:
                    break
                if up:
                    self._chunks_up += 1
                if up and self._chunks_up in self.faults.reset_instead_of_chunks and self.reset:
                    self._reset()
                    continue
                for piece in self._damage(data, direction):
                    sink.sendall(piece)
            except OSError:
                break
            if up and self._chunks_up in self.faults.reset_after_chunks and self.reset:
                threading.Timer(self.faults.reset_delay, self._reset).start()
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _reset(self) -> None:
        self.counts["board resets"] += 1
        self.reset()
