"""Host build: the Relax VM on this machine's CPU, the reference for every device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tvmq.backend.aot import Scheduler
    from tvmq.model import Model
    from tvmq.targets import Target


class HostExecutable:
    """A compiled model callable on numpy arrays, checking them against the model's inputs.

    Inputs are copied into tensors allocated once (a fresh TVM tensor per call costs
    more than a small model's inference) and outputs leave through DLPack."""

    def __init__(self, model: Model, vm):
        self.model = model
        self._vm = vm
        self._main = vm["main"]
        self._inputs: list | None = None

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        arrays = self.model.check_inputs(arrays)
        tensors = self._input_tensors(arrays)
        for view, array in zip(self._views, arrays, strict=True):
            np.copyto(view, array, casting="no")
        return _to_numpy(self._main(*tensors))

    def close(self) -> None:
        """Nothing to release (the VM lives in this process); here for the Executable protocol."""

    def __enter__(self) -> HostExecutable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _input_tensors(self, arrays: list[np.ndarray]) -> list:
        """The input tensors, (re)allocated where a shape or dtype differs from the last call's."""
        import tvm

        if self._inputs is None or any(
            view.shape != a.shape or view.dtype != a.dtype
            for view, a in zip(self._views, arrays, strict=True)
        ):
            self._inputs = [tvm.runtime.empty(a.shape, str(a.dtype), tvm.cpu()) for a in arrays]
            self._views = [np.from_dlpack(t) for t in self._inputs]
        return self._inputs


def _to_numpy(result) -> list[np.ndarray]:
    if hasattr(result, "numpy"):
        return [np.from_dlpack(result).copy()]  # a copy: an output may alias an input
    if isinstance(result, Sequence) or hasattr(result, "__len__"):
        return [r for item in result for r in _to_numpy(item)]
    raise TypeError(f"unexpected VM result {type(result).__name__}")


def build_host(model: Model, target: Target) -> HostExecutable:
    import tvm
    from tvm import relax

    from tvmq.backend.host_schedule import host_pipeline
    from tvmq.quantize.realize import realize

    mod = realize(model.mod) if model.is_quantized else model.mod
    tvm_target = target.tvm_target()
    executable = tvm.compile(mod, tvm_target, relax_pipeline=host_pipeline(tvm_target))
    return HostExecutable(model, relax.VirtualMachine(executable, tvm.cpu()))


def build(model: Model, target: Target, schedule: Scheduler | None = None) -> HostExecutable:
    """The backend registry's entry: TVM's host pipeline schedules, not `schedule`."""
    return build_host(model, target)
