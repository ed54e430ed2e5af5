"""``tvmq inspect``: what a model file holds, and whether it imports (and lowers for a
target), before anything is compiled.

"unsupported operators: none" is said only after the import has run: the nodes
listed otherwise are those the importer itself failed on, each with its reason.
"""

from __future__ import annotations

from typing import Any

from tvmq.errors import TvmqError, UnsupportedOperatorError
from tvmq.frontend import SourceGraph, first_line, import_model
from tvmq.frontend.shapes import format_shape, free_dims
from tvmq.model import TensorSpec


def _spec_dict(spec: TensorSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}
    if spec.quant:
        entry["quantization"] = {
            "scale": list(spec.quant.scale),
            "zero_point": list(spec.quant.zero_point),
            "axis": spec.quant.axis,
        }
    return entry


def summary(source: SourceGraph, target: str | None = None) -> dict[str, Any]:
    """Everything `inspect` reports, as plain data (printed as text or JSON).

    `imports` (and `lowers`, with a target) is True, False, or None where the step
    could not be tried: free input dims not fixed, or the import failing first."""
    info: dict[str, Any] = {
        "model": str(source.path),
        "format": source.format,
        "inputs": [_spec_dict(s) for s in source.inputs],
        "outputs": [_spec_dict(s) for s in source.outputs],
        "operators": dict(source.operators.most_common()),
        "parameters": len(source.params),
        "parameter_bytes": sum(int(p.nbytes) for p in source.params.values()),
        "free_dims": {s.name: free_dims(s) for s in source.inputs if free_dims(s)},
        "imports": None,
        "unsupported": [],
        "target": target,
        "lowers": None,
        "lowering_error": None,
        "lowering_node": None,
    }
    if info["free_dims"]:
        info["unsupported"] = _problems(source.unsupported())
        return info
    try:
        model = import_model(source)
    except UnsupportedOperatorError as error:
        info.update(imports=False, unsupported=_problems(error.nodes))
        return info
    except TvmqError as error:
        info.update(imports=False, unsupported=[{"node": "", "op": "", "reason": str(error)}])
        return info
    info["imports"] = True
    # As imported: outputs a file sizes at run time (a detection op's) get their shapes.
    info["outputs"] = [_spec_dict(s) for s in model.outputs]
    if target is not None:
        from tvmq.backend import check_lowering

        try:
            check_lowering(model, target)
            info["lowers"] = True
        except Exception as error:  # any failure of the lowering is what inspect reports
            info.update(lowers=False, lowering_error=first_line(error))
            from tvmq.lowering_probe import locate_lowering_failure

            culprit = locate_lowering_failure(model, target, error)
            if culprit is not None:
                info["lowering_node"] = {"node": culprit.node, "op": culprit.op}
    return info


def _problems(nodes: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"node": n, "op": op, "reason": reason} for n, op, reason in nodes]


def healthy(info: dict[str, Any]) -> bool:
    """The model imports (and lowers for the target asked): inspect's exit status 0."""
    return info["imports"] is True and info["lowers"] is not False


def format_summary(info: dict[str, Any]) -> str:
    lines = [f"{info['model']} ({info['format']})"]
    for title in ("inputs", "outputs"):
        lines.append(f"{title}:")
        for spec in info[title]:
            text = f"  {spec['name']}: {spec['dtype']}{format_shape(spec['shape'])}"
            quant = spec.get("quantization")
            if quant and len(quant["scale"]) == 1:
                text += f"  scale={quant['scale'][0]:.6g} zero_point={quant['zero_point'][0]}"
            elif quant:
                text += f"  {len(quant['scale'])} scales along axis {quant['axis']}"
            lines.append(text)
    lines.append("operators:")
    width = max((len(op) for op in info["operators"]), default=0)
    lines += [f"  {op:<{width}}  {count:>5}" for op, count in info["operators"].items()]
    lines.append(f"parameters: {info['parameters']} tensors, {info['parameter_bytes']:,} bytes")
    nodes = [u for u in info["unsupported"] if u["node"]]
    problems = [f"  {u['node']} ({u['op']}): {u['reason']}" for u in nodes]
    if info["free_dims"]:
        free = ", ".join(f"{name} ({', '.join(dims)})" for name, dims in info["free_dims"].items())
        lines.append(f"import not tried: free input dims {free}; fix them with --shape")
        if problems:
            lines.append(f"operators without a converter ({len(problems)}):")
            lines += problems
    elif info["imports"]:
        lines.append("unsupported operators: none")
    elif problems:
        lines.append(f"unsupported operators ({len(problems)}): the import fails at")
        lines += problems
    else:
        lines += [f"import fails: {u['reason']}" for u in info["unsupported"]]
    if info["lowers"] is not None:
        outcome = "ok" if info["lowers"] else f"fails: {info['lowering_error']}"
        if info["lowering_node"]:
            culprit = info["lowering_node"]
            outcome = f"fails at {culprit['node']} ({culprit['op']}): {info['lowering_error']}"
        lines.append(f"lowering for {info['target']}: {outcome}")
    return "\n".join(lines)
