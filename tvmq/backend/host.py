"""Host build: the Relax VM on this machine's CPU, the reference for every device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tvmq.model import Model
    from tvmq.targets import Target


class HostExecutable:
    """A compiled model callable on numpy arrays, checking them against the model's inputs."""

    def __init__(self, model: Model, vm):
        self.model = model
        self._vm = vm

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        import tvm

        tensors = [
            tvm.runtime.tensor(np.require(a, requirements="C"))
            for a in self.model.check_inputs(arrays)
        ]
        return _to_numpy(self._vm["main"](*tensors))


def _to_numpy(result) -> list[np.ndarray]:
    if hasattr(result, "numpy"):
        return [result.numpy()]
    if isinstance(result, Sequence) or hasattr(result, "__len__"):
        return [r for item in result for r in _to_numpy(item)]
    raise TypeError(f"unexpected VM result {type(result).__name__}")


def build_host(model: Model, target: Target) -> HostExecutable:
    import tvm
    from tvm import relax

    from tvmq.quantize.realize import realize

    mod = realize(model.mod) if model.is_quantized else model.mod
    executable = tvm.compile(mod, target.tvm_target())
    return HostExecutable(model, relax.VirtualMachine(executable, tvm.cpu()))
