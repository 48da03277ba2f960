"""benchmarks/table.py (the library's benchmark table) runs end to end on its --quick budget and writes the table."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "table.py"


def test_quick_table_writes_markdown_and_every_seed(monkeypatch, tmp_path, capsys):
    argv = [str(SCRIPT), "--quick", "--only", "bc", "mce_irl", "--seeds", "3", "--eval-episodes", "2"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "TABLE.md" in capsys.readouterr().out

    table = (tmp_path / "TABLE.md").read_text()
    assert table.startswith("# Benchmark table")
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| env")]
    assert sorted((r.split(" | ")[0][2:], r.split(" | ")[1]) for r in rows) == [
        ("CliffWorld-7x4", "mce_irl"),
        ("Pendulum-v1", "bc"),
        ("RandomMDP-16x3", "mce_irl"),
        ("seals/CartPole-v0", "bc"),
    ]
    detail = json.loads((tmp_path / "results" / "table.json").read_text())
    assert {len(r["returns"]) for r in detail["rows"]} == {3}
    # MCE IRL rows carry exact references: the expert's return normalises to 1, a uniform policy's to 0.
    random_return, expert_return = detail["references"]["CliffWorld-7x4"]
    assert random_return < expert_return


def test_unknown_algorithm_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--only", "gial"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "unknown algorithm" in capsys.readouterr().err
