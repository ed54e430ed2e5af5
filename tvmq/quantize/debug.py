"""Per-layer accuracy of a quantized model against its float original.

Like ONNX Runtime's QDQ debugger: both graphs run on the same inputs and every
tensor the quantizer quantized is compared with the float tensor it stands for
(SQNR, largest absolute error), next to its scale and zero point. The quantized
side is the QDQ graph run in float (the quantize/dequantize pairs carry the int8
rounding and clipping), so every tensor stays visible, including those the
integer build fuses away. Errors accumulate from layer to layer, as they do in
the integer code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from tvm import relax

from tvmq.errors import TvmqError
from tvmq.fileio import new_directory, write_atomically
from tvmq.model import Model
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.observe import observer_runner
from tvmq.quantize.quantizer import float_graph_hash


@dataclass(frozen=True)
class LayerError:
    """How far one quantized tensor is from its float original."""

    layer: str
    tensor: str
    scale: float
    zero_point: int
    sqnr_db: float
    max_abs_error: float
    source: str = ""  # the node in the source file (ONNX node name), when known


def sqnr_db(signal_power: float, noise_power: float) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when there is no noise)."""
    if noise_power == 0.0:
        return math.inf
    if signal_power == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


def _main_vars(model: Model) -> dict[str, relax.Var]:
    named = {param.name: param for param in model.mod["main"].params}
    named.update({binding.var.name: binding.var for binding in main_bindings(model.mod)})
    return named


def layer_errors(
    float_model: Model, quant_model: Model, samples: Sequence[Sequence[np.ndarray]]
) -> list[LayerError]:
    """Per quantized tensor, in graph order: error of `quant_model` against `float_model`."""
    tensors = (quant_model.quantization or {}).get("tensors")
    if not tensors:
        raise TvmqError(f"{quant_model.source}: not a model quantized by tvmq (no tensor report)")
    if not samples:
        raise TvmqError("no input samples to compare the models on")
    if quant_model.quantization.get("float_graph_hash") != float_graph_hash(float_model):
        raise TvmqError(
            f"{quant_model.source} was not quantized from {float_model.source} "
            "(their graphs differ)"
        )
    float_vars, quant_vars = _main_vars(float_model), _main_vars(quant_model)
    names = [tensor["name"] for tensor in tensors]
    pairs = [(float_vars[name], quant_vars[f"{name}_dq"]) for name in names]
    run_float = observer_runner(float_model.mod, [f for f, _ in pairs])
    run_quant = observer_runner(quant_model.mod, [q for _, q in pairs])
    signal = np.zeros(len(pairs))
    noise = np.zeros(len(pairs))
    peak = np.zeros(len(pairs))
    for sample in tqdm(samples, desc="compare layers", unit="sample"):
        for i, (real, approx) in enumerate(zip(run_float(sample), run_quant(sample), strict=True)):
            error = real.astype(np.float64) - approx.astype(np.float64)
            signal[i] += float(np.sum(np.square(real.astype(np.float64))))
            noise[i] += float(np.sum(np.square(error)))
            peak[i] = max(peak[i], float(np.max(np.abs(error))))
    return [
        LayerError(
            tensor.get("layer", tensor["name"]),
            tensor["name"],
            tensor["scale"],
            tensor["zero_point"],
            sqnr_db(signal[i], noise[i]),
            peak[i],
            tensor.get("source", ""),
        )
        for i, tensor in enumerate(tensors)
    ]


def format_table(rows: Sequence[LayerError]) -> str:
    """The per-layer errors as a Markdown table."""
    lines = [
        "| layer | tensor | source | scale | zero point | SQNR (dB) | max abs error |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.layer} | {row.tensor} | {row.source} | {row.scale:.6g} | {row.zero_point} | "
            f"{row.sqnr_db:.2f} | {row.max_abs_error:.4g} |"
        )
    return "\n".join(lines)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_report(
    directory: str | Path,
    title: str,
    rows: Sequence[LayerError],
    notes: Sequence[str] = (),
    extra: dict | None = None,
    force: bool = False,
) -> list[Path]:
    """report.md, report.json and per_layer.png in the new `directory` (an existing
    one is refused, or replaced if `force`): the three files or none."""
    directory = Path(directory)
    entries = [{**asdict(row), "sqnr_db": _json_number(row.sqnr_db)} for row in rows]
    document = {"title": title, "notes": list(notes), "layers": entries, **(extra or {})}
    text = "\n\n".join([f"# {title}", *notes, format_table(rows)]) + "\n"
    names = ["report.md", "report.json", "per_layer.png"]
    with new_directory(directory, force) as staging:
        write_atomically(staging / names[0], lambda f: f.write(text.encode()))
        write_atomically(
            staging / names[1], lambda f: f.write(json.dumps(document, indent=2).encode())
        )
        write_atomically(
            staging / names[2], lambda f: _plot(rows, title).savefig(f, format="png", dpi=100)
        )
    return [directory / name for name in names]


def _plot(rows: Sequence[LayerError], title: str):
    """SQNR and largest error per layer, in graph order."""
    from matplotlib.figure import Figure  # Agg canvas, no display or global state

    labels = [f"{row.layer} {row.source}".strip() for row in rows]
    finite = [row.sqnr_db if math.isfinite(row.sqnr_db) else np.nan for row in rows]
    figure = Figure(figsize=(max(6.0, 0.45 * len(rows) + 2.0), 6.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    positions = np.arange(len(rows))
    top.bar(positions, finite, color="tab:blue")
    top.set_ylabel("SQNR (dB)")
    top.set_title(title)
    bottom.bar(positions, [row.max_abs_error for row in rows], color="tab:red")
    bottom.set_ylabel("max abs error")
    bottom.set_xticks(positions, labels, rotation=60, ha="right", fontsize=8)
    return figure


def report_layer_errors(
    float_model: Model,
    quantized: Model,
    samples: Sequence[Sequence[np.ndarray]],
    directory: str | Path,
    force: bool = False,
    notes: Sequence[str] = (),
    extra: dict | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Compare `quantized` with `float_model` on `samples`, `log` the table and write
    the report into `directory` (``quantize --report``, ``tvmq debug``)."""
    rows = layer_errors(float_model, quantized, samples)
    log(format_table(rows))
    notes = [f"{len(samples)} input samples; float model {float_model.source}.", *notes]
    write_report(directory, f"Per-layer error of {quantized.name}", rows, notes, extra, force)
    log(f"wrote {directory}/report.md, report.json, per_layer.png")
