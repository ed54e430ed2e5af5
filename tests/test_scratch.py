"""Nothing is left in the temporary directory after a command, whether it succeeds,
fails, or is stopped by SIGINT or SIGTERM: the real CLI in a subprocess, its TMPDIR
a directory of the test's that must be empty afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.scratch import make_scratch, remove_scratch, scratch_directory

REPO = Path(__file__).resolve().parents[1]
needs_board = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


def tvmq(tmp: Path, *args) -> subprocess.Popen:
    """`tvmq ARGS` with its temporary files in `tmp`."""
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tvmq", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_for(process: subprocess.Popen, ready, seconds: float = 300) -> None:
    """Until `ready()` (the command is at the point to interrupt), or fail."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never got there"
        time.sleep(0.05)


def test_scratch_directories_go_with_their_block_or_at_removal(tmp_path):
    with scratch_directory("tvmq-x-", tmp_path) as path:
        (path / "file").write_text("x")
    assert not path.exists()
    with pytest.raises(KeyError), scratch_directory("tvmq-x-", tmp_path) as path:
        raise KeyError
    owned = make_scratch("tvmq-y-", tmp_path)
    remove_scratch(owned)
    remove_scratch(owned)  # idempotent
    assert list(tmp_path.iterdir()) == []


@needs_board
def test_run_on_an_emulated_board_leaves_nothing(tmp_path):
    x, _ = digits_split("test")
    np.save(tmp_path / "x.npy", x[0])
    process = tvmq(tmp_path / "tmp", "run", DIGITS_MODEL, "--target", "qemu-cortex-m4",
                   "--input", tmp_path / "x.npy")  # fmt: skip
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "float32[1, 10]" in stdout
    assert list((tmp_path / "tmp").iterdir()) == []


@needs_board
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopped_bench_leaves_nothing(tmp_path, stop, status):
    tmp = tmp_path / "tmp"
    process = tvmq(tmp, "bench", DIGITS_MODEL, "--target", "qemu-cortex-m4",
                   "--runs", 100_000, "--repeats", 100)  # fmt: skip
    # Stopped while QEMU measures: the firmware is built and the emulator's directory made.
    wait_for(process, lambda: any(tmp.glob("tvmq-qemu-*/qmp.sock")))
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert stderr.strip().splitlines()[-1] in ("tvmq: terminated", "tvmq: interrupted")
    assert list(tmp.iterdir()) == []


def test_host_tuning_leaves_nothing_done_or_terminated(tmp_path):
    from tvmq.tune.database import RECORDS

    tmp, work = tmp_path / "tmp", tmp_path / "db"
    command = ["tune", DIGITS_MODEL, "--target", "host", "--work-dir", work, "--seed", 1]
    process = tvmq(tmp, *command, "--trials", 2)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert list(tmp.iterdir()) == []  # MetaSchedule's builds (tvm_tmp_mod) included
    recorded = (work / RECORDS).read_text().count("\n")
    process = tvmq(tmp, *command, "--trials", 200)
    wait_for(process, lambda: (work / RECORDS).read_text().count("\n") > recorded)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert list(tmp.iterdir()) == []
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []  # no .save-*
