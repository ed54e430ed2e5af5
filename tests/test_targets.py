"""Target files load, and TVM accepts what each one asks for."""

from __future__ import annotations

import pytest

from tvmq.errors import TvmqError
from tvmq.targets import available_targets, load_target


@pytest.mark.parametrize("name", available_targets())
def test_every_target_file_is_a_valid_tvm_target(name):
    target = load_target(name)
    assert target.name == name
    tvm_target = target.tvm_target()
    assert tvm_target.kind.name == target.tvm["kind"]


def test_device_targets_describe_their_board():
    cortex_m = load_target("qemu-cortex-m4")
    assert cortex_m.board["machine"] == "mps2-an386"
    assert cortex_m.memory["flash"] == 2 * 1024 * 1024
    assert load_target("rpi4").toolchain["cc"] == "aarch64-linux-gnu-gcc"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nkind = "host"\n', "missing key 'tvm'"),
        ('name = "x"\nkind = "fpga"\n[tvm]\nkind = "llvm"\n', "kind 'fpga'"),
        ('name = "x"\nkind = "host"\n[tvm]\nmcpu = "a"\n', "missing key 'tvm.kind'"),
        ("name = ", "cannot read target"),
    ],
)
def test_bad_target_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TvmqError, match=message):
        load_target(path)


def test_emulated_boards_are_the_qemu_targets():
    """run/bench/ci pick QEMU or a serial port by this: every qemu-* target, no real
    board (nucleo, nrf), no host or Cortex-A target."""
    emulated = {name for name in available_targets() if load_target(name).is_emulated}
    assert emulated == {name for name in available_targets() if name.startswith("qemu-")}
    assert not load_target("nucleo-l4r5zi").is_emulated


def test_clock_is_the_real_boards_and_none_where_a_target_has_none():
    """Tuning reports seconds at this clock, instructions where there is none."""
    assert load_target("qemu-cortex-m4").clock_hz == 120_000_000  # the NUCLEO it stands for
    assert load_target("nucleo-l4r5zi").clock_hz == 120_000_000
    assert load_target("rpi5").clock_hz is None
    assert [n for n in available_targets() if load_target(n).is_host] == ["host", "host-generic"]
