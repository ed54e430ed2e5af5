"""Target descriptions, one TOML file each in the shipped ``targets/``.

A target names what TVM generates code for (the ``[tvm]`` table is passed to
``tvm.target.Target`` as is) and, for devices, how to build and run that code:
toolchain, board, memory sizes and clock.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvmq.errors import TvmqError
from tvmq.resources import targets_dir

TARGETS_DIR = targets_dir()
KINDS = ("host", "cortex-m", "cortex-a", "cuda")
NATIVE_CPU = "native"  # a [tvm] mcpu resolved to the CPU of the machine that builds


@dataclass(frozen=True)
class Target:
    """One code-generation target and, where it is a device, its board."""

    name: str
    kind: str
    description: str
    tvm: dict[str, Any]
    toolchain: dict[str, Any] = field(default_factory=dict)
    board: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    path: Path | None = None

    @property
    def is_emulated(self) -> bool:
        """A Cortex-M board that QEMU emulates (its ``machine``), not a real one."""
        return self.kind == "cortex-m" and "machine" in self.board

    @property
    def is_host(self) -> bool:
        """Code that runs on this machine's CPU: timed by its clock, on all its cores."""
        return self.kind == "host"

    @property
    def clock_hz(self) -> int | None:
        """The clock of the board (the real one an emulated board stands for); None
        where the target says none (an emulated Cortex-A counts instructions only)."""
        return self.board.get("real_clock_hz") or self.board.get("clock_hz")

    def tvm_config(self) -> dict[str, Any]:
        """The ``[tvm]`` table with ``mcpu = "native"`` replaced by this machine's CPU
        as LLVM names it (imports TVM, so only when code is generated)."""
        if self.tvm.get("mcpu") != NATIVE_CPU:
            return dict(self.tvm)
        return {**self.tvm, "mcpu": host_cpu()}

    def tvm_target(self):
        """The TVM target object (imports TVM, so only when code is generated)."""
        import tvm

        return tvm.target.Target(self.tvm_config())


def host_cpu() -> str:
    """This machine's CPU as LLVM names it (``znver3``, ``skylake-avx512``): the code
    of a host build uses every vector instruction it has."""
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(name_or_path: str | Path) -> Target:
    """A target by name (``host``) or by the path of its .toml file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = TARGETS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(available_targets())
            raise TvmqError(f"unknown target '{name_or_path}' (known: {known})")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TvmqError(f"{path}: cannot read target ({error})") from error
    for key in ("name", "kind", "tvm"):
        if key not in data:
            raise TvmqError(f"{path}: missing key '{key}'")
    if data["kind"] not in KINDS:
        raise TvmqError(f"{path}: kind '{data['kind']}' is not one of {', '.join(KINDS)}")
    if "kind" not in data["tvm"]:
        raise TvmqError(f"{path}: missing key 'tvm.kind'")
    return Target(
        name=data["name"],
        kind=data["kind"],
        description=data.get("description", ""),
        tvm=data["tvm"],
        toolchain=data.get("toolchain", {}),
        board=data.get("board", {}),
        memory=data.get("memory", {}),
        path=path,
    )
