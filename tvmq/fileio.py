"""Reading inputs and writing results without ever leaving a partial file behind.

One rule for every output: an existing file or directory is refused unless the
caller forces its replacement (``--force``), and what is written gets the usual
permissions (0666 or 0777 less the umask), not the private ones of a temporary file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError
from tvmq.scratch import make_scratch, make_scratch_file, remove_scratch


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


def check_output_file(path: str | Path, force: bool = False) -> None:
    """Refuse, before any long work, an output file that could not be written or
    that exists (unless `force`)."""
    path = Path(path)
    if path.exists() and not path.is_dir() and not force:
        raise TvmqError(f"{path}: already exists; use --force to replace it")
    _check_writable_file(path)


def _check_writable_file(path: Path) -> None:
    if path.is_dir():
        raise TvmqError(f"{path}: is a directory; give a file name")
    _check_parent(path)


def check_output_directory(directory: str | Path, force: bool = False) -> None:
    """Refuse, before any long work, an output directory that could not be made or
    that exists (unless `force`)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise TvmqError(f"{directory}: exists and is not a directory")
    if directory.exists() and not force:
        raise TvmqError(f"{directory}: already exists; use --force to replace it")
    _check_parent(directory)


@cache
def _umask() -> int:
    mask = os.umask(0o022)  # read by setting; put back at once
    os.umask(mask)
    return mask


def _give_usual_permissions(path: Path, directory: bool) -> None:
    """mkstemp and mkdtemp create private (0600, 0700) entries: open them as a
    plain open() or mkdir() would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


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
    _check_writable_file(path)  # whether to replace an existing file is the caller's rule
    try:  # a scratch file: a stop at any point leaves nothing behind
        handle, temporary = make_scratch_file(f".{path.name}.", ".tmp", path.parent)
    except OSError as error:
        raise TvmqError(f"{path}: cannot write ({error.strerror or error})") from error
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        _give_usual_permissions(temporary, directory=False)
        os.replace(temporary, path)
    except OSError as error:
        raise TvmqError(f"{path}: cannot write ({error.strerror or error})") from error
    finally:
        remove_scratch(temporary)  # gone after the rename: only forgets it


@contextmanager
def new_directory(directory: str | Path, force: bool = False) -> Iterator[Path]:
    """A staging directory beside `directory` that is renamed to it when the block
    succeeds and removed when it fails: an output directory is whole or absent, never
    half written. An existing `directory` is refused, or replaced if `force`."""
    directory = Path(directory)
    check_output_directory(directory, force)
    try:  # a scratch directory: a stop at any point leaves nothing behind
        staging = make_scratch(f".{directory.name}.", directory.parent)
        _give_usual_permissions(staging, directory=True)
    except OSError as error:
        raise TvmqError(f"{directory}: cannot be made ({error.strerror or error})") from error
    try:
        yield staging
        _move_into_place(staging, directory)
    finally:
        remove_scratch(staging)  # gone after the rename: only forgets it


@contextmanager
def output_directory(directory: str | Path, force: bool = False) -> Iterator[Path]:
    """The path a writer that makes its own new directory (the compile backends)
    should write: `directory` itself, or with `force` over an existing one, a fresh
    sibling moved into its place once the writer succeeds."""
    directory = Path(directory)
    check_output_directory(directory, force)
    if not directory.exists():
        yield directory
        return
    fresh = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    fresh.rmdir()  # the writer makes it
    try:
        yield fresh
        _move_into_place(fresh, directory)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _move_into_place(new: Path, directory: Path) -> None:
    """Rename `new` to `directory`, replacing (then deleting) an existing one."""
    if not directory.exists():
        new.rename(directory)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
    directory.rename(old / directory.name)
    new.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


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
