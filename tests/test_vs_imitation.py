"""benchmarks/vs_imitation/ (imitation_fn side by side with imitation 1.0.1) without the peer installed.

Both sides are given the same settings (``configs.py``); each side's own arguments — our ``Config`` objects,
the keyword arguments ``peer.py`` passes to ``imitation`` and SB3 — must read back to exactly those settings,
for every algorithm, full and ``--quick``. Then ``run.py`` measures one cheap algorithm on our side only.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_imitation"
sys.path.insert(0, str(HERE))

import configs  # noqa: E402
import ours  # noqa: E402
import peer  # noqa: E402


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("algo", list(configs.ALGOS))
def test_both_sides_are_given_the_same_settings(algo: str, quick: bool) -> None:
    s = configs.spec(algo, quick=quick)
    assert ours.describe(algo, ours.build(algo, s), s) == s
    assert peer.describe(algo, peer.settings(algo, s)) == s


def test_quick_budgets_are_smaller_and_the_spec_is_a_copy() -> None:
    for algo in configs.ALGOS:
        full, quick = configs.spec(algo), configs.spec(algo, quick=True)
        assert quick != full
        for key in ("total_timesteps", "n_epochs", "max_iter", "n_demos"):
            if key in full:
                assert quick[key] <= full[key], (algo, key)
    s = configs.spec("gail")
    s["ppo"]["n_steps"] = 1
    assert configs.ALGOS["gail"]["ppo"]["n_steps"] == 256


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_the_peer_side_imports_nothing_of_ours() -> None:
    for name in ("peer.py", "configs.py"):
        assert not any(m.split(".")[0] == "imitation_fn" for m in _imports(HERE / name)), name
    # configs.py is read inside the peer's venv too: the standard library only.
    assert _imports(HERE / "configs.py") <= {"__future__", "copy", "typing"}


def test_run_help_and_unknown_algorithm() -> None:
    done = subprocess.run([sys.executable, str(HERE / "run.py"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--quick" in done.stdout and "--peer-venv" in done.stdout
    bad = subprocess.run([sys.executable, str(HERE / "run.py"), "--only", "gial"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown algorithm" in bad.stderr


def test_run_measures_ours_and_writes_the_record(tmp_path: Path) -> None:
    out = tmp_path / "vs.json"
    cmd = [sys.executable, str(HERE / "run.py"), "--quick", "--no-peer", "--only", "mce_irl", "--seeds", "2"]
    done = subprocess.run([*cmd, "--out", str(out), "--work", str(tmp_path / "work")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    record: dict[str, Any] = json.loads(out.read_text())["mce_irl"]
    assert record["ours_s"] > 0 and record["ours_2_s"] > 0
    # Seed 0 alone and beside seed 1: the same run up to float32 rounding, which Adam turns into small differences
    # in MCE IRL (mce_irl.Config.dtype).
    assert len(record["ours_returns"]) == 2
    assert record["ours_return_1"] == pytest.approx(record["ours_returns"][0], rel=0.05)
    assert record["peer_s"] is None and record["ratio_1"] is None and record["incomplete"]
    assert record["config"]["settings"] == configs.spec("mce_irl", quick=True)
    assert record["config"]["ours"]["max_iter"] == configs.QUICK["mce_irl"]["max_iter"]
    assert "mce_irl" in done.stdout  # the table
    run = json.loads((tmp_path / "work" / "runs" / "quick" / "mce_irl" / "ours_2.json").read_text())
    assert run["seeds"] == [0, 1] and run["train_s"] > 0 and run["iterations"] == 20
