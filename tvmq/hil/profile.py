"""Where an inference spends its instructions: a count per kernel on an emulated board.

The firmware runs under QEMU with its translation-block log (the technique of
:mod:`tvmq.hil.instruction_count`), streamed through a named pipe; one inference
is made through the serial harness, and each executed block is charged to the
function it lies in (the firmware's symbol table). Kernels are functions of
their own in the model C, so each gets its instructions; code they call (a
micro-kernel the compiler kept out of line, memset, memcpy) is charged to the
kernel that runs. The entry function's own code is a row of its own, with the
small kernels the C compiler inlined into it (they count zero themselves).
The harness's code (the board and harness objects) ends the inference.

QEMU runs without ``-icount`` here (with it, QEMU logs blocks it then leaves
unexecuted). On the Cortex-M4 the rows add up to the -icount figure to the
instruction (tests/test_mcu.py); on the Cortex-M55 QEMU's block log holds some
10 % more instructions than -icount counts for its Helium code, so take the
shares, not the totals, there.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import subprocess
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError
from tvmq.hil.instruction_count import executed_blocks
from tvmq.targets import Target

ENTRY_ROW = "(entry: calls, inlined kernels)"
NM = "arm-none-eabi-nm"


@dataclass(frozen=True)
class KernelCost:
    """One row of a profile: a kernel, its calls per inference and their instructions."""

    kernel: str
    calls: int
    instructions: int


def kernel_calls(graph) -> dict[str, int]:
    """Calls per inference of each kernel of a compiled model's graph."""
    return dict(Counter(step.kernel for step in graph.steps))


def profile_inference(
    firmware: Path,
    target: Target,
    kernels: dict[str, int],
    inputs: list[np.ndarray],
    *,
    symbol_prefix: str,
) -> list[KernelCost]:
    """Instructions of each kernel (name -> calls per inference) over one inference of
    `inputs` on `target`'s emulated board, most expensive first. `firmware` is a
    project's build/firmware.elf, next to the board and harness objects; the model's
    C symbols start with `symbol_prefix` (:func:`tvmq.backend.emit_c.symbol_prefix`)."""
    from tvmq.hil.device import Device
    from tvmq.hil.emulator import Emulator

    build = Path(firmware).parent
    harness = _defined(sorted((build / "harness").glob("*.o")) + sorted(build.glob("board/*.o")))
    symbols = _functions(firmware)
    rows = {symbol_prefix + kernel: kernel for kernel in kernels}
    rows[symbol_prefix + "entry"] = ENTRY_ROW
    with tempfile.TemporaryDirectory(prefix="tvmq-profile-") as scratch:
        fifo = Path(scratch) / "blocks"
        os.mkfifo(fifo)

        class LoggedEmulator(Emulator):
            def command(self) -> list[str]:
                timed = super().command()
                at = timed.index("-icount")
                plain = timed[:at] + timed[at + 2 :]
                return [*plain, "-d", "in_asm,exec,nochain", "-D", str(fifo)]

        counts: Counter[str] = Counter()
        errors: list[BaseException] = []
        reader = threading.Thread(
            target=_charge, args=(fifo, symbols, rows, harness, counts, errors)
        )
        reader.start()
        try:
            with (
                LoggedEmulator(firmware, target) as emulator,
                Device(emulator.url, timeout=60.0) as device,
            ):
                device.infer(inputs)
        finally:
            _release(fifo)  # a reader still waiting for QEMU to open the pipe
            reader.join()
    if errors:
        raise TvmqError(f"QEMU log of {firmware}: {errors[0]}")
    rows = [KernelCost(name, calls, counts[name]) for name, calls in kernels.items()]
    rows.append(KernelCost(ENTRY_ROW, 1, counts[ENTRY_ROW]))
    return sorted(rows, key=lambda row: -row.instructions)


def _release(fifo: Path) -> None:
    """Open and close the write end once, so that a reader blocked in open() returns."""
    with contextlib.suppress(OSError):  # no reader waiting: it has its data already
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def _charge(fifo, symbols, rows: dict[str, str], harness: set[str], counts, errors) -> None:
    """Charge each executed block to the row (kernel or entry, by symbol) running; the
    harness's own code (and what it calls) is no part of the inference."""
    starts = [start for start, _, _ in symbols]
    current: str | None = None
    try:
        with open(fifo, errors="replace") as log:
            for pc, size in executed_blocks(log):
                index = bisect.bisect_right(starts, pc) - 1
                name = symbols[index][2] if index >= 0 and pc < symbols[index][1] else None
                if name in rows:
                    current = rows[name]
                elif name in harness:
                    current = None
                if current is not None:
                    counts[current] += size
    except BaseException as error:  # reported by the caller, in its thread
        errors.append(error)


def _functions(firmware: Path) -> list[tuple[int, int, str]]:
    """(start, end, name) of each function of `firmware`, by address."""
    functions = []
    for line in _nm("--defined-only", "-S", "-n", str(firmware)).splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            start = int(fields[0], 16) & ~1  # Thumb addresses have bit 0 set
            functions.append((start, start + int(fields[1], 16), fields[3]))
    return functions


def _defined(objects: list[Path]) -> set[str]:
    """The functions the given object files define."""
    if not objects:
        return set()
    listing = _nm("--defined-only", *map(str, objects))
    rows = (line.split() for line in listing.splitlines())
    return {fields[2] for fields in rows if len(fields) == 3 and fields[1] in "tT"}


def _nm(*arguments: str) -> str:
    try:
        return subprocess.run([NM, *arguments], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise TvmqError(f"{NM} {arguments[-1]}: cannot read the symbols ({error})") from error
