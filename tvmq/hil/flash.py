"""Flashing a real board with pyOCD, through its Python API.

The part comes from the target's ``[board] pyocd_target``. pyOCD knows some
parts built in; the others need their CMSIS device pack (``pyocd pack install
PART``, or a ``.pack`` file given with ``pack``), named by ``[board]
pyocd_pack``. Both are checked before any probe is touched, so that a missing
pack is one clear line rather than a failure halfway through a CI run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tvmq.errors import TvmqError
from tvmq.targets import Target, load_target


def pyocd_part(target: Target, pack: Path | None = None) -> str:
    """The pyOCD target name of a real board, once pyOCD is known to support it."""
    part = target.board.get("pyocd_target")
    if not part:
        raise TvmqError(f"target '{target.name}' names no pyocd_target: it is not a real board")
    from pyocd.target import TARGET

    if part in TARGET:
        return part
    if pack is not None:
        if part not in pack_parts(pack):
            raise TvmqError(f"{pack}: the pack has no part '{part}'")
        return part
    from pyocd.target.pack.pack_target import ManagedPacks

    if any(dev.part_number.lower() == part for dev in ManagedPacks.get_installed_targets()):
        return part
    name = target.board.get("pyocd_pack", "its CMSIS device pack")
    raise TvmqError(
        f"pyOCD has no built-in target '{part}' ({target.name}): install {name} "
        f"with 'pyocd pack install {part}' or give its .pack file"
    )


def pack_parts(pack: Path) -> set[str]:
    """The part names a CMSIS pack file describes, as pyOCD names them."""
    from pyocd.target.pack.pack_target import PackTargets, normalise_target_type_name

    if not pack.is_file():
        raise TvmqError(f"{pack}: no such pack file")
    parts: set[str] = set()
    try:
        PackTargets.process_targets_from_pack(
            [str(pack)], lambda dev: parts.add(normalise_target_type_name(dev.part_number))
        )
    except Exception as error:  # pyOCD raises zip, XML and its own errors here
        raise TvmqError(f"{pack}: not a readable CMSIS pack ({error})") from error
    return parts


def flash_firmware(
    elf: str | Path,
    target: str | Path | Target,
    probe: str | None = None,
    pack: str | Path | None = None,
) -> str:
    """Program `elf` into the board behind the probe (the only one, or UID `probe`),
    reset it so that it runs, and return the probe's UID."""
    elf = Path(elf)
    target = target if isinstance(target, Target) else load_target(target)
    pack = Path(pack) if pack is not None else None
    if not elf.is_file():
        raise TvmqError(f"{elf}: no such firmware")
    part = pyocd_part(target, pack)
    from pyocd.core.helpers import ConnectHelper
    from pyocd.flash.file_programmer import FileProgrammer

    logging.getLogger("pyocd").setLevel(logging.ERROR)  # its "no probe" warnings repeat ours
    probes = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=probe)
    if not probes:
        wanted = f"with UID {probe}" if probe else "at all"
        raise TvmqError(f"no debug probe {wanted} is connected (pyOCD sees none) to flash {elf}")
    if len(probes) > 1:
        found = ", ".join(p.unique_id for p in probes)
        raise TvmqError(f"{len(probes)} debug probes are connected ({found}): choose one by UID")
    options = {"pack": [str(pack)]} if pack is not None else {}
    session = ConnectHelper.session_with_chosen_probe(
        blocking=False, unique_id=probes[0].unique_id, target_override=part, options=options
    )
    if session is None:
        raise TvmqError(f"debug probe {probes[0].unique_id} went away before flashing")
    try:
        with session:
            FileProgrammer(session).program(str(elf), file_format="elf")
            session.target.reset()
    except Exception as error:  # probe, USB and flash-algorithm errors
        raise TvmqError(f"flashing {elf} as {part} failed: {error}") from error
    return probes[0].unique_id
