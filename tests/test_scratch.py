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
import onnx
import pytest

from tests.onnx_models import gemm
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
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO),
           "PYTHONFAULTHANDLER": "1"}  # fmt: skip
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


def finish(process: subprocess.Popen, seconds: float = 120) -> str:
    """The stopped command's stderr once it has exited; if it hangs, it is aborted and
    the test fails with every thread's stack (faulthandler), to show where it hung."""
    try:
        return process.communicate(timeout=seconds)[1]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        stderr = process.communicate(timeout=60)[1]
        pytest.fail(f"still running {seconds} s after the signal:\n{stderr}")


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
@pytest.mark.parametrize(
    ("stop", "status", "when"),
    [
        (signal.SIGTERM, 143, "tvmq-qemu-*/qmp.sock"),  # QEMU measures the built firmware
        (signal.SIGINT, 130, "tvmq-bench-*"),  # the firmware is being compiled
    ],
)
def test_stopped_bench_leaves_nothing(tmp_path, stop, status, when):
    tmp = tmp_path / "tmp"
    process = tvmq(tmp, "bench", DIGITS_MODEL, "--target", "qemu-cortex-m4",
                   "--runs", 100_000, "--repeats", 100)  # fmt: skip
    wait_for(process, lambda: any(tmp.glob(when)))
    process.send_signal(stop)
    stderr = finish(process)
    assert process.returncode == status, stderr
    assert stderr.strip().splitlines()[-1] in ("tvmq: terminated", "tvmq: interrupted")
    assert list(tmp.iterdir()) == []


def test_terminated_host_tuning_leaves_nothing(tmp_path):
    """Stopped once it has measured candidates: MetaSchedule's builds (each a
    tvm_tmp_mod directory) and the database's staging (.save-*) are gone."""
    from tvmq.tune.database import RECORDS

    tmp, work = tmp_path / "tmp", tmp_path / "db"
    onnx.save(gemm(), tmp_path / "gemm.onnx")  # one small task: its first records come soon
    process = tvmq(tmp, "tune", tmp_path / "gemm.onnx", "--target", "host", "--work-dir", work,
                   "--trials", 200, "--seed", 1)  # fmt: skip
    wait_for(process, lambda: (work / RECORDS).is_file())
    process.send_signal(signal.SIGTERM)
    stderr = finish(process)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "tvmq: terminated"
    assert list(tmp.iterdir()) == []
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []


def test_a_stop_as_a_scratch_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C just after the file exists (before its name reaches the writer):
    the name was owned first, so it is removed, and an atomic write leaves nothing."""
    from tvmq import scratch
    from tvmq.fileio import write_atomically

    real_open = os.open

    def open_then_stop(*args):
        os.close(real_open(*args))
        raise KeyboardInterrupt

    monkeypatch.setattr(scratch.os, "open", open_then_stop)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "out.bin", lambda file: file.write(b"x"))
    assert list(tmp_path.iterdir()) == []
