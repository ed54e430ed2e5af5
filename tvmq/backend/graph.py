"""Lower a model to a flat kernel graph: the input of every ahead-of-time backend.

The Relax module (integer-only once realized) is legalized and fused with TVM's
own passes; `main` then is a straight line of ``call_tir`` kernel calls. This
module reads that line into plain data (tensors, kernel steps, lifetimes) that
the memory planner and the C emitter work from, without the Relax VM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvmq.constants import constant_array
from tvmq.errors import TvmqError

INPUT, OUTPUT, CONSTANT, ACTIVATION = "input", "output", "constant", "activation"


@dataclass
class Tensor:
    """One buffer of the graph. `alias_of` names the tensor whose memory it reuses."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    value: np.ndarray | None = None
    alias_of: str | None = None
    first_use: int = 0
    last_use: int = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Step:
    """One kernel call: `kernel(*args)`, the output buffer (or buffers) last."""

    kernel: str
    args: list[str]


@dataclass
class KernelGraph:
    """Kernels (scheduled PrimFuncs, by name) and the order they run in."""

    tensors: dict[str, Tensor]
    steps: list[Step]
    kernels: dict[str, tvm.tirx.PrimFunc]
    inputs: list[str]
    outputs: list[str]

    def transpose_constant(self, kernel: str, position: int, axes: tuple[int, ...]) -> None:
        """Give argument `position` of every call of `kernel` (a constant) the layout
        np.transpose(value, axes), which the kernel's schedule chose."""
        self.relayout_constant(
            kernel, position, f"t{''.join(map(str, axes))}", lambda v: np.transpose(v, axes)
        )

    def relayout_constant(
        self, kernel: str, position: int, suffix: str, layout: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        """Give argument `position` of every call of `kernel` (a constant) the value
        layout(value), named after the original with `suffix`."""
        for step in self.steps:
            if step.kernel != kernel:
                continue
            source = self.tensors[step.args[position]]
            name = f"{source.name}_{suffix}"
            if name not in self.tensors:
                value = np.ascontiguousarray(layout(source.value))
                self.tensors[name] = Tensor(name, value.shape, source.dtype, CONSTANT, value=value)
            step.args[position] = name
        self._drop_unused_constants()

    def _drop_unused_constants(self) -> None:
        used = {name for step in self.steps for name in step.args}
        for name in [n for n, t in self.tensors.items() if t.kind == CONSTANT and n not in used]:
            del self.tensors[name]

    def storage(self, name: str) -> Tensor:
        """The tensor that owns `name`'s memory (itself unless it is an alias)."""
        tensor = self.tensors[name]
        return self.tensors[tensor.alias_of] if tensor.alias_of else tensor


def fuse(mod: tvm.IRModule) -> tvm.IRModule:
    """TVM's legalization and operator fusion, nothing that needs a VM."""
    passes = tvm.transform.Sequential(
        [
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            _padding_stands_alone,
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
            relax.transform.DeadCodeElimination(),
            relax.transform.RewriteDataflowReshape(),
        ]
    )
    return passes(mod)


OPAQUE = 8  # relax.OpPatternKind.kOpaque


@tvm.transform.module_pass(opt_level=0, name="PaddingStandsAlone")
def _padding_stands_alone(mod: tvm.IRModule, _context) -> tvm.IRModule:
    """Keep padding out of the producer's kernel.

    Fused behind a convolution's epilogue, a pad writes a larger tensor than the
    loops that produce its interior, so that epilogue cannot be computed element
    by element (the default schedule's way of keeping kernels free of scratch
    memory). A pad of its own costs one copy and a padded buffer in the arena.
    """
    for gvar, func in list(mod.functions_items()):
        if isinstance(func, tvm.tirx.PrimFunc) and gvar.name_hint.startswith("pad"):
            mod[gvar] = func.with_attr("op_pattern", OPAQUE)
    return mod


def _tensor_type(expr, what: str) -> tuple[tuple[int, ...], str]:
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise TvmqError(f"{what}: only tensors of static shape can run ahead of time")
    try:
        shape = tuple(int(d) for d in ty.shape.values)
    except TypeError as error:
        raise TvmqError(f"{what}: dynamic shape {ty.shape} cannot run ahead of time") from error
    return shape, str(ty.dtype)


def kernel_graph(mod: tvm.IRModule) -> KernelGraph:
    """Read the fused module's `main` into a :class:`KernelGraph`."""
    main = mod["main"]
    tensors: dict[str, Tensor] = {}
    steps: list[Step] = []
    kernels: dict[str, tvm.tirx.PrimFunc] = {}
    names: dict[relax.Var, str] = {}
    tuples: dict[relax.Var, list[str]] = {}  # tuple-valued vars: their fields' tensors
    constants: dict[tuple, str] = {}
    kernel_names: dict[tvm.ir.GlobalVar, str] = {}

    for param in main.params:
        shape, dtype = _tensor_type(param, f"input '{param.name}'")
        names[param] = param.name
        tensors[param.name] = Tensor(param.name, shape, dtype, INPUT)

    def argument(expr) -> str:
        if isinstance(expr, relax.Var) and expr in names:
            return names[expr]
        value = constant_array(expr)
        if value is not None:
            key = (value.dtype.str, value.shape, value.tobytes())
            if key not in constants:
                name = _fresh(tensors, f"const{len(constants)}")
                tensors[name] = Tensor(name, value.shape, str(value.dtype), CONSTANT, value=value)
                constants[key] = name
            return constants[key]
        raise TvmqError(f"kernel argument {type(expr).__name__} is not supported ahead of time")

    def fields(expr) -> list[str]:
        if isinstance(expr, relax.Var) and expr in tuples:
            return tuples[expr]
        if isinstance(expr, relax.Tuple):
            return [argument(f) for f in expr.fields]
        return [argument(expr)]

    body = main.body
    for block in body.blocks:
        for binding in block.bindings:
            var, value = binding.var, binding.value
            name = _fresh(tensors, f"t{len(names) + len(tuples)}")
            if isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.call_tir"):
                kernel_var, call_args = value.args[0], value.args[1]
                results = _call_results(var, name, kernel_var.name_hint)
                for result in results:
                    tensors[result.name] = result
                if isinstance(var.ty, relax.TupleType):
                    tuples[var] = [result.name for result in results]
                else:
                    names[var] = name
                args = [argument(a) for a in call_args.fields] + [r.name for r in results]
                kernel = kernel_names.setdefault(
                    kernel_var, f"k{len(kernel_names)}_{_short(kernel_var.name_hint)}"
                )
                kernels[kernel] = mod[kernel_var]
                steps.append(Step(kernel, args))
            elif isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.reshape"):
                shape, dtype = _tensor_type(var, "reshape")
                source = argument(value.args[0])
                root = tensors[source].alias_of or source
                names[var] = name
                tensors[name] = Tensor(name, shape, dtype, ACTIVATION, alias_of=root)
            elif isinstance(value, relax.Tuple) or (
                isinstance(value, relax.Var) and value in tuples
            ):
                tuples[var] = fields(value)
            elif isinstance(value, relax.TupleGetItem):
                names[var] = fields(value.tuple_value)[value.index]
            elif isinstance(value, relax.Var | tvm.ir.expr.Constant):
                names[var] = argument(value)
            else:
                what = value.op.name if isinstance(value, relax.Call) else type(value).__name__
                raise TvmqError(f"'{what}' in the lowered graph cannot run ahead of time")

    graph = KernelGraph(tensors, steps, kernels, [p.name for p in main.params], [])
    graph.outputs = [_own_output(graph, name, i) for i, name in enumerate(fields(body.body))]
    _set_lifetimes(graph)
    return graph


def _fresh(tensors: dict[str, Tensor], base: str) -> str:
    """`base`, or `base` with a suffix, so that no model input shares its name."""
    name, suffix = base, 0
    while name in tensors or f"{name}_0" in tensors:
        suffix += 1
        name = f"{base}_{suffix}"
    return name


def _call_results(var: relax.Var, name: str, kernel: str) -> list[Tensor]:
    """The tensors one kernel call writes: one, or one per field of a tuple result."""
    if not isinstance(var.ty, relax.TupleType):
        shape, dtype = _tensor_type(var, f"output of {kernel}")
        return [Tensor(name, shape, dtype, ACTIVATION)]
    results = []
    for index, field in enumerate(var.ty.fields):
        shape, dtype = _tensor_type(relax.Var("field", field), f"output {index} of {kernel}")
        results.append(Tensor(f"{name}_{index}", shape, dtype, ACTIVATION))
    return results


def _own_output(graph: KernelGraph, name: str, index: int) -> str:
    """The tensor that holds model output `index` (`name`) in a buffer of its own.

    A kernel's result becomes the output buffer itself; so does the memory under
    a reshape (the reshape's name then owns it). An input, a constant, or memory
    that already is another output's is copied into a new tensor by a copy kernel.
    """
    tensor = graph.tensors[name]
    root = graph.storage(name)
    if root.kind == ACTIVATION:
        if root is not tensor:
            for other in graph.tensors.values():
                if other.alias_of == root.name:
                    other.alias_of = name
            root.alias_of, tensor.alias_of = name, None
        tensor.kind = OUTPUT
        return name
    copy = _fresh(graph.tensors, f"output{index}")
    graph.tensors[copy] = Tensor(copy, tensor.shape, tensor.dtype, OUTPUT)
    kernel = f"k{len(graph.kernels)}_copy"
    graph.kernels[kernel] = _copy_kernel(int(np.prod(tensor.shape, dtype=np.int64)), tensor.dtype)
    graph.steps.append(Step(kernel, [name, copy]))
    return copy


def _copy_kernel(elements: int, dtype: str) -> tvm.tirx.PrimFunc:
    """A flat element copy: an output that no kernel of its own writes."""
    from tvm import te

    source = te.placeholder((elements,), dtype, "source")
    target = te.compute((elements,), lambda i: source[i], "copy")
    return te.create_prim_func([source, target])


def _short(kernel: str) -> str:
    """`fused_conv2d1_add5_cast4...` -> `conv2d1`: the op that gives the kernel its cost."""
    if not kernel.startswith("fused_"):
        return kernel[:32]
    return kernel.removeprefix("fused_").split("_")[0] or kernel[:32]


def _set_lifetimes(graph: KernelGraph) -> None:
    """First and last step index at which each storage tensor is live."""
    for tensor in graph.tensors.values():
        tensor.first_use, tensor.last_use = len(graph.steps), -1
    for index, step in enumerate(graph.steps):
        for name in step.args:
            storage = graph.storage(name)
            storage.first_use = min(storage.first_use, index)
            storage.last_use = max(storage.last_use, index)
