"""Reports of a CI run: JUnit XML, a Markdown summary, plots and the raw results.

JUnit XML is written with xml.etree (the format is a few elements; the
``junit-xml`` package is unmaintained since 2020): one testsuite per board, one
testcase per entry; a budget or baseline miss is a ``<failure>``, a board that
failed an ``<error>``, an absent model or dataset ``<skipped>``. Every file is
written atomically.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tvmq.ci.checks import Verdict
from tvmq.ci.matrix import fmt
from tvmq.errors import TvmqError
from tvmq.fileio import write_atomically

FILES = ("junit.xml", "summary.md", "results.json", "latency.png", "memory.png")


def write_reports(directory: Path, verdicts: list[Verdict], baseline: dict[str, dict]) -> None:
    """Everything in FILES, in `directory` (created if needed)."""
    if directory.exists() and not directory.is_dir():
        raise TvmqError(f"{directory}: exists and is not a directory")
    directory.mkdir(exist_ok=True)
    xml = ET.tostring(junit(verdicts), encoding="utf-8", xml_declaration=True)
    write_atomically(directory / "junit.xml", lambda f: f.write(xml))
    text = markdown(verdicts).encode()
    write_atomically(directory / "summary.md", lambda f: f.write(text))
    data = json.dumps(results(verdicts), indent=2).encode()
    write_atomically(directory / "results.json", lambda f: f.write(data))
    for name, figure in (
        ("latency.png", plot(verdicts, baseline, ["latency_ms"], "latency per inference (ms)")),
        ("memory.png", plot(verdicts, baseline, ["flash", "ram"], "bytes")),
    ):
        write_atomically(directory / name, lambda f, fig=figure: fig.savefig(f, format="png"))


def results(verdicts: list[Verdict]) -> dict:
    """Machine-readable: figures, details, checks and the verdict of every entry."""
    return {
        "entries": {
            v.outcome.entry.id: {
                "status": v.status,
                "reason": v.outcome.reason,
                "figures": v.outcome.figures,
                "details": v.outcome.details,
                "checks": [asdict(c) for c in v.checks],
            }
            for v in verdicts
        }
    }


def message(verdict: Verdict) -> str:
    """One line saying why an entry did not pass."""
    if verdict.status in ("error", "skipped"):
        return verdict.outcome.reason
    return "; ".join(c.describe() for c in verdict.failures)


def junit(verdicts: list[Verdict]) -> ET.Element:
    root = ET.Element("testsuites", name="tvmq ci")
    boards: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        boards.setdefault(verdict.outcome.entry.board.name, []).append(verdict)
    for board, group in boards.items():
        count = {s: sum(v.status == s for v in group) for s in ("failed", "error", "skipped")}
        suite = ET.SubElement(
            root, "testsuite", name=board, tests=str(len(group)), failures=str(count["failed"]),
            errors=str(count["error"]), skipped=str(count["skipped"]),
            time=f"{sum(v.outcome.seconds for v in group):.3f}",
        )  # fmt: skip
        for verdict in group:
            entry = verdict.outcome.entry
            case = ET.SubElement(
                suite, "testcase", classname=f"tvmq.ci.{board}",
                name=f"{entry.model.name}/{entry.data.name}", time=f"{verdict.outcome.seconds:.3f}",
            )  # fmt: skip
            tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(verdict.status)
            if tag:
                ET.SubElement(case, tag, message=message(verdict)).text = message(verdict)
            lines = [c.describe() for c in verdict.checks] or [verdict.outcome.reason]
            ET.SubElement(case, "system-out").text = "\n".join(lines)
    return root


def markdown(verdicts: list[Verdict]) -> str:
    counts = {s: sum(v.status == s for v in verdicts) for s in ("passed", "failed", "error")}
    skipped = sum(v.status == "skipped" for v in verdicts)
    lines = [
        "# tvmq ci",
        "",
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{skipped} skipped.",
        "",
        "| entry | status | accuracy | instructions | latency | flash | RAM | energy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    metrics = ("accuracy", "instructions", "latency_ms", "flash", "ram", "energy_uj")
    for verdict in verdicts:
        figures = verdict.outcome.figures
        cells = [fmt(m, figures[m]) if m in figures else "-" for m in metrics]
        mark = {"passed": "pass", "failed": "**FAIL**", "error": "**ERROR**"}
        status = mark.get(verdict.status, verdict.status)
        lines.append(f"| {verdict.outcome.entry.id} | {status} | " + " | ".join(cells) + " |")
    problems = [v for v in verdicts if v.status != "passed"]
    if problems:
        lines += ["", "## Not passed", ""]
        lines += [f"- `{v.outcome.entry.id}` ({v.status}): {message(v)}" for v in problems]
    notes = [
        (v.outcome.entry.id, c.describe())
        for v in verdicts
        for c in v.checks
        if c.passed and c.kind == "baseline" and c.value != c.reference
    ]
    if notes:
        lines += ["", "## Changed against the baseline, within tolerance", ""]
        lines += [f"- `{entry}`: {text}" for entry, text in notes]
    missing = [v.outcome.entry.id for v in verdicts if v.outcome.figures and not v.in_baseline]
    if missing:
        lines += ["", "Not in the baseline yet: " + ", ".join(f"`{m}`" for m in missing)]
    return "\n".join(lines) + "\n"


def plot(verdicts: list[Verdict], baseline: dict[str, dict], metrics: list[str], unit: str):
    """One bar per entry and metric, the baseline beside it (hatched) and the budget's
    limit across both (a black dash); entries grouped by target, on a log scale when the
    figures span orders of magnitude. A failed entry's label is red with the failing
    bars edged in red; an entry whose board failed stands at its place as ERROR."""
    from matplotlib.figure import Figure  # Agg canvas, no display or global state

    shown = sorted(
        (v for v in verdicts if v.outcome.figures or v.status == "error"),
        key=lambda v: (v.outcome.entry.board.target.name, v.outcome.entry.id),
    )
    labels = [f"{v.outcome.entry.id}\n({v.outcome.entry.board.target.name})" for v in shown]
    figure = Figure(figsize=(max(6.0, 1.2 * len(shown) + 2.0), 4.5), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(shown))
    width = 0.8 / (2 * len(metrics))
    for index, metric in enumerate(metrics):
        now = [v.outcome.figures.get(metric, np.nan) for v in shown]
        past = [baseline.get(v.outcome.entry.id, {}).get(metric, np.nan) for v in shown]
        failing = [any(c.metric == metric for c in v.failures) for v in shown]
        offset = (2 * index - len(metrics) + 0.5) * width
        color = f"C{index}"
        axes.bar(positions + offset, now, width, color=color, label=f"{metric} (this run)",
                 edgecolor=["red" if f else color for f in failing], linewidth=2)  # fmt: skip
        axes.bar(positions + offset + width, past, width, color=color, alpha=0.35, hatch="//",
                 label=f"{metric} (baseline)")  # fmt: skip
        limits = [_limit(v, metric) for v in shown]
        axes.hlines(limits, positions + offset - width / 2, positions + offset + 1.5 * width,
                    colors="black", linestyles="dashed", linewidth=1.5,
                    label=f"{metric} budget" if any(np.isfinite(limits)) else None)  # fmt: skip
    axes.set_ylabel(unit)
    values = [v.outcome.figures[m] for v in shown for m in metrics if m in v.outcome.figures]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        axes.set_yscale("log")  # models that differ by orders of magnitude
    for position, verdict in zip(positions, shown, strict=True):
        if verdict.status == "error":
            axes.text(
                position, 0.5, "ERROR", transform=axes.get_xaxis_transform(), ha="center",
                va="center", rotation=90, color="red", fontweight="bold",
            )  # fmt: skip
    axes.set_xticks(positions, labels, rotation=30, ha="right", fontsize=7)
    for tick, verdict in zip(axes.get_xticklabels(), shown, strict=True):
        if verdict.status in ("failed", "error"):
            tick.set_color("red")
    axes.legend(fontsize=8)
    axes.set_title(", ".join(metrics) + " per entry, against the baseline and the budget")
    return figure


def _limit(verdict: Verdict, metric: str) -> float:
    """The entry's budget limit for `metric`, NaN (nothing drawn) when it has none."""
    return next((b.limit for b in verdict.outcome.entry.budgets if b.metric == metric), np.nan)
