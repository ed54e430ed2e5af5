"""The imported model: a Relax IRModule plus what users need to feed it.

Every frontend produces a :class:`Model`; every backend consumes one. Quantized
models are kept in quantize/dequantize (QDQ) form here, whatever their origin, and
realized as integer arithmetic at build time (:mod:`tvmq.quantize.realize`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tvmq.errors import TvmqError

if TYPE_CHECKING:
    import tvm

    from tvmq.backend.executable import Executable
    from tvmq.tune.apply import TunedSchedules


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per axis."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    @property
    def per_tensor(self) -> bool:
        return len(self.scale) == 1

    def describe(self) -> str:
        if self.per_tensor:
            return f"scale={self.scale[0]:.6g} zero_point={self.zero_point[0]}"
        return f"per-axis {self.axis}: {len(self.scale)} scales"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the file declares it."""

    name: str
    # A str dim is free in the source file (read_source); a Model's shapes are all ints.
    shape: tuple[int | str, ...]
    dtype: str
    quant: QuantParams | None = None

    def describe(self) -> str:
        text = f"{self.name}: {self.dtype}{list(self.shape)}"
        return f"{text} ({self.quant.describe()})" if self.quant else text

    def check(self, array: np.ndarray, origin: str) -> np.ndarray:
        """Return `array` if it fits this input, else raise naming both shapes."""
        if array.dtype != np.dtype(self.dtype):
            raise TvmqError(
                f"{origin}: dtype {array.dtype} does not match input '{self.name}' "
                f"({self.dtype}{list(self.shape)})"
            )
        if tuple(array.shape) != self.shape:
            raise TvmqError(
                f"{origin}: shape {list(array.shape)} does not match input '{self.name}' "
                f"({self.dtype}{list(self.shape)})"
            )
        return array


@dataclass
class Model:
    """An imported network, ready to quantize or build."""

    name: str
    source: Path
    format: str
    mod: tvm.IRModule
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    operators: Counter[str] = field(default_factory=Counter)
    quantization: dict | None = None
    # Relax var name of main -> node name in the source file, for reports.
    source_names: dict[str, str] = field(default_factory=dict)

    @property
    def param_bytes(self) -> int:
        return sum(int(p.nbytes) for p in self.params.values())

    def check_inputs(self, arrays) -> list[np.ndarray]:
        """`arrays` as this model's inputs, or a clear error naming the one that does not fit."""
        if len(arrays) != len(self.inputs):
            raise TvmqError(f"{self.name}: expects {len(self.inputs)} input(s), got {len(arrays)}")
        return [
            spec.check(np.asarray(array), f"input {index}")
            for index, (spec, array) in enumerate(zip(self.inputs, arrays, strict=True))
        ]

    @property
    def is_quantized(self) -> bool:
        """True when the graph carries quantize/dequantize ops (int8 file or QDQ)."""
        from tvmq.quantize.realize import has_qdq

        return has_qdq(self.mod)

    def build(self, target: str = "host", schedules: TunedSchedules | None = None) -> Executable:
        """Compile for `target` (a name in targets/ or a .toml path) with `schedules`:
        by default the tuned records of the user's and the shipped databases under
        the flash objective (:func:`tvmq.tune.apply.schedules_for`), so the library
        builds the same firmware as every command."""
        from tvmq.backend import build

        if schedules is None:
            from tvmq.targets import load_target
            from tvmq.tune.apply import schedules_for

            schedules = schedules_for(load_target(target))
        return build(self, target, schedules)
