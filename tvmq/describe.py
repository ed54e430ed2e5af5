"""``tvmq inspect``: what a model file holds, before anything is compiled."""

from __future__ import annotations

from typing import Any

from tvmq.frontend import SourceGraph
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


def summary(source: SourceGraph) -> dict[str, Any]:
    """Everything `inspect` reports, as plain data (printed as text or JSON)."""
    return {
        "model": str(source.path),
        "format": source.format,
        "inputs": [_spec_dict(s) for s in source.inputs],
        "outputs": [_spec_dict(s) for s in source.outputs],
        "operators": dict(source.operators.most_common()),
        "parameters": len(source.params),
        "parameter_bytes": sum(int(p.nbytes) for p in source.params.values()),
        "unsupported": [{"node": n, "op": op} for n, op in source.unsupported()],
    }


def format_summary(info: dict[str, Any]) -> str:
    lines = [f"{info['model']} ({info['format']})"]
    for title in ("inputs", "outputs"):
        lines.append(f"{title}:")
        for spec in info[title]:
            text = f"  {spec['name']}: {spec['dtype']}{spec['shape']}"
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
    if info["unsupported"]:
        lines.append(f"unsupported operators ({len(info['unsupported'])}):")
        lines += [f"  {u['node']}: {u['op']}" for u in info["unsupported"]]
    else:
        lines.append("unsupported operators: none")
    return "\n".join(lines)
