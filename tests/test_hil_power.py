"""The power-monitor drivers against simulated monitors that speak the real byte
protocols over a pty and replay a known current trace: the energy per
inference equals the one computed here from the trace itself."""

from __future__ import annotations

import os
import threading
import time
import tty

import numpy as np
import pytest

from tvmq.errors import TvmqError
from tvmq.hil.power import LPM01A, PPK2, Trace, energy_per_inference, open_monitor


class Simulator:
    """The monitor's side of a pty: ``respond(data) -> bytes`` answers what the driver sends."""

    def __init__(self, respond):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.respond = respond
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            self.received += data
            for reply in self.respond(data):
                os.write(self.master, reply)

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)


def lpm01a_simulator(acquisition: bytes) -> Simulator:
    """A simulated LPM01A: acknowledges each ASCII command, sends `acquisition` after
    `start` and the completion line on `stop`."""
    pending = bytearray()

    def respond(data: bytes):
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            command = line.decode().strip()
            if command == "stop":
                yield b"PowerShield > Acquisition completed\r\n"
                continue
            yield f"PowerShield > ack {command}\r\n".encode()
            if command == "start":
                yield acquisition

    return Simulator(respond)


VOLTAGE = 3.3


def test_lpm01a_energy_over_the_triggered_window():
    # After the D7 trigger: 12 mA for 26 samples at 10 kHz, then 1 mA.
    samples = ["1200-05"] * 26 + ["1000-06"] * 20
    simulator = lpm01a_simulator(
        b"TimeStamp: 000s 000ms, buff 00%\r\n" + "".join(f"{s}\r\n" for s in samples).encode()
    )
    try:
        with LPM01A(simulator.path, voltage=VOLTAGE, rate=10_000) as monitor:
            monitor.start()
            trace = monitor.stop()
        sent = simulator.received.decode()
        for command in ("htc", "format ascii_dec", "freq 10k", "volt 3300m", "trigsrc d7"):
            assert f"{command}\n" in sent
    finally:
        simulator.close()
    # RUN of 5 inferences: 306,000 ticks at 120 MHz = 2.55 ms from the trigger.
    window = 306_000 / 120e6
    expected = VOLTAGE * 0.012 * window / 5
    assert energy_per_inference(trace, 5, window) == pytest.approx(expected, rel=1e-12)


def _ppk2_metadata() -> bytes:
    rows = {"Calibrated": 0, "HW": 9173, "mode": 2, "IA": 56}
    for r, resistor in enumerate((1031.64, 101.65, 10.15, 0.94, 0.043)):
        rows |= {f"R{r}": resistor, f"GS{r}": 0, f"GI{r}": 1, f"O{r}": 0}
        rows |= {f"S{r}": 0, f"I{r}": 0, f"UG{r}": 1}
    return ("\n".join(f"{k}: {v}" for k, v in rows.items()) + "\nEND\n").encode()


def test_ppk2_energy_between_timestamp_edges():
    n_active, idle, active = 2_345, 0.001, 0.005
    current = np.r_[np.full(100, idle), np.full(n_active, active), np.full(300, idle)]
    d0 = np.ones(len(current), dtype=np.uint32)
    d0[[100, 101, 100 + n_active, 101 + n_active]] = 0  # two falling-edge pulses
    step = 1.8 / 163840 / 101.65  # amperes per ADC unit in range 1
    codes = np.round(current / step / 4).astype(np.uint32)
    raw = (codes | (1 << 14) | (d0 << 24)).astype("<u4").tobytes()

    def respond(data: bytes):
        for byte in data:
            if byte == 0x19:
                yield _ppk2_metadata()
            elif byte == 0x06:
                yield raw

    simulator = Simulator(respond)
    try:
        with PPK2(simulator.path, voltage=VOLTAGE) as monitor:
            monitor.start()
            time.sleep(0.2)
            trace = monitor.stop()
        sent = bytes(simulator.received)
        assert sent.startswith(bytes([0x19, 0x11, 0x01, 0x0D, 3 + 2532 // 256, 2532 % 256]))
    finally:
        simulator.close()
    assert list(trace.marks) == [100, 100 + n_active]
    expected = VOLTAGE * active * n_active / 100_000 / 10
    assert energy_per_inference(trace, 10) == pytest.approx(expected, rel=1e-3)


def test_trace_integration_weights_partial_samples():
    trace = Trace(np.array([1.0, 2.0, 4.0]), 10.0, 2.0, np.array([], int))
    assert trace.energy(0.05, 0.25) == pytest.approx(2.0 * (0.05 * 1 + 0.1 * 2 + 0.05 * 4))
    with pytest.raises(TvmqError, match="trace ends"):
        trace.energy(0, 1.0)
    with pytest.raises(TvmqError, match="no timestamp marks"):
        energy_per_inference(trace, 1)


def test_monitor_spec_mistakes_are_clear():
    with pytest.raises(TvmqError, match="expected lpm01a:URL or ppk2:URL"):
        open_monitor("joulescope:/dev/ttyACM0")
    with pytest.raises(TvmqError, match="cannot open power monitor"):
        open_monitor("ppk2:/dev/does-not-exist")
