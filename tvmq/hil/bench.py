"""``measure``: latency (and energy) of a firmware on an emulated or real board.

On an emulated target QEMU runs under -icount, so ticks convert exactly into
instructions; the time "at the real board's clock" then assumes one instruction
per cycle at the ``real_clock_hz`` of the board the target stands for (an
estimate: real cores stall on memory and issue some instructions in pairs). On a
real board (``device_url``, already flashed, e.g. with pyOCD) ticks are cycles.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tvmq.errors import TvmqError
from tvmq.hil.device import DTYPES, BoardResetError, Device, Timing
from tvmq.hil.emulator import Emulator
from tvmq.hil.power import energy_per_inference, open_monitor
from tvmq.targets import Target, load_target


def _random_inputs(info) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for spec in info.inputs:
        dtype = np.dtype(DTYPES.get(spec.dtype, np.uint8))
        count = spec.bytes // dtype.itemsize
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(count).astype(dtype))
        else:
            info_ = np.iinfo(dtype)
            arrays.append(rng.integers(info_.min, info_.max, count, dtype=dtype, endpoint=True))
    return arrays


def _stats(values: list[float]) -> dict[str, float]:
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
    }


def _timed_run(
    device: Device, inputs: list[np.ndarray], runs: int, monitor, tick_hz: int
) -> tuple[Timing, float | None]:
    """One timed RUN (and the energy per inference, with a monitor). A board reset
    during it loses the session and the inputs: they are set up again (a new
    session, one inference) and the RUN repeated, at most ``device.tries`` times."""
    for _ in range(device.tries):
        if monitor:
            monitor.start()
        try:
            timing = device.run(runs)
        except BoardResetError:
            if monitor:
                monitor.stop()
            device.counts["restarted_transactions"] += 1
            device.info = None
            device.infer(inputs, 1)
            continue
        if monitor:
            return timing, energy_per_inference(monitor.stop(), runs, timing.total / tick_hz)
        return timing, None
    raise TvmqError(f"{device.url}: the board reset {device.tries} times during timed runs")


def measure_on(
    device: Device,
    target: Target,
    emulated: bool,
    power_url: str | None,
    runs: int,
    warmup: int,
    repeats: int,
    inputs: list[np.ndarray] | None,
    voltage: float,
    progress: bool,
) -> dict:
    """``measure`` on a device already open (also what ``tvmq ci`` measures with)."""
    info = device.hello()
    inputs = inputs if inputs is not None else _random_inputs(info)
    outputs, _ = device.infer(inputs, 1, warmup)
    monitor = open_monitor(power_url, voltage) if power_url else None
    latencies, energies = [], []
    try:
        for _ in tqdm(range(repeats), desc=f"{info.model} on {info.board}", disable=not progress):
            timing, energy = _timed_run(device, inputs, runs, monitor, info.tick_hz)
            latencies.append(timing.mean)
            if energy is not None:
                energies.append(energy)
    finally:
        if monitor:
            monitor.close()
    ticks = _stats(latencies)
    result = {
        "board": info.board,
        "model": info.model,
        "build_id": info.build_id,
        "target": target.name,
        "tick_hz": info.tick_hz,
        "runs": runs,
        "warmup": warmup,
        "repeats": repeats,
        "latency_ticks": ticks,
        "outputs": [o.tolist() for o in outputs],
        "link": dict(device.counts),
    }
    if emulated:
        result["instructions"] = round(ticks["median"] * 1e9 / info.tick_hz)
        clock = target.board.get("real_clock_hz")
        if clock:
            result["real_clock_hz"] = clock
            result["latency_ms_at_real_clock"] = result["instructions"] / clock * 1e3
    else:
        result["latency_ms"] = ticks["median"] / info.tick_hz * 1e3
    if energies:
        result["energy_uj"] = {k: v * 1e6 for k, v in _stats(energies).items()}
    return result


def measure(
    firmware_elf: str | Path,
    target: str | Path | Target,
    device_url: str | None = None,
    power_url: str | None = None,
    runs: int = 10,
    warmup: int = 1,
    inputs: list[np.ndarray] | None = None,
    *,
    repeats: int = 5,
    voltage: float = 3.3,
    progress: bool = True,
) -> dict:
    """Median and spread over ``repeats`` RUNs of ``runs`` inferences each.

    Without ``device_url`` the target must be emulated and QEMU runs the ELF;
    with it, the board at that pySerial URL must already run this firmware.
    ``power_url`` is ``lpm01a:URL`` or ``ppk2:URL``.
    """
    target = target if isinstance(target, Target) else load_target(target)
    if runs < 1 or repeats < 1 or warmup < 0:
        raise TvmqError("runs and repeats must be at least 1, warmup at least 0")
    args = (power_url, runs, warmup, repeats, inputs, voltage, progress)
    if device_url is not None:
        with Device(device_url) as device:
            return measure_on(device, target, False, *args)
    with Emulator(firmware_elf, target) as emulator, Device(emulator.url) as device:
        return measure_on(device, target, True, *args)
