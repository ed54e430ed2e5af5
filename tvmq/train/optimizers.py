"""Optimizers on numpy arrays: the parameters are few, the step is cheap next to the
graph, and TVM's own Adam does not initialise with numpy 2."""

from __future__ import annotations

import numpy as np

from tvmq.errors import TvmqError


class Adam:
    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.moments: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.steps = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if self.moments is None:
            self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self.steps += 1
        correction1 = 1 - self.beta1**self.steps
        correction2 = 1 - self.beta2**self.steps
        for param, grad, (mean, square) in zip(params, grads, self.moments, strict=True):
            mean *= self.beta1
            mean += (1 - self.beta1) * grad
            square *= self.beta2
            square += (1 - self.beta2) * grad * grad
            update = (mean / correction1) / (np.sqrt(square / correction2) + self.eps)
            param -= (self.lr * update).astype(param.dtype)


class MomentumSGD:
    def __init__(self, lr: float, momentum: float = 0.9):
        self.lr, self.momentum = lr, momentum
        self.velocity: list[np.ndarray] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for param, grad, velocity in zip(params, grads, self.velocity, strict=True):
            velocity *= self.momentum
            velocity += grad
            param -= (self.lr * velocity).astype(param.dtype)


OPTIMIZERS = {"adam": Adam, "sgd": MomentumSGD}
DEFAULT_OPTIMIZER = "adam"


def make_optimizer(name: str, lr: float) -> Adam | MomentumSGD:
    if lr <= 0 or not np.isfinite(lr):
        raise TvmqError(f"learning rate {lr} must be positive")
    if name not in OPTIMIZERS:
        raise TvmqError(f"unknown optimizer '{name}' (known: {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name](lr)
