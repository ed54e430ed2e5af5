"""Reading inputs and writing results without ever leaving a partial file behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError


def read_array(path: str | Path) -> np.ndarray:
    """A .npy array; a clear error for a missing, truncated or non-numpy file."""
    path = Path(path)
    if not path.is_file():
        raise TvmqError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise TvmqError(f"{path}: not a readable .npy array ({error})") from error


def write_atomically(path: str | Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise TvmqError(f"{path}: directory {path.parent} does not exist")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def new_directory(directory: str | Path) -> Iterator[Path]:
    """A staging directory beside `directory` (which must not exist) that is renamed to
    it when the block succeeds and removed when it fails: an output directory is
    whole or absent, never half written."""
    directory = Path(directory)
    if directory.exists():
        raise TvmqError(f"{directory}: already exists; choose a new output directory")
    if not directory.parent.is_dir():
        raise TvmqError(f"{directory}: directory {directory.parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        yield staging
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """One array as .npy, several (or a .npz path) as .npz, atomically."""
    path = Path(path)
    if path.suffix == ".npz":
        write_atomically(path, lambda f: np.savez(f, **arrays))
    elif len(arrays) == 1:
        (array,) = arrays.values()
        write_atomically(path, lambda f: np.save(f, array))
    else:
        raise TvmqError(f"{path}: the model has {len(arrays)} outputs; write them to a .npz file")
