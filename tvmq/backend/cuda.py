"""CUDA builds: the realized integer model as CUDA kernels driven by the Relax VM.

The build runs without a GPU: TVM generates CUDA C (kept in the module), nvcc
turns it into PTX for the target's ``sm_XX`` (the int8 GEMMs must show
``dp4a.s32.s32``), and the host side is an LLVM shared library. Running needs a
CUDA device (:class:`CudaExecutable`); its outputs must equal the host integer
model's. Imported models have batch 1; ``batch`` rebuilds the graph for N samples
at once (:func:`with_batch`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tvmq.backend.cuda_runtime import CudaVm, cuda_device
from tvmq.backend.cuda_schedule import ScheduleLog, gpu_schedule_pass
from tvmq.backend.registry import ProjectOptions
from tvmq.errors import TvmqError
from tvmq.fileio import new_directory
from tvmq.model import Model
from tvmq.targets import Target

MAX_BATCH = 256


def cuda_arch(target: Target) -> str:
    arch = str(target.tvm.get("arch", ""))
    if target.kind != "cuda" or not arch.startswith("sm_"):
        raise TvmqError(f"target '{target.name}' is {target.kind}, not a CUDA target with an arch")
    return arch


def with_batch(mod, batch: int):
    """`mod` with every input's leading (batch) axis set to `batch`.

    Reshapes that keep the batch axis follow; a reshape that folds the batch into
    another axis cannot, and is refused by name.
    """
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    if not 1 <= batch <= MAX_BATCH:
        raise TvmqError(f"batch {batch}: choose a batch size from 1 to {MAX_BATCH}")
    if batch == 1:
        return mod

    @mutator
    class Rebatch(PyExprMutator):
        def visit_call_(self, call):
            if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.reshape"):
                return super().visit_call_(call)
            data = self.visit_expr(call.args[0])
            shape = [int(v) for v in call.args[1].values]
            source = [int(v) for v in data.ty.shape.values]
            if source == [int(v) for v in call.args[0].ty.shape.values]:
                return super().visit_call_(call)  # no batch in it (a weight's reshape)
            if shape[0] != 1 or source[0] != batch:
                raise TvmqError(
                    f"cannot build for batch {batch}: a reshape to {shape} moves the batch axis"
                )
            return relax.op.reshape(data, [batch, *shape[1:]])

    func = mod["main"]
    rebatch = Rebatch(mod)
    params = []
    for param in func.params:
        shape = [int(v) for v in param.ty.shape.values]
        if not shape or shape[0] != 1:
            raise TvmqError(f"input '{param.name}' {shape} has no batch axis of 1 to widen")
        new = relax.Var(param.name, relax.TensorType([batch, *shape[1:]], param.ty.dtype))
        rebatch.set_var_remap(param, new)
        params.append(new)
    body = rebatch.visit_expr(func.body)
    mod = mod.clone() if hasattr(mod, "clone") else tvm.IRModule(dict(mod.functions_items()))
    mod["main"] = relax.Function(params, body, attrs=func.attrs)
    return mod


@dataclass
class CudaBuild:
    """A model compiled for one CUDA target and batch size, not yet on a device."""

    model: Model
    target: Target
    batch: int
    executable: object  # tvm.relax.VMExecutable
    log: ScheduleLog

    @property
    def source(self) -> str:
        """The generated CUDA C of every kernel."""
        return _cuda_module(self.executable.mod).inspect_source()

    def ptx(self) -> str:
        """The kernels compiled by nvcc for the target's arch (needs nvcc, no GPU)."""
        import tvm
        from tvm.support import nvcc

        if shutil.which("nvcc") is None:
            raise TvmqError("nvcc not found: install the CUDA toolkit to make PTX")
        with tvm.target.Target(self.target.tvm):
            ptx = nvcc.compile_cuda(
                self.source, target_format="ptx", arch=cuda_arch(self.target), compiler="nvcc"
            )
        return bytes(ptx).decode()


def _cuda_module(module):
    if module.kind == "cuda":
        return module
    for imported in module.imports:
        found = _cuda_module(imported)
        if found is not None:
            return found
    return None


def build_cuda(model: Model, target: Target, batch: int = 1) -> CudaBuild:
    """Compile `model` for `target`: int8 GEMMs on dp4a, dlight for the rest."""
    import tvm
    from tvm.relax.backend.cuda import pipeline

    from tvmq.quantize.realize import realize

    cuda_arch(target)
    # Rebatch before realizing: realized steps are PrimFuncs of fixed shape (requantize).
    mod = with_batch(model.mod, batch)
    if model.is_quantized:
        mod = realize(mod)
    tvm_target = target.tvm_target()
    log = ScheduleLog()

    @tvm.transform.module_pass(opt_level=0, name="TvmqCudaPipeline")
    def lower(mod, _):
        with tvm_target:
            passes = [
                *pipeline.library_dispatch_passes(tvm_target),
                # CUDA's legalization without its dlight step (whose gpu.Matmul fails on int8).
                *pipeline.legalize_passes(tvm_target)[:-1],
                gpu_schedule_pass(log),
                _refuse_unscheduled(log, model),
                *pipeline.dataflow_lower_passes(tvm_target),
                *pipeline.finalize_passes(tvm_target),
            ]
            return tvm.transform.Sequential(passes)(mod)

    executable = tvm.compile(mod, tvm_target, relax_pipeline=lower)
    return CudaBuild(model, target, batch, executable, log)


def _refuse_unscheduled(log: ScheduleLog, model: Model):
    import tvm

    @tvm.transform.module_pass(opt_level=0, name="TvmqRefuseUnscheduled")
    def check(mod, _):
        if log.unscheduled:
            kernel = log.unscheduled[0]
            op = kernel.removeprefix("fused_").split("_")[0]
            raise TvmqError(
                f"{model.source}: op '{op}' (kernel {kernel}) cannot be built for CUDA: "
                "no GPU schedule applies to it"
            )
        return mod

    return check


def compile_project(model: Model, target: Target, directory: Path, options: ProjectOptions) -> dict:
    """`tvmq compile`'s project for a CUDA target: kernels, PTX and the host library."""
    return compile_cuda_project(model, target, directory, options.batch)


def compile_cuda_project(model: Model, target: Target, directory: Path, batch: int = 1) -> dict:
    """Write CUDA source, PTX, the host library and a manifest into `directory`
    (which must not exist), atomically: on any failure nothing is left there."""
    if shutil.which("nvcc") is None:
        raise TvmqError("nvcc not found: install the CUDA toolkit (tvmq compile makes PTX)")
    with new_directory(directory) as staging:
        build = build_cuda(model, target, batch)
        (staging / "kernels.cu").write_text(build.source)
        ptx = build.ptx()
        (staging / "kernels.ptx").write_text(ptx)
        build.executable.export_library(str(staging / "model.so"))
        manifest = _manifest(build, ptx)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(build: CudaBuild, ptx: str) -> dict:
    import tvm

    model = build.model
    return {
        "format": "tvmq-cuda/1",
        "model": model.name,
        "target": build.target.name,
        "arch": cuda_arch(build.target),
        "batch": build.batch,
        "tvm_version": tvm.__version__,
        "files": {
            "kernels.cu": "CUDA C of every kernel",
            "kernels.ptx": "nvcc's PTX for the arch",
            "model.so": "Relax VM executable (host code + kernels): tvmq.backend.cuda_runtime",
        },
        "inputs": [
            {"name": s.name, "dtype": s.dtype, "shape": [build.batch, *s.shape[1:]]}
            for s in model.inputs
        ],
        "outputs": [{"name": s.name, "dtype": s.dtype} for s in model.outputs],
        "kernels": build.log.rules,
        "dp4a_kernels": build.log.dp4a,
        "dp4a_declined": build.log.declined,
        "ptx_dp4a_instructions": ptx.count("dp4a.s32.s32"),
    }


class CudaExecutable(CudaVm):
    """A CUDA build loaded on the first GPU; called on numpy arrays of `batch` samples."""

    def __init__(self, build: CudaBuild):
        self.build = build
        super().__init__(build.executable, cuda_device())


def build(model: Model, target: Target, schedule=None) -> CudaExecutable:
    """The backend registry's entry: TVM's GPU schedules (dp4a where it fits), not `schedule`."""
    return CudaExecutable(build_cuda(model, target))
