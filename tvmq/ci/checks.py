"""Verdicts: each measured figure against its budget and against the baseline.

The baseline is a committed JSON file of the figures last accepted
(``tvmq ci update-baseline``). A figure worse than its baseline by more than the
tolerance (the budget's for that metric, else the matrix's) is a regression; a
better one passes with a note that the baseline could be updated. Under QEMU's
icount instruction counts repeat exactly, so a tolerance of 0 is usable there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tvmq.ci.matrix import HIGHER_IS_BETTER, Matrix, fmt
from tvmq.ci.runner import Outcome
from tvmq.errors import TvmqError
from tvmq.fileio import write_atomically

BASELINE_FORMAT = "tvmq-ci-baseline/1"


@dataclass(frozen=True)
class Check:
    metric: str
    kind: str  # "budget" or "baseline"
    value: float
    reference: float  # the budget's limit, or the baseline figure
    bound: float  # what the value may reach, tolerance included
    passed: bool

    def describe(self) -> str:
        higher = HIGHER_IS_BETTER[self.metric]
        if self.kind == "budget":
            word = "min" if higher else "max"
            relation = "below" if higher else "above"
            verdict = "ok" if self.passed else f"{relation} the budget"
            return (
                f"{self.metric} {fmt(self.metric, self.value)}: {verdict} "
                f"({word} {fmt(self.metric, self.reference)}, "
                f"{fmt(self.metric, self.bound)} with tolerance)"
            )
        change = (self.value - self.reference) / self.reference if self.reference else 0.0
        worse = (change < 0) if higher else (change > 0)
        if not self.passed:
            verdict = "regression"
        elif worse:
            verdict = "worse, within tolerance"
        else:
            verdict = "improved: update the baseline" if change else "same"
        return (
            f"{self.metric} {fmt(self.metric, self.value)}: {verdict} "
            f"(baseline {fmt(self.metric, self.reference)}, {change:+.2%})"
        )


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    checks: tuple[Check, ...]
    in_baseline: bool

    @property
    def status(self) -> str:
        """passed, failed (a check), error (the board) or skipped."""
        if self.outcome.status != "measured":
            return self.outcome.status
        return "passed" if all(c.passed for c in self.checks) else "failed"

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def judge(matrix: Matrix, outcomes: list[Outcome], baseline: dict[str, dict]) -> list[Verdict]:
    return [_judge(matrix, o, baseline.get(o.entry.id)) for o in outcomes]


def _judge(matrix: Matrix, outcome: Outcome, past: dict | None) -> Verdict:
    checks = []
    figures = outcome.figures
    tolerance = {b.metric: b.tolerance for b in outcome.entry.budgets}
    for budget in outcome.entry.budgets:
        if budget.metric in figures:
            value = figures[budget.metric]
            checks.append(
                Check(budget.metric, "budget", value, budget.limit, budget.bound,
                      budget.passes(value))
            )  # fmt: skip
    for metric, value in figures.items():
        if past is None or metric not in past:
            continue
        reference = past[metric]
        allowed = tolerance.get(metric, matrix.settings["tolerance"])
        higher = HIGHER_IS_BETTER[metric]
        bound = reference * (1 - allowed) if higher else reference * (1 + allowed)
        passed = value >= bound if higher else value <= bound
        checks.append(Check(metric, "baseline", value, reference, bound, passed))
    return Verdict(outcome, tuple(checks), past is not None)


def read_baseline(path: Path | None) -> dict[str, dict]:
    """Figures by entry id; empty when there is no baseline yet."""
    if path is None or not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TvmqError(f"{path}: not a readable baseline ({error})") from error
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        raise TvmqError(f"{path}: not a {BASELINE_FORMAT} file")
    entries = document.get("entries")
    if not isinstance(entries, dict) or not all(
        isinstance(f, dict)
        and all(k in HIGHER_IS_BETTER and isinstance(v, int | float) for k, v in f.items())
        for f in entries.values()
    ):
        raise TvmqError(f"{path}: 'entries' must map entry ids to figures")
    return entries


def write_baseline(path: Path, matrix: Matrix, outcomes: list[Outcome], old: dict) -> None:
    """The figures of every entry measured; the matrix's other entries (skipped, failed
    or not run) keep their old figures, and entries no longer in the matrix go."""
    measured = {o.entry.id: o.figures for o in outcomes if o.status == "measured"}
    entries = {
        e.id: measured.get(e.id, old.get(e.id))
        for e in matrix.entries
        if e.id in measured or e.id in old
    }
    document = {
        "format": BASELINE_FORMAT,
        "matrix": matrix.path.name,
        "entries": dict(sorted(entries.items())),
    }
    text = json.dumps(document, indent=2) + "\n"
    write_atomically(path, lambda f: f.write(text.encode()))
