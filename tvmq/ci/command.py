"""``tvmq ci run`` and ``tvmq ci update-baseline``.

Exit status: 0 when every entry passed (or was skipped because its model or
data is absent), 1 when any failed a check or its board failed, 2 (through
TvmqError) for a mistake in the matrix or the options, found before anything
runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tvmq.ci.checks import judge, read_baseline, write_baseline
from tvmq.ci.matrix import Matrix, load_matrix, select
from tvmq.ci.report import FILES, message, write_reports
from tvmq.ci.runner import Outcome, Runner
from tvmq.errors import TvmqError

if TYPE_CHECKING:
    from tvmq.backend.aot import Scheduler
    from tvmq.targets import Target


def _baseline_path(matrix: Matrix, option: Path | None) -> Path | None:
    return option if option is not None else matrix.baseline


def default_jobs() -> int:
    return os.cpu_count() or 1


def run(
    matrix_path: Path,
    baseline: Path | None = None,
    report: Path | None = None,
    jobs: int = 0,
    only: list[str] | None = None,
    schedules: Callable[[Target], Scheduler] | None = None,
) -> int:
    matrix = select(load_matrix(matrix_path), only or [])
    baseline_path = _baseline_path(matrix, baseline)
    if baseline is not None and not baseline.is_file():
        raise TvmqError(f"{baseline}: no such baseline file")
    past = read_baseline(baseline_path)
    where = f"baseline {baseline_path}" if past else "no baseline"
    boards = len({e.board.name for e in matrix.entries})
    print(f"{len(matrix.entries)} entries on {boards} boards, {where}", flush=True)
    outcomes = Runner(matrix, jobs or default_jobs(), _progress, schedules).run()
    verdicts = judge(matrix, outcomes, past)
    print()
    for verdict in verdicts:
        line = f"{verdict.status.upper():8} {verdict.outcome.entry.id}"
        if verdict.status != "passed":
            line += f": {message(verdict)}"
        print(line)
    if report is not None:
        write_reports(report, verdicts, past)
        print(f"wrote {report}/: {', '.join(FILES)}")
    bad = [v for v in verdicts if v.status in ("failed", "error")]
    print(f"{len(verdicts) - len(bad)} of {len(verdicts)} entries passed or skipped")
    return 1 if bad else 0


def update_baseline(
    matrix_path: Path,
    baseline: Path | None = None,
    jobs: int = 0,
    source: Path | None = None,
    only: list[str] | None = None,
    schedules: Callable[[Target], Scheduler] | None = None,
) -> int:
    """Write the entries' figures as the new baseline, deliberately: measured now,
    or (``source``) taken from the report directory of an earlier ``ci run``.

    Budgets are not applied (they stay in the matrix and are checked by ``run``).
    The entries measured are written even when others failed, so that one broken
    board does not hold back the rest; the failed ones keep their old figures, are
    named, and make the exit status 1. Entries left out by ``only`` keep theirs.
    """
    full = load_matrix(matrix_path)
    matrix = select(full, only or [])
    path = _baseline_path(matrix, baseline)
    if path is None:
        raise TvmqError(f"{matrix_path}: no 'baseline' key in the matrix: give --baseline FILE")
    old = read_baseline(path)
    if source is not None:
        outcomes = read_outcomes(source / "results.json", matrix)
    else:
        outcomes = Runner(matrix, jobs or default_jobs(), _progress, schedules).run()
    write_baseline(path, full, outcomes, old)
    measured = sum(o.status == "measured" for o in outcomes)
    failed = [o for o in outcomes if o.status == "error"]
    for outcome in failed:
        print(f"ERROR    {outcome.entry.id}: {outcome.reason}")
    skipped = len(outcomes) - measured - len(failed)
    print(
        f"wrote {path}: {measured} of {len(full.entries)} entries measured, the others keep "
        f"their figures ({len(failed)} failed, {skipped} skipped)"
    )
    return 1 if failed else 0


def read_outcomes(path: Path, matrix: Matrix) -> list[Outcome]:
    """The outcomes an earlier run recorded in its results.json, for this matrix's entries."""
    try:
        recorded = json.loads(path.read_text())["entries"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise TvmqError(f"{path}: not the results.json of a tvmq ci report ({error})") from error
    outcomes = []
    for entry in matrix.entries:
        if entry.id not in recorded:
            raise TvmqError(f"{path}: has no results for {entry.id}: run the matrix again")
        result = recorded[entry.id]
        status = "measured" if result["figures"] else result["status"]
        outcomes.append(Outcome(entry, status, result["figures"], reason=result["reason"]))
    return outcomes


def _progress(line: str) -> None:
    print(line, flush=True)
