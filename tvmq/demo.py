"""The main job on the embedded default: quantize the bundled model, compile it for
an emulated Cortex-M4, run its test split on the board and report what it costs.

The bundled digits CNN is calibrated on 200 training images and quantized to
int8; float and int8 are each compiled into a firmware (standalone C, static
arena, no runtime) for the target's board, booted in QEMU, and fed every test
image over the serial harness. Reported: top-1 accuracy, instructions per
inference (exact under QEMU's icount) and the memory the firmware takes. On the
host target the same runs on this machine's CPU with wall-clock latency.
Written with the Python API (:mod:`tvmq.api`), as a user's script would be; it
scores in its own loop, since the same run counts each inference's instructions.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from tvmq.api import build_model, load_model, quantize_model, schedules_for
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.model import Model
from tvmq.targets import load_target
from tvmq.tune.apply import TunedSchedules

CALIBRATION_IMAGES = 200


def _measure(
    model: Model, target: str, inputs: np.ndarray, labels: np.ndarray, schedules: TunedSchedules
) -> dict:
    started = time.perf_counter()
    with build_model(model, target, schedules=schedules) as executable:
        figures: dict[str, float] = {"build_seconds": time.perf_counter() - started}
        latencies, instructions, hits = [], [], 0
        for x, label in tqdm(
            zip(inputs, labels, strict=True), total=len(labels), desc=model.name, unit="image"
        ):
            start = time.perf_counter()
            (probabilities,) = executable(x)
            latencies.append(time.perf_counter() - start)
            instructions.append(getattr(executable, "instructions", None))
            hits += int(np.argmax(probabilities) == label)
        figures["accuracy"] = hits / len(labels)
        figures["latency_median_us"] = float(np.median(latencies) * 1e6)
        if instructions[0] is not None:
            from tvmq.backend.mcu import elf_sizes

            figures["instructions_median"] = float(np.median(instructions))
            figures.update(elf_sizes(executable.firmware))
            figures["arena_bytes"] = executable.compiled.plan.arena_bytes
            figures["weight_bytes"] = len(executable.compiled.weights)
        else:
            figures["weight_bytes"] = model.param_bytes
    return figures


def run_demo(
    target: str = "qemu-cortex-m4", schedules: TunedSchedules | None = None
) -> dict[str, dict[str, float]]:
    """Quantize, build and evaluate the example; `schedules` (both builds) default
    to the tuned records, as in every build."""
    schedules = schedules or schedules_for(target)
    description = load_target(target).description
    model = load_model(DIGITS_MODEL)
    calibration, _ = digits_split("train")
    inputs, labels = digits_split("test")
    quantized = quantize_model(model, calibration[:CALIBRATION_IMAGES])
    results = {
        "float32": _measure(model, target, inputs, labels, schedules),
        "int8": _measure(quantized, target, inputs, labels, schedules),
    }
    print(schedules.summary())
    print(
        f"\n{len(labels)} test images on '{target}' ({description}); "
        f"int8 calibrated on {CALIBRATION_IMAGES} training images (MSE calibrator)"
    )
    if "instructions_median" in results["int8"]:
        print(f"{'':8} {'top-1':>7} {'instr/inference':>16} {'flash':>10} {'RAM':>9} "
              f"{'arena':>8} {'weights':>9}")  # fmt: skip
        for name, f in results.items():
            print(
                f"{name:8} {f['accuracy']:7.2%} {f['instructions_median']:16,.0f} "
                f"{f['flash']:8,} B {f['ram']:7,} B {f['arena_bytes']:6,} B "
                f"{f['weight_bytes']:7,} B"
            )
        print("instructions: exact count under QEMU -icount; RAM includes a 16 KB stack")
    else:
        print(f"{'':8} {'top-1':>8} {'latency (host wall clock)':>27} {'weights*':>10}")
        for name, f in results.items():
            print(
                f"{name:8} {f['accuracy']:8.2%} {f['latency_median_us']:24.0f} us "
                f"{f['weight_bytes']:8,} B"
            )
        print("* float32: every parameter; int8: the int8 weights of conv and dense layers")
    return results
