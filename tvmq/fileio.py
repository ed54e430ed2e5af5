"""Reading inputs and writing results without ever leaving a partial file behind."""

from __future__ import annotations

import os
import tempfile
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
