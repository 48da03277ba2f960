"""Analysis: run directories and sweeps → statistics that match imitation_fn.stats, tables in three formats, curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from imitation_fn import analysis, stats
from imitation_fn.core import serialization
from imitation_fn.train import sweep
from imitation_fn.train.logger import MetricsWriter

BC = [100.0, 120.0, 90.0, 200.0, 110.0, 95.0]
DAGGER = [300.0, 280.0, 500.0, 150.0, 310.0, 290.0]


def fake_run(d: Path, algorithm: str, finals: list[float], steps=(10, 20)) -> None:
    """A run directory as the drivers write it: metrics.jsonl eval rows and a checkpoint naming the algorithm."""
    seeds = list(range(len(finals)))
    w = MetricsWriter(d / "metrics.jsonl", seeds)
    final = torch.tensor(finals)
    for k, step in enumerate(steps):
        frac = (k + 1) / len(steps)
        returns = torch.stack([final * frac, final * frac], -1)  # (n_seeds, 2 episodes)
        w.write(step, "train", {"loss": torch.zeros(len(seeds))})
        w.write(step, "eval", {"return_mean": returns.mean(-1), "returns": returns})
    meta = {"step": steps[-1], "seeds": seeds, "algorithm": algorithm}
    serialization.save(d / "checkpoint.safetensors", {"x": torch.zeros(len(seeds))}, meta)


def test_records_and_statistics_match_the_stats_module(tmp_path):
    fake_run(tmp_path / "runs" / "bc", "bc", BC)
    fake_run(tmp_path / "runs" / "dagger", "dagger", DAGGER)
    records = analysis.load_runs([tmp_path / "runs"], env="CartPole-v1")  # a folder of run directories
    assert sorted({r.algorithm for r in records}) == ["bc", "dagger"] and len(records) == 12
    r0 = next(r for r in records if r.algorithm == "bc" and r.seed == 3)
    assert r0.final_return == 200.0 and r0.steps == [10, 20] and r0.returns == [100.0, 200.0]

    refs = {"CartPole-v1": (20.0, 500.0)}
    rows = analysis.summarize(records, baseline="bc", references=refs)
    assert [r.algorithm for r in rows] == ["dagger", "bc"]  # best mean first
    dag, bc = rows
    x, y = torch.tensor(DAGGER, dtype=torch.float64), torch.tensor(BC, dtype=torch.float64)
    assert dag.mean == pytest.approx(float(x.mean())) and dag.std == pytest.approx(float(x.std(correction=0)))
    assert dag.iqm.estimate == pytest.approx(float(stats.iqm(x)))
    assert dag.worst == float(x.min()) and bc.worst == float(y.min())  # the lowest seed's final return
    assert dag.iqm.low <= dag.iqm.estimate <= dag.iqm.high and dag.iqm.low < dag.iqm.high
    assert dag.normalized == pytest.approx(float(((x - 20) / 480).mean()))
    assert dag.prob_improvement == pytest.approx(float(stats.probability_of_improvement(x, y)))
    assert dag.p_value == pytest.approx(stats.permutation_test(x, y, alternative="greater").pvalue)
    assert dag.p_value < 0.01 and dag.baseline == "bc"  # 6 vs 6 clearly separated: exact test, tiny p
    assert bc.baseline is None and bc.p_value is None and bc.prob_improvement is None
    # no baseline: no comparisons; no references: no normalised return
    plain = analysis.summarize(records, references={})
    assert all(r.p_value is None and r.normalized is None for r in plain)


def test_tables_in_markdown_csv_and_latex(tmp_path):
    fake_run(tmp_path / "a", "bc", BC)
    fake_run(tmp_path / "b", "dagger", DAGGER)
    rows = analysis.summarize(
        analysis.load_runs([tmp_path / "a", tmp_path / "b"], env="seals/CartPole_x"), baseline="bc", references={}
    )
    paths = analysis.write_tables(rows, tmp_path / "out")
    md = paths["markdown"].read_text().splitlines()
    assert md[0].startswith("| env | algorithm | n | mean |") and len(md) == 4
    assert "| seals/CartPole_x | dagger | 6 |" in md[2]
    with paths["csv"].open() as f:
        table = list(csv.DictReader(f))
    assert float(table[0]["mean"]) == pytest.approx(rows[0].mean) and table[0]["baseline"] == "bc"
    assert float(table[0]["p_value"]) == pytest.approx(rows[0].p_value) and table[1]["p_value"] == ""
    tex = paths["latex"].read_text()
    assert tex.startswith(r"\begin{tabular}") and r"seals/CartPole\_x" in tex and r"95\% CI" in tex
    assert tex.count(r"\\") == 3  # header + 2 rows


def test_reference_returns_come_from_the_zoo_and_a_random_policy():
    rnd, expert = analysis.reference_returns("CartPole-v1")
    assert expert == 500.0
    assert 10 < rnd < 40  # a uniformly random CartPole policy lasts ~22 steps
    assert analysis.reference_returns("Pendulum-v1")[1] < -100  # the shipped expert's summary
    assert analysis.reference_returns("seals/HalfCheetah-v1") is None  # no expert shipped


def test_missing_runs_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run directories"):
        analysis.load_runs([tmp_path])


def test_bar_analyze_on_a_sweep_prints_the_table_and_writes_the_plot(tmp_path, monkeypatch, capsys):
    import imitation_fn.cli as cli

    spec = sweep.SweepSpec(
        algorithm="bc",
        config={"batch_size": 64},
        grid={"lr": [1e-3, 1e-2], "l2_weight": [0.0, 1e-2]},
        seeds=3,
        train={"n_batches": 20, "eval_every": 10},
        n_demos=2,
        n_eval_episodes=2,
    )
    result = sweep.run_sweep(spec, tmp_path / "sw")
    records = analysis.load_runs([tmp_path / "sw"])
    assert len(records) == 12 and {r.env for r in records} == {"CartPole-v1"}
    assert {r.seed for r in records} == {0, 1, 2}  # the user's seeds, not the driver's run seeds
    labels = sorted({r.algorithm for r in records})
    assert labels == ["bc[lr=0.001, l2_weight=0.01]", "bc[lr=0.001, l2_weight=0]", "bc[lr=0.01, l2_weight=0.01]",
                      "bc[lr=0.01, l2_weight=0]"]  # fmt: skip
    by_run = {(r.algorithm, r.seed): r.final_return for r in records}
    for run, returns in zip(result.runs, result.eval_returns, strict=True):
        assert by_run[(sweep.label("bc", run.params), run.seed)] == pytest.approx(float(returns.mean()))
    assert all(r.steps == [10, 20] for r in records)

    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "analyze") if "analyze" not in cli.COMMANDS else cli.COMMANDS)
    monkeypatch.setattr("imitation_fn.cli.common.console.width", 200)
    out = tmp_path / "analysis"
    assert (
        cli.main(["analyze", str(tmp_path / "sw"), "--out", str(out), "--baseline", "bc[lr=0.001, l2_weight=0]"]) == 0
    )
    text = capsys.readouterr().out
    assert "bc[lr=0.01, l2_weight=0.01]" in text and "IQM [95% CI]" in text and "normalised" not in text
    assert {p.name for p in out.iterdir()} == {"table.md", "table.csv", "table.tex", "curves.png"}
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with (out / "table.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and sum(r["p_value"] != "" for r in rows) == 3  # every point against the baseline
    assert all(0 <= float(r["normalized"]) <= 1.5 for r in rows)  # CartPole: random ~22 → 0, expert 500 → 1
    assert cli.main(["analyze", str(tmp_path / "nothing")]) == 2
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["algorithm"] == "bc"


def test_a_run_records_its_environment_so_analyze_needs_no_env_flag(tmp_path):
    from imitation_fn import envs
    from imitation_fn.algorithms import bc
    from imitation_fn.data import Transitions
    from imitation_fn.train import train

    n = 64
    zeros = torch.zeros(n, 4)
    data = Transitions(obs=zeros, acts=torch.zeros(n, dtype=torch.int64), next_obs=zeros, dones=torch.zeros(n) > 0)
    env = envs.make("CartPole-v1", n_envs=2)
    kwargs = {"seeds": [0, 1], "n_batches": 2, "progress": False}
    train(bc, bc.Config(batch_size=32), data, env, log_dir=tmp_path / "named", env_id="CartPole-v1", **kwargs)
    train(bc, bc.Config(batch_size=32), data, env, log_dir=tmp_path / "unnamed", **kwargs)
    records = analysis.load_runs([tmp_path], env="fallback")
    envs_of = {(Path(r.source).name, r.env) for r in records}
    assert envs_of == {("named", "CartPole-v1"), ("unnamed", "fallback")}
