"""``imitation-fn tune``: a 2-trial ASHA search on a local Ray, its best.json and run directories; help and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from imitation_fn import analysis, stats
from imitation_fn.algorithms import bc
from imitation_fn.cli import main
from imitation_fn.cli.common import console
from imitation_fn.train import sweep, tune
from imitation_fn.train.logger import read_metrics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "tune"
# 2 trials × 2 seeds, 20 gradient steps each, evaluated every 2 (the default: 10 evaluations per trial).
TINY = """\
algorithm: bc
env: CartPole-v1
n_demos: 2
seeds: 2
config: {batch_size: 64}
grid: {lr: [0.001, 0.01]}
train: {n_batches: 20}
n_eval_episodes: 2
scheduler: asha
asha: {reduction_factor: 2}
"""


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The search run through the command in this process: it starts a local Ray and shuts it down."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    assert not ray.is_initialized()
    root = tmp_path_factory.mktemp("tune")
    (root / "bc.yaml").write_text(TINY)
    with console.capture() as captured:
        code = main(["tune", str(root / "bc.yaml"), "--out", str(root / "out")])
    assert code == 0, captured.get()
    assert not ray.is_initialized()  # the Ray it started is shut down
    return root / "out", captured.get()


def reports(out: Path, trial: str) -> list[dict]:
    """What a trial reported to Tune, in order (Ray's result.json: one JSON object per report)."""
    return [json.loads(line) for line in (out / tune.RAY_DIR / trial / "result.json").read_text().splitlines()]


def eval_rows(run_dir: Path) -> dict[int, dict[int, list[float]]]:
    """``{step: {seed: evaluation returns}}`` from a run directory's metrics.jsonl."""
    rows: dict[int, dict[int, list[float]]] = {}
    for r in read_metrics(run_dir / "metrics.jsonl"):
        if r["kind"] == "eval":
            rows.setdefault(r["step"], {})[r["seed"]] = r["returns"]
    return rows


def test_search_writes_best_json_with_the_best_complete_trial(search):
    out, text = search
    trials = sorted(p.name for p in (out / tune.TRIALS).iterdir())
    assert len(trials) == 2 and all(t.startswith("bc_") for t in trials)
    best = json.loads((out / tune.BEST).read_text())
    assert set(best) >= {"config", "params", "score", "metric", "run_dir"} and best["metric"] == "return_mean"
    assert best["params"]["lr"] in (0.001, 0.01)
    assert best["config"] == json.loads(bc.Config(batch_size=64, lr=best["params"]["lr"]).to_json())
    assert Path(best["run_dir"]) == out / tune.TRIALS / best["trial"]
    last = {t: reports(out, t)[-1] for t in trials}
    complete = {t: r["return_mean"] for t, r in last.items() if r["complete"]}
    assert complete, "ASHA keeps at least one trial to the end of its budget"
    assert all(r["progress"] == 20 for r in last.values() if r["complete"])
    assert best["score"] == max(complete.values()) and last[best["trial"]]["return_mean"] == best["score"]
    assert "2 trial(s) × 2 seeds" in text and best["trial"] in text


def test_scores_are_the_seed_mean_of_the_evaluation_returns(search):
    out, _ = search
    for trial in sorted(p.name for p in (out / tune.TRIALS).iterdir()):
        rows = eval_rows(out / tune.TRIALS / trial)
        reported = reports(out, trial)
        # A report after each evaluation; a trial ASHA stopped wrote nothing after its last report.
        assert [r["progress"] for r in reported] == sorted(rows)
        if reported[-1]["complete"]:
            assert [r["progress"] for r in reported] == list(range(2, 21, 2))
        for r in reported:
            per_seed = [sum(v) / len(v) for v in rows[r["progress"]].values()]
            assert len(per_seed) == 2
            assert r["return_mean"] == pytest.approx(sum(per_seed) / len(per_seed), rel=1e-9)
            assert r["return_iqm"] == pytest.approx(float(stats.iqm(torch.tensor(per_seed))), rel=1e-6)


def test_each_trial_is_a_run_directory_that_analysis_reads(search):
    out, _ = search
    trials = sorted((out / tune.TRIALS).iterdir())
    labels = set()
    for run_dir in trials:
        records = analysis.load_runs([run_dir])
        assert sorted(r.seed for r in records) == [0, 1]
        params = json.loads((run_dir / tune.PARAMS).read_text())
        # Labelled by its searched values, as a sweep point is, so analyze keeps trials apart.
        assert {(r.algorithm, r.env) for r in records} == {(sweep.label("bc", params), "CartPole-v1")}
        labels.add(records[0].algorithm)
        last = eval_rows(run_dir)
        final = last[max(last)]
        assert [r.final_return for r in records] == pytest.approx([sum(final[s]) / len(final[s]) for s in (0, 1)])
    assert len(labels) == len(trials)
    assert len(analysis.load_runs([out])) == 4  # the output directory as a whole: every trial's seeds


def test_dry_run_prints_the_search_space_and_trains_nothing(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(TINY + "random: {l2_weight: {loguniform: [0.000001, 0.01]}}\nn_samples: 3\n")
    assert main(["tune", str(f), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "6 trial(s) × 2 seeds" in text and "budget 20 gradient steps, evaluated every 2" in text
    assert "lr │ grid_search │ 0.001, 0.01" in text and "l2_weight │ loguniform │ [1e-06, 0.01]" in text
    assert not (tmp_path / "out").exists()


def test_param_space_maps_grid_and_distributions_to_tune():
    ray_tune = pytest.importorskip("ray.tune")
    spec = tune.TuneSpec(
        algorithm="bc",
        grid={"batch_size": [32, 64]},
        random={
            "lr": {"loguniform": [1e-4, 1e-2]},
            "ent_weight": {"uniform": [0, 0.1]},
            "activation": {"choice": ["tanh", "relu"]},
        },
    )
    space = tune.param_space(spec)
    assert space["batch_size"] == ray_tune.grid_search([32, 64])
    assert (space["lr"].lower, space["lr"].upper) == (1e-4, 1e-2) and "LogUniform" in type(space["lr"].sampler).__name__
    assert (space["ent_weight"].lower, space["ent_weight"].upper) == (0, 0.1)
    assert space["activation"].categories == ["tanh", "relu"]


@pytest.mark.parametrize("name", ["bc", "gail", "preference_comparisons"])
def test_example_files_are_valid_searches(name):
    spec = tune.TuneSpec.from_file(EXAMPLES / f"{name}.yaml")
    assert spec.algorithm == name and spec.n_trials >= 4
    plan = tune.check(spec)  # every searched value is a valid config; the demonstrations load
    assert plan.budget // plan.eval_every >= 4  # several evaluations: points where ASHA can stop a trial


def test_spec_refuses_what_a_search_cannot_do():
    with pytest.raises(ValueError, match="chunk_size"):
        tune.TuneSpec(algorithm="bc", chunk_size=4)
    with pytest.raises(ValueError, match="scheduler: asha"):
        tune.TuneSpec(algorithm="bc", asha={"grace_period": 5})
    with pytest.raises(ValueError, match="unknown train keys"):
        tune.check(tune.TuneSpec(algorithm="bc", train={"n_batchs": 3}))


def test_console_script_help_and_errors_without_ray_and_bad_files(tmp_path):
    """Through the installed ``imitation-fn``, with ``ray`` made unimportable: help works, a search says how to
    install Ray, and bad files are one message each, exit status 2, no traceback."""
    hidden = tmp_path / "no_ray"
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray' (hidden by the test)\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))}
    (tmp_path / "good.yaml").write_text(TINY)
    (tmp_path / "broken.yaml").write_text("algorithm: bc\ngrid: {lr: [0.001\n")
    (tmp_path / "wrong.yaml").write_text("algorithm: bc\nscheduler: hyperband\ngrid: {lr: [-1.0]}\n")
    exe = Path(sys.executable).with_name("imitation-fn")
    commands = {
        "help": ["tune", "--help"],
        "no ray": ["tune", str(tmp_path / "good.yaml"), "--out", str(tmp_path / "out")],
        "broken": ["tune", str(tmp_path / "broken.yaml")],
        "wrong": ["tune", str(tmp_path / "wrong.yaml")],
    }
    procs = {
        k: subprocess.Popen(
            [str(exe), *argv], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for k, argv in commands.items()
    }
    done = {k: (p.communicate(timeout=120)[0], p.returncode) for k, p in procs.items()}
    text, code = done["help"]
    assert code == 0 and "usage: imitation-fn tune" in text, text
    for option in ("--out", "--num-samples", "--max-concurrent", "--address", "--dry-run", "examples/tune/"):
        assert option in text
    for key, expected in (
        ("no ray", "tune needs Ray: pip install 'imitation-fn[ray]'"),
        ("broken", "broken.yaml is not valid YAML (line 3"),
        ("wrong", "scheduler: Input should be 'fifo' or 'asha'"),
    ):
        text, code = done[key]
        assert code == 2 and expected in " ".join(text.split()) and "Traceback" not in text, text
