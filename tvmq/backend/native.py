"""The generated C of a model, compiled for this machine and called through ctypes.

The same sources that go into a firmware, built with the host C compiler: a fast
check of the emitted code against the host reference without an emulator, and
the Python loader for boards that run Python.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError


class _Tensor(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("bytes", ctypes.c_uint32),
        ("data", ctypes.c_void_p),
    ]


class _Model(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("build_id", ctypes.c_char_p),
        ("num_inputs", ctypes.c_uint32),
        ("num_outputs", ctypes.c_uint32),
        ("inputs", ctypes.POINTER(_Tensor)),
        ("outputs", ctypes.POINTER(_Tensor)),
        ("arena_bytes", ctypes.c_uint32),
        ("run", ctypes.CFUNCTYPE(ctypes.c_int32)),
    ]


def compile_shared_library(model_dir: Path, output: Path, cc: str = "cc") -> Path:
    """Build the model sources in `model_dir` into a shared library at `output`."""
    sources = sorted(str(p) for p in model_dir.glob("*.c"))
    command = [cc, "-O2", "-shared", "-fPIC", f"-I{model_dir}"]  # self-contained
    result = subprocess.run(
        [*command, *sources, "-o", str(output), "-lm"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise TvmqError(f"{cc} failed on {model_dir}: {result.stderr.strip().splitlines()[-1]}")
    return output


class NativeModel:
    """A model library loaded in this process; call it on numpy arrays."""

    def __init__(self, library: Path, output_shapes: list[tuple[int, ...]]):
        self._library = ctypes.CDLL(str(library))
        self._model = _Model.in_dll(self._library, "tvmq_model")
        self._output_shapes = output_shapes

    @classmethod
    def from_project(cls, directory: Path) -> NativeModel:
        """The shared library of a project written by ``tvmq compile`` for a Cortex-A
        target (on the board it was built for), its output shapes from the manifest."""
        manifest_path = Path(directory) / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
            library = Path(directory) / manifest["libraries"]["shared"]
            shapes = [tuple(output["shape"]) for output in manifest["outputs"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TvmqError(f"{manifest_path}: not a tvmq library project ({error})") from error
        try:
            return cls(library, shapes)
        except OSError as error:
            raise TvmqError(f"{library}: cannot load ({error})") from error

    @property
    def build_id(self) -> str:
        return self._model.build_id.decode()

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        model = self._model
        for index, array in enumerate(arrays):
            tensor = model.inputs[index]
            data = np.ascontiguousarray(array)
            if data.nbytes != tensor.bytes or data.dtype != np.dtype(tensor.dtype.decode()):
                raise TvmqError(
                    f"input {index}: expected {tensor.bytes} bytes of {tensor.dtype.decode()}"
                )
            ctypes.memmove(tensor.data, data.ctypes.data, tensor.bytes)
        status = model.run()
        if status != 0:
            raise TvmqError(f"model {model.name.decode()} returned status {status}")
        outputs = []
        for index, shape in enumerate(self._output_shapes):
            tensor = model.outputs[index]
            raw = ctypes.string_at(tensor.data, tensor.bytes)
            outputs.append(np.frombuffer(raw, dtype=tensor.dtype.decode()).reshape(shape).copy())
        return outputs
