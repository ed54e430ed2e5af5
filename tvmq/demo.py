"""The main job on the embedded default: compile the bundled model and measure it.

For now the bundled digits CNN is compiled for the host and run over its whole
test split; the microcontroller issue moves this onto an emulated Cortex-M board.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model


def run_demo(target: str = "host") -> dict[str, float]:
    model = load_model(DIGITS_MODEL)
    print(
        f"model   {DIGITS_MODEL.name}: {sum(model.operators.values())} operators, "
        f"{model.param_bytes:,} parameter bytes"
    )
    started = time.perf_counter()
    executable = model.build(target)
    print(f"build   target {target} in {time.perf_counter() - started:.1f} s")
    inputs, labels = digits_split("test")
    latencies, hits = [], 0
    for x, label in tqdm(
        zip(inputs, labels, strict=True), total=len(labels), desc="evaluate", unit="image"
    ):
        start = time.perf_counter()
        (probabilities,) = executable(x)
        latencies.append(time.perf_counter() - start)
        hits += int(np.argmax(probabilities) == label)
    result = {
        "accuracy": hits / len(labels),
        "latency_median_us": float(np.median(latencies) * 1e6),
        "parameter_bytes": float(model.param_bytes),
    }
    print(f"accuracy {result['accuracy']:.2%} top-1 on {len(labels)} test images")
    print(f"latency  median {result['latency_median_us']:.0f} us per inference (host wall clock)")
    print(f"memory   {model.param_bytes:,} bytes of float32 weights")
    return result
