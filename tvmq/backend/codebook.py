"""Codebook weights in the ahead-of-time build: 4-bit indices, looked up in the kernel.

A layer quantized with a codebook (:mod:`tvmq.quantize.codebook`) holds int8
weights that take at most 16 values, its centroids, recorded in the model's report.
After scheduling, each such weight constant becomes one 16-byte table of the
centroids followed by every element's index into it, packed two per byte in the
int4 path's order (:mod:`tvmq.backend.int4`, whose rewrite this reuses): the
tensorized calls become ``tvmq_dot_cb_*`` / ``tvmq_dw_cbx4`` from
``kernels/tvmq_cb.h`` and a plain load of a weight reads its index and then the
table. No weight is expanded into RAM; each looked-up weight is the int8 the host's
integer model multiplies, so the board stays bit-exact with it.

Layers of at least PAIRS_FROM elements take the pair form (``tvmq_dot_cbp_*``): the
table is followed by 256 int32 words, the int16 weight pair of every index byte, so
the DSP kernels load a ready SMLAD operand per byte instead of two lookups and a
pack; 1 KiB more flash for such a layer (an eighth of its index bytes or less), in
exchange for about the int8 kernels' instruction count.
"""

from __future__ import annotations

import numpy as np
import tvm

from tvmq.backend.graph import KernelGraph
from tvmq.backend.int4 import INT4_KERNELS, PackedFormat, pack_int4, pack_weights
from tvmq.model import Model

TABLE_BYTES = 16  # the centroids, padded: the kernels find the indices after them
PAIRS_BYTES = 256 * 4  # the pair form's table of int16 pairs, after the centroids
PAIRS_FROM = 16384  # elements from which a layer takes the pair form
CODEBOOK_KERNELS = {
    int8: int4.replace("_s4_", "_cb_").replace("_dw_s4x4", "_dw_cbx4")
    for int8, int4 in INT4_KERNELS.items()
}
PAIRED_KERNELS = {
    int8: cb.replace("_cb_", "_cbp_").replace("_dw_cbx4", "_dw_cbpx4")
    for int8, cb in CODEBOOK_KERNELS.items()
}


def codebook_tables(model: Model) -> list[np.ndarray]:
    """The centroid tables (sorted int8) of `model`'s codebook layers."""
    report = model.quantization or {}
    return [np.array(table, dtype=np.int8) for table in report.get("codebook", {}).values()]


def pack_codebook(values: np.ndarray, table: np.ndarray, pairs: bool = False) -> np.ndarray:
    """`table` (sorted, holding every value of `values`) padded to 16 bytes, with
    `pairs` the pair table, then the index of each element of `values` (flattened),
    two per byte, low nibble first."""
    indices = np.searchsorted(table, values.ravel())
    head = np.zeros(TABLE_BYTES, dtype=np.uint8)
    head[: table.size] = table.view(np.uint8)
    parts = [head, pair_table(head.view(np.int8)) if pairs else head[:0]]
    return np.concatenate([*parts, pack_int4(indices)])


def pair_table(table: np.ndarray) -> np.ndarray:
    """Word v: (table[v & 15], table[v >> 4]) as int16 lanes, low lane first, as the
    bytes of 256 little-endian int32."""
    byte = np.arange(256)
    low = table[byte & 15].astype(np.int32) & 0xFFFF
    high = table[byte >> 4].astype(np.int32) << 16
    return (low | high).astype("<i4").view(np.uint8)


def pack_codebook_weights(
    model: Model, graph: KernelGraph, functions: dict[str, tvm.tirx.PrimFunc]
) -> int:
    """Pack `model`'s codebook weight constants of `graph` and rewrite the kernels of
    `functions` that read them, in place; the number packed."""
    tables = codebook_tables(model)
    if not tables:
        return 0

    def packed_form(pairs: bool):
        def pack(value: np.ndarray) -> np.ndarray | None:
            if value.dtype != np.int8 or value.ndim < 2 or (value.size >= PAIRS_FROM) != pairs:
                return None
            present = np.unique(value)
            for table in tables:
                if present.size <= table.size and np.isin(present, table).all():
                    return pack_codebook(value, table, pairs)
            return None

        return pack

    return pack_weights(graph, functions, packed_form(True), PAIRED) + pack_weights(
        graph, functions, packed_form(False), CODEBOOK
    )


def _lookup(indices: int):
    """The weight element reader of a form whose indices start `indices` bytes in."""
    return lambda packed, element: _looked_up(packed, element, indices)


def _looked_up(
    packed: tvm.tirx.Buffer, element: tvm.tirx.PrimExpr, indices: int
) -> tvm.tirx.PrimExpr:
    """Weight `element` of `packed`: its index (the high nibble of byte
    `indices` + e / 2 for odd e, else the low one) looked up in the table at the
    tensor's start."""
    byte = tvm.tirx.Cast("int32", tvm.tirx.BufferLoad(packed, [indices + (element >> 1)]))
    fifteen = tvm.tirx.const(15, "int32")
    high = tvm.tirx.BitwiseAnd(tvm.tirx.RShift(byte, tvm.tirx.const(4, "int32")), fifteen)
    low = tvm.tirx.BitwiseAnd(byte, fifteen)
    odd = tvm.tirx.EQ(tvm.tirx.BitwiseAnd(element, tvm.tirx.const(1, element.ty.dtype)), 1)
    return tvm.tirx.BufferLoad(packed, [tvm.tirx.Select(odd, high, low)])


CODEBOOK = PackedFormat(CODEBOOK_KERNELS, TABLE_BYTES, _lookup(TABLE_BYTES))
PAIRED = PackedFormat(PAIRED_KERNELS, TABLE_BYTES + PAIRS_BYTES, _lookup(TABLE_BYTES + PAIRS_BYTES))
