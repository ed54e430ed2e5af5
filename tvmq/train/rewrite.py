"""Rebuild ``main`` of a Relax module binding by binding, with some bindings replaced.

Batching, the fake-quantized training graph and the parametrized integer graph are
all the same walk: re-emit each binding with its arguments substituted, or emit a
replacement, and let Relax infer the new types.
"""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import relax

from tvmq.errors import TvmqError, first_line

QUANTIZED = "quantized"
Rewrite = Callable[[relax.VarBinding, relax.Expr], relax.Expr | None]


def op_name(expr) -> str | None:
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def substitute(expr: relax.Expr, env: dict[relax.Var, relax.Expr]) -> relax.Expr:
    """`expr` with the variables (and constants) of `env` replaced, one call, tuple or
    leaf deep."""
    if isinstance(expr, relax.Var | tvm.ir.expr.Constant):
        return env.get(expr, expr)
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([substitute(field, env) for field in expr.fields])
    if isinstance(expr, relax.Call):
        args = [substitute(arg, env) for arg in expr.args]
        return relax.Call(expr.op, args, expr.attrs, expr.ty_args)
    return expr


def rebuild_main(
    mod: tvm.IRModule,
    name: str,
    params: list[relax.Var],
    env: dict[relax.Var, relax.Expr],
    rewrite: Rewrite,
    output: Callable[[relax.BlockBuilder, dict], relax.Expr],
    rename: Callable[[int, relax.VarBinding], str] | None = None,
) -> tvm.IRModule:
    """A module with function `name`: main's bindings re-emitted through `rewrite`
    (None keeps a binding), returning `output(builder, env)`; main's PrimFuncs are
    kept, main itself is not. `rename(position, binding)` names the new variables."""
    main = mod["main"]
    kernels = {gv: f for gv, f in mod.functions_items() if gv.name_hint != "main"}
    builder = relax.BlockBuilder(tvm.IRModule(kernels))
    try:
        with builder.function(name, params):
            with builder.dataflow():
                bindings = [b for block in main.body.blocks for b in block.bindings]
                for position, binding in enumerate(bindings):
                    value = substitute(binding.value, env)
                    replaced = rewrite(binding, value)
                    label = binding.var.name if rename is None else rename(position, binding)
                    env[binding.var] = builder.emit(value if replaced is None else replaced, label)
                result = builder.emit_output(output(builder, env))
            builder.emit_func_output(result)
    except Exception as error:  # TVM's type inference raises many types: one line
        raise TvmqError(f"cannot build the training graph: {first_line(error)}") from error
    return builder.get()


def with_batch(mod: tvm.IRModule, batch: int) -> tvm.IRModule:
    """`mod` with every input's leading dimension (1) set to `batch`: what a batch-1
    model needs to train on mini-batches. Reshapes to a leading 1 follow.

    Each quantized (integer) tensor is renamed ``quantized<N>``: the integer graph that realize
    makes keeps that name for it and gives its own temporaries other names (lvN), so
    the training graph finds each of them there by name."""
    main = mod["main"]
    params, env = [], {}
    for param in main.params:
        shape = [int(d) for d in param.ty.shape]
        if not shape or shape[0] != 1:
            raise TvmqError(
                f"input '{param.name}' has shape {shape}: fine-tuning needs a batch "
                "dimension of 1 first"
            )
        batched = relax.Var(param.name, relax.TensorType([batch, *shape[1:]], param.ty.dtype))
        params.append(batched)
        env[param] = batched

    def rewrite(binding: relax.VarBinding, value: relax.Expr) -> relax.Expr | None:
        if op_name(value) == "relax.reshape" and isinstance(value.args[1], relax.ShapeExpr):
            dims = [int(d) for d in value.args[1].values]
            if dims and dims[0] == 1:
                return relax.op.reshape(value.args[0], [batch, *dims[1:]])
        return None

    def rename(position: int, binding: relax.VarBinding) -> str:
        dtype = str(getattr(binding.var.ty, "dtype", ""))
        if op_name(binding.value) == "relax.quantize" or dtype.startswith(("int", "uint")):
            return f"{QUANTIZED}{position}"
        return binding.var.name

    return rebuild_main(mod, "main", params, env, rewrite, lambda _, e: e[main.body.body], rename)
