"""Executed-instruction counts of a Linux program under QEMU user mode.

Debian's QEMU ships no TCG plugin header, so the count comes from QEMU's own
logs: ``-d in_asm`` prints each translation block (TB) as it is translated, one
line per guest instruction; ``-d exec`` prints a line each time a TB starts; and
``-d nochain`` stops QEMU from jumping between TBs without passing through the
logging code. The count is the sum, over executed TBs, of each TB's size. The
log is streamed through a pipe and parsed as it comes, so nothing large is
written to disk.

Exact for user code that takes no exceptions mid-block (a system call ends its
TB); checked on a loop of known length (tests/test_cortex_a.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterable, Iterator

from tvmq.errors import TvmqError

INSTRUCTION = re.compile(r"^0x([0-9a-f]+):\s")
EXECUTED = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")


def count_log(lines: Iterable[str]) -> int:
    """Instructions executed, from the text of a ``-d in_asm,exec,nochain`` log."""
    return sum(size for _, size in executed_blocks(lines))


def executed_blocks(lines: Iterable[str]) -> Iterator[tuple[int, int]]:
    """(start address, instructions) of each block run, in order, from the text of a
    ``-d in_asm,exec,nochain`` log."""
    sizes: dict[int, int] = {}
    block_start, block_size = None, 0
    for line in lines:
        executed = EXECUTED.match(line)
        if executed:
            pc = int(executed.group(1), 16)
            if pc not in sizes:
                raise TvmqError(f"QEMU log: block at 0x{pc:x} executed but never translated")
            yield pc, sizes[pc]
            continue
        instruction = INSTRUCTION.match(line)
        if instruction:
            if block_start is None:
                block_start, block_size = int(instruction.group(1), 16), 0
            block_size += 1
        elif block_start is not None:  # a blank line or separator ends the block's listing
            sizes[block_start] = block_size
            block_start = None


def count_instructions(command: list[str]) -> int:
    """Run `command` (a QEMU user-mode command line, e.g. ``["qemu-aarch64", "-cpu",
    "max", "./prog"]``) with instruction logging; the instructions it executed."""
    read_end, write_end = os.pipe()
    logged = [command[0], "-d", "in_asm,exec,nochain", "-D", f"/dev/fd/{write_end}", *command[1:]]
    try:
        process = subprocess.Popen(
            logged,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(write_end,),
            text=True,
        )
    finally:
        os.close(write_end)  # the log ends (EOF) when QEMU exits, whatever happened
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))
    reader.start()
    try:
        with open(read_end, errors="replace") as log:
            total = count_log(log)
    finally:
        status = process.wait()
        reader.join()
    if status != 0:
        detail = (errors[0].strip().splitlines() or [f"exit status {status}"])[-1]
        raise TvmqError(f"{' '.join(command)}: {detail}")
    return total
