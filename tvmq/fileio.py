"""Reading inputs and writing results without ever leaving a partial file behind."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
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
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise TvmqError(f"{path}: not a readable .npy array ({error})") from error
    if not isinstance(array, np.ndarray):  # an .npz archive, whatever its name
        array.close()
        raise TvmqError(f"{path}: a .npz archive, not a .npy array")
    return array


def read_named_arrays(path: str | Path, names: list[str]) -> list[np.ndarray]:
    """The arrays of a .npz archive called `names`, in that order; an archive of one
    array feeds a single name whatever its key (``np.savez(f, x)`` calls it arr_0)."""
    path = Path(path)
    if not path.is_file():
        raise TvmqError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.ndarray):
            raise TvmqError(f"{path}: a .npy array, not a .npz archive")
        with archive:
            keys = list(archive.files)
            if len(names) == 1 and len(keys) == 1:
                return [archive[keys[0]]]
            missing = [name for name in names if name not in keys]
            if missing:
                raise TvmqError(
                    f"{path}: no array named {', '.join(missing)} (it holds {', '.join(keys)})"
                )
            return [archive[name] for name in names]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise TvmqError(f"{path}: not a readable .npz archive ({error})") from error


def check_output_file(path: str | Path) -> None:
    """Refuse, before any long work, an output file that could not be written."""
    path = Path(path)
    if path.is_dir():
        raise TvmqError(f"{path}: is a directory; give a file name")
    _check_parent(path)


def check_directory_writable(directory: str | Path) -> None:
    """Refuse a directory that neither exists nor can be made, or cannot be written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise TvmqError(f"{directory}: exists and is not a directory")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise TvmqError(f"{directory}: cannot be made, {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TvmqError(f"{directory}: cannot be written (no permission in {existing})")


def _check_parent(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise TvmqError(f"{path}: {parent} is not a directory")
    if not parent.is_dir():
        raise TvmqError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TvmqError(f"{path}: cannot write in {parent} (permission denied)")


def write_atomically(path: str | Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    check_output_file(path)
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise TvmqError(f"{path}: cannot write ({error.strerror or error})") from error
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise TvmqError(f"{path}: cannot write ({error.strerror or error})") from error
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
    _check_parent(directory)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as error:
        raise TvmqError(f"{directory}: cannot be made ({error.strerror or error})") from error
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
