"""Resumable training checkpoints: one .npz per run, replaced atomically.

A checkpoint holds what the next epoch needs to continue exactly as an
uninterrupted run would: the latent parameters, the optimizer's state, the
shuffling generator's state, the best parameters so far and the history. It is
written at the end of every epoch to a temporary file that then replaces the old
one, so an interrupted run never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError
from tvmq.train.optimizers import Adam, MomentumSGD

FILE = "checkpoint.npz"


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    steps: int
    parameters: list[np.ndarray]
    best_parameters: list[np.ndarray]
    optimizer: list[np.ndarray]  # Adam: means then squares; SGD: velocities
    meta: dict  # optimizer steps, generator state, best score, history, patience count


def optimizer_state(optimizer: Adam | MomentumSGD) -> tuple[list[np.ndarray], int]:
    """The optimizer's arrays (empty before its first step) and its step count."""
    if isinstance(optimizer, Adam):
        moments = optimizer.moments or []
        return [m for m, _ in moments] + [s for _, s in moments], optimizer.steps
    return list(optimizer.velocity or []), 0


def load_optimizer_state(
    optimizer: Adam | MomentumSGD, arrays: list[np.ndarray], steps: int
) -> None:
    if not arrays:
        return
    if isinstance(optimizer, Adam):
        half = len(arrays) // 2
        optimizer.moments = list(zip(arrays[:half], arrays[half:], strict=True))
        optimizer.steps = steps
    else:
        optimizer.velocity = list(arrays)


def save(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to directory/checkpoint.npz atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"meta": np.array(json.dumps(checkpoint.meta))}
    arrays["counts"] = np.array([checkpoint.epoch, checkpoint.steps], np.int64)
    for group in ("parameters", "best_parameters", "optimizer"):
        for index, value in enumerate(getattr(checkpoint, group)):
            arrays[f"{group}/{index}"] = value
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".npz.part")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, directory / FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return directory / FILE


def load(directory: Path) -> Checkpoint:
    path = directory / FILE
    if not path.is_file():
        raise TvmqError(f"{directory}: no {FILE} to resume from")
    try:
        with np.load(path) as archive:
            meta = json.loads(str(archive["meta"]))
            epoch, steps = (int(v) for v in archive["counts"])
            groups: dict[str, list[np.ndarray]] = {}
            for group in ("parameters", "best_parameters", "optimizer"):
                count = sum(1 for key in archive.files if key.startswith(f"{group}/"))
                groups[group] = [archive[f"{group}/{i}"] for i in range(count)]
    except (OSError, ValueError, KeyError) as error:
        raise TvmqError(f"{path}: not a readable checkpoint ({error})") from error
    return Checkpoint(epoch, steps, meta=meta, **groups)


def check_fits(checkpoint: Checkpoint, parameters: list[np.ndarray], path: Path) -> None:
    """Refuse a checkpoint of another model in one line."""
    shapes = [p.shape for p in parameters]
    saved = [p.shape for p in checkpoint.parameters]
    if shapes != saved:
        raise TvmqError(f"{path}: the checkpoint's parameters do not fit this model")
