"""The front as a table (printed and in front.md), as JSON, and as a plot."""

from __future__ import annotations

import json
from pathlib import Path

from tvmq.fileio import new_directory, write_atomically
from tvmq.optimize.mixed import Optimized, Point

HEADER = ("", "drop (pt)", "flash (B)", "RAM (B)", "instructions", "weights (B)", "layers")


def front_table(result: Optimized) -> list[str]:
    """One row per point, all int8 first; the chosen point is marked '*'."""
    rows = [HEADER, tuple("---" for _ in HEADER)]
    rows += [_row(point, point is result.chosen) for point in result.front]
    return ["| " + " | ".join(row) + " |" for row in rows]


def _row(point: Point, chosen: bool) -> tuple[str, ...]:
    cost = point.cost
    return (
        "*" if chosen else "",
        f"{point.drop:.2f}",
        f"{cost['flash']:,}",
        f"{cost['ram']:,}",
        f"{cost['instructions']:,}",
        f"{cost['weights_bytes']:,}",
        point.description,
    )


def write_report(result: Optimized, directory: str | Path, force: bool = False) -> None:
    """front.md, front.json and front.png in the new `directory` (all or none)."""
    title = (
        f"Mixed precision on {result.target}: {result.metric} {result.baseline:.4f} "
        f"(all int8) on {result.scored}"
    )
    limits = ", ".join(f"{key} <= {value:g}" for key, value in result.budgets.limits().items())
    verdict = "chosen (*)" if result.met else "none meets them; closest (*)"
    text = "\n\n".join(
        [f"# {title}", f"Budgets: {limits}; {verdict}.", "\n".join(front_table(result))]
    )
    document = {
        "title": title,
        "target": result.target,
        "metric": result.metric,
        "int8_metric": result.baseline,
        "scored": result.scored,
        "budgets": result.budgets.limits(),
        "met": result.met,
        "chosen": result.front.index(result.chosen),
        "front": [point.as_dict() for point in result.front],
    }
    with new_directory(Path(directory), force) as staging:
        write_atomically(staging / "front.md", lambda f: f.write((text + "\n").encode()))
        write_atomically(
            staging / "front.json", lambda f: f.write(json.dumps(document, indent=2).encode())
        )
        write_atomically(
            staging / "front.png", lambda f: _plot(result).savefig(f, format="png", dpi=100)
        )


def _plot(result: Optimized):
    """Accuracy drop against flash, one panel, the chosen point and budgets marked."""
    from matplotlib.figure import Figure  # Agg canvas, no display or global state

    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.subplots()
    flash = [point.cost["flash"] / 1024 for point in result.front]
    drops = [point.drop for point in result.front]
    axes.plot(flash, drops, "o-", color="tab:blue", label="front")
    chosen = result.chosen
    axes.plot(chosen.cost["flash"] / 1024, chosen.drop, "*", color="tab:red", ms=14, label="chosen")
    axes.axhline(result.budgets.max_drop, color="gray", ls="--", label="max drop")
    if result.budgets.flash is not None:
        axes.axvline(result.budgets.flash / 1024, color="gray", ls=":", label="flash budget")
    axes.set_xlabel(f"flash on {result.target} (KiB)")
    axes.set_ylabel(f"{result.metric} drop vs all int8 (points)")
    axes.legend()
    return figure
