"""Backends by target kind: one table, looked up once per build (as pySerial picks
a transport by URL scheme).

Each backend is a module with ``build(model, target, schedule) -> Executable``;
it is imported on first use, since most import TVM. What callers decide from a
backend without building (whether tvmq generates its C, how tuning measures it)
lives in its record here, so the CLI and the tuner need no ``target.kind`` tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from tvmq.errors import TvmqError
from tvmq.targets import Target


@dataclass(frozen=True)
class Backend:
    """How one kind of target is built and tuned."""

    kind: str
    module: str  # provides build(model, target, schedule) -> Executable
    emits_c: bool  # tvmq's own C (kernels it schedules and tunes) built by the target's toolchain
    runners: tuple[str, ...]  # how tuning measures a candidate, the default first; () not tunable

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


BACKENDS = {
    backend.kind: backend
    for backend in (
        Backend("host", "tvmq.backend.host", emits_c=False, runners=("local", "rpc")),
        Backend("cortex-m", "tvmq.backend.mcu", emits_c=True, runners=("board",)),
        Backend("cortex-a", "tvmq.backend.linux", emits_c=True, runners=("board", "rpc")),
        Backend("cuda", "tvmq.backend.cuda", emits_c=False, runners=()),
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
