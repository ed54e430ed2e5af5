"""Sparse int8 weights on Cortex-M: dense layers and 1x1 convolutions without their zeros.

A pruned model (tvmq's own, or a TFLite/ONNX file from another tool whose weights hold
zeros) stores and multiplies every zero when compiled dense. After realization, each
int8 matmul or 1x1 NHWC convolution with constant weights whose requantization follows
is replaced here by one call of ``tvmq_sparse_s8`` (``kernels/tvmq_sparse.h``) on the
weights packed without their zeros (:func:`pack_weights`: an input-index delta and a
value per nonzero, 2 bytes), when the per-core cost model (:data:`CORE_COSTS`) says it
runs in fewer instructions than the dense SIMD kernel. The requantization is the dense
kernels' own (tvmq_requant.h), so outputs stay bit-exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te
from tvm.relax.expr_functor import PyExprMutator, mutator

from tvmq.quantize.fixed_point import MICRO_KERNEL, OPAQUE

KERNEL = "tvmq_sparse_s8"
ENTRIES_PER_STEP = 4  # what one C loop step takes: each channel's entries are padded to it
MAX_DELTA = 255  # a uint8 input-index distance


@dataclass(frozen=True)
class CoreCost:
    """Instructions on one core (QEMU -icount, bench/sparse_kernels.py): the dense
    SIMD kernel's per multiply-accumulate, the sparse kernel's per stored entry and
    per output channel (loop, requantization)."""

    dense_per_mac: float
    sparse_per_entry: float
    sparse_per_channel: float


# Measured on the emulated boards (bench/results/sparse_kernels.json); Helium's dense
# kernels do 16 MACs per instruction pair, so the M55 needs far sparser weights.
CORE_COSTS = {
    "cortex-m4": CoreCost(dense_per_mac=1.72, sparse_per_entry=4.1, sparse_per_channel=20.0),
    "cortex-m7": CoreCost(dense_per_mac=1.72, sparse_per_entry=4.1, sparse_per_channel=20.0),
    "cortex-m55": CoreCost(dense_per_mac=0.22, sparse_per_entry=4.1, sparse_per_channel=20.0),
}


def pack_weights(weights: np.ndarray) -> np.ndarray:
    """int8 weights [channels, depth] as the uint8 blob ``tvmq_sparse_s8`` reads."""
    channels, depth = weights.shape
    counts, streams = [], []
    for row in weights:
        entries, previous = [], 0
        for index in np.flatnonzero(row):
            gap = int(index) - previous
            while gap > MAX_DELTA:
                entries.append((MAX_DELTA, 0))
                gap -= MAX_DELTA
            entries.append((gap, int(row[index])))
            previous = int(index)
        entries += [(0, 0)] * (-len(entries) % ENTRIES_PER_STEP)
        counts.append(len(entries))
        streams.append(np.array(entries, np.int64).reshape(-1, 2))
    header = np.array([depth, channels], "<u4").tobytes()
    count_bytes = np.array(counts + [0] * (channels & 1), "<u2").tobytes()
    stream = np.concatenate(streams) if streams else np.zeros((0, 2), np.int64)
    entry_bytes = np.stack([stream[:, 0], stream[:, 1] & 0xFF], axis=1).astype(np.uint8)
    return np.frombuffer(header + count_bytes + entry_bytes.tobytes(), np.uint8).copy()


def entries(packed: np.ndarray) -> int:
    """Stored entries of a packed blob (nonzeros, gap fillers and padding)."""
    channels = int(packed[4:8].view("<u4")[0])
    return int(packed[8 : 8 + 2 * channels].view("<u2").sum())


def sparse_pays_off(weights: np.ndarray, rows: int, core: str) -> bool:
    """Whether ``tvmq_sparse_s8`` on `weights` [channels, depth] takes fewer instructions
    than the dense kernel on `core` for `rows` input rows (pixels)."""
    cost = CORE_COSTS.get(core)
    if cost is None or weights.shape[0] < 2:
        return False
    channels, depth = weights.shape
    stored = entries(pack_weights(weights))
    sparse = rows * (stored * cost.sparse_per_entry + channels * cost.sparse_per_channel)
    return sparse < rows * channels * depth * cost.dense_per_mac


# Whether a layer's weights [channels, depth] over `rows` input rows go sparse on a core.
Choice = Callable[[np.ndarray, int, str], bool]


def sparsify(mod: tvm.IRModule, core: str | None, choose: Choice = sparse_pays_off) -> tvm.IRModule:
    """`mod` (realized) with each matmul / 1x1 convolution that `choose` (the cost model)
    picks on `core` as one sparse micro-kernel call; unchanged for cores without one."""
    if core not in CORE_COSTS:
        return mod
    return _Sparsifier(mod, core, choose).transform()


def _sparse_te(x, packed, bias, multiplier, shift, zero_point, low, high, channels: int):
    """The step's output (rows x `channels`, int8), written by the C kernel itself in
    the call convention of :func:`tvmq.backend.schedule.micro_kernel_call`."""
    shape = [*x.shape[:-1], channels]

    def call(ins, outs):
        *tensors, zp, lo, hi = ins
        return tvm.tirx.call_extern(
            "int32",
            KERNEL,
            outs[0].data,
            *[t.data for t in tensors],
            tvm.tirx.const(int(np.prod([int(d) for d in shape])), "int32"),
            *[tvm.tirx.BufferLoad(b, [0]) for b in (zp, lo, hi)],
        )

    inputs = [x, packed, bias, multiplier, shift, zero_point, low, high]
    return te.extern(
        shape,
        inputs,
        call,
        dtype="int8",
        name="sparse",
        # Buffers at offset 0: the kernel receives plain pointers.
        in_buffers=[tvm.tirx.decl_buffer(t.shape, t.dtype, f"in{i}") for i, t in enumerate(inputs)],
        out_buffers=[tvm.tirx.decl_buffer(shape, "int8", "out")],
    )


@mutator
class _Sparsifier(PyExprMutator):
    def __init__(self, mod: tvm.IRModule, core: str, choose: Choice):
        super().__init__(mod)
        self.mod_ = mod
        self.core, self.choose = core, choose

    def transform(self) -> tvm.IRModule:
        for global_var, func in self.mod_.functions_items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(global_var, self.visit_expr(func))
        return self.builder_.get()

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        sparse = self._sparse(call)
        return call if sparse is None else sparse

    def _sparse(self, call: relax.Call) -> relax.Expr | None:
        if call.op != tvm.ir.Op.get("relax.call_tir"):
            return None
        if not call.args[0].name_hint.startswith("requantize"):
            return None
        accumulator, *epilogue = call.args[1].fields
        if not isinstance(accumulator, relax.Var) or len(epilogue) != 6:
            return None
        product = self.lookup_binding(accumulator)
        found = _product(product)
        if found is None or str(call.ty.dtype) != "int8":
            return None
        x, weights = found
        rows = int(np.prod([int(d) for d in accumulator.ty.shape.values])) // weights.shape[0]
        if not self.choose(weights, rows, self.core):
            return None
        packed = relax.const(pack_weights(weights))
        return self.builder_.emit(
            self.builder_.call_te(
                _sparse_te,
                x,
                packed,
                *epilogue,
                channels=weights.shape[0],
                primfunc_name_hint="sparse_s8",
                primfunc_attrs={"op_pattern": OPAQUE, MICRO_KERNEL: KERNEL},
            )
        )


def _product(expr) -> tuple[relax.Expr, np.ndarray] | None:
    """(int8 input, weights [channels, depth]) of an int8 matmul with constant [depth,
    channels] weights or a 1x1, stride 1, ungrouped NHWC convolution; None otherwise."""
    if not isinstance(expr, relax.Call) or not isinstance(expr.op, tvm.ir.Op):
        return None
    if len(expr.args) < 2 or not isinstance(expr.args[1], tvm.ir.expr.Constant):
        return None
    x, weights = expr.args[0], expr.args[1].value.numpy()
    if weights.dtype != np.int8 or str(x.ty.dtype) != "int8":
        return None
    if expr.op.name == "relax.matmul" and weights.ndim == 2:
        return x, np.ascontiguousarray(weights.T)
    if expr.op.name != "relax.nn.conv2d":
        return None
    attrs = expr.attrs
    layout = str(attrs.kernel_layout)
    if str(attrs.data_layout) != "NHWC" or str(attrs.out_layout) != "NHWC":
        return None
    plain = [int(v) for v in (*attrs.strides, *attrs.dilation)] == [1, 1, 1, 1]
    if not plain or any(int(p) for p in attrs.padding) or int(attrs.groups) != 1:
        return None
    if weights.shape[layout.index("H")] != 1 or weights.shape[layout.index("W")] != 1:
        return None
    order = [layout.index("O"), layout.index("I"), layout.index("H"), layout.index("W")]
    return x, np.ascontiguousarray(weights.transpose(order)[:, :, 0, 0])
