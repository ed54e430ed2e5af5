"""The link breaks on purpose (drops, bit flips, truncations, duplicates, delays,
board resets mid-run, through tvmq.hil.proxy): every inference either returns
exactly the clean result, outputs and tick counts, or fails with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from tests import hil_fixtures
from tests.hil_fixtures import expected_outputs, need
from tvmq.errors import TvmqError
from tvmq.hil.device import Device, Timing
from tvmq.hil.emulator import Emulator
from tvmq.hil.proxy import FaultProxy, Faults

firmware = hil_fixtures.firmware


@pytest.fixture
def emulator(firmware):
    need("qemu-system-arm")
    with Emulator(firmware("mps2-an386"), "qemu-cortex-m4") as emulator:
        yield emulator


def _upstream(emulator: Emulator) -> tuple[str, int]:
    return ("127.0.0.1", emulator.port)


def test_damaged_link_gives_exact_results_or_nothing(emulator):
    faults = Faults(drop=2e-4, corrupt=2e-4, duplicate=1e-4, truncate=1e-4, delay=2e-4)
    rng = np.random.default_rng(3)
    clean = None
    with FaultProxy(_upstream(emulator), faults, seed=11) as proxy:
        with Device(proxy.url, timeout=0.3, tries=12, seconds_per_inference=0.01) as device:
            for _ in range(16):
                x = rng.integers(-128, 128, 1000, dtype=np.int8)
                outputs, timing = device.infer([x], runs=3, warmup=1)
                for got, want in zip(outputs, expected_outputs(x), strict=True):
                    np.testing.assert_array_equal(got, want)
                clean = clean or timing
                assert timing == clean  # the test model's time does not depend on x
            recoveries = device.counts
        print(f"\ninjected: {proxy.summary()}\nrecovered: {dict(recoveries)}")
    injected = sum(proxy.counts.values())
    assert injected >= 10, proxy.summary()
    assert recoveries["retries"] + recoveries["stale"] >= 5


def _timing_without_faults(emulator, x: np.ndarray) -> Timing:
    """The timing of 1000 runs over a direct connection: what a recovered run must
    report."""
    with Device(f"socket://127.0.0.1:{emulator.port}") as direct:
        return direct.infer([x], runs=1000)[1]


def test_board_reset_at_a_run_restarts_the_transaction(emulator):
    """The board resets as the RUN (the third chunk: HELLO, WRITE_INPUT, RUN) reaches
    it: no reply, then NO_SESSION, and the whole transaction again from HELLO. (A reset
    timed to land during the 40 ms run missed it on a loaded machine.)"""
    x = np.arange(1000).astype(np.int8)
    clean = _timing_without_faults(emulator, x)
    # A second client connection: the proxy reconnects to QEMU's serial port.
    faults = Faults(reset_instead_of_chunks=frozenset({3}))
    with (
        FaultProxy(_upstream(emulator), faults, reset=emulator.reset) as proxy,
        Device(proxy.url, timeout=0.5, seconds_per_inference=0.002) as device,
    ):
        outputs, timing = device.infer([x], runs=1000)
        recoveries = device.counts
    print(f"\ninjected: {proxy.summary()}\nrecovered: {dict(recoveries)}")
    assert proxy.counts["board resets"] == 1
    assert recoveries["restarted_transactions"] == 1
    np.testing.assert_array_equal(outputs[0], expected_outputs(x)[0])
    assert timing == clean


def test_a_board_that_keeps_resetting_is_a_clear_error(emulator):
    faults = Faults(reset_after_chunks=frozenset(range(1, 100, 3)), reset_delay=0.0)
    with (
        FaultProxy(_upstream(emulator), faults, reset=emulator.reset) as proxy,
        Device(proxy.url, timeout=0.3, tries=2, seconds_per_inference=0.01) as device,
        pytest.raises(TvmqError, match=r"reset|no answer"),
    ):
        for _ in range(10):
            device.infer([np.zeros(1000, np.int8)], runs=50)
    print(f"\ninjected: {proxy.summary()}\nrecovered: {dict(device.counts)}")


def test_a_reset_that_loses_the_first_timed_run_costs_a_measured_timeout(emulator):
    """A fresh session knows no time per inference: a RUN of one measures it before
    the timed RUN, whose timeout (and so the wait for a reset that loses it) follows."""
    x = np.arange(1000).astype(np.int8)
    clean = _timing_without_faults(emulator, x)
    # Chunks: HELLO, WRITE_INPUT, the measuring RUN of one, then the timed RUN. The
    # board resets in its place: a reset timed to land during the run (40 ms of
    # QEMU) can come before the board reads the request, which it then answers
    # at once with NO_SESSION, and no timeout is measured.
    faults = Faults(reset_instead_of_chunks=frozenset({4}))
    with (
        FaultProxy(_upstream(emulator), faults, reset=emulator.reset) as proxy,
        Device(proxy.url, timeout=0.5) as device,
    ):
        assert device.run_timeout(1000) > 1000  # a guess: 1 s per inference
        outputs, timing = device.infer([x], runs=1000)
        recoveries = device.counts
        measured_timeout = device.run_timeout(1000)
    print(f"\ninjected: {proxy.summary()}\nrecovered: {dict(recoveries)}")
    assert proxy.counts["board resets"] == 1
    assert recoveries["restarted_transactions"] == 1 and recoveries["timeouts"] == 1
    np.testing.assert_array_equal(outputs[0], expected_outputs(x)[0])
    assert timing == clean
    assert measured_timeout < 120  # not the 3000 s the guess would have waited


def test_reset_during_a_bench_run_is_retried(emulator):
    from tvmq.hil.bench import measure_on

    x = np.arange(1000).astype(np.int8)
    target = emulator.target
    with Device(f"socket://127.0.0.1:{emulator.port}") as direct:
        clean = measure_on(direct, target, True, None, 1000, 0, 2, [x], 3.3, False)
    # Chunks: HELLO, WRITE_INPUT, RUN of one, two READ_OUTPUTs, the first timed RUN,
    # in whose place the board resets (a timed reset could land after the whole
    # measurement on a loaded machine: nothing to recover).
    faults = Faults(reset_instead_of_chunks=frozenset({6}))
    with (
        FaultProxy(_upstream(emulator), faults, reset=emulator.reset) as proxy,
        Device(proxy.url, timeout=0.5) as device,
    ):
        result = measure_on(device, target, True, None, 1000, 0, 2, [x], 3.3, False)
    print(f"\ninjected: {proxy.summary()}\nrecovered: {result['link']}")
    assert proxy.counts["board resets"] == 1
    assert result["link"]["restarted_transactions"] == 1
    assert result["instructions"] == clean["instructions"]
    assert result["latency_ticks"] == clean["latency_ticks"]
    assert result["outputs"] == [o.tolist() for o in expected_outputs(x)]
