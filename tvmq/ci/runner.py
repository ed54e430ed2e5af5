"""Runs a matrix: compile each entry, run it on its board, measure it.

One thread per board (at most ``jobs`` at a time), the board's entries one
after the other, so that no board ever runs two jobs; an emulated board starts
its own QEMU per entry. TVM work (import, quantization, compilation, the host
reference) is done under one lock and shared: a model is quantized once and
compiled once per target, whatever the number of boards. Anything that goes
wrong on a board (no answer, a crash, wrong results, a stale firmware) ends
that entry with the reason and the runner goes on.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tvmq.ci.matrix import Dataset, Entry, Matrix, ModelSpec, fmt
from tvmq.data import LabelledData, from_arrays, model_inputs, open_data
from tvmq.errors import TvmqError
from tvmq.evaluate import evaluate

if TYPE_CHECKING:
    from tvmq.backend.aot import Scheduler
    from tvmq.targets import Target


@dataclass
class Outcome:
    """What became of one entry: ``measured`` (with figures), ``error`` or ``skipped``."""

    entry: Entry
    status: str
    figures: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0


def open_dataset(dataset: Dataset) -> LabelledData:
    """The labelled samples of a matrix dataset (the bundled digits, or a file or folder)."""
    if dataset.bundled is not None:
        from tvmq.examples import digits_split

        x, y = digits_split(dataset.bundled.removeprefix("digits-"))
        return from_arrays(x, y, dataset.bundled)
    return open_data(dataset.path)


def subset(dataset: Dataset, data: LabelledData) -> range:
    """The samples [first, first + samples) the matrix asks for, all of which must exist."""
    stop = dataset.first + dataset.samples
    if stop > data.size:
        raise TvmqError(
            f"datasets.{dataset.name}: samples [{dataset.first}, {stop}) asked, "
            f"the set has {data.size}"
        )
    return range(dataset.first, stop)


def compare_outputs(got: list[np.ndarray], want: list[np.ndarray], sample: int) -> None:
    """Raise when the board's outputs are not the host build's: bit for bit for
    integers, to float32 rounding for floats."""
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        if np.issubdtype(b.dtype, np.floating):
            bad = ~np.isclose(a, b, rtol=1e-4, atol=1e-5)
        else:
            bad = a != b
        if bad.any():
            worst = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            raise TvmqError(
                f"wrong results: output {index} of input {sample} differs from the host build "
                f"in {int(bad.sum())} of {bad.size} values (largest difference {worst:g})"
            )


class _OnDevice:
    """A model's outputs from an open Device, checked against the host for the first inputs."""

    def __init__(self, device, model, reference: list[list[np.ndarray]]):
        self.device, self.model, self.reference = device, model, reference
        self.calls = 0

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        outputs, _ = self.device.infer(self.model.check_inputs(arrays))
        outputs = [o.reshape(s.shape) for o, s in zip(outputs, self.model.outputs, strict=True)]
        if self.calls < len(self.reference):
            compare_outputs(outputs, self.reference[self.calls], self.calls)
        self.calls += 1
        return outputs


class Runner:
    """``Runner(matrix).run()`` -> one Outcome per entry, in matrix order."""

    def __init__(
        self,
        matrix: Matrix,
        jobs: int = 1,
        log: Callable[[str], None] = print,
        schedules: Callable[[Target], Scheduler] | None = None,
    ):
        """`schedules` gives the scheduler of a board target's firmware (the CLI's
        tuned records, :func:`tvmq.tune.apply.schedules_for`); default schedules
        when None."""
        if jobs < 1:
            raise TvmqError(f"--jobs {jobs}: must be at least 1")
        self.matrix, self.jobs, self.schedules = matrix, jobs, schedules
        self._log, self._print = log, threading.Lock()
        self._tvm = threading.RLock()
        self._memo: dict[tuple, Any] = {}
        self._data: dict[str, LabelledData] = {}
        self._scratch = Path()  # the run's temporary directory, set by run()

    def run(self) -> list[Outcome]:
        self._open_datasets()
        by_board: dict[str, list[Entry]] = {}
        for entry in self.matrix.entries:
            by_board.setdefault(entry.board.name, []).append(entry)
        with tempfile.TemporaryDirectory(prefix="tvmq-ci-") as scratch:
            self._scratch = Path(scratch)
            with ThreadPoolExecutor(min(self.jobs, len(by_board))) as pool:
                done = list(pool.map(self._run_board, by_board.values()))
        outcomes = {o.entry.id: o for board in done for o in board}
        return [outcomes[e.id] for e in self.matrix.entries]

    def log(self, entry: Entry, message: str) -> None:
        with self._print:
            self._log(f"[{entry.board.name}] {entry.model.name}/{entry.data.name}: {message}")

    # -- preparation (checked before any board starts) ------------------------------

    def _open_datasets(self) -> None:
        used = {e.data.name: e.data for e in self.matrix.entries}
        for entry in self.matrix.entries:
            if entry.model.quantize is not None:
                used[entry.model.quantize] = self.matrix.datasets[entry.model.quantize]
        for name, dataset in used.items():
            if not dataset.missing:
                self._data[name] = open_dataset(dataset)
                subset(dataset, self._data[name])

    def _shared(self, key: tuple, make: Callable[[], Any]) -> Any:
        """`make()` once per key under the TVM lock (reentrant: one `make` may need
        another); a failure is remembered too, so that every board gets its reason."""
        with self._tvm:
            if key not in self._memo:
                try:
                    self._memo[key] = make()
                except Exception as error:
                    self._memo[key] = error
            value = self._memo[key]
        if isinstance(value, Exception):
            raise value
        return value

    def _model(self, spec: ModelSpec):
        def make():
            from tvmq.frontend import load_model

            model = load_model(spec.path)
            if spec.quantize is None:
                return model
            from tvmq.quantize.quantizer import quantize_model

            calib = self.matrix.datasets[spec.quantize]
            data = self._data[calib.name]
            samples = list(model_inputs(data, model.inputs[0], subset(calib, data)))
            return quantize_model(model, samples, origin=f"datasets.{calib.name}")

        return self._shared(("model", spec.name), make)

    def _firmware(self, entry: Entry, model) -> tuple[Path, dict]:
        def make():
            import json

            from tvmq.backend.mcu import compile_firmware

            target = entry.board.target
            directory = self._scratch / f"{entry.model.name}-{target.name}"
            if self.schedules is None:
                memory = compile_firmware(model, target, directory)
            else:
                schedules = self.schedules(target)
                memory = compile_firmware(model, target, directory, schedules)
                self.log(entry, schedules.summary())
            manifest = json.loads((directory / "manifest.json").read_text())
            return directory / "build" / "firmware.elf", {**memory, **manifest}

        return self._shared(("firmware", entry.model.name, entry.board.target.name), make)

    def _reference(self, entry: Entry, model) -> list[list[np.ndarray]]:
        count = self.matrix.settings["check_outputs"]
        if count == 0:
            return []

        def make():
            host = self._shared(("host", entry.model.name), lambda: model.build("host"))
            data, dataset = self._data[entry.data.name], entry.data
            inputs = model_inputs(data, model.inputs[0], subset(dataset, data))
            return [host(*sample) for _, sample in zip(range(count), inputs, strict=False)]

        return self._shared(("reference", entry.model.name, entry.data.name), make)

    # -- one board ------------------------------------------------------------------

    def _run_board(self, entries: list[Entry]) -> list[Outcome]:
        return [self._run_entry(entry) for entry in entries]

    def _run_entry(self, entry: Entry) -> Outcome:
        started = time.monotonic()
        needed = [entry.model, entry.data]
        if entry.model.quantize is not None:
            needed.append(self.matrix.datasets[entry.model.quantize])
        missing = [p for p in needed if p.missing]
        if missing:
            reason = f"{missing[0].path} is absent"
            self.log(entry, f"skipped: {reason}")
            return Outcome(entry, "skipped", reason=reason)
        try:
            figures, details = self._measure(entry)
        except Exception as error:  # one entry's failure never stops the others
            reason = str(error)
            if not isinstance(error, TvmqError):  # a bug in tvmq: name it
                reason = f"{type(error).__name__}: {reason}"
            self.log(entry, f"ERROR: {reason}")
            return Outcome(entry, "error", reason=reason, seconds=time.monotonic() - started)
        return Outcome(entry, "measured", figures, details, seconds=time.monotonic() - started)

    def _measure(self, entry: Entry) -> tuple[dict[str, float], dict[str, Any]]:
        from tvmq.hil import Device, Emulator

        board = entry.board
        self.log(entry, f"compiling for {board.target.name}")
        model = self._model(entry.model)
        elf, memory = self._firmware(entry, model)
        reference = self._reference(entry, model)
        if board.emulated:
            self.log(entry, f"running on QEMU {board.target.board['machine']}")
            with (
                Emulator(elf, board.target) as emulator,
                Device(emulator.url, timeout=board.timeout) as device,
            ):
                return self._on_device(entry, device, model, memory, reference)
        if board.flash:
            from tvmq.hil.flash import flash_firmware

            self.log(entry, f"flashing {board.target.board['pyocd_target']} with pyOCD")
            flash_firmware(elf, board.target, board.probe, board.pack)
        self.log(entry, f"running on {board.url}")
        with Device(board.url, timeout=board.timeout) as device:
            return self._on_device(entry, device, model, memory, reference)

    def _on_device(self, entry: Entry, device, model, memory: dict, reference) -> tuple:
        from tvmq.hil.bench import measure_on

        board, settings = entry.board, self.matrix.settings
        info = device.hello()
        if info.build_id != memory["build_id"]:
            raise TvmqError(
                f"{board.url} runs {info.model} build {info.build_id}, not the {model.name} "
                f"build {memory['build_id']} just compiled: flash it (flash = true)"
            )
        data, dataset = self._data[entry.data.name], entry.data
        executable = _OnDevice(device, model, reference)
        accuracy = evaluate(
            model, executable, data, dataset.metric, subset(dataset, data), progress=False
        )
        self.log(entry, f"{dataset.metric} {accuracy:.4f} on {dataset.samples} samples")
        first = next(model_inputs(data, model.inputs[0], subset(dataset, data)))
        result = measure_on(
            device, board.target, board.emulated, board.power, settings["runs"],
            settings["warmup"], settings["repeats"], model.check_inputs(first), 3.3, False,
        )  # fmt: skip
        figures = {"accuracy": accuracy, "flash": memory["flash"], "ram": memory["ram"]}
        if "instructions" in result:
            figures["instructions"] = result["instructions"]
        latency = result.get("latency_ms", result.get("latency_ms_at_real_clock"))
        if latency is not None:
            figures["latency_ms"] = latency
        if "energy_uj" in result:
            figures["energy_uj"] = result["energy_uj"]["median"]
        details = {
            "build_id": info.build_id,
            "inferences": executable.calls,
            "checked_against_host": min(len(reference), executable.calls),
            "arena_bytes": memory["arena_bytes"],
            "weights_bytes": memory["weights_bytes"],
            "latency_spread": result["latency_ticks"]["spread"],
            "link": dict(device.counts),
        }
        self.log(entry, "measured " + ", ".join(f"{k} {fmt(k, v)}" for k, v in figures.items()))
        return figures, details
