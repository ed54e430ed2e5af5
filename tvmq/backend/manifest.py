"""What a compiled model's project says about itself in ``manifest.json``.

Firmware projects (:mod:`tvmq.backend.mcu`) and Linux library projects
(:mod:`tvmq.backend.linux`) describe the same compiled model the same way: its
tensors with their quantization, the kernels in call order and the arena plan,
what Model Library Format gave microTVM users. Each adds its own fields.
"""

from __future__ import annotations

from tvmq.backend.aot import CompiledModel
from tvmq.targets import Target


def model_manifest(compiled: CompiledModel, target: Target) -> dict:
    """The fields common to every project built from `compiled` for `target`."""
    import tvm

    model, graph, plan = compiled.model, compiled.graph, compiled.plan

    def tensors(specs, names):
        return [
            {
                "name": spec.name,
                "dtype": graph.tensors[name].dtype,
                "shape": list(graph.tensors[name].shape),
                "bytes": graph.tensors[name].nbytes,
                "quantization": None
                if spec.quant is None
                else {"scale": list(spec.quant.scale), "zero_point": list(spec.quant.zero_point)},
            }
            for spec, name in zip(specs, names, strict=True)
        ]

    return {
        "model": model.name,
        "build_id": compiled.build_id,
        "target": target.name,
        "tvm_version": tvm.__version__,
        "inputs": tensors(model.inputs, graph.inputs),
        "outputs": tensors(model.outputs, graph.outputs),
        "kernels": [step.kernel for step in graph.steps],
        "arena_plan": {
            name: {"offset": offset, "bytes": graph.tensors[name].nbytes}
            for name, offset in sorted(plan.offsets.items(), key=lambda item: item[1])
        },
    }
