"""Flashing with pyOCD, as far as it goes without a probe: the part names of the
real boards, the missing CMSIS pack, the missing probe, each one clear line.
Programming a part is not tested here: it needs a board and its probe."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tvmq.cli import main
from tvmq.errors import TvmqError
from tvmq.hil.flash import flash_firmware, pack_parts, pyocd_part
from tvmq.targets import TARGETS_DIR, load_target

REAL_BOARDS = ["nucleo-l4r5zi", "nucleo-h7a3zi", "nrf5340dk"]


@pytest.fixture
def builtin_target(tmp_path) -> Path:
    """A real-board target whose part pyOCD has built in (STM32L475, B-L475E-IOT01A)."""
    text = (TARGETS_DIR / "nucleo-l4r5zi.toml").read_text()
    path = tmp_path / "disco-l475.toml"
    path.write_text(text.replace('pyocd_target = "stm32l4r5zitx"', 'pyocd_target = "stm32l475xg"'))
    return path


@pytest.fixture
def elf(tmp_path) -> Path:
    path = tmp_path / "firmware.elf"
    path.write_bytes(b"\x7fELF")
    return path


@pytest.mark.parametrize("name", REAL_BOARDS)
def test_real_boards_name_a_part_and_the_pack_that_has_it(name):
    from pyocd.target import TARGET

    board = load_target(name).board
    assert board["pyocd_target"] not in TARGET  # none of them is built into pyOCD 0.46
    with pytest.raises(TvmqError) as error:
        pyocd_part(load_target(name))
    assert str(error.value) == (
        f"pyOCD has no built-in target '{board['pyocd_target']}' ({name}): install "
        f"{board['pyocd_pack']} with 'pyocd pack install {board['pyocd_target']}' "
        "or give its .pack file"
    )


def test_emulated_targets_are_not_flashed(elf):
    with pytest.raises(TvmqError, match="names no pyocd_target: it is not a real board"):
        flash_firmware(elf, "qemu-cortex-m4")


def test_no_probe_is_one_line(builtin_target, elf, capsys):
    assert pyocd_part(load_target(builtin_target)) == "stm32l475xg"
    assert main(["flash", str(elf), "--target", str(builtin_target)]) == 2
    assert capsys.readouterr().err == (
        f"tvmq: error: no debug probe at all is connected (pyOCD sees none) to flash {elf}\n"
    )
    assert main(["flash", str(elf), "--target", str(builtin_target), "--probe", "0670FF"]) == 2
    assert "no debug probe with UID 0670FF is connected" in capsys.readouterr().err


def test_flash_mistakes(builtin_target, tmp_path, capsys):
    assert main(["flash", str(tmp_path / "no.elf"), "--target", str(builtin_target)]) == 2
    assert capsys.readouterr().err == f"tvmq: error: {tmp_path / 'no.elf'}: no such firmware\n"
    assert main(["bench", "--elf", "x.elf", "--target", "nucleo-l4r5zi", "--flash"]) == 2
    assert "--flash programs a real board: give its --device URL" in capsys.readouterr().err


def test_bench_flashes_before_measuring(elf, capsys):
    args = ["bench", "--elf", str(elf), "--target", "nucleo-l4r5zi", "--device", "loop://"]
    assert main([*args, "--flash"]) == 2
    assert "pyOCD has no built-in target 'stm32l4r5zitx'" in capsys.readouterr().err


def test_a_pack_file_is_read_for_its_parts(tmp_path):
    pack = tmp_path / "Vendor.Family_DFP.1.0.0.pack"
    with zipfile.ZipFile(pack, "w") as archive:
        archive.writestr("Vendor.Family_DFP.pdsc", PDSC)
    assert pack_parts(pack) == {"stm32l4r5zitx"}
    assert pyocd_part(load_target("nucleo-l4r5zi"), pack) == "stm32l4r5zitx"
    with pytest.raises(TvmqError, match="the pack has no part 'stm32h7a3zitxq'"):
        pyocd_part(load_target("nucleo-h7a3zi"), pack)
    (tmp_path / "junk.pack").write_bytes(b"not a zip")
    with pytest.raises(TvmqError, match=r"junk\.pack: not a readable CMSIS pack"):
        pack_parts(tmp_path / "junk.pack")


# The smallest device description pyOCD reads: one device with memory and a processor.
PDSC = """<?xml version="1.0" encoding="UTF-8"?>
<package schemaVersion="1.7" xmlns:xs="http://www.w3.org/2001/XMLSchema-instance">
  <vendor>Vendor</vendor><name>Family_DFP</name><description>test</description>
  <releases><release version="1.0.0">test</release></releases>
  <devices>
    <family Dfamily="STM32L4 Series" Dvendor="STMicroelectronics:13">
      <processor Dcore="Cortex-M4" DcoreVersion="r0p1" Dfpu="SP_FPU" Dmpu="MPU"
                 Dendian="Little-endian"/>
      <device Dname="STM32L4R5ZITx">
        <memory id="IROM1" start="0x08000000" size="0x200000" startup="1" default="1"/>
        <memory id="IRAM1" start="0x20000000" size="0xa0000" init="0" default="1"/>
      </device>
    </family>
  </devices>
</package>
"""
