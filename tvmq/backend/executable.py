"""What every backend's build returns: one protocol, so callers need not know the target.

A backend may offer more where its target has it: ``instructions`` (the last
inference's instruction count on an emulated board), ``memory`` (what the model
takes of the board's flash and RAM), ``run_batch`` (many samples in one run).
Ask with ``getattr(executable, "instructions", None)``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Executable(Protocol):
    """A compiled model, called on numpy arrays (one per input) for its outputs.

    Some hold a running emulator or a temporary project: ``close`` (or the
    ``with`` form) releases them; calling after ``close`` is not supported.
    """

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executable: ...

    def __exit__(self, *exc: object) -> None: ...
