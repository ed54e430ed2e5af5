"""Host latency of the MLPerf Tiny models: tvmq's host builds against LiteRT.

Batch 1, one thread, on this machine's CPU: LiteRT (ai_edge_litert, XNNPACK,
num_threads=1) runs each int8 and float .tflite; tvmq builds the same files for
the `host` target (mcpu detected, host schedules). All runners of a model are
timed interleaved in one process (round after round, each runner a short burst
per round), so load on the machine hits them alike; the figure is the median of
the per-call times. Each call includes what a user's call costs: input copy in,
inference, output out. tvmq's int8 outputs are checked against LiteRT's
(agreement in output elements). Writes bench/results/host_latency.json.

    python -m bench.host_latency [--models ic_resnet8 ...] [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tvmq.backend import build
from tvmq.frontend import load_model
from tvmq.targets import host_cpu

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO.parent / "shared" / "models" / "mlperf-tiny"
RESULTS = Path(__file__).resolve().parent / "results" / "host_latency.json"
# model -> (int8 file, float file): KWS ships no float model, its hybrid one
# (int8 weights, float activations) stands in.
MODELS = {
    "ad_autoencoder": ("ad_autoencoder_int8", "ad_autoencoder_float"),
    "ic_resnet8": ("ic_resnet8_int8", "ic_resnet8_float"),
    "kws_dscnn": ("kws_dscnn_int8", "kws_dscnn_hybrid"),
    "vww_mobilenet": ("vww_mobilenet_int8", "vww_mobilenet_float"),
}
TARGET_RATIO = 2.0  # issue 24: tvmq int8 <= 2x LiteRT int8


def litert_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run, inp


def tvmq_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    executable = build(load_model(path), "host")
    return lambda x: executable(x)[0]


def sample_input(spec: dict, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=spec["shape"], dtype=dtype)
    return rng.standard_normal(spec["shape"]).astype(dtype)


def interleaved_medians(
    runners: dict[str, Callable[[], object]], rounds: int, burst: int
) -> dict[str, float]:
    """Median milliseconds per call of each runner, timed round-robin."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run()  # warm-up: first-call allocations
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(burst):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def measure(model: str, rounds: int, burst: int) -> dict:
    int8_file, float_file = MODELS[model]
    rng = np.random.default_rng(0)
    litert_int8, int8_spec = litert_runner(MODELS_DIR / f"{int8_file}.tflite")
    litert_float, float_spec = litert_runner(MODELS_DIR / f"{float_file}.tflite")
    x_int8, x_float = sample_input(int8_spec, rng), sample_input(float_spec, rng)
    tvmq_int8 = tvmq_runner(MODELS_DIR / f"{int8_file}.tflite")
    tvmq_float = tvmq_runner(MODELS_DIR / f"{float_file}.tflite")
    reference, ours = litert_int8(x_int8), tvmq_int8(x_int8)
    ms = interleaved_medians(
        {
            "litert_int8": lambda: litert_int8(x_int8),
            "tvmq_int8": lambda: tvmq_int8(x_int8),
            "litert_float": lambda: litert_float(x_float),
            "tvmq_float": lambda: tvmq_float(x_float),
        },
        rounds,
        burst,
    )
    return {
        "models": {"int8": int8_file, "float": float_file},
        "median_ms": {name: round(value, 4) for name, value in ms.items()},
        "tvmq_int8_vs_litert_int8": round(ms["tvmq_int8"] / ms["litert_int8"], 2),
        "meets_2x": ms["tvmq_int8"] <= TARGET_RATIO * ms["litert_int8"],
        "tvmq_int8_vs_tvmq_float": round(ms["tvmq_int8"] / ms["tvmq_float"], 2),
        "int8_faster_than_float": ms["tvmq_int8"] < ms["tvmq_float"],
        "int8_outputs_equal_litert": float(np.mean(reference == ours)),
    }


def provenance() -> dict:
    import ai_edge_litert
    import tvm

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit,
        "tvm": tvm.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
        "mcpu": host_cpu(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--burst", type=int, default=5)
    args = parser.parse_args()
    if not MODELS_DIR.is_dir():
        raise SystemExit(f"{MODELS_DIR}: MLPerf Tiny models not found")
    result = {"provenance": provenance(), "threads": 1, "batch": 1, "models": {}}
    for model in args.models:
        result["models"][model] = measure(model, args.rounds, args.burst)
        print(model, json.dumps(result["models"][model]["median_ms"]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
