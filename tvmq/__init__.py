"""tvmq: compile trained neural networks into fast int8 code for microcontrollers,
ARM CPUs and GPUs, on Apache TVM (Relax + MetaSchedule).

The Python API (:mod:`tvmq.api`, the README's "Python API") is importable from
here; importing tvmq imports no TVM, each function does when it is called.
"""

from tvmq.api import (
    Compiled,
    Score,
    Tuning,
    build_model,
    compile_model,
    evaluate_model,
    load_model,
    optimize_model,
    quantize_model,
    save_model,
    schedules_for,
    tune_model,
)
from tvmq.errors import TvmqError
from tvmq.model import Model, QuantParams, TensorSpec

__all__ = [
    "Compiled",
    "Model",
    "QuantParams",
    "Score",
    "TensorSpec",
    "Tuning",
    "TvmqError",
    "build_model",
    "compile_model",
    "evaluate_model",
    "load_model",
    "optimize_model",
    "quantize_model",
    "save_model",
    "schedules_for",
    "tune_model",
]
__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)
