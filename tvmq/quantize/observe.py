"""Prepare and calibrate: run real data through the float graph and record the
range of every tensor the annotation observes.

The float ``main`` is rewritten to also return the observed tensors, built once
for the host, and run over the calibration samples; each tensor feeds its own
calibrator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import tvm
from tqdm import tqdm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from tvmq.errors import TvmqError
from tvmq.model import TensorSpec
from tvmq.quantize.annotate import Annotation
from tvmq.quantize.calibrators import make_calibrator
from tvmq.quantize.scheme import QuantConfig


@mutator
class _ExposeObserved(PyExprMutator):
    """Turn observed dataflow variables into block outputs so main can return them."""

    def __init__(self, mod: tvm.IRModule, observed: set[relax.Var]):
        super().__init__(mod)
        self.observed = observed
        self.exposed: dict[relax.Var, relax.Var] = {}

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.visit_expr(binding.value)
        var = binding.var
        # Outside dataflow blocks (an ONNX If's branches) every var is already visible.
        dataflow = self.builder_.current_block_is_dataflow()
        if dataflow and (var in self.observed or not isinstance(var, relax.DataflowVar)):
            new = self.builder_.emit_output(value, var.name)
        else:
            new = self.builder_.emit(value, var.name)
        self.set_var_remap(var, new)
        self.exposed[var] = new


def observer_module(mod: tvm.IRModule, observed: Sequence[relax.Var]) -> tvm.IRModule:
    """``mod`` whose main returns the `observed` tensors of its main, in that order."""
    exposer = _ExposeObserved(mod, set(observed))
    func = exposer.visit_expr(mod["main"])
    outputs = [exposer.exposed.get(var, var) for var in observed]
    body = relax.BlockBuilder().normalize(relax.SeqExpr(func.body.blocks, relax.Tuple(outputs)))
    # A copy of the whole module: main may call PrimFuncs the importer made (call_tir).
    observer = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    observer["main"] = relax.Function(func.params, body, attrs=func.attrs)
    return observer


def observer_runner(mod: tvm.IRModule, observed: Sequence[relax.Var]):
    """A function from one sample (list of inputs) to the `observed` tensors of `mod`."""
    executable = tvm.compile(observer_module(mod, observed), tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())

    def run(sample: Sequence[np.ndarray]) -> list[np.ndarray]:
        tensors = vm["main"](*[tvm.runtime.tensor(np.require(a, requirements="C")) for a in sample])
        return [tensor.numpy() for tensor in tensors]

    return run


def checked_samples(samples: Iterable[Sequence[np.ndarray]], specs: list[TensorSpec], origin: str):
    """Yield calibration samples, refusing NaN, Inf, wrong shapes or dtypes, and no data."""
    count = 0
    for index, sample in enumerate(samples):
        if len(sample) != len(specs):
            raise TvmqError(
                f"{origin}: sample {index} has {len(sample)} inputs, model takes {len(specs)}"
            )
        for array, spec in zip(sample, specs, strict=True):
            spec.check(np.asarray(array), f"{origin}: sample {index}")
            if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
                raise TvmqError(f"{origin}: sample {index} input '{spec.name}' holds NaN or Inf")
        count += 1
        yield sample
    if count == 0:
        raise TvmqError(f"{origin}: no calibration samples")


def calibrate(
    mod: tvm.IRModule,
    annotation: Annotation,
    samples: Iterable[Sequence[np.ndarray]],
    specs: list[TensorSpec],
    config: QuantConfig,
    origin: str = "calibration data",
) -> list[tuple[float, float]]:
    """(min, max) to quantize for each observed tensor, in annotation order."""
    checked = list(checked_samples(samples, specs, origin))  # refuse bad data before any work
    run = observer_runner(mod, annotation.observed)
    calibrators = [
        make_calibrator(config.calibrator, **config.calibrator_options) for _ in annotation.observed
    ]
    for sample in tqdm(checked, desc="calibrate", unit="sample"):
        for calibrator, tensor in zip(calibrators, run(sample), strict=True):
            calibrator.collect(tensor)
    return [calibrator.compute_range() for calibrator in calibrators]
