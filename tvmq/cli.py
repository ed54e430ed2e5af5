"""The ``tvmq`` command line.

User mistakes (TvmqError) end in one line on stderr and exit status 2, with no
traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from tvmq import __version__
from tvmq.data import INPUT_FORMATS
from tvmq.errors import TvmqError
from tvmq.evaluate import METRICS
from tvmq.quantize.calibrators import CALIBRATORS
from tvmq.quantize.options import ACTIVATIONS, MODES
from tvmq.train.optimizers import DEFAULT_OPTIMIZER, OPTIMIZERS
from tvmq.tune import OBJECTIVES

EXIT_USER_ERROR = 2


def _shapes(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    """The --shape options: {input name: shape}."""
    from tvmq.frontend.shapes import parse_shape_options

    return parse_shape_options(args.shape)


def _schedules(args: argparse.Namespace, target):
    """The schedules of this command's builds (--schedules, --no-tuned, --objective)."""
    from tvmq.api import schedules_for

    return schedules_for(target, args.schedules, tuned=not args.no_tuned, objective=args.objective)


def _inspect(args: argparse.Namespace) -> int:
    from tvmq.describe import format_summary, healthy, summary
    from tvmq.frontend import read_source

    if args.target is not None:
        from tvmq.targets import load_target

        load_target(args.target)  # an unknown target is the user's mistake, not the model's
    info = summary(read_source(args.model, _shapes(args)), args.target)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0 if healthy(info) else 1


def _run(args: argparse.Namespace) -> int:
    from tvmq.api import build_model, load_model
    from tvmq.data import run_inputs
    from tvmq.fileio import check_output_file, write_arrays

    if args.output:
        check_output_file(args.output, args.force)
    model = load_model(args.model, _shapes(args))
    samples, batched = run_inputs(args.input, model, args.input_format)
    if args.profile:
        from tvmq.targets import load_target

        target = load_target(args.target)
        if not target.is_emulated:
            raise TvmqError(f"--profile: target {target.name} is not an emulated Cortex-M board")
    schedules = _schedules(args, args.target)
    with build_model(model, args.target, schedules=schedules) as executable:
        print(schedules.summary())
        results = [executable(*sample) for sample in samples]
        if args.profile:
            profile = _kernel_profile(executable, samples[0])
    outputs = {
        spec.name: np.stack([r[i] for r in results]) if batched else results[0][i]
        for i, spec in enumerate(model.outputs)
    }
    for name, array in outputs.items():
        print(f"{name}: {array.dtype}{list(array.shape)}")
        print(np.array2string(array, threshold=64, precision=6))
    if args.output:
        write_arrays(args.output, outputs)
        print(f"wrote {args.output}")
    if args.profile:
        print(profile)
    return 0


def _kernel_profile(executable, sample: list[np.ndarray]) -> str:
    """The instructions of each kernel of one inference, as a table with bars (made
    while the board's firmware still exists)."""
    from tvmq.backend.emit_c import symbol_prefix
    from tvmq.hil.profile import kernel_calls, profile_inference

    calls = kernel_calls(executable.compiled.graph)
    prefix = symbol_prefix(executable.compiled.model)
    rows = profile_inference(
        executable.firmware, executable.target, calls, sample, symbol_prefix=prefix
    )
    total = sum(row.instructions for row in rows) or 1
    lines = [
        f"instructions per kernel, one inference: {total:,} in QEMU's block log "
        f"({executable.instructions:,} by -icount)",
        f"  {'kernel':32} {'calls':>5} {'instructions':>13} {'share':>6}",
    ]
    for row in rows:
        share = row.instructions / total
        count = f"{row.instructions:,}" if row.instructions else "in entry"
        bar = "#" * round(share * 40)
        lines.append(f"  {row.kernel:32} {row.calls:>5} {count:>13} {share:>6.1%} {bar}")
    return "\n".join(lines)


def _check_report_dir(directory: Path | None) -> None:
    """Refuse an unusable report directory before any long work."""
    if directory is None:
        return
    if directory.exists() and not directory.is_dir():
        raise TvmqError(f"{directory}: exists and is not a directory")
    if not directory.parent.is_dir():
        raise TvmqError(f"{directory}: directory {directory.parent} does not exist")
    from tvmq.fileio import check_directory_writable

    check_directory_writable(directory)


def _quantize(args: argparse.Namespace) -> int:
    from tvmq.api import quantize_model, save_model
    from tvmq.fileio import check_output_file

    if args.output.suffix != ".tvmq":
        raise TvmqError(f"{args.output}: the quantized model is written as .tvmq")
    check_output_file(args.output, args.force)
    quantized = quantize_model(
        args.model, args.calib, shapes=_shapes(args), log=print,
        mode=args.mode, calibrator=args.calibrator, percentile=args.percentile,
        per_channel=not args.per_tensor, symmetric=args.symmetric,
        power_of_two=args.power_of_two, skip_ops=args.skip_op, skip=args.skip,
        activations=args.activations, int16=args.int16, weight_bits=args.weight_bits,
        bits=args.bits, codebook=args.codebook, codebook_layers=args.codebook_layer,
        codebook_per_channel=args.codebook_per_channel,
        calib_fraction=args.calib_fraction, calib_samples=args.calib_samples,
        input_format=args.input_format, sensitivity=args.sensitivity, budget=args.budget,
        eval_data=args.eval, metric=args.metric, report=args.report,
        report_samples=args.report_samples, force=args.force,
    )  # fmt: skip
    save_model(quantized, args.output, force=args.force)
    print(f"wrote {args.output}")
    return 0


def _optimize(args: argparse.Namespace) -> int:
    from tvmq.api import optimize_model
    from tvmq.optimize.budgets import BudgetsNotMet

    try:
        optimize_model(
            args.model, args.calib, args.eval, target=args.target, max_drop=args.max_drop,
            flash_budget=args.flash_budget, ram_budget=args.ram_budget,
            instructions_budget=args.instructions_budget, output=args.output,
            report=args.report, calib_samples=args.calib_samples,
            eval_samples=args.eval_samples, layers=args.layer or (), force=args.force,
            shapes=_shapes(args), log=print,
        )  # fmt: skip
    except BudgetsNotMet as error:
        print(f"tvmq: error: {error}", file=sys.stderr)
        return 1
    return 0


def _print_cuda_project(shown: Path, target, manifest: dict, batch: int) -> None:
    arch = manifest["arch"]
    print(f"wrote {shown}: CUDA build for {target.name} ({arch}), batch {batch}")
    print("  kernels.cu, kernels.ptx, model.so, manifest.json")
    print(
        f"  {len(manifest['dp4a_kernels'])} int8 GEMM kernels on dp4a "
        f"({manifest['ptx_dp4a_instructions']} dp4a instructions in the PTX)"
    )
    for kernel, reason in manifest["dp4a_declined"].items():
        print(f"  no dp4a for {kernel[:60]}: {reason}")


def _compile(args: argparse.Namespace) -> int:
    from tvmq.api import compile_model

    compiled = compile_model(
        args.model, args.target, args.output, name=args.name,
        arena_section=args.arena_section, weights_section=args.weights_section,
        batch=args.batch, schedules=_schedules(args, args.target), force=args.force,
        shapes=_shapes(args),
    )  # fmt: skip
    target, report = compiled.target, compiled.report
    if target.kind == "cuda":
        _print_cuda_project(args.output, target, report, args.batch)
        return 0
    print(compiled.schedules.summary())
    if target.kind == "cortex-a":
        _print_library_project(args.output, target, report)
    else:
        _print_firmware_project(args.output, target, report)
    return 0


def _print_firmware_project(shown: Path, target, report: dict) -> None:
    print(f"wrote {shown}: firmware project for {target.name} ({target.board['name']})")
    print(f"  build/firmware.elf  flash {report['flash']:,} B of {report['flash_limit']:,}")
    print(f"                      RAM   {report['ram']:,} B of {report['ram_limit']:,}")
    print(f"  weights {report['weights_bytes']:,} B (flash)")
    print(
        f"  activation arena {report['arena_bytes']:,} B "
        f"(peak of live tensors {report['arena_lower_bound_bytes']:,} B, "
        f"one buffer per tensor {report['arena_unplanned_bytes']:,} B)"
    )
    print(f"  inputs + outputs {report['io_bytes']:,} B")
    own, harness = report["model"], report["harness"]
    print(
        f"  the model itself: flash {own['flash']:,} B (code {own['code']:,}, weights "
        f"{own['weights']:,}), RAM {own['ram']:,} B (arena {own['arena']:,})"
    )
    print(
        f"  harness, board and C library: flash {harness['flash']:,} B, RAM {harness['ram']:,} B;"
        f" stack {report['stack']:,} B"
    )


def _print_library_project(shown: Path, target, manifest: dict) -> None:
    libraries = manifest["libraries"]
    print(f"wrote {shown}: library project for {target.name} ({target.description})")
    for kind in ("static", "shared"):
        print(f"  {libraries[kind]:<32} {libraries['bytes'][kind]:>10,} B")
    print(f"  C API: {manifest['entry']}")
    print(f"  runner: {manifest['runner']}")
    print(
        f"  weights {manifest['weights_bytes']:,} B, activation arena {manifest['arena_bytes']:,} B"
    )


def _debug(args: argparse.Namespace) -> int:
    from tvmq.api import load_model
    from tvmq.data import calibration_inputs
    from tvmq.fileio import check_output_directory
    from tvmq.quantize.debug import report_layer_errors

    check_output_directory(args.output, args.force)
    shapes = _shapes(args)
    float_model = load_model(args.float_model, shapes)
    quantized = load_model(args.quant_model, shapes)
    samples, where = calibration_inputs(
        args.data, float_model, args.fraction, None, args.input_format, "samples"
    )
    samples = samples[: args.samples]
    print(f"comparing on {len(samples)} inputs of {where}")
    report_layer_errors(float_model, quantized, samples, args.output, args.force)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tvmq.api import evaluate_model

    schedules = _schedules(args, args.target)
    score = evaluate_model(
        args.model, args.data, metric=args.metric, target=args.target,
        skip_fraction=args.skip_fraction, schedules=schedules, shapes=_shapes(args),
    )  # fmt: skip
    print(schedules.summary())
    print(score)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from tvmq.data import open_data
    from tvmq.fileio import check_output_file
    from tvmq.frontend import load_model
    from tvmq.frontend.saved import save_model
    from tvmq.train.command import run_finetune

    if args.output.suffix != ".tvmq":
        raise TvmqError(f"{args.output}: the fine-tuned model is written as .tvmq")
    check_output_file(args.output, args.force)
    model = load_model(args.model, _shapes(args))
    teacher = None if args.teacher is None else load_model(args.teacher, _shapes(args))
    data = open_data(args.data, model.inputs[0])
    save_model(run_finetune(args, model, data, teacher), args.output)
    print(f"wrote {args.output}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from tvmq.hil.bench import measure
    from tvmq.scratch import scratch_directory

    if (args.model is None) == (args.elf is None):
        raise TvmqError("bench needs a MODEL to compile or a built --elf, exactly one of them")
    if args.flash and args.device is None:
        raise TvmqError("--flash programs a real board: give its --device URL too")
    with scratch_directory("tvmq-bench-") as scratch:
        elf = args.elf
        if args.model is not None:
            from tvmq.backend.mcu import compile_firmware
            from tvmq.frontend import load_model
            from tvmq.targets import load_target

            project = Path(scratch) / "firmware"
            target = load_target(args.target)
            schedules = _schedules(args, target)
            compile_firmware(load_model(args.model, _shapes(args)), target, project, schedules)
            print(schedules.summary(), file=sys.stderr if args.json else sys.stdout)
            elf = project / "build" / "firmware.elf"
        if args.flash:
            from tvmq.hil.flash import flash_firmware

            flash_firmware(elf, args.target, args.probe, args.pack)
        result = measure(
            elf, args.target, args.device, args.power, args.runs, args.warmup,
            repeats=args.repeats, progress=not args.json,
        )  # fmt: skip
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "outputs"}, indent=2))
        return 0
    ticks = result["latency_ticks"]
    print(
        f"{result['model']} on {result['board']} ({result['target']}), build {result['build_id']}"
    )
    print(
        f"latency: {ticks['median']:,.1f} ticks at {result['tick_hz']:,} Hz per inference "
        f"(min {ticks['min']:,.1f}, max {ticks['max']:,.1f}; "
        f"{result['repeats']} x {result['runs']})"
    )
    if "instructions" in result:
        line = f"instructions: {result['instructions']:,} per inference (exact under -icount)"
        if "latency_ms_at_real_clock" in result:
            line += (
                f"; {result['latency_ms_at_real_clock']:.3f} ms at "
                f"{result['real_clock_hz'] / 1e6:g} MHz if one instruction per cycle"
            )
        print(line)
    else:
        print(f"latency: {result['latency_ms']:.3f} ms")
    if "energy_uj" in result:
        print(f"energy: {result['energy_uj']['median']:.2f} uJ per inference")
    return 0


def _ci(args: argparse.Namespace) -> int:
    from tvmq.ci import command
    from tvmq.tune.apply import check_options

    if args.jobs < 0:
        raise TvmqError(f"--jobs {args.jobs}: must be at least 1 (0: one per CPU)")
    check_options(args.schedules, args.objective)  # before any board starts
    schedules = functools.partial(_schedules, args)  # one per board target
    if args.ci_command == "run":
        _check_report_dir(args.report)
        return command.run(args.matrix, args.baseline, args.report, args.jobs, args.only, schedules)
    return command.update_baseline(
        args.matrix, args.baseline, args.jobs, args.source, args.only, schedules
    )


def _flash(args: argparse.Namespace) -> int:
    from tvmq.hil.flash import flash_firmware

    probe = flash_firmware(args.elf, args.target, args.probe, args.pack)
    print(f"flashed {args.elf} through probe {probe}")
    return 0


def _doctor(_: argparse.Namespace) -> int:
    from tvmq.doctor import report

    text, healthy = report()
    print(text)
    return 0 if healthy else 1


def _demo(args: argparse.Namespace) -> int:
    from tvmq.demo import run_demo

    run_demo(args.target, _schedules(args, args.target))
    return 0


def _shape_option() -> argparse.ArgumentParser:
    """The --shape option, shared by every command that imports a model."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="fix input NAME's shape, e.g. images=1,3,640,640 (needed for free dims; repeatable)",
    )
    return parent


def _schedule_options() -> argparse.ArgumentParser:
    """--schedules, --no-tuned, --objective: shared by every command that builds."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--schedules",
        type=Path,
        metavar="DIR",
        help="tuned records from this database (tvmq tune --work-dir); default: "
        "$TVMQ_SCHEDULES, ./schedules or ~/.cache/tvmq/schedules, then tvmq's own",
    )
    parent.add_argument(
        "--no-tuned", action="store_true", help="default schedules only, no tuned records"
    )
    parent.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="flash",
        help="flash (default): a tuned kernel's code stays within 5%% of the default's; "
        "speed: the fastest record whatever its size",
    )
    return parent


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tvmq", description=__doc__.splitlines()[0])
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    shape = [_shape_option()]
    builds = [_schedule_options()]

    inspect = commands.add_parser(
        "inspect", parents=shape, help="describe a model file and check that it imports"
    )
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument("--target", help="also check the lowering for this target (name or .toml)")
    inspect.set_defaults(handler=_inspect)

    run = commands.add_parser(
        "run", parents=shape + builds, help="compile a model and run it on inputs"
    )
    run.add_argument("model", type=Path)
    run.add_argument(
        "--input",
        type=Path,
        action="append",
        required=True,
        help=".npy file per model input, one sample or a batch along axis 0; or one .npz "
        "holding them by input name",
    )
    run.add_argument("--target", default="host", help="target name or .toml (default: host)")
    run.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="raw: each --input file holds one or more samples as bytes of the input's type",
    )
    run.add_argument("--output", type=Path, help="write outputs to .npy (or .npz)")
    run.add_argument("--force", action="store_true", help="replace an existing output")
    run.add_argument(
        "--profile",
        action="store_true",
        help="emulated Cortex-M: instructions per kernel of one inference (first sample)",
    )
    run.set_defaults(handler=_run)

    quantize = commands.add_parser(
        "quantize", parents=shape, help="calibrate and quantize a float model to int8"
    )
    quantize.add_argument("model", type=Path)
    quantize.add_argument(
        "--mode",
        choices=MODES,
        default="static",
        help="static: calibrated int8 activations (default); dynamic: activation scales "
        "computed per inference; weight-only: int8 weights, float activations",
    )
    quantize.add_argument(
        "--calib",
        type=Path,
        help=".npy batch of inputs, .npz (x, optional y), a folder with y_labels.csv, or raw "
        "bytes (--input-format raw); a labelled set calibrates on its even-indexed samples",
    )
    quantize.add_argument(
        "--calib-fraction",
        type=float,
        help="calibrate on this leading fraction of a labelled set instead",
    )
    quantize.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="raw: --calib holds samples as bytes of the model input's type and shape",
    )
    quantize.add_argument("--calib-samples", type=int, help="use exactly this many samples")
    quantize.add_argument(
        "--calibrator",
        default="mse",
        choices=list(CALIBRATORS),
    )
    quantize.add_argument("--percentile", type=float, default=99.999)
    quantize.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    quantize.add_argument("--symmetric", action="store_true", help="symmetric activations")
    quantize.add_argument("--power-of-two", action="store_true", help="power-of-two scales")
    quantize.add_argument(
        "--skip-op",
        action="append",
        default=[],
        help="keep this op kind float: conv2d, matmul, add, mul, concat, avg_pool2d, mean, softmax",
    )
    quantize.add_argument("--skip", action="append", default=[], help="keep this layer float")
    quantize.add_argument(
        "--activations",
        choices=ACTIVATIONS,
        default="int8",
        help="activation type; int16 follows TFLite's 16x8 scheme (default int8)",
    )
    quantize.add_argument(
        "--int16",
        action="append",
        default=[],
        metavar="LAYER",
        help="int16 activations around this layer only (mixed precision)",
    )
    quantize.add_argument(
        "--weight-bits",
        type=int,
        default=8,
        help="weight bits of conv and dense layers: 8, or 4 (first and last layer stay 8)",
    )
    quantize.add_argument(
        "--bits",
        action="append",
        default=[],
        metavar="LAYER=BITS",
        help="weight bits (4 or 8) of this layer (repeatable)",
    )
    quantize.add_argument(
        "--codebook",
        type=int,
        default=0,
        metavar="K",
        help="cluster conv and dense weights into K int8 values (2-16; 4-bit indices "
        "+ a table); first and last layer stay int8",
    )
    quantize.add_argument(
        "--codebook-layer",
        action="append",
        default=[],
        metavar="LAYER=K",
        help="a K-value codebook for this layer (repeatable)",
    )
    quantize.add_argument(
        "--codebook-per-channel",
        action="store_true",
        help="one codebook per output channel (16 bytes each) instead of one per layer",
    )
    quantize.add_argument("-o", "--output", type=Path, required=True, help="output .tvmq file")
    quantize.add_argument(
        "--force", action="store_true", help="replace an existing output file or --report"
    )
    quantize.add_argument(
        "--sensitivity",
        action="store_true",
        help="measure each layer's effect and fall the worst back to float within --budget",
    )
    quantize.add_argument(
        "--budget",
        type=float,
        default=1.0,
        help="tolerated loss in %% (relative metric drop, or output error) (default 1.0)",
    )
    quantize.add_argument(
        "--eval", type=Path, help="labelled data (.npz or MLPerf folder) for the task metric"
    )
    quantize.add_argument("--metric", choices=METRICS, default="top1")
    quantize.add_argument(
        "--report",
        type=Path,
        help="write a per-layer error report (report.md, report.json, per_layer.png) here",
    )
    quantize.add_argument(
        "--report-samples",
        type=int,
        default=32,
        help="calibration samples the report compares on (default 32)",
    )
    quantize.set_defaults(handler=_quantize)

    debug = commands.add_parser(
        "debug",
        parents=shape,
        help="per-layer error of a quantized model against its float original",
    )
    debug.add_argument("float_model", type=Path)
    debug.add_argument("quant_model", type=Path, help="a .tvmq made from FLOAT_MODEL")
    debug.add_argument("--data", type=Path, required=True, help="data as quantize --calib takes it")
    debug.add_argument(
        "--fraction",
        type=float,
        help="compare on this leading fraction of a labelled set (default: as quantize)",
    )
    debug.add_argument("--input-format", choices=INPUT_FORMATS, default="auto")
    debug.add_argument(
        "--samples", type=int, default=32, help="compare on at most this many samples (default 32)"
    )
    debug.add_argument("-o", "--output", type=Path, required=True, help="report directory")
    debug.add_argument("--force", action="store_true", help="replace an existing output")
    debug.set_defaults(handler=_debug)

    evaluate = commands.add_parser(
        "eval", parents=shape + builds, help="task metric of a model on an evaluation set"
    )
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument(
        "--data",
        type=Path,
        required=True,
        help="labelled .npz (x, y) or folder with y_labels.csv; its odd-indexed samples are "
        "scored (quantize calibrates on the even ones)",
    )
    evaluate.add_argument("--metric", choices=METRICS, help="default: auc on ad01, else top1")
    evaluate.add_argument(
        "--skip-fraction",
        type=float,
        help="score all but this leading fraction instead (quantize --calib-fraction's rest)",
    )
    evaluate.add_argument("--target", default="host")
    evaluate.set_defaults(handler=_eval)

    finetune = commands.add_parser(
        "finetune",
        parents=shape,
        help="quantization-aware fine-tuning, distillation or learned rounding (writes a .tvmq)",
    )
    finetune.add_argument("model", type=Path, help="float .onnx/.tflite, or a .tvmq")
    finetune.add_argument(
        "--data", type=Path, required=True, help=".npz with x and y, or an MLPerf Tiny folder"
    )
    finetune.add_argument("-o", "--output", type=Path, required=True, help="output .tvmq file")
    finetune.add_argument("--epochs", type=int, default=10)
    finetune.add_argument("--lr", type=float, default=1e-4, help="learning rate")
    finetune.add_argument("--batch-size", type=int, default=32)
    finetune.add_argument("--seed", type=int, default=0, help="shuffling seed")
    finetune.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULT_OPTIMIZER)
    from tvmq.train.command import add_arguments as add_training_arguments

    add_training_arguments(finetune)
    finetune.add_argument("--force", action="store_true", help="replace an existing output")
    finetune.set_defaults(handler=_finetune)

    optimize = commands.add_parser(
        "optimize",
        parents=shape,
        help="mixed precision (int8, codebook16, int4 per layer) under budgets (writes a .tvmq)",
    )
    optimize.add_argument("model", type=Path, help="float .onnx or .tflite")
    optimize.add_argument("--calib", type=Path, required=True, help="calibration data")
    optimize.add_argument(
        "--eval", type=Path, required=True, help="labelled data; its odd-indexed samples are scored"
    )
    optimize.add_argument("--target", required=True, help="an emulated Cortex-M board")
    optimize.add_argument(
        "--max-drop", type=float, default=0.5, help="accuracy points below all int8 (0.5)"
    )
    optimize.add_argument("--flash-budget", help="firmware flash, e.g. 64KiB (B, KiB, MiB)")
    optimize.add_argument("--ram-budget", help="static RAM, e.g. 32KiB (B, KiB, MiB)")
    optimize.add_argument(
        "--instructions-budget", help="instructions per inference, e.g. 250k (k, M)"
    )
    optimize.add_argument("-o", "--output", type=Path, required=True, help="output .tvmq file")
    optimize.add_argument("--report", type=Path, help="new directory: the front (md, json, png)")
    optimize.add_argument("--calib-samples", type=int, help="calibrate on the first N only")
    optimize.add_argument("--eval-samples", type=int, help="score the first N scored samples")
    optimize.add_argument(
        "--layer", action="append", help="search only this layer, e.g. conv2d#1 (repeatable)"
    )
    optimize.add_argument("--force", action="store_true", help="replace existing outputs")
    optimize.set_defaults(handler=_optimize)

    from tvmq.prune.command import add_parser as add_prune_parser

    add_prune_parser(commands, shape)

    compile_ = commands.add_parser(
        "compile",
        parents=shape + builds,
        help="compile a model into a firmware project (Cortex-M), a library project "
        "(Cortex-A) or CUDA kernels",
    )
    compile_.add_argument("model", type=Path, help=".onnx, .tflite or .tvmq")
    compile_.add_argument(
        "--target", required=True, help="a cortex-m, cortex-a or cuda target name or .toml"
    )
    compile_.add_argument("-o", "--output", type=Path, required=True, help="new directory")
    compile_.add_argument("--force", action="store_true", help="replace an existing output")
    compile_.add_argument(
        "--batch", type=int, default=1, help="samples per call (cuda targets, 1 to 256)"
    )
    compile_.add_argument(
        "--name", help="C name of the model: its symbols are tvmq_NAME_* (default: file name)"
    )
    compile_.add_argument(
        "--arena-section", help="linker section of the static arena (cortex-m), e.g. .sram2"
    )
    compile_.add_argument("--weights-section", help="linker section of the weights (cortex-m)")
    compile_.set_defaults(handler=_compile)

    bench = commands.add_parser(
        "bench", parents=shape + builds, help="measure a firmware on an emulated or real board"
    )
    bench.add_argument("model", type=Path, nargs="?", help="model to compile and measure")
    bench.add_argument("--elf", type=Path, help="or: a built firmware.elf with the harness")
    bench.add_argument("--target", required=True, help="target name or .toml")
    bench.add_argument("--device", help="pySerial URL of a flashed board (default: emulate)")
    bench.add_argument("--power", help="power monitor: lpm01a:URL or ppk2:URL")
    bench.add_argument("--runs", type=int, default=10, help="timed inferences per RUN")
    bench.add_argument("--warmup", type=int, default=1)
    bench.add_argument("--repeats", type=int, default=5, help="RUNs; the median is reported")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--flash", action="store_true", help="flash --device's board with pyOCD")
    bench.add_argument("--probe", help="debug probe UID (default: the only one connected)")
    bench.add_argument("--pack", type=Path, help="CMSIS .pack file for a part not built in")
    bench.set_defaults(handler=_bench)

    flash = commands.add_parser("flash", help="program a real board with pyOCD")
    flash.add_argument("elf", type=Path, help="firmware.elf (tvmq compile's build/)")
    flash.add_argument("--target", required=True, help="a real board's target name or .toml")
    flash.add_argument("--probe", help="debug probe UID (default: the only one connected)")
    flash.add_argument("--pack", type=Path, help="CMSIS .pack file for a part not built in")
    flash.set_defaults(handler=_flash)

    ci = commands.add_parser("ci", help="hardware-in-the-loop CI over a device matrix")
    ci_commands = ci.add_subparsers(dest="ci_command", required=True)
    ci_run = ci_commands.add_parser(
        "run", parents=builds, help="run the matrix, judge budgets and baseline"
    )
    ci_update = ci_commands.add_parser(
        "update-baseline", parents=builds, help="rewrite the baseline"
    )
    for sub in (ci_run, ci_update):
        sub.add_argument("matrix", type=Path, help="the matrix .toml (see ci/README.md)")
        sub.add_argument("--baseline", type=Path, help="baseline JSON (default: the matrix's)")
        sub.add_argument("--jobs", type=int, default=0, help="boards at once (default: CPUs)")
        sub.add_argument(
            "--only", action="append", metavar="PATTERN",
            help="only the entries whose id (model/data@board) matches or begins with this "
            "shell pattern (repeatable)",
        )  # fmt: skip
        sub.set_defaults(handler=_ci)
    ci_run.add_argument("--report", type=Path, help="write JUnit XML, Markdown, plots here")
    ci_update.add_argument(
        "--from", dest="source", type=Path,
        help="take the figures from this report directory of an earlier 'ci run'",
    )  # fmt: skip

    doctor = commands.add_parser("doctor", help="check toolchains and emulators")
    doctor.set_defaults(handler=_doctor)

    demo = commands.add_parser(
        "demo", parents=builds, help="compile and evaluate the bundled example model"
    )
    demo.add_argument("--target", default="qemu-cortex-m4")
    demo.set_defaults(handler=_demo)

    from tvmq.tune.command import add_parser as add_tune

    add_tune(commands, shape)
    return root


def main(argv: list[str] | None = None) -> int:
    from tvmq.scratch import stop_signals_as_exceptions, terminated

    args = parser().parse_args(argv)
    try:
        with stop_signals_as_exceptions():
            return args.handler(args)
    except TvmqError as error:
        print(f"tvmq: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader left (`tvmq inspect ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (KeyboardInterrupt, Exception) as error:
        if terminated():  # SIGTERM, perhaps re-raised by TVM as its own error
            print("tvmq: terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        if not isinstance(error, KeyboardInterrupt):
            raise
        print("tvmq: interrupted", file=sys.stderr)
        return 130
