"""The C micro-kernels the tensorized schedules call (dot products, requantization, int8
add), against their references in C (TFLite's formulas, plain sums).

Each build (plain C on the host, the DSP path on Cortex-M4, Helium on Cortex-M55)
runs a self-checking program: natively, or on the emulated board with semihosting.
Needs no shared model: the kernels are checked on their own, over the whole range
of accumulators and shifts rather than only the values a model happens to produce.
"""

from __future__ import annotations

import pytest

from tests import kernel_checks

CHECKS = ["requantize_check.c", "dot_check.c"]


@pytest.mark.parametrize("check", CHECKS)
def test_kernels_match_their_reference_on_the_host(check, tmp_path):
    kernel_checks.run_on_host(kernel_checks.build_for_host(check, tmp_path))


@kernel_checks.needs_cortex_m
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("core", sorted(kernel_checks.CORTEX_M))
def test_kernels_match_their_reference_on_cortex_m(core, check, tmp_path):
    elf = kernel_checks.build_for_cortex_m(check, core, tmp_path)
    if core == "cortex-m55" and check == "requantize_check.c":
        disassembly = kernel_checks.run(["arm-none-eabi-objdump", "-d", elf]).stdout
        assert "vqrdmulh" in disassembly  # the Helium path, not the scalar one
    output = kernel_checks.run_on_cortex_m(elf, core)
    if check == "dot_check.c":
        assert {"cortex-m4": "path dsp", "cortex-m55": "path helium"}[core] in output


@kernel_checks.needs_aarch64
@pytest.mark.parametrize("check", CHECKS)
def test_kernels_match_their_reference_on_aarch64(check, tmp_path):
    """The NEON builds: SDOT dot products, the VQRDMULH requantization (qemu-aarch64)."""
    program = kernel_checks.build_for_aarch64(check, tmp_path)
    if check == "requantize_check.c":
        assert "sqrdmulh" in kernel_checks.run(["aarch64-linux-gnu-objdump", "-d", program]).stdout
    output = kernel_checks.run_on_aarch64(program)
    if check == "dot_check.c":
        assert "path sdot" in output
