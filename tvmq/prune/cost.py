"""What a model costs on an emulated board: instructions per inference, flash, arena."""

from __future__ import annotations

import numpy as np

from tvmq.backend.mcu import elf_sizes
from tvmq.model import Model
from tvmq.targets import load_target
from tvmq.tune.apply import schedules_for


def board_cost(model: Model, target: str) -> dict[str, int]:
    """Instructions of one inference (QEMU -icount), flash, RAM, arena and weight bytes
    of `model` built for the emulated `target` with the default (untuned) schedules,
    so that a pruned and an unpruned model are compared on the same code generator."""
    spec = model.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, size=spec.shape).astype(spec.dtype)
    schedules = schedules_for(load_target(target), tuned=False)
    with model.build(target, schedules) as board:
        board(x)
        return {
            "instructions": board.instructions,
            "arena_bytes": board.compiled.plan.arena_bytes,
            "weights_bytes": len(board.compiled.weights),
            **elf_sizes(board.firmware),
        }
