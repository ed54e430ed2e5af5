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

A layer recorded with one table per output channel (``codebook_per_channel``)
takes the per-channel form (``tvmq_dot_cbc_*``, ``tvmq_dw_cbcx4``): a 4-byte header
(uint16 `div`, uint16 `count`), `count` 16-byte tables, then the indices; element e
takes table (e / div) % count, the channel axis found by value (each slice's values
in its channel's table) and `div` the elements after it. 16 bytes of flash per
channel, and no pair form (1 KiB a channel would outweigh the indices); the kernels
find the lanes' tables once per call.
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
HEADER_BYTES = 4  # the per-channel form's uint16 div and count, before its tables
HEADER_LIMIT = 1 << 16  # div and count must fit their uint16
CODEBOOK_KERNELS = {
    int8: int4.replace("_s4_", "_cb_").replace("_dw_s4x4", "_dw_cbx4")
    for int8, int4 in INT4_KERNELS.items()
}
PAIRED_KERNELS = {
    int8: cb.replace("_cb_", "_cbp_").replace("_dw_cbx4", "_dw_cbpx4")
    for int8, cb in CODEBOOK_KERNELS.items()
}
CHANNEL_KERNELS = {
    int8: cb.replace("_cb_", "_cbc_").replace("_dw_cbx4", "_dw_cbcx4")
    for int8, cb in CODEBOOK_KERNELS.items()
}


def codebook_tables(model: Model) -> list[np.ndarray]:
    """The centroid tables (sorted int8) of `model`'s codebook layers with one table."""
    return [np.array(t, dtype=np.int8) for t in _reported(model) if not isinstance(t[0], list)]


def channel_tables(model: Model) -> list[list[np.ndarray]]:
    """The centroid tables (sorted int8, one per output channel) of `model`'s codebook
    layers with a table per channel."""
    return [
        [np.array(table, dtype=np.int8) for table in tables]
        for tables in _reported(model)
        if isinstance(tables[0], list)
    ]


def _reported(model: Model) -> list[list]:
    return [t for t in ((model.quantization or {}).get("codebook", {})).values() if t]


def channel_axis(value: np.ndarray, tables: list[np.ndarray]) -> int | None:
    """The axis of `value` along which slice c takes only values of `tables[c]`
    (axis 0 tried first, then the last, then the others), or None."""
    axes = sorted(range(value.ndim), key=lambda axis: (axis != 0, axis != value.ndim - 1, axis))
    for axis in axes:
        if value.shape[axis] == len(tables) and all(
            np.isin(row, table).all()
            for row, table in zip(np.moveaxis(value, axis, 0), tables, strict=True)
        ):
            return axis
    return None


def pack_channel_codebook(value: np.ndarray, tables: list[np.ndarray], axis: int) -> np.ndarray:
    """The per-channel form of `value`, whose slices along `axis` take the values of
    the corresponding `tables`: header (div, count), the tables padded to 16 bytes,
    then each element's index into its channel's table, two per byte."""
    count, div = value.shape[axis], int(np.prod(value.shape[axis + 1 :], dtype=np.int64))
    header = np.array([div, count], dtype="<u2").view(np.uint8)
    heads = np.zeros((count, TABLE_BYTES), dtype=np.uint8)
    indices = np.empty(np.moveaxis(value, axis, 0).shape, dtype=np.int64)
    for channel, (row, table) in enumerate(zip(np.moveaxis(value, axis, 0), tables, strict=True)):
        heads[channel, : table.size] = table.view(np.uint8)
        indices[channel] = np.searchsorted(table, row)
    indices = np.moveaxis(indices, 0, axis)
    return np.concatenate([header, heads.ravel(), pack_int4(indices)])


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
    per_channel, tables = channel_tables(model), codebook_tables(model)
    packed = (
        pack_weights(graph, functions, _channel_form(per_channel), CHANNEL) if per_channel else 0
    )
    if not tables:
        return packed

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

    return (
        packed
        + pack_weights(graph, functions, packed_form(True), PAIRED)
        + pack_weights(graph, functions, packed_form(False), CODEBOOK)
    )


def _channel_form(layers: list[list[np.ndarray]]):
    """The packer of constants that take the per-channel tables of one of `layers`."""

    def pack(value: np.ndarray) -> np.ndarray | None:
        if value.dtype != np.int8 or value.ndim < 2:
            return None
        for tables in layers:
            axis = channel_axis(value, tables)
            if (
                axis is not None
                and max(value.size // value.shape[axis], len(tables)) < HEADER_LIMIT
            ):
                return pack_channel_codebook(value, tables, axis)
        return None

    return pack


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


def _channel_looked_up(packed: tvm.tirx.Buffer, element: tvm.tirx.PrimExpr) -> tvm.tirx.PrimExpr:
    """Weight `element` of a per-channel tensor `packed`: the header's div and count
    read, the element's index found after the tables and looked up in the table of
    its channel, (element / div) % count."""

    def byte(at) -> tvm.tirx.PrimExpr:
        value = tvm.tirx.Cast("int32", tvm.tirx.BufferLoad(packed, [at]))
        return tvm.tirx.BitwiseAnd(value, tvm.tirx.const(255, "int32"))

    def half(at: int) -> tvm.tirx.PrimExpr:  # a little-endian uint16 of the header
        return tvm.tirx.BitwiseOr(byte(at), tvm.tirx.LShift(byte(at + 1), 8))

    div, count, at = half(0), half(2), tvm.tirx.Cast("int32", element)
    tables = tvm.tirx.const(HEADER_BYTES, "int32")
    index_byte = byte(tables + count * TABLE_BYTES + tvm.tirx.RShift(at, 1))
    odd = tvm.tirx.EQ(tvm.tirx.BitwiseAnd(at, 1), 1)
    index = tvm.tirx.Select(
        odd, tvm.tirx.RShift(index_byte, 4), tvm.tirx.BitwiseAnd(index_byte, 15)
    )
    channel = tvm.tirx.truncmod(tvm.tirx.truncdiv(at, div), count)
    return tvm.tirx.BufferLoad(packed, [tables + channel * TABLE_BYTES + index])


CODEBOOK = PackedFormat(CODEBOOK_KERNELS, TABLE_BYTES, _lookup(TABLE_BYTES))
PAIRED = PackedFormat(PAIRED_KERNELS, TABLE_BYTES + PAIRS_BYTES, _lookup(TABLE_BYTES + PAIRS_BYTES))
# The view's declared size is an upper bound: one table per element of the largest axis.
CHANNEL = PackedFormat(CHANNEL_KERNELS, HEADER_BYTES, _channel_looked_up, TABLE_BYTES)
