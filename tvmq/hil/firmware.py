"""Builds the harness firmware for a board (``make -C firmware``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tvmq.errors import TvmqError
from tvmq.resources import firmware_dir

FIRMWARE_DIR = firmware_dir()
TEST_MODEL_DIR = FIRMWARE_DIR / "test_model"


def board_names() -> list[str]:
    return sorted(p.parent.name for p in (FIRMWARE_DIR / "boards").glob("*/board.mk"))


def build_firmware(
    board: str,
    out: str | Path,
    model_dir: str | Path | None = None,
    *,
    sanitize: bool = False,
    firmware_dir: str | Path = FIRMWARE_DIR,
    goal: str | None = None,
) -> Path:
    """``out/firmware.elf`` for this board and model (the test model by default);
    with `goal`, only that make target (e.g. one object under `out`)."""
    if board not in board_names():
        raise TvmqError(f"unknown board '{board}' (known: {', '.join(board_names())})")
    tool = "gcc" if board == "host" else "arm-none-eabi-gcc"
    if shutil.which(tool) is None:
        raise TvmqError(f"{tool} is not installed (tvmq doctor says how to get it)")
    out = Path(out).resolve()
    command = ["make", "-s", "-C", str(firmware_dir), f"BOARD={board}", f"OUT={out}"]
    if model_dir is not None:
        command.append(f"MODEL_DIR={Path(model_dir).resolve()}")
    if sanitize:
        command.append("SANITIZE=1")
    if goal is not None:
        command.append(goal)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        said = result.stdout + result.stderr
        overflows = re.findall(r"region `(\w+)' overflowed by (\d+) bytes", said)
        if overflows:  # the linker's verdict on a model too big for the board, in one line
            listed = ", ".join(f"{region} by {int(n):,} B" for region, n in overflows)
            raise TvmqError(f"the model does not fit board {board}: {listed} over its memory")
        tail = "\n".join(said.strip().splitlines()[-15:])
        raise TvmqError(f"firmware build for {board} failed:\n{tail}")
    return out / "firmware.elf"
