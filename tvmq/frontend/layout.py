"""Channels-last: NCHW convolution graphs (ONNX) rewritten to NHWC at import.

The int8 kernels of every backend read a pixel's channels as one contiguous run
(NHWC activations, OHWI weights: what TFLite models have). A model imported from
ONNX is NCHW; TVM's ConvertLayout turns its convolutions, and the pooling,
reduction and elementwise ops between them, to NHWC, leaving a transpose only
where the graph's inputs and outputs keep their layout. Quantizing the converted
float graph puts quantize/dequantize right at the NHWC ops, where realization
and the SIMD schedules find them.

ConvertLayout names its new bindings after the ones they replace, so names repeat;
they are made unique again (observers, reports and selective quantization refer
to tensors by name), and each keeps the source node name of the binding it
replaces. A transpose it inserts takes the node of the op it feeds.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

# Ops without a ConvertLayout rule that commute with a transpose: moved back into
# the converted layout when ConvertLayout leaves them between two transposes.
SUNK_THROUGH_TRANSPOSES = ("relax.nn.pad", "relax.clip")
CHANNELS_LAST = {
    "relax.nn.conv2d": ["NHWC", "OHWI"],
    "relax.nn.conv2d_transpose": ["NHWC", "IOHW"],
}


def channels_last(mod: tvm.IRModule, names: dict[str, str]) -> tuple[tvm.IRModule, dict[str, str]]:
    """`mod` with its 2-D convolutions in NHWC, and `names` (Relax var name -> source
    node) for the converted module. A module without NCHW convolutions is returned as is."""
    if not any(_op(b.value) in CHANNELS_LAST for b in _bindings(mod)):
        return mod, names
    before = [(b.var.name, _op(b.value)) for b in _bindings(mod)]
    try:
        converted = relax.transform.ConvertLayout(CHANNELS_LAST)(mod)
    except tvm.error.InternalError:  # TVM's pass fails on some graphs (silero-vad's
        return mod, names  # widened 1-D convolutions: bad_alloc): they keep NCHW
    converted = relax.transform.FoldConstant()(converted)  # the weights' transposes
    main = _Tidied(converted).visit_expr(converted["main"])
    converted.update_func(converted.get_global_var("main"), main)
    converted = relax.transform.DeadCodeElimination()(converted)  # the pads' NCHW side
    after = [(b.var.name, _op(b.value)) for b in _bindings(converted)]
    return converted, _carried_names(before, after, names)


def _bindings(mod: tvm.IRModule) -> list[relax.VarBinding]:
    return [b for block in mod["main"].body.blocks for b in block.bindings]


def _op(expr) -> str | None:
    op = getattr(expr, "op", None)
    return getattr(op, "name", None)


def _carried_names(
    before: list[tuple[str, str | None]],
    after: list[tuple[str, str | None]],
    names: dict[str, str],
) -> dict[str, str]:
    """Source names for the converted bindings: each op takes the node of the next
    original binding of the same kind (originals folded away are skipped); a
    transpose with no original right there was inserted, and takes the node of the
    next binding that has one."""
    carried: dict[str, str] = {}
    position = 0
    pending: list[str] = []
    for name, op in after:
        if op == "relax.permute_dims":
            match = position if position < len(before) and before[position][1] == op else None
        else:
            match = next((i for i in range(position, len(before)) if before[i][1] == op), None)
        if match is None:
            pending.append(name)
            continue
        position = match + 1
        node = names.get(before[match][0])
        if node is not None:
            carried[name] = node
            carried.update(dict.fromkeys(pending, node))
        pending = []
    return carried


@mutator
class _Tidied(PyExprMutator):
    """Every binding of main re-emitted under a name no other binding has, and a pad
    or clip between two transposes that undo each other as one op in the outer
    layout (ConvertLayout has no rule for them: it left them in NCHW with a
    transpose, a full copy in the arena, on either side; those become dead code)."""

    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.taken: set[str] = set()

    def _fresh(self, name: str) -> str:
        candidate, suffix = name, 0
        while candidate in self.taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        self.taken.add(candidate)
        return candidate

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.visit_expr(binding.value)
        folded = self._sunk(value)
        value = value if folded is None else folded
        name = self._fresh(binding.var.name)
        if isinstance(binding.var, relax.DataflowVar):
            new = self.builder_.emit(value, name)
        else:
            new = self.builder_.emit_output(value, name)
        self.set_var_remap(binding.var, new)

    def _sunk(self, value: relax.Expr) -> relax.Expr | None:
        """transpose(op(transpose(x))) with the transposes undoing each other, for an
        op ConvertLayout has no rule for (nn.pad, clip), as that op on x itself."""
        if _op(value) != "relax.permute_dims":
            return None
        middle = self.builder_.lookup_binding(value.args[0])
        if _op(middle) not in SUNK_THROUGH_TRANSPOSES:
            return None
        inner = self.builder_.lookup_binding(middle.args[0])
        if _op(inner) != "relax.permute_dims" or inner.attrs.axes is None:
            return None
        into = [int(a) for a in inner.attrs.axes]
        back = [int(a) for a in value.attrs.axes] if value.attrs.axes is not None else None
        if back is None or [into[i] for i in back] != list(range(len(into))):
            return None
        if _op(middle) == "relax.clip":
            return relax.op.clip(inner.args[0], *middle.args[1:])
        widths = [int(w) for w in middle.attrs.pad_width]
        outer = [0] * len(widths)
        for axis, source in enumerate(into):  # the pad's axis `axis` is the data's `source`
            outer[2 * source : 2 * source + 2] = widths[2 * axis : 2 * axis + 2]
        mode, fill = middle.attrs.pad_mode, float(middle.attrs.pad_value)
        return relax.op.nn.pad(inner.args[0], outer, mode, fill)
