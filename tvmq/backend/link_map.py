"""What the model itself costs in a firmware: its share of the link, object by object.

``arm-none-eabi-size`` gives a firmware's totals only. The map the link writes
(``-Map``) lists every input section that was kept with its size and the object
it came from, so the model's objects (its code, weights, arena and buffers) are
told apart from the harness, the board port and the C library (with what the
model calls of it: memcpy, memset), from the alignment fill and from the stack.
Whether an output section costs flash, RAM or both is read from the ELF as
``size`` reads it: read-only sections are flash, written ones with contents
flash and RAM, written ones without contents RAM.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tvmq.errors import TvmqError

READELF = "arm-none-eabi-readelf"
STACK_SECTION = ".stack"  # firmware/include/sections.ld
_SECTION_HEADER = re.compile(r"\[\s*\d+\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)")
_PLACED = re.compile(r"\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*))?$")


@dataclass(frozen=True)
class InputSection:
    """One kept input section: its output section, name, bytes and object file."""

    output: str
    name: str
    size: int
    source: str  # "" for the linker's alignment fill


def memory_split(
    elf: Path, link_map: Path, model_objects: Path, weights_section: str, arena_section: str
) -> dict:
    """Flash and RAM of the model (objects under `model_objects`), of the rest of the
    firmware, of the alignment fill and of the stack; they add up to the totals.

    `weights_section` and `arena_section` are the input sections holding the
    model's weight blob and its static arena."""
    kinds = _output_sections(elf)
    model_prefix = str(model_objects.resolve()) + "/"
    split = {"model": defaultdict(int), "harness": defaultdict(int), "padding": defaultdict(int)}
    stack = 0
    for section in input_sections(link_map.read_text()):
        memories = kinds.get(section.output)
        if not memories:
            continue
        if section.output == STACK_SECTION:
            stack += section.size
            continue
        if not section.source:
            part = split["padding"]
        elif section.source.startswith(model_prefix):
            part = split["model"]
            kind = {weights_section: "weights", arena_section: "arena"}.get(section.name)
            if kind is None:
                kind = "code" if section.name.startswith(".text") else "other"
            part[kind] += section.size
        else:
            part = split["harness"]
        for memory in memories:
            part[memory] += section.size
    result = {
        part: {"flash": values["flash"], "ram": values["ram"]} for part, values in split.items()
    }
    model = split["model"]
    result["model"].update({k: model[k] for k in ("code", "weights", "arena")})
    result["stack"] = stack
    return result


def input_sections(map_text: str) -> list[InputSection]:
    """The kept input sections of a GNU ld map (its "Linker script and memory map")."""
    _, found, memory_map = map_text.partition("Linker script and memory map")
    if not found:
        raise TvmqError("not a GNU ld map: no 'Linker script and memory map'")
    sections: list[InputSection] = []
    output = ""
    pending = ""  # a name too long for its line: address, size and file follow
    for line in map(str.rstrip, memory_map.splitlines()):
        if line[:1] not in ("", " "):  # an output section, or a directive
            output = line.split()[0]
            pending = ""
            continue
        if pending:
            placed = _PLACED.match(line)
            if placed and placed.group(3):
                sections.append(
                    InputSection(output, pending, int(placed.group(2), 16), placed.group(3))
                )
            pending = ""
            continue
        fields = line.split()
        if not line.startswith(" ") or line.startswith("  ") or not fields:
            continue  # symbols and assignments (deeper), blank lines
        name = fields[0]
        if name.startswith("*") and name != "*fill*":
            continue  # the script's input patterns
        placed = _PLACED.match(line[1 + len(name) :])
        if placed is None:
            pending = name
        elif name == "*fill*":
            sections.append(InputSection(output, name, int(placed.group(2), 16), ""))
        elif placed.group(3):
            sections.append(InputSection(output, name, int(placed.group(2), 16), placed.group(3)))
    return sections


def _output_sections(elf: Path) -> dict[str, tuple[str, ...]]:
    """Each allocated output section of `elf` -> the memories it takes, as size counts."""
    try:
        listing = subprocess.run(
            [READELF, "-S", "-W", str(elf)], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise TvmqError(f"{READELF} {elf}: cannot read the sections ({error})") from error
    kinds = {}
    for line in listing.splitlines():
        header = _SECTION_HEADER.search(line)
        if header is None:
            continue
        flags = line[header.end() :].split()
        flags = flags[1] if len(flags) == 5 else ""  # ES Flg Lk Inf Al, Flg may be empty
        if "A" not in flags:
            continue
        name, kind = header.group(1), header.group(2)
        if "W" not in flags:
            kinds[name] = ("flash",)
        elif kind != "NOBITS":
            kinds[name] = ("flash", "ram")
        else:
            kinds[name] = ("ram",)
    return kinds
