"""Temporary directories that never outlive the process.

A scratch directory is removed when its ``with`` block ends, or, for one that an
object owns beyond a block (a build handed back to the caller), when the object
is closed and at the latest when the interpreter exits. A ``kill`` (SIGTERM)
ends Python without unwinding anything, so the CLI turns it into ``Terminated``
(a KeyboardInterrupt, like Ctrl-C; TVM may re-raise it as its own error, so
``terminated()`` says whether it came): every block unwinds and every directory goes.
Only SIGKILL can leave one behind.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OWNED: set[Path] = set()
_TERMINATED = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanups run as for Ctrl-C."""


def make_scratch(prefix: str, directory: str | Path | None = None) -> Path:
    """A new directory (in `directory`, else the system's temporary one), removed by
    ``remove_scratch`` or at exit, whichever comes first."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    _OWNED.add(path)
    return path


def remove_scratch(path: Path) -> None:
    """Remove a directory made by ``make_scratch``; idempotent."""
    _OWNED.discard(path)
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def scratch_directory(prefix: str, directory: str | Path | None = None) -> Iterator[Path]:
    """``with scratch_directory("tvmq-x-") as path:`` a directory removed after the block."""
    path = make_scratch(prefix, directory)
    try:
        yield path
    finally:
        remove_scratch(path)


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """Within the block SIGTERM raises ``Terminated`` in the main thread (elsewhere
    nothing changes: only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        _TERMINATED.set()
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def terminated() -> bool:
    """Whether SIGTERM came: TVM turns an exception raised in a Python callback it
    called (a tuning measurement, say) into its own error, so the type alone may not say."""
    return _TERMINATED.is_set()


@atexit.register
def _remove_all() -> None:
    for path in list(_OWNED):
        remove_scratch(path)
