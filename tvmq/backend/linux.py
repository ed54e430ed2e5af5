"""Linux builds for Cortex-A boards: a model as a C library, run under QEMU user mode.

The same ahead-of-time C as a microcontroller firmware (:mod:`tvmq.backend.emit_c`:
const weights, one static arena, TVM's kernels, no TVM runtime), cross-compiled
with the target's gcc and flags into a static and a shared library. A Linux
board then needs neither TVM nor Python; boards with Python load the shared
library with :class:`tvmq.backend.native.NativeModel`.

``write_project`` lays out a directory that rebuilds on its own with make: the
model's C (``model/``), ``include/tvmq_model.h`` (the C API: the model
descriptor; ``model/<model>.h`` has the typed entry point), the runner, a
Makefile with the target's compiler in ``config.mk``, and ``manifest.json``.
``LinuxExecutable`` runs the runner under the target's emulator, one process
per batch of samples.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

import numpy as np

from tvmq.backend.aot import CompiledModel, Scheduler
from tvmq.backend.emit_c import c_identifier, emit_model
from tvmq.backend.manifest import model_manifest
from tvmq.backend.mcu import KERNELS_OBJECT
from tvmq.backend.registry import ProjectOptions
from tvmq.backend.schedule import default_schedule
from tvmq.errors import TvmqError
from tvmq.fileio import new_directory
from tvmq.model import Model
from tvmq.resources import firmware_dir
from tvmq.targets import Target

FIRMWARE_DIR = firmware_dir()
PROJECT_FILES = {
    FIRMWARE_DIR / "linux" / "Makefile": "Makefile",
    FIRMWARE_DIR / "linux" / "tvmq_runner.c": "runner/tvmq_runner.c",
    FIRMWARE_DIR / "linux" / "tvmq_module.c": "runner/tvmq_module.c",
    FIRMWARE_DIR / "include" / "tvmq_model.h": "include/tvmq_model.h",
}
RUNNER = "bin/tvmq_runner"


def toolchain(target: Target) -> dict:
    """The target's cross toolchain, checked: cc, ar, cflags and emulator (only the
    compiler and archiver need be installed to compile)."""
    tools = target.toolchain
    for key in ("cc", "ar", "cflags", "emulator"):
        if key not in tools:
            raise TvmqError(f"{target.path}: missing key 'toolchain.{key}'")
    for command in (tools["cc"], tools["ar"]):
        if shutil.which(command) is None:
            raise TvmqError(
                f"target '{target.name}' needs {command}, which is not installed "
                "(tvmq doctor says which Debian package has it)"
            )
    return tools


def library_name(compiled: CompiledModel) -> str:
    return f"libtvmq_{c_identifier(compiled.model.name)}"


def module_path(compiled: CompiledModel, directory: Path) -> Path:
    """Where ``make module`` puts the model as a TVM module (packed function ``tvmq_run``)."""
    return directory / "lib" / f"{library_name(compiled)}_module.so"


def write_project(
    model: Model, target: Target, directory: Path, schedule: Scheduler = default_schedule
) -> CompiledModel:
    """The library project for `model` on `target`, in `directory`, not yet built."""
    toolchain(target)
    compiled = emit_model(model, directory / "model", schedule)
    write_build_files(compiled, target, directory)
    return compiled


def write_build_files(compiled: CompiledModel, target: Target, directory: Path) -> None:
    """Everything but ``model/``: the Makefile, its config.mk for `target`, the runner,
    the C API header and the manifest. The model's C does not depend on the target,
    so one ``model/`` serves every target's project."""
    tools = toolchain(target)
    for source, name in PROJECT_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, directory / name)
    (directory / "config.mk").write_text(
        f"# {target.name}: {target.description}\n"
        f"NAME = {c_identifier(compiled.model.name)}\n"
        f"CC = {tools['cc']}\n"
        f"AR = {tools['ar']}\n"
        f"CFLAGS = {shlex.join(tools['cflags'])}\n"
    )
    manifest = _manifest(compiled, target)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def build_project(
    directory: Path, overrides: dict[str, str] | None = None, goal: str = "all"
) -> None:
    """Build the libraries and the runner (`goal` ``all``) or the TVM module (``module``)
    with the project's Makefile (two jobs).

    `overrides` replaces config.mk's variables, e.g. ``{"CC": "cc", "AR": "ar",
    "CFLAGS": "-O2"}`` for a build for this machine.
    """
    settings = [f"{key}={value}" for key, value in (overrides or {}).items()]
    result = subprocess.run(
        ["make", "-s", "-j2", "-C", str(directory), *settings, goal],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        detail = next((line for line in lines if "error" in line), lines[-1] if lines else "")
        raise TvmqError(f"building {directory} failed: {detail}")


def compile_project(model: Model, target: Target, directory: Path, options: ProjectOptions) -> dict:
    """`tvmq compile`'s project for a Cortex-A target: the library."""
    return compile_library(model, target, directory, options.schedule or default_schedule)


def compile_library(
    model: Model, target: Target, directory: Path, schedule: Scheduler = default_schedule
) -> dict:
    """Write and build the project into `directory` (which must not exist), atomically.

    Returns the manifest; on any failure nothing is left at `directory`.
    """
    with new_directory(directory) as staging:
        write_project(model, target, staging, schedule)
        build_project(staging)
        manifest = json.loads((staging / "manifest.json").read_text())
        libraries = manifest["libraries"]
        libraries["bytes"] = {
            kind: (staging / libraries[kind]).stat().st_size for kind in ("static", "shared")
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(compiled: CompiledModel, target: Target) -> dict:
    name = library_name(compiled)
    return {
        "format": "tvmq-linux-library/1",
        "entry": (
            f"tvmq_{c_identifier(compiled.model.name)}_run in model/"
            f"{c_identifier(compiled.model.name)}.h; tvmq_model in include/tvmq_model.h"
        ),
        "libraries": {"static": f"lib/{name}.a", "shared": f"lib/{name}.so"},
        "runner": f"{RUNNER} INPUT OUTPUT [RUNS]",
        "toolchain": {key: target.toolchain[key] for key in ("cc", "cflags", "emulator")},
        "weights_bytes": len(compiled.weights),
        "arena_bytes": compiled.plan.arena_bytes,
        **model_manifest(compiled, target),
    }


def run_emulated(target: Target, directory: Path, arguments: list[str]) -> None:
    """Run the project's runner under the target's emulator; a TvmqError if it fails."""
    command = [*target.toolchain["emulator"], str(directory / RUNNER), *arguments]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise TvmqError(
            f"target '{target.name}' runs under {command[0]}, which is not installed "
            "(tvmq doctor says which Debian package has it)"
        ) from error
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise TvmqError(f"{target.name}: {lines[-1]}")


def runner_instructions(target: Target, directory: Path, payload: bytes, runs: int = 1) -> float:
    """Instructions per inference of the project's runner on `payload` (its input file)
    under the target's emulator, counted from QEMU's block log: a run of `runs`
    inferences minus a run of none, so process start and file I/O drop out."""
    from tvmq.hil.instruction_count import count_instructions

    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        given, taken = Path(scratch) / "input.bin", Path(scratch) / "output.bin"
        given.write_bytes(payload)
        command = [*target.toolchain["emulator"], str(directory / RUNNER), str(given), str(taken)]
        timed, idle = (count_instructions([*command, str(n)]) for n in (runs, 0))
    return (timed - idle) / runs


class LinuxExecutable:
    """A model's library for a Cortex-A target, run under QEMU user mode on numpy arrays."""

    def __init__(self, model: Model, target: Target, directory: Path, compiled: CompiledModel):
        self.model, self.target, self.compiled = model, target, compiled
        self.directory = directory
        build_project(directory)
        self._cleanup = weakref.finalize(self, shutil.rmtree, directory, True)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        return self.run_batch([arrays])[0]

    def run_batch(self, samples: list) -> list[list[np.ndarray]]:
        """Outputs for each sample (a sequence of input arrays), in one emulator run."""
        samples = [self.model.check_inputs(list(sample)) for sample in samples]
        payload = b"".join(
            np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("<")).tobytes()
            for sample in samples
            for x in sample
        )
        with tempfile.TemporaryDirectory(dir=self.directory) as scratch:
            given, taken = Path(scratch) / "input.bin", Path(scratch) / "output.bin"
            given.write_bytes(payload)
            run_emulated(self.target, self.directory, [str(given), str(taken)])
            raw = taken.read_bytes()
        outputs, at = [], 0
        for _ in samples:
            arrays = []
            for spec in self.model.outputs:
                size = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
                little_endian = np.dtype(spec.dtype).newbyteorder("<")
                array = np.frombuffer(raw[at : at + size], dtype=little_endian)
                arrays.append(array.astype(spec.dtype).reshape(spec.shape))
                at += size
            outputs.append(arrays)
        if at != len(raw):
            raise TvmqError(f"{self.target.name}: runner wrote {len(raw)} bytes, expected {at}")
        return outputs

    @property
    def library(self) -> Path:
        """The shared library built for the target."""
        return self.directory / "lib" / f"{library_name(self.compiled)}.so"

    @property
    def runner(self) -> Path:
        return self.directory / RUNNER

    def close(self) -> None:
        """Delete the temporary project."""
        self._cleanup()

    def __enter__(self) -> LinuxExecutable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_linux(
    model: Model, target: Target, schedule: Scheduler = default_schedule
) -> LinuxExecutable:
    """Compile `model` for `target` in a temporary project, ready to run emulated."""
    directory = Path(tempfile.mkdtemp(prefix=f"tvmq-{target.name}-"))
    try:
        compiled = write_project(model, target, directory, schedule)
        return LinuxExecutable(model, target, directory, compiled)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


build = build_linux  # the backend registry's entry


# One kernel as a program, for tuning (tvmq.tune.board, tvmq.tune.code_size): the
# kernel emitted as a one-step model into `directory`/model, built as libraries are.


def build_kernel_program(
    compiled: CompiledModel, target: Target, directory: Path, tvm_module: bool = False
) -> Path:
    """The project's runner of the kernel emitted into `directory`/model or, with
    `tvm_module`, the library as a TVM module for a board's RPC server."""
    write_build_files(compiled, target, directory)
    if tvm_module:
        build_project(directory, goal="module")
        return module_path(compiled, directory)
    build_project(directory)
    return directory / RUNNER


def build_kernels_object(compiled: CompiledModel, target: Target, directory: Path) -> Path:
    """Only the object of the kernels emitted into `directory`/model, compiled as in libraries."""
    write_build_files(compiled, target, directory)
    build_project(directory, goal=f"build/{KERNELS_OBJECT}")
    return directory / "build" / KERNELS_OBJECT


def program_instructions(
    program: Path, target: Target, inputs: list[np.ndarray], runs: int
) -> float:
    """Instructions per call of the kernel's runner under the target's emulator."""
    payload = b"".join(np.ascontiguousarray(a).tobytes() for a in inputs)
    return runner_instructions(target, program.parent.parent, payload, runs)  # ./bin/tvmq_runner
