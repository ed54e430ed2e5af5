"""Sparsity masks for one weight tensor: magnitude, N:M along the input channels, blocks.

A mask is a bool array of the weight's shape, True where the weight is kept. Masks
count exactly: magnitude keeps the largest `round((1 - s) * size)` weights whatever
the ties, N:M keeps exactly N of every M consecutive input channels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tvmq.errors import TvmqError


@dataclass(frozen=True)
class Pattern:
    """How weights are removed: `n_of_m` (N, M) or `block` (rows, cols), else one by one."""

    n_of_m: tuple[int, int] | None = None
    block: tuple[int, int] | None = None

    @property
    def fixed_sparsity(self) -> float | None:
        """N:M fixes every layer's sparsity at 1 - N/M."""
        return None if self.n_of_m is None else 1 - self.n_of_m[0] / self.n_of_m[1]

    def describe(self) -> str:
        if self.n_of_m:
            return f"{self.n_of_m[0]}:{self.n_of_m[1]}"
        if self.block:
            return f"blocks {self.block[0]}x{self.block[1]}"
        return "unstructured"


def parse_pattern(n_of_m: str | None, block: str | None) -> Pattern:
    """'2:4' and '4x1' as given on the command line; one line on a bad one."""
    if n_of_m and block:
        raise TvmqError("--pattern and --block exclude each other: give one of them")
    if n_of_m:
        match = re.fullmatch(r"(\d+):(\d+)", n_of_m)
        if not match or not 0 < int(match[1]) < int(match[2]):
            raise TvmqError(f"--pattern {n_of_m}: expected N:M with 0 < N < M, e.g. 2:4")
        return Pattern(n_of_m=(int(match[1]), int(match[2])))
    if block:
        match = re.fullmatch(r"(\d+)x(\d+)", block)
        if not match or int(match[1]) < 1 or int(match[2]) < 1 or match[1] == match[2] == "1":
            raise TvmqError(f"--block {block}: expected ROWSxCOLS, e.g. 4x1 (not 1x1)")
        return Pattern(block=(int(match[1]), int(match[2])))
    return Pattern()


def check_sparsity(sparsity: float, what: str = "--sparsity") -> None:
    if not 0 < sparsity < 1:
        raise TvmqError(f"{what} {sparsity}: a sparsity is a fraction strictly between 0 and 1")


def magnitude_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Keeps the largest-magnitude weights, zeroing exactly round(sparsity * size)."""
    pruned = round(sparsity * weight.size)
    mask = np.ones(weight.size, bool)
    # A stable sort: among equal magnitudes the earlier weights go first, every run alike.
    mask[np.argsort(np.abs(weight).ravel(), kind="stable")[:pruned]] = False
    return mask.reshape(weight.shape)


def n_of_m_mask(weight: np.ndarray, n: int, m: int, input_axis: int, layer: str) -> np.ndarray:
    """Keeps the N largest of every M consecutive weights along the input channels."""
    channels = weight.shape[input_axis]
    if channels % m:
        raise TvmqError(
            f"layer '{layer}': {n}:{m} sparsity needs input channels in groups of {m}, "
            f"it has {channels}"
        )
    moved = np.moveaxis(np.abs(weight), input_axis, -1)
    groups = moved.reshape(-1, m)
    order = np.argsort(-groups, axis=1, kind="stable")
    keep = np.zeros(groups.shape, bool)
    np.put_along_axis(keep, order[:, :n], True, axis=1)
    return np.moveaxis(keep.reshape(moved.shape), -1, input_axis)


def block_mask(
    weight: np.ndarray,
    sparsity: float,
    block: tuple[int, int],
    output_axis: int,
    input_axis: int,
    layer: str,
) -> np.ndarray:
    """Zeroes whole blocks of `rows` output x `cols` input channels (at each kernel
    position), those of least L2 norm, exactly round(sparsity * blocks) of them."""
    rows, cols = block
    outputs, inputs = weight.shape[output_axis], weight.shape[input_axis]
    if outputs % rows or inputs % cols:
        raise TvmqError(
            f"layer '{layer}': {rows}x{cols} blocks do not divide its {outputs} output x "
            f"{inputs} input channels"
        )
    moved = np.moveaxis(weight, (output_axis, input_axis), (0, -1))
    rest = moved.shape[1:-1]
    tiled = moved.reshape(outputs // rows, rows, *rest, inputs // cols, cols)
    norms = np.sqrt((tiled.astype(np.float64) ** 2).sum(axis=(1, tiled.ndim - 1)))
    keep = magnitude_mask(norms, sparsity)
    expanded = np.broadcast_to(np.expand_dims(keep, (1, keep.ndim + 1)), tiled.shape).reshape(
        moved.shape
    )
    return np.moveaxis(expanded, (0, -1), (output_axis, input_axis))
