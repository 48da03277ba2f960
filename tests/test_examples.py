"""Every tutorial under examples/ runs end to end on its --tiny budget (in this process: imports are shared)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
LAST_WORDS = {  # what each example prints once it has trained and evaluated
    "train_bc.py": "mean over seeds",
    "train_dagger.py": "final return per seed",
    "train_adversarial.py": "done: GAIL and AIRL trained",
    "train_mce_irl.py": "learned-policy return per seed",
    "train_density.py": "true return of the learned policies",
    "train_preference_comparisons.py": "true return of the agents",
    "train_rl.py": "SAC on Pendulum-v1: returns per seed",
    "reward_nets.py": "true return of PPO trained on the learned reward",
    "custom_env.py": "BC on Corridor, return per seed",
    "compare_algorithms.py": "dagger significantly better than bc",
}
SLOW = {"train_preference_comparisons.py", "compare_algorithms.py", "train_adversarial.py"}  # ~10 s each on 2 cores


def test_every_algorithm_and_topic_has_an_example():
    assert set(SCRIPTS) == set(LAST_WORDS)


@pytest.mark.parametrize("script", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in SCRIPTS])
def test_example_runs_on_a_tiny_budget(script, monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, "--tiny", "--out", str(tmp_path / "out")])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    assert LAST_WORDS[script] in out
    assert "nan" not in out.lower()
