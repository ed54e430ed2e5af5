"""Builds and runs the self-checking C programs in tests/kernels/ (one per kernel
header) on every core: natively on the host, on an emulated Cortex-M board with
semihosting, and under qemu-aarch64. Each program prints "mismatches N" and exits 0
only when N is 0; the helpers here assert that and hand back what it printed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tvmq.backend.intrinsics import KERNELS_DIR

CHECKS_DIR = Path(__file__).resolve().parent / "kernels"
VECTORS = CHECKS_DIR / "semihosting_vectors.c"
CORTEX_M = {  # core: (compiler flags, QEMU machine)
    "cortex-m4": (["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"], "mps2-an386"),
    "cortex-m55": (["-mcpu=cortex-m55"], "mps3-an547"),
}
DOTPROD = "-march=armv8.2-a+dotprod"

needs_cortex_m = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)",
)
needs_aarch64 = pytest.mark.skipif(
    not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")),
    reason="needs aarch64-linux-gnu-gcc and qemu-aarch64 (make toolchains)",
)


def run(command: list, timeout: int = 120) -> subprocess.CompletedProcess:
    """Runs a command (paths welcome), capturing its text output."""
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout
    )


def _built(command: list, program: Path) -> Path:
    build = run(command)
    assert build.returncode == 0, build.stderr
    return program


def build_for_host(check: str, out_dir: Path, flags: tuple[str, ...] = ()) -> Path:
    program = out_dir / "check"
    command = ["cc", "-O2", *flags, f"-I{KERNELS_DIR}", CHECKS_DIR / check, "-o", program]
    return _built(command, program)


def build_for_cortex_m(check: str, core: str, out_dir: Path, flags: tuple[str, ...] = ()) -> Path:
    """A bare-metal ELF for the core's QEMU board: newlib's semihosting (rdimon) for
    printf and exit, the vector table at address 0."""
    elf = out_dir / "check.elf"
    return _built(
        ["arm-none-eabi-gcc", "-O2", *CORTEX_M[core][0], "-mfloat-abi=hard", "-mthumb", *flags,
         f"-I{KERNELS_DIR}", "--specs=rdimon.specs", "-Wl,--section-start=.vectors=0x0",
         CHECKS_DIR / check, VECTORS, "-o", elf],
        elf,
    )  # fmt: skip


def build_for_aarch64(check: str, out_dir: Path, flags: tuple[str, ...] = (DOTPROD,)) -> Path:
    program = out_dir / "check"
    return _built(
        ["aarch64-linux-gnu-gcc", "-O2", *flags, "-static", f"-I{KERNELS_DIR}",
         CHECKS_DIR / check, "-o", program],
        program,
    )  # fmt: skip


def _no_mismatches(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0 and "mismatches 0" in result.stdout, result.stdout[-2000:]
    return result.stdout


def run_on_host(program: Path) -> str:
    return _no_mismatches(run([program]))


def run_on_cortex_m(elf: Path, core: str) -> str:
    return _no_mismatches(
        run(
            ["qemu-system-arm", "-M", CORTEX_M[core][1], "-nographic", "-monitor", "none",
             "-semihosting-config", "enable=on,target=native", "-kernel", elf]
        )
    )  # fmt: skip


def run_on_aarch64(program: Path) -> str:
    return _no_mismatches(run(["qemu-aarch64", "-cpu", "max", program]))
