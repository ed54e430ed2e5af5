"""The README's figures table is the one bench/figures.py generates from bench/results/*.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import figures

ROOT = Path(__file__).resolve().parents[1]


def test_readme_figures_match_results():
    """`python -m bench.figures --check` passes on the committed README and JSON."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.figures", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_when_a_figure_drifts(tmp_path, monkeypatch):
    """A changed JSON figure makes the block differ from the README: the check would fail."""
    entries = json.loads((figures.RESULTS / "mcu_cost.json").read_text())
    entries[0]["instructions"] += 1
    results = tmp_path / "results"
    results.mkdir()
    for path in figures.RESULTS.glob("*.json"):
        (results / path.name).write_text(path.read_text())
    (results / "mcu_cost.json").write_text(json.dumps(entries))
    monkeypatch.setattr(figures, "RESULTS", results)
    readme = figures.README.read_text()
    assert figures.replace_block(readme, figures.figures_block()) != readme
    assert f"{entries[0]['instructions']:,}" in figures.figures_block()


def test_every_json_figure_in_the_table_is_there():
    """Each board row shows the instructions and flash mcu_cost.json holds, and none is invented."""
    block = figures.figures_block()
    entries = json.loads((figures.RESULTS / "mcu_cost.json").read_text())
    rows = [line for line in block.splitlines() if line.startswith("| ") and "cortex-m" in line]
    assert len(rows) == len(entries)
    for entry, row in zip(entries, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2] == f"{entry['instructions']:,}"
        assert cells[5] == f"{entry['flash']:,}"
