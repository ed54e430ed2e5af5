"""The CI matrix file: boards, datasets, models and the entries that pair them.

Everything is checked when the file is read, before anything is compiled, so
that a typo costs one line naming the file and the key, not a half-run matrix.
Paths are relative to the matrix file. ``ci/README.md`` documents the format.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from tvmq.errors import TvmqError
from tvmq.evaluate import METRICS
from tvmq.targets import Target, load_target

# Metric name -> True when higher is better.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "instructions": False,
    "latency_ms": False,
    "energy_uj": False,
    "flash": False,
    "ram": False,
}
BUNDLED = ("digits-train", "digits-test")
SETTINGS = {"runs": 5, "repeats": 3, "warmup": 1, "check_outputs": 8, "tolerance": 0.0}


def fmt(metric: str, value: float) -> str:
    """A figure as reports print it, with its unit."""
    if metric == "accuracy":
        return f"{value:.4f}"
    if metric in ("flash", "ram", "instructions"):
        return f"{value:,.0f}" + (" B" if metric in ("flash", "ram") else "")
    return f"{value:,.4g}" + {"latency_ms": " ms", "energy_uj": " uJ"}.get(metric, "")


@dataclass(frozen=True)
class Board:
    """An emulated board (its own QEMU) or a real one at a pySerial URL."""

    name: str
    target: Target
    url: str | None = None
    power: str | None = None
    flash: bool = False
    probe: str | None = None
    pack: Path | None = None
    timeout: float = 2.0

    @property
    def emulated(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path | None  # None for a bundled set
    bundled: str | None
    metric: str
    first: int
    samples: int
    optional: bool

    @property
    def missing(self) -> bool:
        return self.path is not None and not self.path.exists()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    quantize: str | None  # the dataset that calibrates a float model to int8
    optional: bool

    @property
    def missing(self) -> bool:
        return not self.path.is_file()


@dataclass(frozen=True)
class Budget:
    """``min`` (accuracy) or ``max`` (the rest), loosened by ``tolerance``, a fraction."""

    metric: str
    limit: float
    tolerance: float

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    @property
    def bound(self) -> float:
        """The value the measurement may reach, tolerance included."""
        if self.higher_is_better:
            return self.limit * (1 - self.tolerance)
        return self.limit * (1 + self.tolerance)

    def passes(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound


@dataclass(frozen=True)
class Entry:
    """One model on one dataset on one board."""

    model: ModelSpec
    data: Dataset
    board: Board
    budgets: tuple[Budget, ...]

    @property
    def id(self) -> str:
        return f"{self.model.name}/{self.data.name}@{self.board.name}"


@dataclass(frozen=True)
class Matrix:
    path: Path
    boards: dict[str, Board]
    datasets: dict[str, Dataset]
    models: dict[str, ModelSpec]
    entries: tuple[Entry, ...]
    settings: dict[str, Any] = field(default_factory=lambda: dict(SETTINGS))
    baseline: Path | None = None


class _Table:
    """A TOML table that knows its dotted key, for one-line errors."""

    def __init__(self, path: Path, key: str, data: Any):
        self.path, self.key = path, key
        if not isinstance(data, dict):
            raise self.error(f"must be a table, got {type(data).__name__}")
        self.data = data

    def error(self, message: str, key: str | None = None) -> TvmqError:
        where = ".".join(k for k in (self.key, key) if k)
        return TvmqError(f"{self.path}: {where or 'top level'}: {message}")

    def check_keys(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise self.error(f"unknown key (known: {', '.join(sorted(allowed))})", unknown[0])

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required=False):
        if key not in self.data:
            if required:
                raise self.error("missing", key)
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(f"expected {_kind_names(kinds)}, got a boolean", key)
        if not isinstance(value, kinds):
            raise self.error(f"expected {_kind_names(kinds)}, got {value!r}", key)
        return value

    def table(self, key: str, required: bool = False) -> _Table:
        if key not in self.data and not required:
            return _Table(self.path, self._join(key), {})
        return _Table(self.path, self._join(key), self.get(key, dict, required=required))

    def _join(self, key: str) -> str:
        return f"{self.key}.{key}" if self.key else key


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names |= {dict: "a table", list: "a list"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def load_matrix(path: str | Path) -> Matrix:
    """Read and check a matrix file; every mistake is one line naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise TvmqError(f"{path}: no such matrix file")
    try:
        root = _Table(path, "", tomllib.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TvmqError(f"{path}: not a readable TOML file ({error})") from error
    root.check_keys({"baseline", "settings", "boards", "datasets", "models", "entries"})
    here = path.parent
    settings = _settings(root.table("settings"))
    boards = {n: _board(root.table("boards").table(n), n, here) for n in _names(root, "boards")}
    datasets = {
        n: _dataset(root.table("datasets").table(n), n, here) for n in _names(root, "datasets")
    }
    models = {
        n: _model(root.table("models").table(n), n, here, datasets) for n in _names(root, "models")
    }
    raw_entries = root.get("entries", list, required=True)
    entries = []
    for index, raw in enumerate(raw_entries):
        entries += _entries(_Table(path, f"entries[{index}]", raw), boards, datasets, models,
                            settings["tolerance"])  # fmt: skip
    if not entries:
        raise root.error("no entries", "entries")
    ids = [e.id for e in entries]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise root.error(f"{repeated[0]} is listed twice", "entries")
    baseline = root.get("baseline", str)
    return Matrix(
        path, boards, datasets, models, tuple(entries), settings,
        here / baseline if baseline else None,
    )  # fmt: skip


def select(matrix: Matrix, patterns: list[str]) -> Matrix:
    """The matrix with only the entries whose id (``model/data@board``) matches one of
    `patterns`: shell patterns, each also matching the ids it begins (``kws-dscnn``,
    ``*@m4``, ``digits-int8/digits@m55``). No pattern: the whole matrix."""
    if not patterns:
        return matrix
    for pattern in patterns:
        if not any(_selects(pattern, e.id) for e in matrix.entries):
            ids = ", ".join(e.id for e in matrix.entries)
            raise TvmqError(f"--only {pattern}: matches no entry of {matrix.path} ({ids})")
    entries = tuple(e for e in matrix.entries if any(_selects(p, e.id) for p in patterns))
    return replace(matrix, entries=entries)


def _selects(pattern: str, entry_id: str) -> bool:
    return fnmatchcase(entry_id, pattern) or fnmatchcase(entry_id, pattern + "*")


def _names(root: _Table, key: str) -> list[str]:
    table = root.table(key, required=True)
    if not table.data:
        raise root.error("is empty", key)
    return list(table.data)


def _settings(table: _Table) -> dict[str, Any]:
    table.check_keys(set(SETTINGS))
    settings = dict(SETTINGS)
    for key in ("runs", "repeats"):
        settings[key] = _count(table, key, settings[key], minimum=1)
    for key in ("warmup", "check_outputs"):
        settings[key] = _count(table, key, settings[key], minimum=0)
    settings["tolerance"] = _fraction(table, "tolerance", settings["tolerance"])
    return settings


def _count(table: _Table, key: str, default: int, minimum: int) -> int:
    value = table.get(key, int, default)
    if value < minimum:
        raise table.error(f"must be at least {minimum}, got {value}", key)
    return value


def _fraction(table: _Table, key: str, default: float) -> float:
    value = float(table.get(key, (int, float), default))
    if not (math.isfinite(value) and 0 <= value < 1):
        raise table.error(f"a tolerance is a fraction in [0, 1), got {value}", key)
    return value


def _board(table: _Table, name: str, here: Path) -> Board:
    table.check_keys({"target", "url", "power", "flash", "probe", "pack", "timeout"})
    try:
        target = load_target(table.get("target", str, required=True))
    except TvmqError as error:
        raise table.error(str(error), "target") from error
    if target.kind != "cortex-m":
        raise table.error(f"'{target.name}' is {target.kind}, not a cortex-m board", "target")
    url = table.get("url", str)
    if url is None and not target.is_emulated:
        raise table.error(f"'{target.name}' is a real board: give the url of its serial port")
    flash = table.get("flash", bool, False)
    if flash and url is None:
        raise table.error("only a real board (with a url) is flashed", "flash")
    power = table.get("power", str)
    if power is not None and url is None:
        raise table.error("a power monitor measures a real board (with a url)", "power")
    if power is not None and power.split(":", 1)[0] not in ("lpm01a", "ppk2"):
        raise table.error(f"'{power}' is not lpm01a:URL or ppk2:URL", "power")
    timeout = float(table.get("timeout", (int, float), 2.0))
    if not timeout > 0:
        raise table.error(f"must be positive, got {timeout}", "timeout")
    pack = table.get("pack", str)
    if pack is not None and not flash:
        raise table.error("a CMSIS pack is for flashing: set flash = true", "pack")
    return Board(
        name, target, url, power, flash, table.get("probe", str),
        here / pack if pack else None, timeout,
    )  # fmt: skip


def _dataset(table: _Table, name: str, here: Path) -> Dataset:
    table.check_keys({"path", "bundled", "metric", "first", "samples", "optional"})
    raw_path, bundled = table.get("path", str), table.get("bundled", str)
    if (raw_path is None) == (bundled is None):
        raise table.error("give exactly one of 'path' and 'bundled'")
    if bundled is not None and bundled not in BUNDLED:
        raise table.error(f"'{bundled}' is not one of {', '.join(BUNDLED)}", "bundled")
    metric = table.get("metric", str, "top1")
    if metric not in METRICS:
        raise table.error(f"'{metric}' is not one of {', '.join(METRICS)}", "metric")
    dataset = Dataset(
        name,
        here / raw_path if raw_path else None,
        bundled,
        metric,
        _count(table, "first", 0, minimum=0),
        _count(table, "samples", 32, minimum=1),
        table.get("optional", bool, False),
    )
    if dataset.missing and not dataset.optional:
        raise table.error(f"{dataset.path} does not exist (set optional = true to skip)", "path")
    return dataset


def _model(table: _Table, name: str, here: Path, datasets: dict[str, Dataset]) -> ModelSpec:
    table.check_keys({"path", "quantize", "optional"})
    spec = ModelSpec(
        name,
        here / table.get("path", str, required=True),
        None,
        table.get("optional", bool, False),
    )
    if spec.missing and not spec.optional:
        raise table.error(f"{spec.path} does not exist (set optional = true to skip)", "path")
    quantize = table.get("quantize", dict)
    if quantize is not None:
        calib = _Table(table.path, f"{table.key}.quantize", quantize)
        calib.check_keys({"data"})
        data = calib.get("data", str, required=True)
        if data not in datasets:
            raise calib.error(f"no dataset '{data}' in [datasets]", "data")
        spec = ModelSpec(spec.name, spec.path, data, spec.optional)
    return spec


def _entries(
    table: _Table,
    boards: dict[str, Board],
    datasets: dict[str, Dataset],
    models: dict[str, ModelSpec],
    tolerance: float,
) -> list[Entry]:
    table.check_keys({"model", "data", "boards", "budget"})
    model = table.get("model", str, required=True)
    if model not in models:
        raise table.error(f"no model '{model}' in [models]", "model")
    data = table.get("data", str, required=True)
    if data not in datasets:
        raise table.error(f"no dataset '{data}' in [datasets]", "data")
    names = table.get("boards", list, required=True)
    if not names:
        raise table.error("is empty", "boards")
    for name in names:
        if name not in boards:
            raise table.error(f"no board '{name}' in [boards]", "boards")
    budgets = _budgets(table.table("budget"), tolerance)
    for budget in budgets:
        for name in names:
            _check_measurable(table, budget.metric, boards[name])
    return [Entry(models[model], datasets[data], boards[b], budgets) for b in names]


def _check_measurable(table: _Table, metric: str, board: Board) -> None:
    """A budget that its board cannot measure is a mistake in the matrix, not a failure."""
    if metric == "instructions" and not board.emulated:
        raise table.error(f"board '{board.name}' is real: budget latency_ms, not instructions",
                          "budget.instructions")  # fmt: skip
    if metric == "energy_uj" and board.power is None:
        raise table.error(f"board '{board.name}' has no power monitor", "budget.energy_uj")


def _budgets(table: _Table, tolerance: float) -> tuple[Budget, ...]:
    table.check_keys(set(HIGHER_IS_BETTER))
    budgets = []
    for metric, higher in HIGHER_IS_BETTER.items():
        if metric not in table.data:
            continue
        spec = table.table(metric)
        bound = "min" if higher else "max"
        spec.check_keys({bound, "tolerance"})
        limit = float(spec.get(bound, (int, float), required=True))
        if not (math.isfinite(limit) and limit >= 0):
            raise spec.error(f"must be a finite number >= 0, got {limit}", bound)
        budgets.append(Budget(metric, limit, _fraction(spec, "tolerance", tolerance)))
    return tuple(budgets)
