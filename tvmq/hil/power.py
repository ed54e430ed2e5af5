"""Power monitors: energy per inference over the device's timestamp window.

The harness pulses its timestamp pin (a falling edge held >= 1 us, as in
EEMBC's energy mode) right before the first and right after the last timed
inference of a RUN. Two drivers, both over pySerial URLs:

``LPM01A``: ST X-NUCLEO-LPM01A (PowerShield), ASCII commands as in its firmware's
``help`` (htc, volt, freq, acqtime, trigsrc, format, output, start, stop),
samples in ``ascii_dec`` format ("6409-07" = 6409e-7 A). It has no logic input
in its data stream, so acquisition is triggered by the timestamp pin on its D7
(``trigsrc d7``) and the window is the device's own timing from that edge.

``PPK2``: Nordic Power Profiler Kit II, the binary commands of Nordic's
pc-nrfconnect-ppk (as mirrored by IRNAS/ppk2-api-python): 0x19 metadata, 0x11
power mode, 0x0D regulator, 0x06/0x07 start/stop; 4-byte samples at 100 kHz
(bits 0-13 ADC, 14-16 range, 24-31 logic inputs). The timestamp pin goes to
logic input D0 and the window lies between its first and last falling edges.
The current formula is Nordic's without its display-only spike filter.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import serial

from tvmq.errors import TvmqError


@dataclass(frozen=True)
class Trace:
    """Samples held constant over each period; ``marks`` are falling-edge sample indices."""

    current: np.ndarray  # amperes
    rate: float  # samples per second
    voltage: float  # volts
    marks: np.ndarray

    def energy(self, start: float, stop: float) -> float:
        """Joules between two times (seconds from the first sample), partial samples weighted."""
        edges = np.arange(len(self.current) + 1) / self.rate
        overlap = np.clip(np.minimum(edges[1:], stop) - np.maximum(edges[:-1], start), 0, None)
        if stop > edges[-1] + 1 / self.rate:
            raise TvmqError(f"the power trace ends at {edges[-1]:.6f} s, before {stop:.6f} s")
        return float(self.voltage * np.dot(self.current, overlap))


def energy_per_inference(trace: Trace, runs: int, window: float | None = None) -> float:
    """Joules per inference: between the first and last timestamp marks when the
    trace has them, else over ``window`` seconds from the start (a triggered trace)."""
    if len(trace.marks) >= 2:
        start, stop = trace.marks[0] / trace.rate, trace.marks[-1] / trace.rate
    elif window is not None:
        start, stop = 0.0, window
    else:
        raise TvmqError("the power trace has no timestamp marks and no window was given")
    return trace.energy(start, stop) / runs


class PowerMonitor(ABC):
    """Acquire between ``start()`` and ``stop()``."""

    def __init__(self, url: str, baudrate: int):
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as error:
            raise TvmqError(f"cannot open power monitor {url}: {error}") from error
        self.url = url

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> Trace: ...

    def close(self) -> None:
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Collector:
    """Reads a port in a thread until stopped."""

    def __init__(self, port: serial.SerialBase):
        self.port, self.data, self.running = port, bytearray(), True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            self.data += self.port.read(65536) or b""

    def finish(self) -> bytes:
        self.running = False
        self.thread.join()
        return bytes(self.data)


class LPM01A(PowerMonitor):
    """ST X-NUCLEO-LPM01A in ``ascii_dec`` current mode, triggered by D7."""

    SAMPLE = re.compile(rb"^(\d{4})([+-]\d{2})$")

    def __init__(self, url: str, *, voltage: float = 3.3, rate: int = 10_000):
        super().__init__(url, 3_686_400)
        if rate not in (10_000, 5_000, 2_000, 1_000, 500, 200, 100):
            raise TvmqError(f"LPM01A ascii_dec rates are 100 Hz to 10 kHz, got {rate}")
        self.voltage, self.rate = voltage, rate
        self._collector: _Collector | None = None
        for command in (
            "htc",
            "format ascii_dec",
            "output current",
            f"freq {rate // 1000}k" if rate >= 1000 else f"freq {rate}",
            "acqtime 0",
            f"volt {round(voltage * 1000)}m",
            "trigsrc d7",
        ):
            self._command(command)

    def _command(self, command: str) -> None:
        self.port.write(command.encode() + b"\n")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            line = self.port.readline().decode(errors="replace")
            line = line.replace("PowerShield > ", "").strip()
            if line.startswith("ack") and command.split()[0] in line:
                return
            if line.startswith("error"):
                raise TvmqError(f"LPM01A refused '{command}': {line}")
        raise TvmqError(f"no answer from the LPM01A at {self.url} to '{command}'")

    def start(self) -> None:
        self._command("start")
        self._collector = _Collector(self.port)

    def stop(self) -> Trace:
        if self._collector is None:
            raise TvmqError("LPM01A: stop() before start()")
        self.port.write(b"stop\n")
        deadline = time.monotonic() + 5
        while b"Acquisition completed" not in self._collector.data:
            if time.monotonic() > deadline:
                self._collector.finish()
                raise TvmqError(f"the LPM01A at {self.url} did not complete its acquisition")
            time.sleep(0.01)
        data, self._collector = self._collector.finish(), None
        current = []
        for line in data.split(b"\n"):
            match = self.SAMPLE.match(line.replace(b"PowerShield > ", b"").strip())
            if match:
                current.append(int(match.group(1)) * 10.0 ** int(match.group(2)))
        return Trace(np.array(current), float(self.rate), self.voltage, np.array([], int))


class PPK2(PowerMonitor):
    """Nordic PPK2 as an ampere meter; ``voltage`` is the supply of the board under test."""

    RATE = 100_000.0
    ADC_MULT = 1.8 / 163840

    def __init__(self, url: str, *, voltage: float = 3.3):
        super().__init__(url, 115200)
        self.voltage = voltage
        self.modifiers = self._metadata()
        millivolts = round(voltage * 1000)
        offset = millivolts - 800 + 32  # Nordic's regulator code: 800 mV is (3, 32)
        self.port.write(bytes([0x11, 0x01]))  # ampere-meter mode
        self.port.write(bytes([0x0D, 3 + offset // 256, offset % 256]))
        self._collector: _Collector | None = None

    def _metadata(self) -> dict[str, float]:
        self.port.reset_input_buffer()
        self.port.write(bytes([0x19]))
        text, deadline = b"", time.monotonic() + 3
        while b"END" not in text:
            if time.monotonic() > deadline:
                raise TvmqError(f"no metadata from the PPK2 at {self.url}")
            text += self.port.read(4096) or b""
        values = {}
        for line in text.decode(errors="replace").splitlines():
            key, _, value = line.partition(": ")
            try:
                values[key.strip()] = float(value)
            except ValueError:
                continue
        needed = [f"{k}{r}" for k in ("R", "GS", "GI", "O", "S", "I", "UG") for r in range(5)]
        missing = [k for k in needed if k not in values]
        if missing:
            raise TvmqError(f"PPK2 metadata lacks {', '.join(missing)}")
        return values

    def current(self, raw: np.ndarray) -> np.ndarray:
        """Amperes from raw 32-bit samples (Nordic's formula, per range)."""
        adc = (raw & 0x3FFF).astype(np.float64) * 4
        rng = np.minimum((raw >> 14) & 0x7, 4)
        m = {k: np.array([self.modifiers[f"{k}{r}"] for r in range(5)])[rng] for k in
             ("R", "GS", "GI", "O", "S", "I", "UG")}  # fmt: skip
        plain = (adc - m["O"]) * (self.ADC_MULT / m["R"])
        return m["UG"] * (plain * (m["GS"] * plain + m["GI"]) + m["S"] * self.voltage + m["I"])

    def start(self) -> None:
        self.port.reset_input_buffer()
        self.port.write(bytes([0x06]))
        self._collector = _Collector(self.port)

    def stop(self) -> Trace:
        if self._collector is None:
            raise TvmqError("PPK2: stop() before start()")
        self.port.write(bytes([0x07]))
        time.sleep(0.05)
        data, self._collector = self._collector.finish(), None
        raw = np.frombuffer(data[: len(data) // 4 * 4], dtype="<u4")
        d0 = (raw >> 24) & 1
        falling = np.flatnonzero((d0[:-1] == 1) & (d0[1:] == 0)) + 1
        return Trace(self.current(raw), self.RATE, self.voltage, falling)


def open_monitor(spec: str, voltage: float = 3.3) -> PowerMonitor:
    """``lpm01a:URL`` or ``ppk2:URL`` (any pySerial URL)."""
    kind, _, url = spec.partition(":")
    drivers = {"lpm01a": LPM01A, "ppk2": PPK2}
    if kind not in drivers or not url:
        raise TvmqError(f"power monitor '{spec}': expected lpm01a:URL or ppk2:URL")
    return drivers[kind](url, voltage=voltage)
