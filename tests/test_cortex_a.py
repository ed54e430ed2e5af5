"""Models compiled into Cortex-A libraries and run under QEMU user mode.

Each shared MLPerf Tiny int8 model (VWW: see INT8_MODELS) is emitted once as C and built for three
targets: the dot-product build (SDOT, run on QEMU's "max" CPU), the Raspberry
Pi 4 build (plain NEON, run on QEMU's Cortex-A72, which has no SDOT: the build
would fault if it used one) and the 32-bit ARMv7 build (qemu-arm). Every
output must be identical to tvmq's host integer execution of the same model.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.shared_assets import shared_model
from tests.test_mlperf_import import model_inputs
from tvmq.backend.emit_c import emit_model
from tvmq.backend.intrinsics import KERNELS_DIR
from tvmq.backend.linux import (
    LinuxExecutable,
    build_project,
    compile_library,
    module_path,
    write_build_files,
)
from tvmq.backend.native import NativeModel
from tvmq.backend.schedule import default_schedule
from tvmq.cli import EXIT_USER_ERROR, main
from tvmq.errors import TvmqError
from tvmq.frontend import load_model
from tvmq.hil.instruction_count import count_instructions
from tvmq.targets import load_target

# VWW's host reference build alone takes 25-45 s here; bench/cortex_a_cost.py runs
# it (and these three) on the aarch64 builds and checks them against the host too.
INT8_MODELS = {"ad_autoencoder_int8": "ad01", "ic_resnet8_int8": "ic01", "kws_dscnn_int8": "kws01"}
TARGETS = ["armv8.2-a-dotprod-i8mm", "rpi4", "armv7-neon"]
CLI_MODEL = "ad_autoencoder_int8"  # quickest to emit
SAMPLES = 3
HOST_BUILD = {"CC": "cc", "AR": "ar", "CFLAGS": "-O2"}

pytestmark = pytest.mark.skipif(
    not all(
        shutil.which(tool)
        for tool in ("aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "qemu-aarch64", "qemu-arm")
    ),
    reason="the ARM Linux cross compilers and qemu-user are needed (make toolchains)",
)


class Builds:
    """Each model emitted once; its C built once per target, on first use."""

    def __init__(self, root):
        self.root = root
        self.models, self.executables = {}, {}

    def model(self, name: str):
        if name not in self.models:
            model = load_model(shared_model(name))
            compiled = emit_model(model, self.root / name / "model")
            inputs = model_inputs(model, INT8_MODELS[name])[:SAMPLES]
            host = model.build("host")
            self.models[name] = (model, compiled, inputs, [host(x) for x in inputs])
        return self.models[name]

    def executable(self, name: str, target_name: str) -> LinuxExecutable:
        key = (name, target_name)
        if key not in self.executables:
            model, compiled, _, _ = self.model(name)
            target, directory = load_target(target_name), self.root / name / target_name
            shutil.copytree(self.root / name / "model", directory / "model")
            write_build_files(compiled, target, directory)
            self.executables[key] = LinuxExecutable(model, target, directory, compiled)
        return self.executables[key]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> Builds:
    return Builds(tmp_path_factory.mktemp("cortex-a"))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(INT8_MODELS))
def test_mlperf_int8_model_on_cortex_a_is_identical_to_host(builds, name, target):
    _, _, inputs, expected = builds.model(name)
    outputs = builds.executable(name, target).run_batch([[x] for x in inputs])
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected, strict=True):
        for got_array, want_array in zip(got, want, strict=True):
            np.testing.assert_array_equal(got_array, want_array)


def disassembly(executable: LinuxExecutable) -> str:
    objdump = executable.target.toolchain["objdump"]
    result = subprocess.run(
        [objdump, "-d", str(executable.library)], capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.parametrize("name", ["ic_resnet8_int8", "kws_dscnn_int8"])
def test_dot_product_build_uses_sdot_and_the_rpi4_build_does_not(builds, name):
    dot_product = disassembly(builds.executable(name, "armv8.2-a-dotprod-i8mm"))
    plain = disassembly(builds.executable(name, "rpi4"))
    assert "\tsdot\t" in dot_product
    assert "\tsdot\t" not in plain
    assert "\tsadalp\t" in plain  # the widening multiply-add path instead
    # IC's 3x3 convolutions take output pixels in pairs, KWS's odd rows pairs and a
    # tail (the default schedule emitted here): SMMLA where i8mm exists
    assert "\tsmmla\t" in dot_product
    assert "\tsmmla\t" not in disassembly(builds.executable(name, "rpi5"))


def test_pixel_pairs_without_smmla_are_the_tuning_alternative_on_i8mm(builds, tmp_path):
    """On i8mm cores the space offers each pixel-pair form without SMMLA too: IC
    built with those alone has no SMMLA left and the same outputs."""
    from tvmq.tune.space import offers_mmla, variants

    assert offers_mmla(load_target("armv8.2-a-dotprod-i8mm"))
    assert not any(offers_mmla(load_target(t)) for t in ("rpi5", "rpi4", "qemu-cortex-m55"))

    def pairs_without_smmla(func):
        chosen = [v for v in variants(func, mmla_choice=True) if not v.mmla]
        return chosen[0].apply(func) if chosen else default_schedule(func)

    model, _, inputs, expected = builds.model("ic_resnet8_int8")
    target, directory = load_target("armv8.2-a-dotprod-i8mm"), tmp_path / "ic"
    compiled = emit_model(model, directory / "model", pairs_without_smmla)
    assert "_no_mmla(" in (directory / "model" / "tvmq_kernels.c").read_text()
    write_build_files(compiled, target, directory)
    with LinuxExecutable(model, target, directory, compiled) as executable:
        assert "\tsmmla\t" not in disassembly(executable)
        assert "\tsdot\t" in disassembly(executable)
        for got, want in zip(executable.run_batch([[x] for x in inputs]), expected, strict=True):
            np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize(
    ("cc", "flags", "emulator"),
    [
        ("aarch64-linux-gnu-gcc", ["-march=armv8.2-a+dotprod+i8mm"],
         ["qemu-aarch64", "-cpu", "max"]),
        ("aarch64-linux-gnu-gcc", ["-mcpu=cortex-a76"], ["qemu-aarch64", "-cpu", "cortex-a76"]),
        ("aarch64-linux-gnu-gcc", ["-mcpu=cortex-a72"], ["qemu-aarch64", "-cpu", "cortex-a72"]),
        ("arm-linux-gnueabihf-gcc", ["-march=armv7-a", "-mfpu=neon", "-mfloat-abi=hard"],
         ["qemu-arm", "-cpu", "cortex-a8"]),
    ],
)  # fmt: skip
def test_neon_micro_kernels_match_plain_integer_loops(tmp_path, cc, flags, emulator):
    """Every remainder of k and window size, with -128 and 127 among the values."""
    check = KERNELS_DIR.parents[2] / "tests" / "kernels" / "check_tvmq_dot.c"
    program = tmp_path / "check"
    subprocess.run(
        [cc, "-O3", *flags, f"-I{KERNELS_DIR}", str(check), "-static", "-o", str(program)],
        check=True,
    )
    result = subprocess.run([*emulator, str(program)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("0 of ")


LOOP = {  # 1 + 2 * 1000 + 3 instructions: a countdown, then exit(0)
    "aarch64": ("aarch64-linux-gnu-gcc", ["qemu-aarch64", "-cpu", "max"],
                "mov x0, #1000\n1: subs x0, x0, #1\nb.ne 1b\nmov x8, #93\nmov x0, #0\nsvc #0\n"),
    "armv7": ("arm-linux-gnueabihf-gcc", ["qemu-arm", "-cpu", "cortex-a8"],
              ".arm\nmov r0, #1000\n1: subs r0, r0, #1\nbne 1b\nmov r7, #1\nmov r0, #0\nsvc #0\n"),
}  # fmt: skip


@pytest.mark.parametrize("arch", sorted(LOOP))
def test_instruction_count_of_a_loop_of_known_length(tmp_path, arch):
    cc, emulator, body = LOOP[arch]
    source, program = tmp_path / "loop.S", tmp_path / "loop"
    source.write_text(f".global _start\n_start:\n{body}")
    subprocess.run([cc, "-nostdlib", "-static", str(source), "-o", str(program)], check=True)
    assert count_instructions([*emulator, str(program)]) == 1 + 2 * 1000 + 3


def test_python_loader_runs_the_library_built_for_this_machine(builds, tmp_path):
    _, compiled, inputs, expected = builds.model("kws_dscnn_int8")
    directory = tmp_path / "project"
    shutil.copytree(builds.root / "kws_dscnn_int8" / "model", directory / "model")
    write_build_files(compiled, load_target("rpi5"), directory)
    build_project(directory, HOST_BUILD)
    loaded = NativeModel.from_project(directory)
    assert loaded.build_id == compiled.build_id
    for x, want in zip(inputs, expected, strict=True):
        np.testing.assert_array_equal(loaded(x)[0], want[0])
    with pytest.raises(TvmqError, match="expected 490 bytes of int8"):
        loaded(np.zeros(10, np.int8))


def test_tvm_module_runs_the_model_in_tvms_runtime(builds, tmp_path):
    """``make module``: TVM's own loader finds ``tvmq_run``, which computes what the
    host does, refuses wrong tensors in one line, and is timed by TVM's time
    evaluator (what a board's RPC server does with it). The aarch64 build, called
    as TVM's loader calls it (tests/kernels/call_tvm_module.c under qemu-aarch64:
    no aarch64 TVM runtime here), computes the same."""
    import tvm

    _, compiled, inputs, expected = builds.model("kws_dscnn_int8")
    directory = tmp_path / "project"
    shutil.copytree(builds.root / "kws_dscnn_int8" / "model", directory / "model")
    write_build_files(compiled, load_target("rpi5"), directory)
    build_project(directory, HOST_BUILD, goal="module")
    module = tvm.runtime.load_module(str(module_path(compiled, directory)))
    run, device = module["tvmq_run"], tvm.cpu()
    output = tvm.runtime.empty(expected[0][0].shape, expected[0][0].dtype, device)
    for x, want in zip(inputs, expected, strict=True):
        run(tvm.runtime.tensor(x, device), output)
        np.testing.assert_array_equal(output.numpy(), want[0])
    with pytest.raises(ValueError, match=r"input 0 \('input_1'\) must be a contiguous CPU tensor"):
        run(tvm.runtime.tensor(np.zeros(10, np.int8), device), output)
    with pytest.raises(ValueError, match="takes 1 inputs and 1 outputs"):
        run(output)
    timer = module.time_evaluator("tvmq_run", device, number=2, repeat=2)
    assert all(s > 0 for s in timer(tvm.runtime.tensor(inputs[0], device), output).results)

    build_project(directory, goal="clean")
    build_project(directory, goal="module")  # config.mk's cross compiler: aarch64
    caller = tmp_path / "call_tvm_module"
    source = KERNELS_DIR.parents[2] / "tests" / "kernels" / "call_tvm_module.c"
    subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O2", f"-I{directory / 'model'}", str(source), "-o", caller],
        check=True,
    )
    given, taken = tmp_path / "input.bin", tmp_path / "output.bin"
    for x, want in zip(inputs, expected, strict=True):
        given.write_bytes(x.tobytes())
        arguments = [module_path(compiled, directory), given, taken, want[0].nbytes]
        result = subprocess.run(
            [*load_target("rpi5").toolchain["emulator"], caller, *map(str, arguments)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        got = np.frombuffer(taken.read_bytes(), want[0].dtype).reshape(want[0].shape)
        np.testing.assert_array_equal(got, want[0])


def test_runner_refuses_an_input_of_the_wrong_size(builds, tmp_path):
    executable = builds.executable("kws_dscnn_int8", "rpi4")
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(bytes(491))
    command = [*executable.target.toolchain["emulator"], str(executable.runner)]
    result = subprocess.run(
        [*command, str(wrong), str(tmp_path / "out.bin")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tvmq_runner: {wrong}: 491 bytes is not a whole number of samples of 490 bytes "
        "(the inputs of model kws_dscnn_int8)"
    ]
    assert not (tmp_path / "out.bin").exists() or (tmp_path / "out.bin").stat().st_size == 0


def command_line(capsys, *args) -> tuple[int, str]:
    """`tvmq ARGS` in this process (TVM already imported); exit status and stderr."""
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


def test_compile_and_run_from_the_command_line(builds, tmp_path, capsys):
    _, _, inputs, expected = builds.model(CLI_MODEL)
    path = shared_model(CLI_MODEL)
    out = tmp_path / "lib"
    status, errors = command_line(capsys, "compile", path, "--target", "rpi5", "-o", out)
    assert status == 0, errors
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "tvmq-linux-library/1"
    assert manifest["toolchain"]["cflags"] == ["-O3", "-mcpu=cortex-a76"]
    for kind in ("static", "shared"):
        assert (out / manifest["libraries"][kind]).stat().st_size > 0
    assert (out / "include" / "tvmq_model.h").is_file()
    assert (out / "model" / f"{CLI_MODEL}.h").is_file()
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.stack(inputs))
    status, errors = command_line(
        capsys, "run", path, "--target", "rpi5", "--input", x, "--output", y
    )
    assert status == 0, errors
    np.testing.assert_array_equal(np.load(y), np.stack([e[0] for e in expected]))
    status, errors = command_line(capsys, "compile", path, "--target", "rpi5", "-o", out)
    assert status == EXIT_USER_ERROR
    assert errors.splitlines() == [f"tvmq: error: {out}: already exists; use --force to replace it"]


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 7), np.int8))
    status, errors = command_line(
        capsys, "run", shared_model(CLI_MODEL), "--target", "rpi5", "--input", x
    )
    assert status == EXIT_USER_ERROR
    assert len(errors.splitlines()) == 1
    assert errors.startswith(f"tvmq: error: {x}") and "shape" in errors


def test_missing_cross_compiler_is_named_and_leaves_nothing(builds, tmp_path):
    path = tmp_path / "board.toml"
    text = (
        load_target("rpi5")
        .path.read_text()
        .replace('cc = "aarch64-linux-gnu-gcc"', 'cc = "no-such-gcc"')
    )
    path.write_text(text)
    model = builds.model("kws_dscnn_int8")[0]
    with pytest.raises(TvmqError, match="target 'rpi5' needs no-such-gcc, which is not installed"):
        compile_library(model, load_target(path), tmp_path / "lib")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.toml"]
