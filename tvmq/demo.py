"""The main job on the embedded default: quantize the bundled model, compile it,
evaluate it and report what it costs.

The bundled digits CNN is calibrated on 200 training images, quantized to int8,
built for the target and run over its whole test split next to the float model.
It runs on the host for now; the microcontroller issue moves it onto an
emulated Cortex-M board.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.model import Model
from tvmq.quantize.quantizer import quantize_model

CALIBRATION_IMAGES = 200


def _measure(model: Model, target: str, inputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    started = time.perf_counter()
    executable = model.build(target)
    build_seconds = time.perf_counter() - started
    latencies, hits = [], 0
    for x, label in tqdm(
        zip(inputs, labels, strict=True), total=len(labels), desc=model.name, unit="image"
    ):
        start = time.perf_counter()
        (probabilities,) = executable(x)
        latencies.append(time.perf_counter() - start)
        hits += int(np.argmax(probabilities) == label)
    return {
        "accuracy": hits / len(labels),
        "latency_median_us": float(np.median(latencies) * 1e6),
        "weight_bytes": model.param_bytes,
        "build_seconds": build_seconds,
    }


def run_demo(target: str = "host") -> dict[str, dict[str, float]]:
    model = load_model(DIGITS_MODEL)
    calibration, _ = digits_split("train")
    inputs, labels = digits_split("test")
    quantized = quantize_model(model, [[x] for x in calibration[:CALIBRATION_IMAGES]])
    results = {
        "float32": _measure(model, target, inputs, labels),
        "int8": _measure(quantized, target, inputs, labels),
    }
    print(
        f"\n{len(labels)} test images on target '{target}' "
        f"(int8 calibrated on {CALIBRATION_IMAGES} training images, MSE calibrator)"
    )
    print(f"{'':8} {'top-1':>8} {'latency (host wall clock)':>27} {'weights*':>10}")
    for name, figures in results.items():
        print(
            f"{name:8} {figures['accuracy']:8.2%} {figures['latency_median_us']:24.0f} us "
            f"{figures['weight_bytes']:8,} B"
        )
    print("* float32: every parameter; int8: the int8 weights of conv and dense layers")
    return results
