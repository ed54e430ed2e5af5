"""Convert: write the calibrated decisions into the graph as quantize/dequantize.

Each observed tensor gets ``quantize -> dequantize`` right after it is produced,
and each quantized op's weight becomes ``dequantize(int8 constant)`` (a PReLU's
slope too, with one scale). The result is
the same QDQ form the importers produce for pre-quantized files, which
:mod:`tvmq.quantize.realize` turns into integer arithmetic at build time.
In dynamic mode each weighted op's input gets a quantize/dequantize whose
parameters are computed at run time (:mod:`tvmq.quantize.dynamic`); in weight-only
mode only the weights change.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from tvmq.quantize.annotate import Annotation, main_bindings
from tvmq.quantize.codebook import clustered
from tvmq.quantize.dynamic import emit_dynamic_qdq
from tvmq.quantize.hybrid import layer_weight
from tvmq.quantize.realize import constant_value, prelu_slope
from tvmq.quantize.scheme import ActivationParams, QuantConfig, QuantizedWeight, quantize_slope


@mutator
class _InsertQDQ(PyExprMutator):
    def __init__(
        self,
        mod: tvm.IRModule,
        activations: dict[relax.Var, ActivationParams],
        weights: dict[relax.Var, QuantizedWeight],
        dynamic: bool,
    ):
        super().__init__(mod)
        self.activations = activations
        self.weights = weights
        self.dynamic = dynamic
        self.pending_inputs = [(p, activations[p]) for p in mod["main"].params if p in activations]

    def _qdq(self, var: relax.Var, params: ActivationParams, as_output: bool) -> relax.Var:
        scale = relax.const(params.scale, "float32")
        zero_point = relax.const(params.zero_point, "int32")
        # Named after the tensor: an automatic name (lvN) would take one of the
        # graph's own names and rename the original tensor the report looks up.
        quantized = self.builder_.emit(
            relax.op.quantize(var, scale, zero_point, out_dtype=params.dtype), f"{var.name}_q"
        )
        real = relax.op.dequantize(quantized, scale, zero_point, out_dtype="float32")
        emit = self.builder_.emit_output if as_output else self.builder_.emit
        return emit(real, f"{var.name}_dq")

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        # Model inputs are quantized first thing in the block.
        while self.pending_inputs:
            var, params = self.pending_inputs.pop(0)
            self.set_var_remap(var, self._qdq(var, params, as_output=False))
        value = self.visit_expr(binding.value)
        var = binding.var
        weight = self.weights.get(var)
        if weight is not None:
            # Emitted under its own name: left nested, the normalizer would bind it
            # to an automatic lvN that takes a graph tensor's name (see _qdq).
            dequantized = self.builder_.emit(
                relax.op.dequantize(
                    relax.const(weight.values),
                    relax.const(weight.scale),
                    relax.const(0, "int32"),  # symmetric: one zero point for every channel
                    axis=weight.axis,
                    out_dtype="float32",
                ),
                f"{var.name}_w",
            )
            data = value.args[0]
            if self.dynamic:
                data = emit_dynamic_qdq(self.builder_, data, f"{var.name}_in")
            value = relax.Call(value.op, [data, dequantized], value.attrs, value.ty_args)
        # A block output; outside dataflow blocks (an ONNX If's branches) none is needed.
        is_output = self.builder_.current_block_is_dataflow() and not isinstance(
            var, relax.DataflowVar
        )
        params = self.activations.get(var)
        if params is None:
            emit = self.builder_.emit_output if is_output else self.builder_.emit
            self.set_var_remap(var, emit(value, var.name))
            return
        produced = self.builder_.emit(value, var.name)
        self.set_var_remap(var, self._qdq(produced, params, as_output=is_output))

    def run(self, mod: tvm.IRModule) -> tvm.IRModule:
        self.builder_.update_func(mod.get_global_var("main"), self.visit_expr(mod["main"]))
        return self.builder_.get()


def convert(
    mod: tvm.IRModule,
    annotation: Annotation,
    activations: list[ActivationParams],
    config: QuantConfig,
    weight_bits: dict[str, int] | None = None,
    codebooks: dict[str, int] | None = None,
) -> tuple[tvm.IRModule, dict[str, QuantizedWeight]]:
    """The QDQ module (activations at their calibrated parameters, weights in
    int8, or in the 4-bit range held in int8 for the ops `weight_bits` gives 4) and
    the quantized weights by the name of the op using them; the ops `codebooks` names
    take that many int8 values (:func:`tvmq.quantize.codebook.clustered`)."""
    values = {b.var: b.value for b in main_bindings(mod)}
    bits, sizes = weight_bits or {}, codebooks or {}
    weights = {
        op.core: clustered(
            layer_weight(
                values.get,
                values[op.core].args[1],
                op.weight_axis,
                config,
                bits.get(op.name, 8),
            ),
            sizes.get(op.name, 0),
            config.codebook_per_channel,
        )
        for op in annotation.weighted().values()
    }
    slopes = {
        values[op.core].args[1]: quantize_slope(
            constant_value(values.get, prelu_slope(values[op.core], values.get)), config
        )
        for op in annotation.ops
        if op.kind == "prelu"
    }
    params = dict(zip(annotation.observed, activations, strict=True))
    converted = _InsertQDQ(mod, params, weights | slopes, config.mode == "dynamic").run(mod)
    named = {var.name: weight for var, weight in weights.items()}
    return relax.transform.DeadCodeElimination()(converted), named
