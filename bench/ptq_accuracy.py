"""tvmq's post-training quantization of the float MLPerf Tiny models, side by side
with the float model and the TFLite converter's int8 file.

Split: calibrate on the first 20 % of each shared set, evaluate on the rest.
Also records host latency (median wall clock of single inferences) of each build.
Writes bench/results/ptq_accuracy.json.

    python -m bench.ptq_accuracy [--calibrators minmax percentile mse entropy]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tvmq.evaluate import evaluate, model_inputs, open_data
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.scheme import QuantConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results" / "ptq_accuracy.json"
CALIBRATION_FRACTION = 0.2
TASKS = {
    "ic_resnet8": ("ic01", "top1"),
    "vww_mobilenet": ("vww01", "top1"),
    "ad_autoencoder": ("ad01", "auc"),
}


def host_latency_us(model, executable, repeats: int = 50) -> float:
    spec = model.inputs[0]
    x = np.zeros(spec.shape, spec.dtype)
    executable(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        executable(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def measure(model, data, metric, held_out) -> dict:
    executable = model.build("host")
    return {
        metric: evaluate(model, executable, data, metric, held_out),
        "host_latency_us": host_latency_us(model, executable),
    }


def run(calibrators: list[str]) -> dict:
    results = {}
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
        entry = {
            "split": {
                "calibration": [calibration.start, calibration.stop],
                "evaluation": [held_out.start, held_out.stop],
                "of": data.size,
            },
            "float": measure(float_model, data, metric, held_out),
            "tflite_int8": measure(tflite_int8, data, metric, held_out),
            "tvmq_int8": {},
        }
        # Anomaly clips hold 196 windows each: every 8th window calibrates.
        samples = list(model_inputs(data, float_model.inputs[0], calibration, every_window=8))
        for calibrator in calibrators:
            quantized = quantize_model(float_model, samples, QuantConfig(calibrator=calibrator))
            entry["tvmq_int8"][calibrator] = measure(quantized, data, metric, held_out)
        results[name] = entry
        print(json.dumps({name: entry}, indent=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calibrators", nargs="+", default=["minmax", "percentile", "mse", "entropy"]
    )
    args = parser.parse_args()
    results = run(args.calibrators)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
