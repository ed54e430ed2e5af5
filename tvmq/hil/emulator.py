"""QEMU running a firmware, its UART on a loopback TCP port, as a context manager.

``-icount shift=0`` makes one instruction one nanosecond of virtual time, so the
on-device tick counts are instruction counts; ``sleep=off`` makes the harness's
wait for a SysTick interrupt end at an exact virtual time, so that they repeat
to the tick. The QEMU process never outlives
its owner: it is stopped by process group on exit from the ``with`` block
(exceptions included), by an atexit hook, and, on Linux, by the kernel when the
Python process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tvmq.errors import TvmqError
from tvmq.targets import Target, load_target

_LIVE: set[Emulator] = set()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes away (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Emulator:
    """``with Emulator(elf, "qemu-cortex-m4") as emu: Device(emu.url)``."""

    def __init__(self, firmware: str | Path, target: str | Path | Target, *, start_timeout=20.0):
        self.firmware = Path(firmware)
        self.target = target if isinstance(target, Target) else load_target(target)
        board = self.target.board
        if not self.target.is_emulated:
            raise TvmqError(
                f"target {self.target.name} is not emulated: give the URL of the flashed board"
            )
        self.qemu = shutil.which(board.get("emulator", "qemu-system-arm"))
        if self.qemu is None:
            raise TvmqError(f"{board.get('emulator', 'qemu-system-arm')} is not installed")
        if not self.firmware.is_file():
            raise TvmqError(f"{self.firmware}: no such firmware")
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        assert self._dir is not None
        return [
            self.qemu, "-M", self.target.board["machine"], "-nographic", "-monitor", "none",
            "-kernel", str(self.firmware), "-icount", "shift=0,sleep=off",
            "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on",
            "-semihosting-config", "enable=on,target=native",
            "-qmp", f"unix:{self._dir.name}/qmp.sock,server=on,wait=off",
        ]  # fmt: skip

    def start(self) -> Emulator:
        """Starts QEMU and returns once its serial port listens (the board waits for us)."""
        self._dir = tempfile.TemporaryDirectory(prefix="tvmq-qemu-")
        log = Path(self._dir.name) / "qemu.log"
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            with open(log, "wb") as output:
                self.process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=output,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent,
                )  # fmt: skip
            _LIVE.add(self)
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if b"waiting for connection" in log.read_bytes():
                    return self
                time.sleep(0.02)
            text = log.read_bytes().decode(errors="replace").strip()
            self.stop()
            if "in use" not in text:
                raise TvmqError(f"QEMU did not start: {text or 'no output'}")
        raise TvmqError("QEMU could not get a free TCP port in 3 tries")

    def reset(self) -> None:
        """A board reset (QMP system_reset): the firmware restarts, the link stays up."""
        assert self._dir is not None
        with socket.socket(socket.AF_UNIX) as qmp:
            qmp.settimeout(5)
            qmp.connect(f"{self._dir.name}/qmp.sock")
            stream = qmp.makefile("rwb")
            stream.readline()  # the greeting
            for command in ("qmp_capabilities", "system_reset"):
                stream.write(json.dumps({"execute": command}).encode() + b"\n")
                stream.flush()
                while b'"return"' not in (line := stream.readline()):
                    if not line:
                        raise TvmqError("QEMU closed its QMP socket")

    def stop(self) -> None:
        """Ends QEMU and its process group; idempotent."""
        process, self.process = self.process, None
        _LIVE.discard(self)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        elif process is not None:
            process.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for emulator in list(_LIVE):
        emulator.stop()
