"""The C micro-kernels the tensorized schedules call (dot products, requantization, int8
add), against their references in C (TFLite's formulas, plain sums).

Each build (plain C on the host, the DSP path on Cortex-M4, Helium on Cortex-M55)
runs a self-checking program: natively, or on the emulated board with semihosting.
Needs no shared model: the kernels are checked on their own, over the whole range
of accumulators and shifts rather than only the values a model happens to produce.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tvmq.backend.intrinsics import KERNELS_DIR

HERE = Path(__file__).resolve().parent / "kernels"
CORTEX_M = {
    "cortex-m4": (["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"], "mps2-an386"),
    "cortex-m55": (["-mcpu=cortex-m55"], "mps3-an547"),
}


def _run(command: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


CHECKS = ["requantize_check.c", "dot_check.c"]


@pytest.mark.parametrize("check", CHECKS)
def test_kernels_match_their_reference_on_the_host(check, tmp_path):
    program = tmp_path / "check"
    build = _run(["cc", "-O2", f"-I{KERNELS_DIR}", str(HERE / check), "-o", str(program)])
    assert build.returncode == 0, build.stderr
    result = _run([str(program)])
    assert result.returncode == 0 and "mismatches 0" in result.stdout, result.stdout


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm (make toolchains)",
)
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("core", sorted(CORTEX_M))
def test_kernels_match_their_reference_on_cortex_m(core, check, tmp_path):
    flags, machine = CORTEX_M[core]
    elf = tmp_path / "check.elf"
    sources = [str(HERE / check), str(HERE / "semihosting_vectors.c")]
    build = _run(
        ["arm-none-eabi-gcc", "-O2", *flags, "-mfloat-abi=hard", "-mthumb", f"-I{KERNELS_DIR}",
         "--specs=rdimon.specs", "-Wl,--section-start=.vectors=0x0", *sources, "-o", str(elf)]
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    if core == "cortex-m55" and check == "requantize_check.c":
        disassembly = _run(["arm-none-eabi-objdump", "-d", str(elf)]).stdout
        assert "vqrdmulh" in disassembly  # the Helium path, not the scalar one
    result = _run(
        ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
         "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    )  # fmt: skip
    assert result.returncode == 0 and "mismatches 0" in result.stdout, result.stdout[-2000:]
    if check == "dot_check.c":
        assert {"cortex-m4": "path dsp", "cortex-m55": "path helium"}[core] in result.stdout


@pytest.mark.skipif(
    not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")),
    reason="needs aarch64-linux-gnu-gcc and qemu-aarch64 (make toolchains)",
)
@pytest.mark.parametrize("check", CHECKS)
def test_kernels_match_their_reference_on_aarch64(check, tmp_path):
    """The NEON builds: SDOT dot products, the VQRDMULH requantization (qemu-aarch64)."""
    program = tmp_path / "check"
    build = _run(
        ["aarch64-linux-gnu-gcc", "-O2", "-march=armv8.2-a+dotprod", "-static",
         f"-I{KERNELS_DIR}", str(HERE / check), "-o", str(program)]
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    if check == "requantize_check.c":
        assert "sqrdmulh" in _run(["aarch64-linux-gnu-objdump", "-d", str(program)]).stdout
    result = _run(["qemu-aarch64", "-cpu", "max", str(program)])
    assert result.returncode == 0 and "mismatches 0" in result.stdout, result.stdout[-2000:]
    if check == "dot_check.c":
        assert "path sdot" in result.stdout
