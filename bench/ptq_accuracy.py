"""tvmq's post-training quantization of the float MLPerf Tiny models and the bundled
digits CNN, side by side with the float model, the TFLite converter's int8 file and
onnxruntime (float32 and its own QDQ int8 model) where a float ONNX file exists.

Split: MLPerf Tiny sets calibrate on the first 20 % of each shared set and evaluate on
the rest; the digits CNN calibrates on 200 training images and evaluates on its test
split. Host latency: single-sample inference (batch 1) after a warm-up, median and p90
of repeated runs, tvmq and onnxruntime on the same number of threads.
Writes bench/results/ptq_accuracy.json and prints a Markdown table.

    python -m bench.ptq_accuracy [--calibrators minmax percentile mse entropy]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tvmq.data import LabelledData, from_arrays, model_inputs, open_data
from tvmq.evaluate import evaluate
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.model import Model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.scheme import QuantConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results" / "ptq_accuracy.json"
CALIBRATION_FRACTION = 0.2
DIGITS_CALIBRATION_IMAGES = 200
TASKS = {
    "ic_resnet8": ("ic01", "top1"),
    "vww_mobilenet": ("vww01", "top1"),
    "ad_autoencoder": ("ad01", "auc"),
}
WARMUP_RUNS = 20
TIMED_RUNS = 200

Infer = Callable[..., list[np.ndarray]]


def host_threads() -> int:
    """Threads of TVM's runtime pool: onnxruntime gets as many, so both race alike."""
    import tvm

    return int(tvm.get_global_func("runtime.NumThreads")())


def latency_us(infer: Infer, x: np.ndarray, runs: int = TIMED_RUNS) -> dict[str, float]:
    """Median and p90 wall clock of single inferences of `x`, in microseconds.

    Warm-up runs first (caches, lazy allocation); the median resists a shared
    machine's noise and the p90 shows its tail."""
    for _ in range(WARMUP_RUNS):
        infer(x)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        infer(x)
        times[i] = time.perf_counter() - start
    median, p90 = np.percentile(times * 1e6, [50, 90])
    return {"median": float(median), "p90": float(p90)}


def measure(model: Model, infer: Infer, data: LabelledData, metric: str, held_out: range) -> dict:
    """Task metric over `held_out` and host latency of one held-out input."""
    x = next(model_inputs(data, model.inputs[0], held_out))[0]
    return {
        metric: evaluate(model, infer, data, metric, held_out),
        "host_latency_us": latency_us(infer, x),
    }


def onnxruntime_builds(
    onnx_file: Path, samples: Sequence[Sequence[np.ndarray]], threads: int, workdir: Path
) -> dict[str, tuple[Infer, str]]:
    """onnxruntime float32 and int8 sessions of `onnx_file`, each with how it was made.

    int8 is quantize_static (QDQ, per-channel int8 weights, int8 activations, MinMax)
    on the same calibration samples tvmq sees; quantize_dynamic where that fails."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        quantize_dynamic,
        quantize_static,
    )

    class Samples(CalibrationDataReader):
        def __init__(self, name: str):
            self.feeds = iter([{name: sample[0]} for sample in samples])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1

    def session(path: Path) -> Infer:
        sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})

    float_session = session(onnx_file)
    quantized = workdir / f"{onnx_file.stem}_ort_int8.onnx"
    input_name = ort.InferenceSession(onnx_file).get_inputs()[0].name
    try:
        quantize_static(
            onnx_file,
            quantized,
            Samples(input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
        )
        how = f"quantize_static QDQ, per-channel, MinMax over {len(samples)} samples"
    except Exception as error:  # any failure of static calibration: fall back, say why
        quantize_dynamic(onnx_file, quantized, per_channel=True)
        how = f"quantize_dynamic (quantize_static failed: {type(error).__name__}: {error})"
    return {
        "onnxruntime_float": (float_session, "onnxruntime float32"),
        "onnxruntime_int8": (session(quantized), how),
    }


def compare(
    float_model: Model,
    onnx_file: Path | None,
    data: LabelledData,
    metric: str,
    samples: list[list[np.ndarray]],
    held_out: range,
    calibrators: list[str],
    threads: int,
) -> dict:
    """Every build of one network: tvmq float and int8 per calibrator, and onnxruntime."""
    entry: dict = {"float": measure(float_model, float_model.build("host"), data, metric, held_out)}
    entry["tvmq_int8"] = {}
    for calibrator in calibrators:
        quantized = quantize_model(float_model, samples, QuantConfig(calibrator=calibrator))
        entry["tvmq_int8"][calibrator] = measure(
            quantized, quantized.build("host"), data, metric, held_out
        )
    if onnx_file is None:
        entry["onnxruntime"] = "skipped: no float ONNX file of this network"
        return entry
    with tempfile.TemporaryDirectory() as workdir:
        for key, (infer, how) in onnxruntime_builds(
            onnx_file, samples, threads, Path(workdir)
        ).items():
            entry[key] = {"how": how, **measure(float_model, infer, data, metric, held_out)}
    return entry


def run_digits(calibrators: list[str], threads: int) -> dict:
    """The bundled digits CNN: the one network shipped as ONNX, so always compared."""
    calibration, _ = digits_split("train")
    inputs, labels = digits_split("test")
    data = from_arrays(inputs, labels, "digits test split")
    samples = [[x] for x in calibration[:DIGITS_CALIBRATION_IMAGES]]
    entry = {
        "split": {
            "calibration": f"first {DIGITS_CALIBRATION_IMAGES} training images",
            "evaluation": f"{len(labels)} test images",
        }
    }
    model = load_model(DIGITS_MODEL)
    entry |= compare(
        model, DIGITS_MODEL, data, "top1", samples, range(len(labels)), calibrators, threads
    )
    return entry


def run(calibrators: list[str]) -> dict:
    threads = host_threads()
    results: dict = {
        "host_latency": {
            "unit": "us",
            "statistics": "median and p90 of single-sample inferences, batch 1",
            "warmup_runs": WARMUP_RUNS,
            "timed_runs": TIMED_RUNS,
            "os_cpu_count": os.cpu_count(),
            "tvm_threads": threads,
            "onnxruntime_intra_op_threads": threads,
            "onnxruntime_version": _version("onnxruntime"),
        },
        "digits_cnn": run_digits(calibrators, threads),
    }
    print(json.dumps({"digits_cnn": results["digits_cnn"]}, indent=1))
    for name, (dataset, metric) in TASKS.items():
        models = SHARED / "models" / "mlperf-tiny"
        if (
            not (models / f"{name}_float.tflite").is_file()
            or not (SHARED / "data" / dataset).is_dir()
        ):
            print(f"skip {name}: ../shared is absent")
            continue
        data = open_data(SHARED / "data" / dataset)
        calibration, held_out = data.split(CALIBRATION_FRACTION)
        float_model = load_model(models / f"{name}_float.tflite")
        tflite_int8 = load_model(models / f"{name}_int8.tflite")
        onnx_file = models / f"{name}_float.onnx"
        # Anomaly clips hold 196 windows each: every 8th window calibrates.
        samples = list(model_inputs(data, float_model.inputs[0], calibration, every_window=8))
        entry = {
            "split": {
                "calibration": [calibration.start, calibration.stop],
                "evaluation": [held_out.start, held_out.stop],
                "of": data.size,
            },
            "tflite_int8": measure(tflite_int8, tflite_int8.build("host"), data, metric, held_out),
            **compare(
                float_model,
                onnx_file if onnx_file.is_file() else None,
                data,
                metric,
                samples,
                held_out,
                calibrators,
                threads,
            ),
        }
        results[name] = entry
        print(json.dumps({name: entry}, indent=1))
    return results


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def markdown_table(results: dict) -> str:
    """One row per network and build: its task metric and host latency."""
    rows = [
        "| network | build | metric | median µs | p90 µs |",
        "|---|---|---|---:|---:|",
    ]
    for network, entry in results.items():
        if network == "host_latency":
            continue
        builds = {"tvmq float": entry["float"]}
        builds |= {f"tvmq int8 ({c})": f for c, f in entry["tvmq_int8"].items()}
        for key, label in [
            ("tflite_int8", "TFLite int8 file on tvmq"),
            ("onnxruntime_float", "onnxruntime float32"),
            ("onnxruntime_int8", "onnxruntime int8"),
        ]:
            if isinstance(entry.get(key), dict):
                builds[label] = entry[key]
        for label, figures in builds.items():
            metric = next(k for k in ("top1", "auc") if k in figures)
            latency = figures["host_latency_us"]
            rows.append(
                f"| {network} | {label} | {metric} {figures[metric]:.4f} "
                f"| {latency['median']:,.0f} | {latency['p90']:,.0f} |"
            )
    setup = results["host_latency"]
    rows.append(
        f"\nbatch 1, {setup['warmup_runs']} warm-up + {setup['timed_runs']} timed runs; "
        f"tvm {setup['tvm_threads']} thread(s), onnxruntime intra_op_num_threads "
        f"{setup['onnxruntime_intra_op_threads']}, os.cpu_count() {setup['os_cpu_count']}"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calibrators", nargs="+", default=["minmax", "percentile", "mse", "entropy"]
    )
    args = parser.parse_args()
    results = run(args.calibrators)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(markdown_table(results))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
