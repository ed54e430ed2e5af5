"""tvmq: compile trained neural networks into fast int8 code for microcontrollers,
ARM CPUs and GPUs, on Apache TVM (Relax + MetaSchedule)."""

from tvmq.errors import TvmqError
from tvmq.model import Model, QuantParams, TensorSpec

__all__ = ["Model", "QuantParams", "TensorSpec", "TvmqError", "load_model"]
__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)


def load_model(path, **kwargs) -> Model:
    """Import an ONNX or TFLite file (see :func:`tvmq.frontend.load_model`)."""
    from tvmq.frontend import load_model as _load

    return _load(path, **kwargs)
