"""tflite-micro's interpreter, the bit-exact reference every int8 build is compared
with, and the random int8 inputs they are compared on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ARENA_BYTES = 1 << 20  # enough for every test model; the arena size changes no result
_RNG = np.random.default_rng(3)


def micro_outputs(
    path: Path, inputs: list[np.ndarray], count: int = 1, arena: int = ARENA_BYTES
) -> list[np.ndarray]:
    """The first `count` outputs of the .tflite model at `path` run on `inputs`."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path), arena_size=arena)
    for index, values in enumerate(inputs):
        interpreter.set_input(values, index)
    interpreter.invoke()
    return [interpreter.get_output(i) for i in range(count)]


def micro_run(path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    """The model's first output."""
    return micro_outputs(path, inputs)[0]


def random_int8(shape, rng: np.random.Generator = _RNG) -> np.ndarray:
    """Uniform int8 values whose first two are -128 and 127, the extremes where
    saturation matters."""
    values = rng.integers(-128, 128, shape).astype(np.int8)
    values.flat[: min(2, values.size)] = [-128, 127][: min(2, values.size)]
    return values
