"""int4 weights in the ahead-of-time build: packed two per byte, unpacked in registers.

A model quantized with 4-bit weights (:mod:`tvmq.quantize.low_bit`) holds them in
int8 tensors whose values fit [-8, 7]. After scheduling, each such weight constant
is packed in CMSIS-NN's order (element e in the low nibble of byte e / 2 when e is
even) and every kernel that reads it is rewritten: the tensorized int8 micro-kernel
calls become their int4 forms from ``kernels/tvmq_s4.h`` (``tvmq_dot_s8_1x4`` ->
``tvmq_dot_s4_1x4``, with the weights' element offset instead of a byte pointer),
and any plain load of a weight extracts its nibble with two shifts. Nothing is
unpacked into a buffer; the integer results are those of the int8 kernels, so the
board stays bit-exact with the host's integer model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tvm
from tvm.s_tir.stmt import SBlock
from tvm_ffi.structural import structural_map

from tvmq.backend.graph import CONSTANT, KernelGraph
from tvmq.model import Model

# The int8 micro-kernels reading weights, their int4 forms, and the position of the
# weight pointer among the call's arguments (after the function name).
INT4_KERNELS = {
    **{f"tvmq_dot_s8_1x{n}": f"tvmq_dot_s4_1x{n}" for n in (1, 2, 4)},
    **{f"tvmq_dot_s8_2x{n}": f"tvmq_dot_s4_2x{n}" for n in (1, 2, 4)},
    **{f"tvmq_dot_s8_2x{n}_no_mmla": f"tvmq_dot_s4_2x{n}" for n in (1, 2, 4)},
    **{f"tvmq_dot_s8_rowx{n}": f"tvmq_dot_s4_rowx{n}" for n in (1, 2, 4)},
    "tvmq_dense_s8x4": "tvmq_dot_s4_1x4",  # row-major packed: not interleaved (dense.py)
    "tvmq_dw_s8x4": "tvmq_dw_s4x4",
    "tvmq_dw_s8x4_row": "tvmq_dw_s4x4_row",
}
WEIGHT_ARGUMENT = 3  # call_extern(name, acc, a, weights, ...)
INT4_RANGE = (-8, 7)

_CALL = tvm.ir.expr.Call
_LOAD = tvm.ir.expr.TensorLoad


class NotPackable(Exception):
    """A kernel reads the weight in a way the rewrite does not handle."""


def pack_int4(values: np.ndarray) -> np.ndarray:
    """`values` (int, in [-8, 7]) flattened and packed two per byte, low nibble first."""
    flat = values.astype(np.int8).ravel()
    if flat.size % 2:
        flat = np.append(flat, np.int8(0))
    nibbles = (flat.astype(np.uint8) & 0x0F).reshape(-1, 2)
    return (nibbles[:, 0] | (nibbles[:, 1] << 4)).astype(np.uint8)


def has_int4_weights(model: Model) -> bool:
    report = model.quantization or {}
    return any(bits == 4 for bits in report.get("weight_bits", {}).values())


@dataclass(frozen=True)
class PackedFormat:
    """How a kernel reads one kind of packed weight tensor: the int8 micro-kernels'
    replacements, the bytes before the packed nibbles (a lookup table), and the
    weight element of a plain load, from the packed bytes' view."""

    kernels: dict[str, str]
    table_bytes: int
    element: Callable[[tvm.tirx.Buffer, tvm.tirx.PrimExpr], tvm.tirx.PrimExpr]
    # more table bytes per element of the tensor's largest axis (per-channel tables)
    channel_table_bytes: int = 0


def pack_int4_weights(
    model: Model, graph: KernelGraph, functions: dict[str, tvm.tirx.PrimFunc]
) -> int:
    """Pack `model`'s 4-bit weight constants of `graph` and rewrite the kernels of
    `functions` (pointer signatures) that read them, in place; the number packed."""
    if not has_int4_weights(model):
        return 0
    return pack_weights(
        graph, functions, lambda value: pack_int4(value) if _fits_int4(value) else None, INT4
    )


def pack_weights(
    graph: KernelGraph,
    functions: dict[str, tvm.tirx.PrimFunc],
    packed_form: Callable[[np.ndarray], np.ndarray | None],
    form: PackedFormat,
) -> int:
    """Replace each constant of `graph` that `packed_form` packs (None: leave it) by
    its packed bytes and rewrite the kernels of `functions` reading it to `form`, in
    place, wherever every kernel reading it can be rewritten; the number packed."""
    packed: dict[str, np.ndarray] = {}
    uses: dict[str, list[tuple[str, int]]] = {}
    for step in graph.steps:
        for position, name in enumerate(step.args):
            tensor = graph.tensors[name]
            if tensor.kind != CONSTANT or tensor.value is None:
                continue
            if name not in packed:
                value = packed_form(tensor.value)
                if value is None:
                    continue
                packed[name] = value
            uses.setdefault(name, []).append((step.kernel, position))
    # A kernel called with the same argument packed in one step and not in another
    # (never the case for weights, which are each used once) is left alone.
    packed_at: dict[str, set[int]] = {}
    for where in uses.values():
        for kernel, position in where:
            packed_at.setdefault(kernel, set()).add(position)
    for step in graph.steps:
        for position in list(packed_at.get(step.kernel, ())):
            if step.args[position] not in uses:
                packed_at[step.kernel].discard(position)
    rewritten = {}
    for kernel, positions in packed_at.items():
        try:
            rewritten[kernel] = _rewrite(functions[kernel], sorted(positions), form)
        except NotPackable:
            positions.clear()
    functions.update(rewritten)
    count = 0
    for name, where in uses.items():
        if all(position in packed_at.get(kernel, ()) for kernel, position in where):
            tensor = graph.tensors[name]
            tensor.value = packed[name]
            tensor.shape, tensor.dtype = tensor.value.shape, "uint8"
            count += 1
    return count


def _fits_int4(value: np.ndarray | None) -> bool:
    return (
        value is not None
        and value.dtype == np.int8
        and value.ndim >= 2
        and INT4_RANGE[0] <= int(value.min())
        and int(value.max()) <= INT4_RANGE[1]
    )


def _rewrite(
    func: tvm.tirx.PrimFunc, positions: list[int], form: PackedFormat
) -> tvm.tirx.PrimFunc:
    """`func` reading the pointers at `positions` as packed tensors of `form`."""
    # Each weight's packed view (int8 bytes on the same pointer) and the data
    # variables that stand for the weight: its declared buffer's, and those of the
    # buffers matched to regions of it inside blocks (their elem_offset counts
    # elements from the weight's start).
    views: list[tuple[object, object, object]] = []  # (buffer, packed view, pointer)
    declarations = []
    for position in positions:
        pointer = func.params[position]
        buffer = _declared(func, pointer)
        elements = int(np.prod([int(d) for d in buffer.shape]))
        tables = form.table_bytes + form.channel_table_bytes * max(int(d) for d in buffer.shape)
        size = tables + (elements + 1) // 2
        view = tvm.tirx.decl_buffer((size,), "int8", name=f"{buffer.name}_packed")
        declarations.append(tvm.tirx.DeclBuffer(view, data=pointer))
        views.append((buffer, view, pointer))

    def weight_of(buffer):
        for weight, view, pointer in views:
            if buffer is not None and buffer.same_as(weight):
                return view, pointer
        return None

    def on_block(block):
        for match in block.match_buffers:
            found = weight_of(match.source.source)
            if found is not None:
                views.append((match.buffer, *found))
        return block

    def on_call(call):
        if call.op.name == "tirx.tvm_access_ptr" and weight_of(_buffer_of(call.args[1])):
            raise NotPackable  # a weight pointer outside the calls rewritten below
        if call.op.name != "tirx.call_extern" or len(call.args) <= WEIGHT_ARGUMENT:
            return call
        args = list(call.args)
        weight = args[WEIGHT_ARGUMENT]
        if not (isinstance(weight, _CALL) and weight.op.name == "tirx.tvm_access_ptr"):
            return call
        found = weight_of(_buffer_of(weight.args[1]))
        if found is None:
            return call
        function = form.kernels.get(args[0].value)
        if function is None:
            raise NotPackable
        offset = tvm.tirx.Cast("int32", weight.args[2])
        head, tail = args[1:WEIGHT_ARGUMENT], args[WEIGHT_ARGUMENT + 1 :]
        # The whole packed tensor, as a void * like every pointer of these calls.
        weights = found[0].access_ptr("r")
        return tvm.tirx.call_extern("int32", function, *head, weights, offset, *tail)

    def on_load(load):
        found = weight_of(load.source)
        if found is None:
            return load
        return form.element(found[0], _flat_index(load.source, load.indices))

    # Pre-order: a block's matched buffers are known before its body is visited, and
    # an extern call is rewritten whole before its access_ptr arguments are visited.
    body = structural_map(
        func.body, [(SBlock, on_block), (_CALL, on_call), (_LOAD, on_load)], order="pre"
    )
    return func.with_body(tvm.tirx.SeqStmt([*declarations, body]))


def _buffer_of(expr):
    """The buffer of an access_ptr's data argument ``buffer_data(B)``, else None."""
    if isinstance(expr, _CALL) and expr.op.name == "tirx.buffer_data":
        return expr.args[0]
    return None


def _declared(func: tvm.tirx.PrimFunc, pointer):
    """The buffer that the kernel's signature declares on `pointer`."""
    for stmt in func.body.seq:
        if getattr(stmt, "data", None) is not None and stmt.data.same_as(pointer):
            return stmt.buffer
    raise NotPackable


def _flat_index(buffer, indices):
    strides = list(buffer.strides)
    if not strides:
        strides, step = [], 1
        for extent in reversed(list(buffer.shape)):
            strides.insert(0, step)
            step = step * extent
    index = buffer.elem_offset
    for i, stride in zip(indices, strides, strict=True):
        index = index + i * stride
    return index


def _nibble(packed, element):
    """Weight `element` of `packed`, sign-extended: the high nibble of byte e / 2 for
    odd e (an arithmetic shift of the signed byte), else the low one."""
    byte = tvm.tirx.Cast("int32", tvm.tirx.BufferLoad(packed, [element >> 1]))
    high = tvm.tirx.RShift(byte, tvm.tirx.const(4, "int32"))
    low = tvm.tirx.RShift(
        tvm.tirx.LShift(byte, tvm.tirx.const(28, "int32")), tvm.tirx.const(28, "int32")
    )
    odd = tvm.tirx.EQ(tvm.tirx.BitwiseAnd(element, tvm.tirx.const(1, element.ty.dtype)), 1)
    return tvm.tirx.Cast("int8", tvm.tirx.Select(odd, high, low))


INT4 = PackedFormat(INT4_KERNELS, 0, _nibble)
