"""Which node a lowering failure comes from, for ``tvmq inspect --target``.

The lowering works on the whole graph, so its errors name an op or a kernel, not
the node of the user's file. When the model fails to lower, prefixes of its main
function (its bindings up to some point, the last one returned) are lowered too,
by bisection: the binding whose addition turns a prefix that lowers (or fails
otherwise) into one that fails with the model's error is the culprit. This costs
about log2(bindings) lowerings, and only for a model that fails.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import tvm
from tvm import relax

from tvmq.errors import MemoryBudgetError, first_line
from tvmq.model import Model, TensorSpec


@dataclass(frozen=True)
class FailingBinding:
    """The binding a lowering failure starts at: its source node and Relax op."""

    node: str
    op: str


def locate_lowering_failure(model: Model, target: str, error: Exception) -> FailingBinding | None:
    """The binding of `model` at which lowering for `target` first fails as it did
    with `error`; None for a memory budget (the whole graph's) or when no prefix
    reproduces the error."""
    from tvmq.backend import check_lowering

    if isinstance(error, MemoryBudgetError):
        return None
    bindings = _bindings(model.mod)
    expected = _signature(error)

    def fails(end: int) -> bool:
        """The prefix up to binding `end` fails to lower as the model did."""
        try:
            check_lowering(_prefix(model, end), target)
        except Exception as failure:  # any error of the prefix's lowering is compared
            return _signature(failure) == expected
        return False

    candidates = [i for i, b in enumerate(bindings) if _is_tensor(b.var)]
    if not candidates or not fails(candidates[-1]):
        return None
    low, high = -1, len(candidates) - 1  # no bindings lower; the last prefix fails
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(candidates[middle]) else (middle, high)
    culprit = bindings[candidates[high]]
    node = model.source_names.get(culprit.var.name, culprit.var.name)
    op = getattr(getattr(culprit.value, "op", None), "name", type(culprit.value).__name__)
    return FailingBinding(node=node, op=op)


def _signature(error: Exception) -> tuple[str, str]:
    """An error's type and first line."""
    return type(error).__name__, first_line(error)


def _bindings(mod: tvm.IRModule) -> list[relax.VarBinding]:
    return [b for block in mod["main"].body.blocks for b in block.bindings]


def _is_tensor(var: relax.Var) -> bool:
    return isinstance(var.ty, relax.TensorType) and var.ty.shape is not None


def _prefix(model: Model, end: int) -> Model:
    """`model` cut after binding `end` of main, which becomes its only output."""
    main = model.mod["main"]
    blocks, seen = [], 0
    for block in main.body.blocks:
        kept = list(block.bindings)[: end + 1 - seen]
        seen += len(block.bindings)
        if kept:
            blocks.append((block, kept))
        if seen > end:
            break
    last_block, kept = blocks[-1]
    output = kept[-1].var
    if isinstance(output, relax.DataflowVar):  # a dataflow var cannot leave its block
        output = relax.Var(output.name, output.ty)
        kept[-1] = relax.VarBinding(output, kept[-1].value)
    body = [
        type(block)(kept if block.same_as(last_block) else bindings) for block, bindings in blocks
    ]
    function = relax.Function(main.params, relax.SeqExpr(body, output), output.ty, True, main.attrs)
    mod = tvm.IRModule({gv: f for gv, f in model.mod.functions.items()}, attrs=model.mod.attrs)
    mod[mod.get_global_var("main")] = function
    shape = tuple(int(d) for d in output.ty.shape.values)
    spec = TensorSpec(name=output.name, shape=shape, dtype=str(output.ty.dtype))
    return replace(model, mod=mod, outputs=[spec])
