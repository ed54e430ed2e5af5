"""``measure`` and ``tvmq bench`` on an emulated board."""

from __future__ import annotations

import json

import pytest

from tests import hil_fixtures
from tests.hil_fixtures import need
from tvmq.cli import main
from tvmq.hil.bench import measure

firmware = hil_fixtures.firmware


def test_measure_reports_exact_instructions(firmware):
    need("qemu-system-arm")
    result = measure(firmware("mps2-an500"), "qemu-cortex-m7", runs=3, repeats=2, progress=False)
    ticks = result["latency_ticks"]
    assert ticks["spread"] == 0.0 and ticks["min"] == ticks["max"]
    assert result["instructions"] == round(ticks["median"] * 1e9 / 25e6)
    assert result["latency_ms_at_real_clock"] == pytest.approx(result["instructions"] / 280e6 * 1e3)


def test_bench_command(firmware, capsys):
    need("qemu-system-arm")
    elf = firmware("mps2-an386")
    assert main(["bench", "--elf", str(elf), "--target", "qemu-cortex-m4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["board"] == "mps2-an386" and result["instructions"] > 0


def test_bench_mistakes_are_one_line(tmp_path, capsys):
    assert main(["bench", "--elf", str(tmp_path / "no.elf"), "--target", "qemu-cortex-m4"]) == 2
    assert capsys.readouterr().err == f"tvmq: error: {tmp_path / 'no.elf'}: no such firmware\n"
    assert main(["bench", "--elf", "x.elf", "--target", "nucleo-l4r5zi"]) == 2
    assert "not emulated" in capsys.readouterr().err
