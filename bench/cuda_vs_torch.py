"""tvmq int8 on CUDA against PyTorch float16 and float32 on the same network.

Needs a CUDA GPU and the ``[gpu]`` extra (torch, onnx2torch): the float ONNX
model is converted to a PyTorch module, the same model quantized by tvmq is
built for the target's arch with dp4a kernels. Latency is the median of timed
runs after warm-up, at batch 1 and 64, written to bench/results/cuda_vs_torch.json.
Without a GPU it says so and exits with status 1: no figure is ever estimated.

    python bench/cuda_vs_torch.py [--target cuda-sm80] [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "cuda_vs_torch.json"
BATCHES = (1, 64)


def _gpu_missing() -> str | None:
    import tvm

    try:
        import onnx2torch  # noqa: F401
        import torch
    except ImportError as error:
        return f"{error.name} is not installed: pip install '.[gpu]'"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    if not tvm.cuda(0).exist:
        return "TVM sees no CUDA device"
    return None


def tvmq_latency_ms(model, target, batch: int, repeat: int) -> float:
    import tvm

    from tvmq.backend.cuda import CudaExecutable, build_cuda

    executable = CudaExecutable(build_cuda(model, target, batch))
    spec = model.inputs[0]
    x = np.zeros((batch, *spec.shape[1:]), dtype=spec.dtype)
    data = tvm.runtime.tensor(x, executable.device)
    timer = executable._vm.time_evaluator("main", executable.device, number=10, repeat=repeat)
    return float(np.median(timer(data).results)) * 1e3


def torch_latency_ms(onnx_path: Path, batch: int, dtype: str, shape, repeat: int) -> float:
    import onnx2torch
    import torch

    module = onnx2torch.convert(str(onnx_path)).cuda().eval()
    module = module.half() if dtype == "float16" else module
    x = torch.zeros((batch, *shape[1:]), device="cuda", dtype=getattr(torch, dtype))
    times = []
    with torch.inference_mode():
        for _ in range(10):
            module(x)
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            module(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def networks():
    """(name, float ONNX path, tvmq int8 model) for each network compared."""
    from tvmq.examples import DIGITS_MODEL, digits_split
    from tvmq.frontend import load_model
    from tvmq.quantize.quantizer import quantize_model

    calibration, _ = digits_split("train")
    digits = quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:50]])
    yield "digits_cnn", DIGITS_MODEL, digits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cuda-sm80")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    missing = _gpu_missing()
    if missing:
        print(f"cuda_vs_torch needs a CUDA GPU: {missing}; nothing measured", file=sys.stderr)
        return 1
    import torch

    from tvmq.fileio import write_atomically
    from tvmq.targets import load_target

    target = load_target(args.target)
    rows = []
    for name, onnx_path, int8_model in networks():
        shape = int8_model.inputs[0].shape
        for batch in BATCHES:
            row = {"network": name, "batch": batch}
            row["tvmq_int8_ms"] = tvmq_latency_ms(int8_model, target, batch, args.repeat)
            for dtype in ("float32", "float16"):
                row[f"torch_{dtype}_ms"] = torch_latency_ms(
                    onnx_path, batch, dtype, shape, args.repeat
                )
            print(json.dumps(row))
            rows.append(row)
    result = {
        "target": target.name,
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "method": f"median of {args.repeat} timed runs after warm-up; zeros as input",
        "rows": rows,
    }
    text = json.dumps(result, indent=2) + "\n"
    write_atomically(RESULTS, lambda f: f.write(text.encode()))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
