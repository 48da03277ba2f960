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


def test_resume_keeps_the_rows_an_interrupted_run_finished(monkeypatch, tmp_path, capsys):
    argv = [str(SCRIPT), "--quick", "--only", "mce_irl", "--seeds", "2", "--eval-episodes", "2", "--out", str(tmp_path)]
    (tmp_path / "results").mkdir()
    kept = {"budget": "kept", "wall_s": 1.0, "returns": [1.0, 2.0], "references": [0.0, 3.0]}
    partial = {
        "seeds": 2,
        "eval_episodes": 2,
        "quick": True,
        "rows": [{"env": "CliffWorld-7x4", "algorithm": "mce_irl", **kept}],
    }
    (tmp_path / "results" / "table_partial.json").write_text(json.dumps(partial))
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "kept from the interrupted run" in capsys.readouterr().out
    rows = {r["env"]: r for r in json.loads((tmp_path / "results" / "table.json").read_text())["rows"]}
    assert rows["CliffWorld-7x4"]["returns"] == [1.0, 2.0]  # not run again
    assert rows["RandomMDP-16x3"]["budget"] != "kept"  # run: the interrupted run had not reached it
    assert not (tmp_path / "results" / "table_partial.json").exists()  # a finished table leaves no partial file


def test_unknown_algorithm_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--only", "gial"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "unknown algorithm" in capsys.readouterr().err
