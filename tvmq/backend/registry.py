"""Backends by target kind: one table, looked up once per build (as pySerial picks
a transport by URL scheme).

Each backend is a module with ``build(model, target, schedule) -> Executable`` and,
where `tvmq compile` makes a project for it, ``compile_project(model, target,
directory, options) -> manifest``; it is imported on first use, since most import
TVM. What callers decide from a backend without building (whether tvmq generates
its C, how tuning measures it, whether compile makes a project) lives in its record
here, so the API, the CLI and the tuner need no ``target.kind`` tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tvmq.errors import TvmqError
from tvmq.model import Model
from tvmq.targets import Target

if TYPE_CHECKING:
    from tvmq.backend.aot import Scheduler
    from tvmq.backend.emit_c import Placement


@dataclass(frozen=True)
class ProjectOptions:
    """What `tvmq compile` asks of a project beyond the model and the target; each
    backend reads the options that apply to it (the API refuses the others)."""

    schedule: Scheduler | None = None  # tuned schedules; None: the default schedule
    placement: Placement | None = None  # linker sections of a Cortex-M firmware's data
    batch: int = 1  # samples per call (CUDA)


@dataclass(frozen=True)
class Backend:
    """How one kind of target is built and tuned."""

    kind: str
    module: str  # provides build(model, target, schedule) -> Executable
    emits_c: bool  # tvmq's own C (kernels it schedules and tunes) built by the target's toolchain
    runners: tuple[str, ...]  # how tuning measures a candidate, the default first; () not tunable
    compiles: bool  # `tvmq compile` makes a project (firmware, library, kernels) for it

    @property
    def tunable(self) -> bool:
        return bool(self.runners)

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def project(
        self, model: Model, target: Target, directory: Path, options: ProjectOptions
    ) -> dict:
        """Write the project into `directory` (which must not exist), all or nothing;
        its manifest."""
        return self.load().compile_project(model, target, directory, options)


BACKENDS = {
    backend.kind: backend
    for backend in (
        Backend("host", "tvmq.backend.host", False, ("local", "rpc"), compiles=False),
        Backend("cortex-m", "tvmq.backend.mcu", True, ("board",), compiles=True),
        Backend("cortex-a", "tvmq.backend.linux", True, ("board", "rpc"), compiles=True),
        Backend("cuda", "tvmq.backend.cuda", False, (), compiles=True),
    )
}


def backend_for(target: Target) -> Backend:
    """The backend of `target`'s kind; an unknown kind is a user error naming the known ones."""
    backend = BACKENDS.get(target.kind)
    if backend is None:
        raise TvmqError(
            f"target '{target.name}': no backend for kind '{target.kind}' "
            f"(known: {', '.join(BACKENDS)})"
        )
    return backend
