"""CUDA builds: int8 GEMMs on dp4a for sm_80, sm_90 and sm_87, checked without a GPU.

CI has no GPU: these tests check what the compiler makes (CUDA C whose conv and
dense kernels call __dp4a, PTX from nvcc with dp4a.s32.s32, the host library),
for batch 1 and a larger batch. The outputs are checked against the host
integer model only where a CUDA device exists (tvm.cuda().exist); elsewhere that
test skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.shared_assets import shared_model
from tests.test_mlperf_import import model_inputs
from tvmq.backend.cuda import CudaExecutable, build_cuda, compile_cuda_project
from tvmq.backend.cuda_runtime import CudaProject
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.frontend.saved import save_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.targets import load_target

REPO = Path(__file__).resolve().parents[1]
ARCHS = {"cuda-sm80": "sm_80", "cuda-sm90": "sm_90", "cuda-sm87": "sm_87"}
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def _has_cuda_device() -> bool:
    import tvm

    return bool(tvm.cuda(0).exist)


needs_gpu = pytest.mark.skipif(not _has_cuda_device(), reason="no CUDA device on this machine")


@pytest.fixture(scope="module")
def digits_int8():
    calibration, _ = digits_split("train")
    return quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:50]])


@pytest.fixture(scope="module")
def digits_builds(digits_int8):
    return {name: build_cuda(digits_int8, load_target(name)) for name in ARCHS}


def kernels_calling_dp4a(source: str) -> set[str]:
    """Names of the __global__ kernels whose body calls __dp4a."""
    pieces = re.split(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?', source)[1:]
    return {piece.split("(")[0] for piece in pieces if "__dp4a" in piece}


def assert_gemms_on_dp4a(build) -> None:
    """Every int8 conv/dense kernel is on dp4a unless declined as depthwise."""
    gemms = [k for k in build.log.rules if k.startswith(("fused_conv2d", "fused_matmul"))]
    assert gemms, "the model has int8 conv/dense kernels"
    for kernel in gemms:
        on_dp4a = kernel in build.log.dp4a
        assert on_dp4a or "depthwise" in build.log.declined.get(kernel, ""), kernel
    assert not build.log.unscheduled
    for kernel, reason in build.log.declined.items():  # a window per thread, not per block
        assert "depthwise" not in reason or build.log.rules[kernel] != "GeneralReduction"
    calling = kernels_calling_dp4a(build.source)
    assert len(calling) >= len(set(build.log.dp4a)) > 0
    assert all(any(k.startswith(g[:40]) for g in build.log.dp4a) for k in calling)


@pytest.mark.parametrize("target", sorted(ARCHS))
def test_digits_int8_builds_with_dp4a_for_each_arch(digits_builds, target):
    assert_gemms_on_dp4a(digits_builds[target])


@needs_nvcc
@pytest.mark.parametrize("target", sorted(ARCHS))
def test_digits_int8_ptx_has_dp4a_for_each_arch(digits_builds, target):
    ptx = digits_builds[target].ptx()
    assert f".target {ARCHS[target]}" in ptx
    assert ptx.count("dp4a.s32.s32") >= len(digits_builds[target].log.dp4a)


@pytest.mark.shared
@needs_nvcc
@pytest.mark.parametrize(
    ("name", "target", "batch"),
    [
        ("ic_resnet8_int8", "cuda-sm80", 1),
        ("kws_dscnn_int8", "cuda-sm87", 64),
        ("ad_autoencoder_int8", "cuda-sm90", 256),
    ],
)
def test_mlperf_int8_builds_on_dp4a(name, target, batch):
    build = build_cuda(load_model(shared_model(name)), load_target(target), batch)
    assert_gemms_on_dp4a(build)
    ptx = build.ptx()
    assert ptx.count("dp4a.s32.s32") >= len(build.log.dp4a)


def test_batch_outside_the_range_is_refused(digits_int8):
    with pytest.raises(TvmqError, match="batch 257"):
        build_cuda(digits_int8, load_target("cuda-sm80"), 257)


def test_larger_batch_widens_inputs_and_outputs(digits_int8):
    from tvmq.backend.cuda import with_batch
    from tvmq.quantize.realize import realize

    main = realize(with_batch(digits_int8.mod, 8))["main"]  # as build_cuda does
    assert [int(v) for v in main.params[0].ty.shape.values] == [8, *digits_int8.inputs[0].shape[1:]]
    assert int(main.ret_ty.shape.values[0]) == 8


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tvmq", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.mark.shared
@needs_nvcc
def test_compile_cli_writes_source_ptx_library_and_manifest(tmp_path):
    model = shared_model("ad_autoencoder_int8")
    out = tmp_path / "cuda"
    result = _cli("compile", str(model), "--target", "cuda-sm80", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "kernels.cu",
        "kernels.ptx",
        "manifest.json",
        "model.so",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arch"] == "sm_80" and manifest["batch"] == 1
    assert manifest["dp4a_kernels"] and manifest["ptx_dp4a_instructions"] > 0
    assert "__dp4a" in (out / "kernels.cu").read_text()
    assert "dp4a.s32.s32" in (out / "kernels.ptx").read_text()

    again = _cli("compile", str(model), "--target", "cuda-sm80", "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_compile_cli_without_nvcc_is_one_line_and_leaves_nothing(digits_int8, tmp_path):
    model = tmp_path / "digits.tvmq"
    save_model(digits_int8, model)
    out = tmp_path / "cuda"
    python_dir = str(Path(sys.executable).parent)
    result = _cli(
        "compile", str(model), "--target", "cuda-sm90", "-o", str(out),
        env={"PATH": python_dir},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tvmq: error: nvcc not found: install the CUDA toolkit (tvmq compile makes PTX)"
    ]
    assert not out.exists() and list(tmp_path.iterdir()) == [model]


@needs_gpu
@pytest.mark.parametrize("batch", [1, 4])
def test_gpu_outputs_identical_to_host_integer_model(digits_int8, batch):
    host = digits_int8.build("host")
    inputs, _ = digits_split("test")
    samples = list(inputs[: 2 * batch])
    gpu = CudaExecutable(build_cuda(digits_int8, load_target("cuda-sm80"), batch))
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        stacked = np.concatenate([x.reshape(1, *x.shape[1:]) for x in chunk])
        got = gpu(stacked)
        for index, x in enumerate(chunk):
            for g, expected in zip(got, host(x), strict=True):
                np.testing.assert_array_equal(g[index : index + 1], expected)


@pytest.mark.shared
@needs_gpu
@pytest.mark.parametrize(
    ("name", "dataset"),
    [("ic_resnet8_int8", "ic01"), ("kws_dscnn_int8", "kws01"), ("vww_mobilenet_int8", "vww01")],
)
def test_gpu_mlperf_outputs_identical_to_host(name, dataset):
    model = load_model(shared_model(name))
    host = model.build("host")
    gpu = CudaExecutable(build_cuda(model, load_target("cuda-sm80")))
    for x in model_inputs(model, dataset):
        for got, expected in zip(gpu(x), host(x), strict=True):
            np.testing.assert_array_equal(got, expected)


def test_runtime_loader_imports_no_compiler():
    """cuda_runtime travels to GPU servers that hold only TVM's runtime."""
    code = (
        "import sys, tvmq.backend.cuda_runtime; "
        "print(sorted(m for m in sys.modules if m.startswith(('tvm', 'tvmq.quantize', 'onnx'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert eval(result.stdout) == ["tvmq", "tvmq.api", "tvmq.backend", "tvmq.backend.cuda_runtime",
                                   "tvmq.backend.host", "tvmq.errors", "tvmq.model",
                                   "tvmq.resources", "tvmq.targets"]  # fmt: skip


def test_directory_without_manifest_is_not_a_project(tmp_path):
    with pytest.raises(TvmqError, match=r"no manifest.json \(not a tvmq CUDA project\)"):
        CudaProject(tmp_path)


@pytest.fixture(scope="module")
def digits_project(digits_int8, tmp_path_factory):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    directory = tmp_path_factory.mktemp("cuda") / "digits"
    compile_cuda_project(digits_int8, load_target("cuda-sm90"), directory, batch=4)
    return directory


@pytest.mark.skipif(_has_cuda_device(), reason="checks the refusal where no GPU exists")
def test_project_without_a_gpu_is_refused_by_name(digits_project):
    with pytest.raises(TvmqError, match="CUDA"):
        CudaProject(digits_project)


@needs_gpu
def test_project_outputs_identical_to_host_and_inputs_checked(digits_int8, digits_project):
    host = digits_int8.build("host")
    inputs, _ = digits_split("test")
    project = CudaProject(digits_project)
    chunk = np.concatenate([x.reshape(1, *x.shape[1:]) for x in inputs[:4]])
    for index, got in enumerate(project(chunk)[0]):
        np.testing.assert_array_equal(got[None], host(inputs[index])[0])
    with pytest.raises(TvmqError, match=r"input '.*' must be float32\[4, "):
        project(chunk[:1])
