"""Every board port builds and links with the test model, within its memory
limits, with the vector table at the start of its flash and no heap."""

from __future__ import annotations

import subprocess

import pytest

from tests import hil_fixtures
from tvmq.hil.firmware import board_names
from tvmq.targets import load_target

firmware = hil_fixtures.firmware
FLASH_ORIGIN = {"nucleo-l4r5zi": 0x08000000, "nucleo-h7a3zi": 0x08000000}


@pytest.mark.parametrize("target", ["nucleo-l4r5zi", "nucleo-h7a3zi", "nrf5340dk"])
def test_real_board_firmware_links(firmware, target):
    board = load_target(target).board
    assert board["name"] in board_names() and board["pyocd_target"] and board["clock_hz"]
    elf = firmware(board["name"])
    symbols = dict(
        (name, int(address, 16))
        for address, _, name in (
            line.split()
            for line in subprocess.run(
                ["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if len(line.split()) == 3
        )
    )
    assert symbols["vectors"] == FLASH_ORIGIN.get(board["name"], 0)
    assert "malloc" not in symbols and "_sbrk" not in symbols
    assert (elf.parent / "firmware.bin").stat().st_size > 1000


def test_every_target_names_a_board_port():
    for name in ("qemu-cortex-m4", "qemu-cortex-m7", "qemu-cortex-m55"):
        assert load_target(name).board["name"] in board_names()
