"""Microcontroller builds: a firmware project per model, run on the board it names.

``write_project`` lays out a directory that builds on its own with make and
arm-none-eabi-gcc: the model's C (``model/``, self-contained, to drop into the
user's own project), the harness, the shared headers and the one board port the
target names, plus ``manifest.json`` (what Model Library Format gave microTVM
users: sizes, tensors, quantization, memory plan) and, once built,
``memory.json`` (the model's own flash and RAM apart from the harness's).
``McuExecutable`` runs that firmware on the emulated board through the serial
harness, one inference per call, like the host build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tvmq.backend.aot import CompiledModel, Scheduler
from tvmq.backend.emit_c import (
    DEFAULT_PLACEMENT,
    Placement,
    c_identifier,
    data_sections,
    emit_model,
    workspace_bytes,
)
from tvmq.backend.link_map import memory_split
from tvmq.backend.manifest import model_manifest
from tvmq.backend.registry import ProjectOptions
from tvmq.backend.schedule import default_schedule
from tvmq.errors import TvmqError
from tvmq.fileio import new_directory
from tvmq.model import Model
from tvmq.resources import firmware_dir
from tvmq.scratch import make_scratch, remove_scratch
from tvmq.targets import Target

FIRMWARE_DIR = firmware_dir()
PROJECT_FILES = ("Makefile", "include", "harness")
KERNELS_OBJECT = "tvmq_kernels.o"  # the kernels alone: what the Makefiles make of tvmq_kernels.c


def board_of(target: Target) -> str:
    board = target.board.get("name", "")
    if not (FIRMWARE_DIR / "boards" / board).is_dir():
        raise TvmqError(f"target '{target.name}': no firmware port for board '{board}'")
    return board


def write_project(
    model: Model,
    target: Target,
    directory: Path,
    schedule: Scheduler = default_schedule,
    placement: Placement = DEFAULT_PLACEMENT,
) -> CompiledModel:
    """The firmware project for `model` on `target`'s board, in `directory`."""
    board = board_of(target)
    compiled = emit_model(
        model, directory / "model", schedule, placement, core=target.tvm.get("mcpu")
    )
    copy_firmware_files(board, directory)
    manifest = _manifest(compiled, target, board, placement)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return compiled


def copy_firmware_files(board: str, directory: Path) -> None:
    """The harness, shared headers, Makefile and `board`'s port, into `directory`."""
    for name in PROJECT_FILES:
        source = FIRMWARE_DIR / name
        if source.is_dir():
            shutil.copytree(source, directory / name)
        else:
            shutil.copyfile(source, directory / name)
    shutil.copytree(FIRMWARE_DIR / "boards" / board, directory / "boards" / board)


def build_project(directory: Path, target: Target) -> Path:
    """Compile the project with its own Makefile; the ELF path."""
    from tvmq.hil.firmware import build_firmware

    return build_firmware(
        board_of(target),
        directory / "build",
        directory / "model",
        firmware_dir=directory,
    )


def elf_sizes(elf: Path) -> dict[str, int]:
    """Flash (text + data) and static RAM (data + bss, stack included) of a firmware."""
    import subprocess

    result = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise TvmqError(f"arm-none-eabi-size failed on {elf}: {result.stderr.strip()}")
    text, data, bss = (int(v) for v in result.stdout.splitlines()[1].split()[:3])
    return {"flash": text + data, "ram": data + bss}


def compile_project(model: Model, target: Target, directory: Path, options: ProjectOptions) -> dict:
    """`tvmq compile`'s project for a Cortex-M target: the firmware."""
    return compile_firmware(
        model,
        target,
        directory,
        options.schedule or default_schedule,
        options.placement or DEFAULT_PLACEMENT,
    )


def compile_firmware(
    model: Model,
    target: Target,
    directory: Path,
    schedule: Scheduler = default_schedule,
    placement: Placement = DEFAULT_PLACEMENT,
) -> dict:
    """Write and build the project into `directory` (which must not exist), atomically.

    Returns the memory report: the firmware's flash and RAM, and their split into
    the model's own (code, weights, arena), the harness's, alignment fill and
    stack. On any failure nothing is left at `directory`.
    """
    with new_directory(directory) as staging:
        compiled = write_project(model, target, staging, schedule, placement)
        elf = build_project(staging, target)
        kernels = (staging / "model" / "tvmq_kernels.c").read_text()
        split = memory_split(
            elf,
            elf.with_suffix(".map"),
            elf.parent / "model",
            *data_sections(c_identifier(model.name), placement),
        )
        report = {
            **model_memory(compiled, target),
            "workspace_bytes": workspace_bytes(kernels),
            **elf_sizes(elf),
            **split,
        }
        (staging / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def model_memory(compiled: CompiledModel, target: Target) -> dict:
    """What the model takes, before the firmware around it, and what the board has."""
    graph, plan = compiled.graph, compiled.plan
    return {
        "weights_bytes": len(compiled.weights),
        "arena_bytes": plan.arena_bytes,
        "arena_unplanned_bytes": plan.unplanned_bytes,
        "arena_lower_bound_bytes": plan.lower_bound_bytes,
        "io_bytes": sum(graph.tensors[t].nbytes for t in [*graph.inputs, *graph.outputs]),
        "flash_limit": target.memory.get("flash"),
        "ram_limit": target.memory.get("ram"),
    }


def _manifest(compiled: CompiledModel, target: Target, board: str, placement: Placement) -> dict:
    name = c_identifier(compiled.model.name)
    weights, arena = data_sections(name, placement)
    return {
        "format": "tvmq-firmware/1",
        "board": board,
        "entry": f"tvmq_{name}_run and tvmq_{name}_run_with_arena in model/{name}.h; "
        f"tvmq_{name}_model (tvmq_model.h)",
        "sections": {"weights": weights, "arena": arena},
        "memory": model_memory(compiled, target),
        **model_manifest(compiled, target),
    }


class McuExecutable:
    """A model's firmware on an emulated board, called on numpy arrays.

    QEMU starts on the first call and stays up until :meth:`close` (or exit), so
    that evaluating a data set costs one boot.
    """

    def __init__(self, model: Model, target: Target, directory: Path, compiled: CompiledModel):
        self.model, self.target, self.compiled = model, target, compiled
        self.directory = directory
        self.firmware = build_project(directory, target)
        self.last_ticks: int | None = None
        self.tick_hz: int | None = None
        self._emulator = None
        self._device = None

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        device = self._open()
        outputs, timing = device.infer(self.model.check_inputs(arrays))
        self.last_ticks, self.tick_hz = timing.mean, device.info.tick_hz
        return [
            output.reshape(spec.shape)
            for output, spec in zip(outputs, self.model.outputs, strict=True)
        ]

    @property
    def instructions(self) -> int | None:
        """Instructions of the last inference: exact under QEMU's -icount shift=0."""
        if self.last_ticks is None:
            return None
        return round(self.last_ticks * 1e9 / self.tick_hz)

    @property
    def memory(self) -> dict:
        """What the model takes of the board's flash and RAM, and what the board has."""
        return model_memory(self.compiled, self.target)

    def _open(self):
        from tvmq.hil import Device, Emulator

        if self._device is None:
            self._emulator = Emulator(self.firmware, self.target).start()
            self._device = Device(self._emulator.url).open()
        return self._device

    def close(self) -> None:
        """Stop the emulator and delete the temporary firmware project (at exit otherwise)."""
        if self._device is not None:
            self._device.close()
            self._emulator.stop()
            self._device = self._emulator = None
        remove_scratch(self.directory)

    def __enter__(self) -> McuExecutable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_mcu(
    model: Model, target: Target, schedule: Scheduler = default_schedule
) -> McuExecutable:
    """Compile `model` into a firmware for `target` in a temporary project."""
    directory = make_scratch(f"tvmq-{target.name}-")
    try:
        compiled = write_project(model, target, directory, schedule)
        return McuExecutable(model, target, directory, compiled)
    except BaseException:
        remove_scratch(directory)
        raise


def build(model: Model, target: Target, schedule: Scheduler = default_schedule) -> McuExecutable:
    """The backend registry's entry: a firmware that runs on the emulated board."""
    if not target.is_emulated:
        raise TvmqError(
            f"target '{target.name}' is a real board, which builds here do not run on: "
            "use an emulated one (qemu-cortex-m*) or `tvmq compile` for its firmware"
        )
    return build_mcu(model, target, schedule)


# One kernel as a program, for tuning (tvmq.tune.board, tvmq.tune.code_size): the
# kernel emitted as a one-step model into `directory`/model, built as models are.


def build_kernel_program(
    compiled: CompiledModel, target: Target, directory: Path, tvm_module: bool = False
) -> Path:
    """The harness firmware running the kernel emitted into `directory`/model."""
    from tvmq.hil.firmware import build_firmware

    if tvm_module:
        raise TvmqError(f"target '{target.name}': a microcontroller runs no TVM module")
    return build_firmware(board_of(target), directory / "build", directory / "model")


def build_kernels_object(compiled: CompiledModel, target: Target, directory: Path) -> Path:
    """Only the object of the kernels emitted into `directory`/model, compiled as in firmware."""
    from tvmq.hil.firmware import build_firmware

    out = (directory / "build").resolve()  # as build_firmware passes OUT to make
    build_firmware(board_of(target), out, directory / "model", goal=f"{out}/model/{KERNELS_OBJECT}")
    return out / "model" / KERNELS_OBJECT


def program_instructions(
    program: Path, target: Target, inputs: list[np.ndarray], runs: int
) -> float:
    """Instructions per call of the kernel program (exact on the emulated board's -icount)."""
    from tvmq.hil import Device, Emulator

    with Emulator(program, target) as emulator, Device(emulator.url) as device:
        _, timing = device.infer([a.tobytes() for a in inputs], runs, 1)
        return timing.mean * 1e9 / device.info.tick_hz
