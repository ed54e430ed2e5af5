"""Temporary directories that never outlive the process.

A scratch directory is removed when its ``with`` block ends, or, for one that an
object owns beyond a block (a build handed back to the caller), when the object
is closed and at the latest when the interpreter exits. A ``kill`` (SIGTERM)
ends Python without unwinding anything, so the CLI turns it into ``Terminated``
(a KeyboardInterrupt, like Ctrl-C): every block unwinds and every directory goes.
Only SIGKILL can leave one behind. Both signals are also recorded: TVM may re-raise
the exception as its own error, or swallow it where a caller falls back on an
error, so ``terminated()`` says whether SIGTERM came and long waits call
``raise_if_stopped()``.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OWNED: set[Path] = set()
_TERMINATED = threading.Event()
_INTERRUPTED = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanups run as for Ctrl-C."""


def make_scratch(prefix: str, directory: str | Path | None = None) -> Path:
    """A new directory (in `directory`, else the system's temporary one), removed by
    ``remove_scratch`` or at exit, whichever comes first."""
    return _reserve(prefix, "", directory, lambda path: path.mkdir(mode=0o700))


def make_scratch_file(prefix: str, suffix: str, directory: str | Path) -> tuple[int, Path]:
    """A new private file in `directory`, open for writing (its descriptor), removed
    by ``remove_scratch`` or at exit, whichever comes first."""
    opened = []

    def create(path: Path) -> None:
        opened.append(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    path = _reserve(prefix, suffix, directory, create)
    return opened[0], path


def _reserve(prefix: str, suffix: str, directory, create) -> Path:
    """A fresh name, owned before `create` makes it: a stop signal between the two
    leaves nothing the exit handler does not remove."""
    parent = Path(tempfile.gettempdir() if directory is None else directory)
    while True:
        path = parent / f"{prefix}{secrets.token_hex(5)}{suffix}"
        _OWNED.add(path)
        try:
            create(path)
            return path
        except FileExistsError:  # someone else's: not ours to remove
            _OWNED.discard(path)
        except BaseException:
            remove_scratch(path)
            raise


def remove_scratch(path: Path) -> None:
    """Remove a directory or file made here; idempotent."""
    _OWNED.discard(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def scratch_directory(prefix: str, directory: str | Path | None = None) -> Iterator[Path]:
    """``with scratch_directory("tvmq-x-") as path:`` a directory removed after the block."""
    path = make_scratch(prefix, directory)
    try:
        yield path
    finally:
        remove_scratch(path)


@contextmanager
def stop_signals_as_exceptions() -> Iterator[None]:
    """Within the block SIGTERM raises ``Terminated`` and SIGINT KeyboardInterrupt in
    the main thread, each recorded first (elsewhere nothing changes: only the main
    thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame) -> None:
        _TERMINATED.set()
        raise Terminated(f"signal {signum}")

    def on_int(signum: int, frame) -> None:
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def terminated() -> bool:
    """Whether SIGTERM came: TVM turns an exception raised in a Python callback it
    called (a tuning measurement, say) into its own error, so the type alone may not say."""
    return _TERMINATED.is_set()


def raise_if_stopped() -> None:
    """Raise again a SIGTERM or SIGINT whose exception something swallowed (a stop
    during a TVM call that a caller treated as a failed step), for loops that wait."""
    if _TERMINATED.is_set():
        raise Terminated("signal 15")
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


@atexit.register
def _remove_all() -> None:
    for path in list(_OWNED):
        remove_scratch(path)
