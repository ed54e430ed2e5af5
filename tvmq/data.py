"""Every data set a command reads, opened and split in one place.

Accepted: a ``.npy`` batch of inputs; a ``.npz`` with ``x`` (labels ``y`` optional),
or one already split into ``x_train``/``x_test`` (``y_train``/``y_test``); an MLPerf
Tiny-style folder (a ``.bin`` per sample listed in ``y_labels.csv``, whatever its
name); raw bytes in the model's input type and shape (``input_format="raw"``).
Integer arrays with a ``scale`` (and ``zero_point``) beside them hold real values
``scale * (x - zero_point)``.

The split every command shares: the even-indexed samples calibrate and the
odd-indexed ones are scored (interleaved, so that a set sorted by class, as vww01
and ad01 are, calibrates and scores on every class); an archive already split
calibrates on its train part and scores its test part; data without labels
calibrates on every sample. A leading fraction is used only when asked for.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tvmq.datasets import DECODERS, ad_windows, as_model_input, mlperf_kind
from tvmq.errors import TvmqError
from tvmq.fileio import read_array, read_named_arrays
from tvmq.model import Model, TensorSpec

INPUT_FORMATS = ("auto", "raw")


class Split(NamedTuple):
    """Sample indices that calibrate and those that are scored."""

    calibration: range
    evaluation: range


@dataclass(frozen=True)
class LabelledData:
    """Samples (real values, or already in a model's input type) and their labels."""

    sample: Callable[[int], np.ndarray]
    size: int
    labels: np.ndarray | None = None  # None: unlabelled (calibration or run only)
    windows: bool = False  # anomaly-detection clips, scored window by window
    source: str = "data"  # the file or folder, for messages
    train_size: int | None = None  # an archive already split: its first train_size samples

    def values(self, indices: Sequence[int]) -> Iterator[tuple[np.ndarray, int | None]]:
        """(sample, label) for each index; the label is None for unlabelled data."""
        for index in indices:
            label = None if self.labels is None else int(self.labels[index])
            yield self.sample(index), label

    def split(self, fraction: float | None = None) -> Split:
        """The shared split (see the module), or the first `fraction` calibrating."""
        if fraction is not None:
            if not 0.0 <= fraction < 1.0:
                raise TvmqError(f"fraction {fraction} is not in [0, 1)")
            cut = round(self.size * fraction)
            return Split(range(0, cut), range(cut, self.size))
        if self.train_size is not None:
            return Split(range(0, self.train_size), range(self.train_size, self.size))
        if self.labels is None:
            return Split(range(self.size), range(0))
        return Split(range(0, self.size, 2), range(1, self.size, 2))

    def describe(self, indices: range) -> str:
        """Which samples `indices` are, in words, for the user to see what was scored."""
        where = f"of {self.size} in {self.source}"
        if indices.step == 2:
            parity = "even" if indices.start % 2 == 0 else "odd"
            return f"the {len(indices)} {parity}-indexed samples {where}"
        if self.train_size is not None and indices == range(self.train_size):
            return f"the {len(indices)} training samples (x_train) {where}"
        if self.train_size is not None and indices == range(self.train_size, self.size):
            return f"the {len(indices)} test samples (x_test) {where}"
        return f"samples [{indices.start}, {indices.stop}) {where}"


def open_data(
    path: str | Path, spec: TensorSpec | None = None, input_format: str = "auto"
) -> LabelledData:
    """The data set at `path` (see the module for the formats); `spec`, the model's
    input, decodes raw bytes and folders of an unknown kind."""
    path = Path(path)
    if input_format not in INPUT_FORMATS:
        raise TvmqError(f"unknown input format '{input_format}' (known: raw)")
    if not path.exists():
        raise TvmqError(f"{path}: no such file or directory")
    if path.is_dir():
        return _open_folder(path, spec)
    if input_format == "raw":
        return from_arrays(read_raw(path, _needs_spec(spec, path)), None, str(path))
    if path.suffix == ".npy":
        return from_arrays(read_array(path), None, str(path))
    if path.suffix == ".npz":
        return _open_archive(path)
    raise TvmqError(
        f"{path}: data must be .npy, .npz, a folder with y_labels.csv, "
        "or raw bytes with --input-format raw"
    )


def from_arrays(
    x: np.ndarray, y: np.ndarray | None, source: str, train_size: int | None = None
) -> LabelledData:
    """Samples x[i] labelled y[i] (None: unlabelled)."""
    if y is not None and len(x) != len(y):
        raise TvmqError(f"{source}: {len(x)} samples in x but {len(y)} labels in y")
    return LabelledData(x.__getitem__, len(x), y, source=source, train_size=train_size)


def read_raw(path: str | Path, spec: TensorSpec) -> np.ndarray:
    """The samples of a raw file: one or more inputs of `spec`'s type and shape,
    end to end, as a batch (N, *shape)."""
    path = Path(path)
    if not path.is_file():
        raise TvmqError(f"{path}: no such file")
    raw = path.read_bytes()
    per_sample = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
    if not raw or len(raw) % per_sample:
        raise TvmqError(
            f"{path}: {len(raw)} bytes is not a whole number of input '{spec.name}' "
            f"samples ({spec.dtype}{list(spec.shape)}, {per_sample} bytes each)"
        )
    return np.frombuffer(raw, spec.dtype).reshape(-1, *spec.shape)


def run_inputs(
    paths: Sequence[str | Path], model: Model, input_format: str = "auto"
) -> tuple[list[list[np.ndarray]], bool]:
    """The inferences of ``tvmq run``'s input files (a .npy or raw file per model
    input, or one .npz holding them by name; each one sample or a batch along a new
    first axis), and whether they were batches."""
    loaded = [
        _samples(array, spec, origin)
        for (array, origin), spec in zip(
            _input_arrays([Path(p) for p in paths], model, input_format), model.inputs, strict=True
        )
    ]
    batches = [samples for samples, _ in loaded]
    if len({len(b) for b in batches}) != 1:
        raise TvmqError("input files hold different numbers of samples")
    return [list(sample) for sample in zip(*batches, strict=True)], any(f for _, f in loaded)


def _samples(array: np.ndarray, spec: TensorSpec, origin: str) -> tuple[list[np.ndarray], bool]:
    """An input file holds one input, or a batch of them along a new first axis."""
    if array.shape != spec.shape and array.shape[1:] == spec.shape:
        return [spec.check(sample, origin) for sample in array], True
    return [spec.check(array, origin)], False


def _input_arrays(
    paths: list[Path], model: Model, input_format: str
) -> list[tuple[np.ndarray, str]]:
    """(array, origin) per model input."""
    names = [s.name for s in model.inputs]
    if input_format not in INPUT_FORMATS:
        raise TvmqError(f"unknown input format '{input_format}' (known: raw)")
    if input_format == "raw":
        if len(paths) != len(names):
            raise TvmqError(
                f"{model.source}: expects {len(names)} raw input file(s), got {len(paths)}"
            )
        return [(read_raw(p, spec), str(p)) for p, spec in zip(paths, model.inputs, strict=True)]
    if len(paths) == 1 and paths[0].suffix == ".npz":
        arrays = read_named_arrays(paths[0], names)
        return [(a, f"{paths[0]}[{n}]") for a, n in zip(arrays, names, strict=True)]
    if len(paths) != len(names):
        raise TvmqError(
            f"{model.source}: expects {len(names)} input file(s) ({', '.join(names)}), "
            f"got {len(paths)}"
        )
    return [(read_array(path), str(path)) for path in paths]


def _needs_spec(spec: TensorSpec | None, path: Path) -> TensorSpec:
    if spec is None:
        raise TvmqError(f"{path}: raw data needs the model's input type to be read")
    return spec


def _open_folder(path: Path, spec: TensorSpec | None) -> LabelledData:
    labels_file = path / "y_labels.csv"
    if not labels_file.is_file():
        raise TvmqError(f"{path}: a data folder needs y_labels.csv (file name, classes, label)")
    with labels_file.open() as file:
        rows = [row for row in csv.reader(file) if row]
    if not rows or any(len(row) < 3 for row in rows):
        raise TvmqError(f"{labels_file}: each row needs a file name, a class count and a label")
    names = [row[0] for row in rows]
    try:
        labels = np.array([int(row[2]) for row in rows])
    except ValueError as error:
        raise TvmqError(f"{labels_file}: a label is not an integer ({error})") from error
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise TvmqError(f"{path}: {len(missing)} listed sample(s) missing, e.g. {missing[0]}")
    kind = mlperf_kind(path, (path / names[0]).stat().st_size)
    if kind is not None:
        decode = DECODERS[kind]
    else:
        raw_spec = _needs_spec(spec, path)

        def decode(raw: bytes) -> np.ndarray:
            return np.frombuffer(raw, raw_spec.dtype).reshape(raw_spec.shape)

    def sample(index: int) -> np.ndarray:
        try:
            return decode((path / names[index]).read_bytes())
        except ValueError as error:
            raise TvmqError(f"{path / names[index]}: cannot be decoded ({error})") from error

    return LabelledData(sample, len(names), labels, windows=kind == "ad01", source=str(path))


def _open_archive(path: Path) -> LabelledData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise TvmqError(f"{path}: not a readable .npz archive ({error})") from error
    if "x" in arrays:
        x, y, train_size = arrays["x"], arrays.get("y"), None
    elif "x_train" in arrays and "x_test" in arrays:
        x = np.concatenate([arrays["x_train"], arrays["x_test"]])
        labelled = "y_train" in arrays and "y_test" in arrays
        y = np.concatenate([arrays["y_train"], arrays["y_test"]]) if labelled else None
        train_size = len(arrays["x_train"])
    else:
        raise TvmqError(
            f"{path}: needs an array 'x' (labels 'y'), or x_train and x_test "
            f"(it holds {', '.join(arrays) or 'nothing'})"
        )
    if "scale" in arrays:
        zero_point = arrays.get("zero_point", np.float32(0))
        x = (x.astype(np.float32) - np.float32(zero_point)) * np.float32(arrays["scale"])
    return from_arrays(x, y, str(path), train_size)


def model_inputs(
    data: LabelledData, spec: TensorSpec, indices: Sequence[int], every_window: int = 1
) -> Iterator[list[np.ndarray]]:
    """Model-ready inputs (one list per inference) of the samples in `indices`."""
    for value, _ in data.values(indices):
        windows = ad_windows(value)[::every_window] if data.windows else [value]
        for window in windows:
            yield [model_input(window, spec, data)]


def model_input(value: np.ndarray, spec: TensorSpec, data: LabelledData) -> np.ndarray:
    """A sample as the model's input; a sample that does not fit names the data."""
    try:
        return as_model_input(value, spec)
    except TvmqError as error:
        raise TvmqError(f"{data.source}: {error}") from error


def calibration_inputs(
    source: str | Path | np.ndarray,
    model: Model,
    fraction: float | None = None,
    count: int | None = None,
    input_format: str = "auto",
    what: str = "calibration samples",
) -> tuple[list[list[np.ndarray]], str]:
    """Model inputs of the calibration part of the data at `source` (or of an array,
    a batch of a single-input model's inputs), cut to `count`, and a sentence saying
    which samples they are."""
    origin = "the array" if isinstance(source, np.ndarray) else str(source)
    path = Path(origin)
    if len(model.inputs) != 1:
        if path.suffix != ".npz" or input_format != "auto":
            names = ", ".join(spec.name for spec in model.inputs)
            raise TvmqError(
                f"{origin}: a model with several inputs takes a .npz holding a batch for "
                f"each input ({names})"
            )
        samples = _named_batches(path, model)
        where = f"{len(samples)} samples of {path}"
    elif isinstance(source, np.ndarray) or (path.suffix == ".npy" and input_format == "auto"):
        # A batch of inputs, fed exactly as they are.
        spec = model.inputs[0]
        array = source if isinstance(source, np.ndarray) else read_array(path)
        if array.shape[1:] != spec.shape:
            raise TvmqError(
                f"{origin}: shape {list(array.shape)} is not a batch of input "
                f"'{spec.name}' {list(spec.shape)}"
            )
        samples, where = [[x] for x in array], f"{len(array)} samples of {origin}"
    else:
        spec = model.inputs[0]
        data = open_data(path, spec, input_format)
        chosen = data.split(fraction).calibration
        # Anomaly clips hold 196 windows each: every 8th window calibrates.
        samples = list(model_inputs(data, spec, chosen, every_window=8))
        where = data.describe(chosen)
    if count is not None:
        if len(samples) < count:
            raise TvmqError(f"{origin}: {len(samples)} {what}, fewer than the {count} asked")
        samples = samples[:count]
        where += f", first {count} used"
    if not samples:
        raise TvmqError(f"{origin}: no {what}")
    return samples, where


def _named_batches(path: Path, model: Model) -> list[list[np.ndarray]]:
    """A multi-input model's samples: a .npz holding a batch (N, *shape) for each input,
    named after it (a labelled x/y set feeds single-input models only)."""
    batches = read_named_arrays(path, [spec.name for spec in model.inputs])
    sizes = {len(batch) if batch.ndim else 0 for batch in batches}
    if len(sizes) != 1:
        counts = ", ".join(
            f"{spec.name} {len(b) if b.ndim else 0}"
            for spec, b in zip(model.inputs, batches, strict=True)
        )
        raise TvmqError(f"{path}: the input batches hold different numbers of samples ({counts})")
    return [
        [
            spec.check(np.asarray(batch[index]), f"{path}[{spec.name}][{index}]")
            for spec, batch in zip(model.inputs, batches, strict=True)
        ]
        for index in range(sizes.pop())
    ]
