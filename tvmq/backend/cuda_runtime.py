"""Running CUDA builds with TVM's runtime alone.

A GPU server runs what ``tvmq compile --target cuda-*`` wrote without tvmq's
compiler passes or TVM's compiler library (apache-tvm with libtvm_compiler
removed works): model.so holds the host code and the kernels, manifest.json the
input shapes checked before each call. A build made without a GPU driver (CI,
a workstation) keeps its kernels as CUDA C, which TVM compiles for the device
when the project is loaded: the server needs NVRTC (cuda-bindings) or nvcc.
Only numpy and ``tvm.runtime`` are imported here, so this module travels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tvmq.backend.host import _to_numpy
from tvmq.errors import TvmqError

PROJECT_FORMAT = "tvmq-cuda/1"


def _load_cuda_runtime() -> None:
    """Load TVM's CUDA runtime library, which ``import tvm`` skips in runtime-only mode."""
    from tvm.base import _LOADED_LIBS
    from tvm_ffi.libinfo import load_lib_ctypes

    if "tvm_runtime_cuda" in _LOADED_LIBS:
        return
    runtime_dir = Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
    try:
        _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
            "tvm", "tvm_runtime_cuda", "RTLD_LOCAL", extra_lib_paths=[runtime_dir]
        )
    except (OSError, RuntimeError) as error:
        raise TvmqError(f"TVM's CUDA runtime (libtvm_runtime_cuda) did not load: {error}") from None


def cuda_device(device_id: int = 0):
    """The CUDA device, refused by name when this machine has none."""
    import tvm

    _load_cuda_runtime()
    device = tvm.cuda(device_id)
    if not device.exist:
        raise TvmqError(f"no CUDA device {device_id} on this machine")
    return device


def _register_cuda_compiler(device) -> None:
    """Compile kernels kept as CUDA C for `device` (NVRTC) when a project loads.

    TVM's own load-time callback asks the compiler library for the current
    target, which a runtime-only install lacks; the device itself says the arch.
    """
    import tvm
    import tvm_ffi
    from tvm.support import nvcc

    if not tvm.base._RUNTIME_ONLY:
        return  # TVM's callback (tvm.support.nvcc) works with the compiler library
    arch = "sm_" + device.compute_version.replace(".", "")

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def compile_for_device(code: str) -> bytes:
        return nvcc.compile_cuda(code, target_format="cubin", arch=arch, compiler="nvrtc")


class CudaVm:
    """A Relax VM on a CUDA device, called with numpy arrays, returning numpy arrays."""

    def __init__(self, library, device):
        from tvm.runtime.vm import VirtualMachine

        self.device = device
        self._vm = VirtualMachine(library, device)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        return _to_numpy(self._vm["main"](*self._tensors(arrays)))

    def _tensors(self, arrays):
        import tvm

        return [tvm.runtime.tensor(np.require(a, requirements="C"), self.device) for a in arrays]

    def close(self) -> None:
        """Nothing to release before the VM is collected; here for the Executable protocol."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def latency_ms(self, *arrays: np.ndarray, number: int = 10, repeat: int = 50) -> list[float]:
        """Per-call times in ms: `repeat` means of `number` calls each (device-synchronized)."""
        timer = self._vm.time_evaluator("main", self.device, number=number, repeat=repeat)
        return [t * 1e3 for t in timer(*self._tensors(arrays)).results]


class CudaProject(CudaVm):
    """A compiled project directory (model.so + manifest.json) loaded on a CUDA device."""

    def __init__(self, directory: str | Path, device_id: int = 0):
        import tvm

        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise TvmqError(f"{directory}: no manifest.json (not a tvmq CUDA project)")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != PROJECT_FORMAT:
            raise TvmqError(f"{manifest_path}: format is not {PROJECT_FORMAT}")
        device = cuda_device(device_id)
        _register_cuda_compiler(device)
        super().__init__(tvm.runtime.load_module(str(directory / "model.so")), device)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        self._check(arrays)
        return super().__call__(*arrays)

    def _check(self, arrays) -> None:
        specs = self.manifest["inputs"]
        if len(arrays) != len(specs):
            raise TvmqError(f"{self.manifest['model']}: {len(specs)} inputs, got {len(arrays)}")
        for spec, array in zip(specs, arrays, strict=True):
            if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                raise TvmqError(
                    f"input '{spec['name']}' must be {spec['dtype']}{spec['shape']}, "
                    f"got {array.dtype}{list(array.shape)}"
                )
