"""tvmq int8 on CUDA against PyTorch float16 and float32 on the same networks.

Two steps, because the GPU server need not hold tvmq's compiler:

    python bench/cuda_vs_torch.py build DIR [--target cuda-sm90]   # nvcc, no GPU
    python bench/cuda_vs_torch.py measure DIR [--repeat 50]          # the GPU server

``build`` compiles each network's int8 model into CUDA projects for batch 1 and
64 (``tvmq compile``'s output), writes real evaluation samples with the host
integer model's outputs for them, and the float network as ONNX for PyTorch
(the MLPerf Tiny float TFLite files through tflite2onnx; KWS ships no float
model, so it has no PyTorch row). ``measure`` needs only TVM's runtime, numpy,
torch and onnx2torch (the ``[gpu]`` extra): it checks that every project's
outputs equal the host integer model's, then times tvmq and PyTorch (median of
timed runs after warm-up) and writes bench/results/cuda_vs_torch.json. Without
a GPU it says so and exits with status 1: no figure is ever estimated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "cuda_vs_torch.json"
SHARED = REPO.parent / "shared"
BATCHES = (1, 64)
SAMPLES = 64  # real samples checked per network (the batch-64 project runs them at once)
MLPERF = {  # network: (int8 model, float model or None, evaluation set)
    "ad_autoencoder": ("ad_autoencoder_int8", "ad_autoencoder_float", "ad01"),
    "ic_resnet8": ("ic_resnet8_int8", "ic_resnet8_float", "ic01"),
    "kws_dscnn": ("kws_dscnn_int8", None, "kws01"),
    "vww_mobilenet": ("vww_mobilenet_int8", "vww_mobilenet_float", "vww01"),
}


# ---------------------------------------------------------------- build (no GPU)


def networks():
    """(name, int8 model, float ONNX path or TFLite path or None, real samples)."""
    from tvmq.data import open_data
    from tvmq.datasets import ad_windows, as_model_input
    from tvmq.examples import DIGITS_MODEL, digits_split
    from tvmq.frontend import load_model
    from tvmq.quantize.quantizer import quantize_model

    calibration, _ = digits_split("train")
    digits = quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:50]])
    test, _ = digits_split("test")
    yield "digits_cnn", digits, DIGITS_MODEL, list(test[:SAMPLES])

    models = SHARED / "models" / "mlperf-tiny"
    for name, (int8_name, float_name, dataset) in MLPERF.items():
        data = SHARED / "data" / dataset
        if not (models / f"{int8_name}.tflite").is_file() or not data.is_dir():
            print(f"{name}: shared model or data absent, skipped", file=sys.stderr)
            continue
        model = load_model(models / f"{int8_name}.tflite")
        samples = []
        for value, _ in open_data(data).values(range(SAMPLES)):
            value = ad_windows(value)[5] if dataset == "ad01" else value
            samples.append(as_model_input(value, model.inputs[0]))
        float_path = models / f"{float_name}.tflite" if float_name else None
        yield name, model, float_path, samples


def float_onnx(source: Path, destination: Path) -> None:
    """The float network as ONNX whose batch axis is free (for PyTorch at batch 64)."""
    import onnx

    if source.suffix == ".tflite":
        import tflite2onnx

        tflite2onnx.convert(str(source), str(destination))
        graph = onnx.load(str(destination))
    else:
        graph = onnx.load(str(source))
    for tensor in graph.graph.input:
        tensor.type.tensor_type.shape.dim[0].dim_param = "batch"
    reshape_shapes = {node.input[1] for node in graph.graph.node if node.op_type == "Reshape"}
    for initializer in graph.graph.initializer:
        if initializer.name in reshape_shapes:
            shape = onnx.numpy_helper.to_array(initializer).copy()
            shape[0] = 0  # 0: keep the input's (batch) extent
            initializer.CopyFrom(onnx.numpy_helper.from_array(shape, initializer.name))
    onnx.save(graph, str(destination))


def build(directory: Path, target_name: str) -> int:
    from tvmq.backend.cuda import compile_cuda_project
    from tvmq.targets import load_target

    target = load_target(target_name)
    directory.mkdir(parents=True, exist_ok=False)
    for name, model, float_source, samples in networks():
        folder = directory / name
        folder.mkdir()
        host = model.build("host")
        x = np.concatenate([s.reshape(1, *s.shape[1:]) for s in samples])
        expected = [np.concatenate(outs) for outs in zip(*(host(s) for s in samples), strict=True)]
        np.savez(folder / "reference.npz", x, *expected)
        if float_source is not None:
            float_onnx(Path(float_source), folder / "float.onnx")
        for batch in BATCHES:
            compile_cuda_project(model, target, folder / f"b{batch}", batch)
        print(f"{name}: {len(samples)} samples, projects for batch {BATCHES}", flush=True)
    return 0


# ---------------------------------------------------------------- measure (GPU)


def _gpu_missing() -> str | None:
    try:
        import onnx2torch  # noqa: F401
        import torch
    except ImportError as error:
        return f"{error.name} is not installed: pip install '.[gpu]'"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    from tvmq.backend.cuda_runtime import cuda_device
    from tvmq.errors import TvmqError

    try:
        cuda_device()
    except TvmqError as error:
        return str(error)
    return None


def check_outputs(projects: dict, reference) -> tuple[dict, bool]:
    """Run each batch's project on the reference samples: samples equal to the host's."""
    x = reference["arr_0"]
    expected = [reference[f"arr_{i}"] for i in range(1, len(reference.files))]
    checked, all_equal = {}, True
    for batch, project in projects.items():
        equal = 0
        for start in range(0, len(x) - batch + 1, batch):
            got = project(x[start : start + batch])
            rows = slice(start, start + batch)
            same = all(np.array_equal(g, e[rows]) for g, e in zip(got, expected, strict=True))
            equal += batch * same
        total = len(x) // batch * batch
        checked[f"batch{batch}_equal_samples"] = f"{equal}/{total}"
        all_equal &= equal == total
    return checked, all_equal


def torch_latency_ms(onnx_path: Path, batch: int, dtype: str, repeat: int) -> float:
    import onnx
    import onnx2torch
    import torch

    graph = onnx.load(str(onnx_path))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    shape = [batch, *(d.dim_value for d in dims[1:])]
    module = onnx2torch.convert(graph).cuda().eval()
    module = module.half() if dtype == "float16" else module
    x = torch.zeros(shape, device="cuda", dtype=getattr(torch, dtype))
    times = []
    with torch.inference_mode():
        for _ in range(10):
            module(x)
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                module(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 10)
    return statistics.median(times)


def measure(directory: Path, repeat: int, results: Path) -> int:
    missing = _gpu_missing()
    if missing:
        print(f"cuda_vs_torch needs a CUDA GPU: {missing}; nothing measured", file=sys.stderr)
        return 1
    import torch
    import tvm

    from tvmq.backend.cuda_runtime import CudaProject

    rows, mismatched, target = [], [], None
    for folder in sorted(p for p in directory.iterdir() if (p / "reference.npz").is_file()):
        projects = {batch: CudaProject(folder / f"b{batch}") for batch in BATCHES}
        target = projects[BATCHES[0]].manifest["target"]
        reference = np.load(folder / "reference.npz")
        checked, all_equal = check_outputs(projects, reference)
        if not all_equal:
            mismatched.append(folder.name)
        onnx_path = folder / "float.onnx"
        for batch, project in projects.items():
            row = {"network": folder.name, "batch": batch, **checked}
            x = reference["arr_0"][:batch]
            row["tvmq_int8_ms"] = statistics.median(project.latency_ms(x, repeat=repeat))
            for dtype in ("float32", "float16"):
                row[f"torch_{dtype}_ms"] = (
                    torch_latency_ms(onnx_path, batch, dtype, repeat)
                    if onnx_path.is_file()
                    else None
                )
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        "target": target,
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "tvm": tvm.__version__,
        "method": (
            f"median of {repeat} timed means of 10 calls after warm-up, real samples for "
            "tvmq and zeros for PyTorch (eager, onnx2torch); outputs checked against the "
            "host integer model on the first 64 evaluation samples"
        ),
        "rows": rows,
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {results}")
    if mismatched:
        print(f"outputs differ from the host model: {', '.join(mismatched)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    build_step = steps.add_parser("build", help="compile projects and references (needs nvcc)")
    build_step.add_argument("directory", type=Path)
    build_step.add_argument("--target", default="cuda-sm90")
    measure_step = steps.add_parser("measure", help="check and time on the GPU")
    measure_step.add_argument("directory", type=Path)
    measure_step.add_argument("--repeat", type=int, default=50)
    measure_step.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.step == "build":
        return build(args.directory, args.target)
    return measure(args.directory, args.repeat, args.results)


if __name__ == "__main__":
    sys.exit(main())
