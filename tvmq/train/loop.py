"""The training loop every fine-tuning mode shares (labelled, distillation).

Mini-batches in a seeded shuffled order, the optimizer's step on the engine's
latent parameters, validation at the end of every epoch or every N steps with
the best parameters kept, early stopping after `patience` validations without
improvement, a stop on a non-finite loss, resumable checkpoints at the end of
every epoch (:mod:`tvmq.train.checkpoint`) and a training-curve plot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tvmq.errors import TvmqError
from tvmq.train import checkpoint
from tvmq.train.engine import Engine
from tvmq.train.optimizers import DEFAULT_OPTIMIZER, make_optimizer

# A validation: (score, higher is better; loss, breaking ties) of the engine as it is.
Validation = Callable[[Engine], tuple[float, float]]


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 10
    lr: float = 1e-4
    batch: int = 32
    seed: int = 0
    optimizer: str = DEFAULT_OPTIMIZER
    validate_every: int = 0  # steps; 0: at the end of every epoch
    patience: int = 0  # validations without improvement before stopping; 0: never stop
    checkpoint: Path | None = None  # directory of the resumable checkpoint
    resume: bool = False
    plot: Path | None = None  # training curve, .png

    def check(self) -> None:
        if self.epochs < 1 or self.batch < 1:
            raise TvmqError("--epochs and --batch-size must be at least 1")
        if self.validate_every < 0 or self.patience < 0:
            raise TvmqError("--validate-every and --patience must not be negative")
        if self.resume and self.checkpoint is None:
            raise TvmqError("--resume needs --checkpoint DIR (where the run was saved)")
        if self.plot is not None and self.plot.suffix != ".png":
            raise TvmqError(f"{self.plot}: the training curve is written as .png")


@dataclass(frozen=True)
class LoopResult:
    start: tuple[float, float]  # validation (score, loss) before training
    best: tuple[float, float]
    best_epoch: int  # 0: training never beat the start
    history: list[dict]  # one entry per validation
    seconds_per_step: float
    note: str = ""


def train(
    engine: Engine,
    x: np.ndarray,
    targets: np.ndarray,
    validation: Validation,
    options: TrainOptions,
) -> LoopResult:
    """Train `engine` on samples `x` (N, *input without batch) against `targets` (class
    indices or distributions); the engine ends with the best validated parameters."""
    options.check()
    optimizer = make_optimizer(options.optimizer, options.lr)
    rng = np.random.default_rng(options.seed)
    state = _State(validation(engine), engine.state())
    if options.resume:
        state.restore(engine, optimizer, rng, options.checkpoint)
    note, elapsed, session_steps = "", 0.0, 0
    for epoch in range(state.epoch + 1, options.epochs + 1):
        order = rng.permutation(len(x))
        losses: list[float] = []
        progress = tqdm(range(len(order) // options.batch), desc=f"epoch {epoch}/{options.epochs}")
        for index in progress:
            chosen = order[index * options.batch : (index + 1) * options.batch]
            began = time.perf_counter()
            loss, grads = engine.gradients(x[chosen], targets[chosen])
            if not np.isfinite(loss):
                note = _non_finite(loss, epoch, state.epoch, options.checkpoint)
                break
            optimizer.step(engine.parameters(), grads)
            elapsed += time.perf_counter() - began
            state.steps, session_steps = state.steps + 1, session_steps + 1
            losses.append(loss)
            progress.set_postfix(loss=f"{np.mean(losses):.4f}")
            if options.validate_every and state.steps % options.validate_every == 0:
                if state.validated(engine, validation, epoch, losses, options.patience):
                    note = f"no improvement in {options.patience} validations: stopped early"
                    break
                losses = []
        progress.close()
        if note:
            break
        if not options.validate_every and state.validated(
            engine, validation, epoch, losses, options.patience
        ):
            note = f"no improvement in {options.patience} validations: stopped early"
        state.epoch = epoch
        if options.checkpoint is not None:
            state.save(engine, optimizer, rng, options.checkpoint)
        if note:
            break
    engine.load_state(state.best_parameters)
    if options.plot is not None:
        plot_curve(state.history, options.plot)
    return LoopResult(
        state.start,
        state.best,
        state.best_epoch,
        state.history,
        elapsed / max(session_steps, 1),
        note,
    )


def _non_finite(loss: float, epoch: int, saved: int, directory: Path | None) -> str:
    kept = f"; {directory} keeps epoch {saved}" if directory is not None else ""
    return f"loss became {loss} in epoch {epoch}: stopped, kept the best parameters{kept}"


class _State:
    """What the loop carries from validation to validation, and what a checkpoint keeps."""

    def __init__(self, start: tuple[float, float], parameters: list[np.ndarray]):
        self.start = self.best = start
        self.best_parameters = parameters
        self.best_epoch = self.epoch = self.steps = self.stale = 0
        self.history: list[dict] = []

    def validated(
        self, engine: Engine, validation: Validation, epoch: int, losses: list, patience: int
    ) -> bool:
        """Validate, keep the best; True when `patience` validations in a row did not
        improve on the best."""
        score, loss = validation(engine)
        mean = float(np.mean(losses)) if losses else float("nan")
        self.history.append(
            {
                "epoch": epoch,
                "step": self.steps,
                "loss": mean,
                "validation_score": score,
                "validation_loss": loss,
            }
        )
        print(
            f"epoch {epoch} step {self.steps}: loss {mean:.4f}, validation {score:.4f}, "
            f"validation loss {loss:.4f}"
        )
        if (score, -loss) > (self.best[0], -self.best[1]):
            self.best, self.best_parameters, self.best_epoch = (
                (score, loss),
                engine.state(),
                epoch,
            )
            self.stale = 0
        else:
            self.stale += 1
        return bool(patience) and self.stale >= patience

    def save(self, engine: Engine, optimizer, rng: np.random.Generator, directory: Path) -> None:
        arrays, optimizer_steps = checkpoint.optimizer_state(optimizer)
        meta = {
            "start": list(self.start),
            "best": list(self.best),
            "best_epoch": self.best_epoch,
            "stale": self.stale,
            "history": self.history,
            "optimizer_steps": optimizer_steps,
            "generator": rng.bit_generator.state,
        }
        saved = checkpoint.Checkpoint(
            self.epoch, self.steps, engine.state(), self.best_parameters, arrays, meta
        )
        checkpoint.save(directory, saved)

    def restore(self, engine: Engine, optimizer, rng: np.random.Generator, directory: Path) -> None:
        saved = checkpoint.load(directory)
        checkpoint.check_fits(saved, engine.parameters(), directory)
        engine.load_state(saved.parameters)
        checkpoint.load_optimizer_state(optimizer, saved.optimizer, saved.meta["optimizer_steps"])
        rng.bit_generator.state = saved.meta["generator"]
        self.epoch, self.steps = saved.epoch, saved.steps
        self.start, self.best = tuple(saved.meta["start"]), tuple(saved.meta["best"])
        self.best_parameters, self.best_epoch = saved.best_parameters, saved.meta["best_epoch"]
        self.stale, self.history = saved.meta["stale"], saved.meta["history"]
        print(f"resumed from {directory} after epoch {self.epoch} ({self.steps} steps)")


def plot_curve(history: list[dict], path: Path) -> None:
    """Training loss and validation score against steps, written to `path` (.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [entry["step"] for entry in history]
    figure, loss_axis = plt.subplots(figsize=(6, 3.5))
    loss_axis.plot(steps, [e["loss"] for e in history], "o-", label="training loss")
    loss_axis.plot(steps, [e["validation_loss"] for e in history], "s--", label="validation loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss")
    score_axis = loss_axis.twinx()
    score_axis.plot(steps, [e["validation_score"] for e in history], "^-", color="C2")
    score_axis.set_ylabel("validation score", color="C2")
    loss_axis.legend(loc="center right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
