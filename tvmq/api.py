"""The Python API: load, quantize, evaluate, build, compile and tune a model.

Every ``tvmq`` command that does one of these calls the function here, so a script
gets what the command line gets: the same checks and one-line TvmqError messages
(they name the command's flags), the same data splits, the same tuned schedules.
A function that takes a model takes a :class:`~tvmq.model.Model` or the path of a
model file (then ``shapes`` fixes its free input dims); it loads the file after
checking its other arguments, so a mistake is reported before any long work.
Nothing here imports TVM until it is called.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from tvmq.errors import TvmqError
from tvmq.model import Model

if TYPE_CHECKING:
    from tvmq.optimize.mixed import Optimized
    from tvmq.targets import Target
    from tvmq.tune.apply import TunedSchedules
    from tvmq.tune.tuner import TuneResult

ModelLike = Model | str | Path
# A target: its name in targets/, its .toml file, or a loaded Target.
TargetLike: TypeAlias = "str | Path | Target"
Shapes = Mapping[str, tuple[int, ...]]
Log = Callable[[str], None]


def load_model(path: str | Path, shapes: Shapes | None = None) -> Model:
    """Import an ONNX, TFLite or .tvmq file; `shapes` ({input: shape}) fixes free dims."""
    from tvmq.frontend import load_model as load

    return load(path, dict(shapes) if shapes else None)


def save_model(model: Model, path: str | Path, *, force: bool = False) -> None:
    """Write `model` as a .tvmq file (refused if it exists, unless `force`)."""
    from tvmq.fileio import check_output_file
    from tvmq.frontend.saved import save_model as save

    check_output_file(path, force)
    save(model, path)


def schedules_for(
    target: TargetLike,
    directory: str | Path | None = None,
    *,
    tuned: bool = True,
    objective: str = "flash",
) -> TunedSchedules:
    """The schedules a build for `target` uses (``--schedules``, ``--no-tuned``,
    ``--objective``): tuned records from `directory`, else the user's and the shipped
    databases. Every function here that builds uses these defaults when given none."""
    from tvmq.tune.apply import schedules_for as lookup

    target = _as_target(target)
    directory = None if directory is None else Path(directory)
    return lookup(target, directory, tuned=tuned, objective=objective)


def quantize_model(
    model: ModelLike,
    calib_data: str | Path | np.ndarray | None = None,
    *,
    shapes: Shapes | None = None,
    log: Log | None = None,
    **options,
) -> Model:
    """`model` quantized: calibrated on `calib_data` in the static mode (``--calib``:
    a .npy batch, a .npz, a folder with y_labels.csv, of which a labelled set
    calibrates on its calibration part; or an array, a batch of the model's input),
    on nothing in the dynamic and weight-only modes.

    `options` are ``tvmq quantize``'s flags as keywords (:mod:`tvmq.quantize.options`),
    e.g. ``mode="dynamic"``, ``calib_samples=200``, ``skip=["conv2d#0"]``,
    ``bits={"conv2d#1": 4}``, ``sensitivity=True, eval_data=...``, ``report=DIR``.
    `log` receives the lines the command prints (what was calibrated, every
    quantized tensor's range, scale and zero point)."""
    from tvmq.quantize.options import QuantizeOptions
    from tvmq.quantize.quantizer import calibrate_model, convert_model, quantize_weights

    options = QuantizeOptions.from_keywords(options)
    config = options.check(calibrating=calib_data is not None)
    model = _as_model(model, shapes)
    log = log or _silent
    calibrated = sensitivity = None
    if not options.static:
        quantized = quantize_weights(model, config)
    else:
        from tvmq.data import calibration_inputs

        samples, where = calibration_inputs(
            calib_data, model, options.calib_fraction, options.calib_samples, options.input_format
        )
        log(f"calibrating on {where} with the {options.calibrator} calibrator")
        origin = "the array" if isinstance(calib_data, np.ndarray) else str(calib_data)
        calibrated = calibrate_model(model, samples, config, origin=origin)
        if options.sensitivity:
            quantized, sensitivity = _sensitivity(options, model, calibrated, samples, log)
        else:
            quantized = convert_model(calibrated)
    for line in _quantization_lines(quantized.quantization):
        log(line)
    if options.report is not None:
        from tvmq.quantize.debug import report_layer_errors

        notes, extra = [], None
        if sensitivity is not None:
            labels = {op.name: op.label for op in calibrated.annotation.ops}
            extra = {"sensitivity": sensitivity.as_dict(labels)}
            notes = [
                f"Fell back to float: {labels[n]} ({why})"
                for n, why in sensitivity.fallback.items()
            ]
        report_layer_errors(
            model, quantized, samples[: options.report_samples], options.report,
            options.force, notes, extra, log,
        )  # fmt: skip
    return quantized


def _quantization_lines(report: dict) -> list[str]:
    """What a quantization did: ops quantized and kept float, each tensor's parameters."""
    lines = [
        f"quantized {len(report['quantized_ops'])} ops ({report['mode']}), "
        f"{len(report['skipped_ops'])} kept float"
    ]
    for skipped in report["skipped_ops"]:
        lines.append(f"  float: {skipped['name']} ({skipped['kind']}): {skipped['reason']}")
    for tensor in report["tensors"]:
        low, high = tensor["range"]
        lines.append(
            f"  {tensor['layer']:<14} {tensor['name']:<12} {tensor.get('source', ''):<12} "
            f"[{low:10.4g}, {high:10.4g}]  "
            f"scale={tensor['scale']:.6g} zero_point={tensor['zero_point']}"
        )
    return lines


def _sensitivity(options, model: Model, calibrated, samples, log: Log):
    """Fall layers back to float until the loss is within the budget; say which and why."""
    from tvmq.data import open_data
    from tvmq.evaluate import evaluate
    from tvmq.quantize.sensitivity import metric_loss, output_error_loss, search

    metric_name, budget = options.metric, options.budget
    if options.eval_data is not None:
        data = open_data(options.eval_data, model.inputs[0])
        held_out = data.split(options.calib_fraction).evaluation

        def metric(candidate: Model) -> float:
            return evaluate(candidate, candidate.build("host"), data, metric_name, held_out)

        baseline = metric(model)
        log(f"float {metric_name} {baseline:.4f} on {data.describe(held_out)}")
        loss = metric_loss(baseline, metric)
        what = f"relative {metric_name} loss"
    else:
        loss = output_error_loss(model, samples[: options.report_samples])
        what = "relative output error"
    quantized, result = search(calibrated, loss, budget)
    labels = {op.name: op.label for op in calibrated.annotation.ops}
    log(f"sensitivity ({what} with one layer quantized, %):")
    for name, value in sorted(result.alone.items(), key=lambda item: -item[1]):
        log(f"  {labels[name]:<14} {name:<10} {value:8.3f}")
    for name, why in result.fallback.items():
        log(f"  fallback: {labels[name]} ({name}): {why}")
    verdict = "within" if result.final_loss <= budget else "still above"
    log(f"{what} {result.final_loss:.3f} %, {verdict} the budget of {budget:g} %")
    return quantized, result


def optimize_model(
    model: ModelLike,
    calib_data: str | Path | np.ndarray,
    eval_data: str | Path,
    *,
    target: TargetLike,
    max_drop: float = 0.5,
    flash_budget: str | int | None = None,
    ram_budget: str | int | None = None,
    instructions_budget: str | int | None = None,
    output: str | Path | None = None,
    report: str | Path | None = None,
    calib_samples: int | None = None,
    eval_samples: int | None = None,
    layers: Collection[str] = (),
    metric: str | None = None,
    force: bool = False,
    shapes: Shapes | None = None,
    log: Log | None = None,
) -> Optimized:
    """Mixed precision (int8, codebook16 or int4 weights per layer) chosen under the
    budgets (:mod:`tvmq.optimize`): the accuracy drop in points below all-int8 on
    the scored part of `eval_data`, and flash, RAM (``"64KiB"``, bytes) and
    instructions (``"250k"``) measured on the emulated board `target`. Returns the
    front and the chosen model, written to `output` (.tvmq) and the front to the
    new directory `report` (front.md, .json, .png) when given. When no point meets
    every budget the report is still written, nothing at `output`, and
    :class:`~tvmq.optimize.budgets.BudgetsNotMet` names the closest point's figures.
    `calib_samples` and `eval_samples` limit the samples used (the first ones);
    `layers` (labels, conv2d#1) limits the search to those, the others stay int8."""
    from tvmq.data import calibration_inputs, open_data
    from tvmq.evaluate import check_data, default_metric
    from tvmq.fileio import check_output_directory, check_output_file
    from tvmq.optimize.budgets import Budgets
    from tvmq.optimize.mixed import optimize, shortfall
    from tvmq.optimize.report import front_table, write_report
    from tvmq.quantize.quantizer import calibrate_model
    from tvmq.quantize.scheme import QuantConfig

    budgets = Budgets.parse(max_drop, flash_budget, ram_budget, instructions_budget)
    board = _as_target(target)
    if not board.is_emulated:
        raise TvmqError(
            f"--target {board.name}: optimize measures on an emulated Cortex-M board "
            "(e.g. qemu-cortex-m4)"
        )
    if output is not None:
        if Path(output).suffix != ".tvmq":
            raise TvmqError(f"{output}: the optimized model is written as .tvmq")
        check_output_file(output, force)
    if report is not None:
        check_output_directory(report, force)
    for flag, count in (("--calib-samples", calib_samples), ("--eval-samples", eval_samples)):
        if count is not None and count < 1:
            raise TvmqError(f"{flag} {count}: give at least one sample")
    model = _as_model(model, shapes)
    log = log or _silent
    data = open_data(eval_data, model.inputs[0])
    scored = data.split().evaluation
    if eval_samples is not None:
        scored = scored[:eval_samples]
    metric = metric or default_metric(model, data)
    check_data(model, data, metric, scored)
    samples, where = calibration_inputs(calib_data, model, count=calib_samples)
    log(f"calibrating on {where}")
    calibrated = calibrate_model(model, samples, QuantConfig())
    result = optimize(
        calibrated, data, scored, metric, _target_argument(board), budgets, log, layers
    )
    for line in front_table(result):
        log(line)
    if report is not None:
        write_report(result, report, force)
        log(f"wrote {report}")
    if not result.met:
        raise shortfall(result)
    if output is not None:
        save_model(result.model, output, force=force)
        log(f"wrote {output}")
    return result


@dataclass(frozen=True)
class Score:
    """A task metric of a model on the scored part of a data set."""

    metric: str
    value: float
    scored: str  # which samples, in words

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.value:.4f} on {self.scored}"


def evaluate_model(
    model: ModelLike,
    data: str | Path | tuple[np.ndarray, np.ndarray] | np.ndarray,
    *,
    metric: str | None = None,
    target: TargetLike = "host",
    skip_fraction: float | None = None,
    schedules: TunedSchedules | None = None,
    shapes: Shapes | None = None,
    progress: bool = True,
) -> Score:
    """`metric` (top1, auc; default: auc on the anomaly set and for autoencoders,
    else top1) of `model` built for `target`, on the evaluation part of the labelled
    data at `data` (the part quantize does not calibrate on; all but the leading
    `skip_fraction`), or on every sample of arrays ``(x, y)``: x[i] one input, y[i]
    its class, or for auc 0 (normal) / 1 (anomalous) (all but the leading
    `skip_fraction`). Both metrics score against labels, so x alone is refused."""
    from tvmq.data import open_data
    from tvmq.evaluate import check_data, default_metric, evaluate

    model = _as_model(model, shapes)
    if isinstance(data, (str, os.PathLike)):
        labelled = open_data(data, model.inputs[0])
        held_out = labelled.split(skip_fraction).evaluation
    else:
        labelled = _labelled_arrays(data)
        held_out = labelled.split(skip_fraction or 0.0).evaluation
    metric = metric or default_metric(model, labelled)
    check_data(model, labelled, metric, held_out)  # before the build: mistakes fail at once
    with model.build(_target_argument(target), schedules) as executable:
        value = evaluate(model, executable, labelled, metric, held_out, progress=progress)
    return Score(metric, value, labelled.describe(held_out))


def _labelled_arrays(data: tuple[np.ndarray, np.ndarray] | np.ndarray):
    """Arrays to score on as a data set: (x, y), or x alone (which no metric can score)."""
    from tvmq.data import from_arrays

    if isinstance(data, np.ndarray):
        return from_arrays(data, None, "the array x")
    if not isinstance(data, tuple) or len(data) != 2:
        raise TvmqError(f"expected a data path or arrays (x, y), got {type(data).__name__}")
    x, y = (np.asarray(array) for array in data)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise TvmqError(
            f"labels y: expected one class index per sample (integers, shape [N]), "
            f"got {y.dtype}{list(y.shape)}"
        )
    if len(y) and y.min() < 0:
        raise TvmqError(f"labels y: {y.min()} is not a class index")
    return from_arrays(x, y, "the arrays (x, y)")


def build_model(
    model: ModelLike,
    target: TargetLike = "host",
    *,
    schedules: TunedSchedules | None = None,
    shapes: Shapes | None = None,
):
    """`model` compiled for `target` (a name in targets/ or a .toml): an executable
    (:class:`tvmq.backend.executable.Executable`) called with the model's inputs
    (numpy arrays), returning its outputs. A board's executable runs on its emulator
    until ``close()`` (or the end of a ``with`` block)."""
    return _as_model(model, shapes).build(_target_argument(target), schedules)


@dataclass(frozen=True)
class Compiled:
    """What :func:`compile_model` wrote."""

    target: Target
    directory: Path
    # The firmware report (Cortex-M: flash, RAM, arena, ...), the library manifest
    # (Cortex-A) or the CUDA manifest, as the project's JSON files hold them.
    report: dict
    schedules: TunedSchedules | None  # None for CUDA, which tvmq does not schedule


def compile_model(
    model: ModelLike,
    target: TargetLike,
    output: str | Path,
    *,
    name: str | None = None,
    arena_section: str | None = None,
    weights_section: str | None = None,
    batch: int = 1,
    schedules: TunedSchedules | None = None,
    force: bool = False,
    shapes: Shapes | None = None,
) -> Compiled:
    """Compile `model` into the new directory `output`: a firmware project (Cortex-M),
    a library project (Cortex-A) or CUDA kernels; all of it, or nothing if it fails.
    `name` names the C symbols, the sections place the arena and weights (Cortex-M),
    `batch` is samples per call (CUDA); `force` replaces an existing `output`."""
    from tvmq.backend.emit_c import Placement
    from tvmq.backend.registry import ProjectOptions, backend_for
    from tvmq.fileio import output_directory

    with output_directory(output, force) as directory:
        target = _as_target(target)
        placement = Placement(arena_section, weights_section)
        name = _check_compile_options(target, placement, name)
        model = _as_model(model, shapes)
        if name is not None:
            model = dataclasses.replace(model, name=name)
        backend = backend_for(target)
        if not backend.tunable:
            schedules = None
        elif schedules is None:
            schedules = schedules_for(target)
        options = ProjectOptions(schedules, placement, batch)
        report = backend.project(model, target, directory, options)
    return Compiled(target, Path(output), report, schedules)


def _check_compile_options(target: Target, placement, name: str | None) -> str | None:
    """Refuse options that do not apply to the target, or a target compile cannot
    make; return the checked C name."""
    from tvmq.backend.emit_c import Placement, check_model_name
    from tvmq.backend.registry import backend_for

    backend = backend_for(target)
    if placement != Placement() and target.kind != "cortex-m":
        raise TvmqError(
            f"target '{target.name}' is {target.kind}: --arena-section and "
            "--weights-section place a Cortex-M firmware's data"
        )
    name = None if name is None else check_model_name(name)
    if name is not None and not backend.emits_c:
        raise TvmqError(
            f"target '{target.name}' is {target.kind}: --name names the C symbols of "
            "Cortex-M firmware and Cortex-A libraries"
        )
    if not backend.compiles:
        raise TvmqError(
            f"target '{target.name}' is {target.kind}: compile makes Cortex-M firmware, "
            "Cortex-A libraries or CUDA kernels"
        )
    return name


@dataclass(frozen=True)
class Tuning:
    """What :func:`tune_model` did, and where its records are."""

    model: str
    target: Target
    runner: str
    result: TuneResult
    directory: Path
    dropped: int  # records not kept (see ScheduleDatabase.dropped)


def tune_model(
    model: ModelLike,
    target: TargetLike,
    trials: int,
    *,
    work_dir: str | Path | None = None,
    runner: str | None = None,
    tracker: str | None = None,
    key: str = "tvmq",
    seed: int | None = None,
    shapes: Shapes | None = None,
) -> Tuning:
    """Tune `model`'s kernels for `target` with `trials` measurements in all, into the
    database `work_dir` (default: the user's for the target), which every later
    build for the target reads. `runner`: local, rpc (with `tracker` and `key`) or
    board (the default for emulated boards)."""
    from tvmq.tune.tuner import open_tuning, tune

    target = _as_target(target)
    runner, directory, database = open_tuning(target, work_dir, runner)
    model = _as_model(model, shapes)
    result = tune(model, target, trials, database, runner, tracker=tracker, key=key, seed=seed)
    return Tuning(model.name, target, runner, result, directory, database.dropped)


def _as_model(model: ModelLike, shapes: Shapes | None) -> Model:
    if isinstance(model, Model):
        if shapes:
            raise TvmqError(f"{model.name}: shapes apply to a model file; this one is loaded")
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TvmqError(f"expected a Model or a model file's path, got {type(model).__name__}")
    return load_model(model, shapes)


def _as_target(target: TargetLike) -> Target:
    from tvmq.targets import Target, load_target

    return target if isinstance(target, Target) else load_target(target)


def _target_argument(target: TargetLike) -> str:
    """What Model.build takes: a target's name or its .toml file."""
    from tvmq.targets import Target

    return str(target.path) if isinstance(target, Target) else str(target)


def _silent(_: str) -> None:
    pass
