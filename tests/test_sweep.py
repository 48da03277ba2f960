"""Sweeps: tensor fields share one vmapped training, structural ones split it; chunks resume; Ray agrees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import tree
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.policies import zoo
from imitation_fn.train import sweep, train

BASE = {"batch_size": 64}
TRAIN = {"n_batches": 30}


def spec_for(**kw) -> sweep.SweepSpec:
    values = {
        "algorithm": "bc",
        "config": BASE,
        "grid": {"lr": [1e-3, 1e-2], "l2_weight": [0.0, 1e-2]},
        "seeds": 2,
        "train": TRAIN,
        "n_demos": 2,
        "n_eval_episodes": 2,
    }
    values.update(kw)
    return sweep.SweepSpec(**values)


def test_points_grid_product_and_random_search_draws():
    spec = spec_for(grid={"lr": [1e-3, 1e-2], "ent_weight": [0.0, 1e-3, 1e-2]})
    pts = sweep.points(spec)
    assert len(pts) == 6 and {p["lr"] for p in pts} == {1e-3, 1e-2} and len({json.dumps(p) for p in pts}) == 6
    rnd = spec_for(grid={}, random={"lr": {"loguniform": [1e-4, 1e-2]}, "activation": {"choice": ["tanh", "relu"]}})
    rnd = rnd.model_copy(update={"n_samples": 20})
    draws = sweep.points(rnd)
    assert len(draws) == 20 and draws == sweep.points(rnd)  # reproducible from sample_seed
    assert all(1e-4 <= p["lr"] <= 1e-2 for p in draws) and {p["activation"] for p in draws} == {"tanh", "relu"}
    assert draws != sweep.points(rnd.model_copy(update={"sample_seed": 1}))


def test_spec_rejects_bad_input():
    with pytest.raises(ValueError, match="exactly one of"):
        sweep.Distribution(uniform=(0, 1), choice=[1])
    with pytest.raises(ValueError, match="both grid and random"):
        spec_for(random={"lr": {"uniform": [0.1, 0.2]}})
    with pytest.raises(ValueError, match="seed_stride"):
        spec_for(seeds=[0, 1000])
    with pytest.raises(ValueError, match="unknown train keys"):
        sweep.plan(spec_for(train={"n_batchs": 3}))
    with pytest.raises(ValueError, match="lr"):  # every point is validated by bc.Config before training
        sweep.plan(spec_for(grid={"lr": [1e-3, -1.0]}))


def test_fields_are_classified_by_their_effect_on_the_state():
    spec = spec_for(
        grid={
            "lr": [1e-3, 1e-2],
            "ent_weight": [0.0, 0.1],
            "l2_weight": [0.0, 0.1],
            "batch_size": [32, 64],
            "net_arch": [[8], [16]],
            "activation": ["tanh", "relu"],
        }
    )
    ctx = sweep.context(spec)
    kinds = sweep.classify_fields(
        ctx.init_one, lambda p: bc.Config(**{**BASE, **p}), {k: v for k, v in spec.grid.items()}
    )
    assert kinds == {
        "lr": True,  # inject_hyperparams: a 0-d tensor in the optimiser state
        "ent_weight": True,
        "l2_weight": True,
        "batch_size": False,  # read by the driver, invisible in the state
        "net_arch": False,  # shapes
        "activation": False,  # a static field
    }


def test_plan_vmaps_tensor_fields_and_groups_structural_ones():
    one = sweep.plan(spec_for())
    assert one.tensor_fields == ["lr", "l2_weight"] and one.chunks == [list(range(8))]
    grouped = sweep.plan(spec_for(grid={"lr": [1e-3, 1e-2], "net_arch": [[8], [16]]}, chunk_size=3))
    assert grouped.structural_fields == ["net_arch"]
    # two structural groups of 4 runs, each cut into chunks of ≤ 3; no chunk mixes network sizes
    assert [len(c) for c in grouped.chunks] == [3, 1, 3, 1]
    for c in grouped.chunks:
        assert len({tuple(grouped.runs[i].params["net_arch"]) for i in c}) == 1
    seeds = [(r.point, r.seed, r.run_seed) for r in grouped.runs]
    assert len({s[2] for s in seeds}) == len(seeds) and all(rs == s + 1000 * p for p, s, rs in seeds)


def test_each_run_equals_the_plain_driver_with_its_own_config(tmp_path):
    """The bar's core: a run inside the vmapped sweep is exactly train(bc, its config, seed=its run seed)."""
    spec = spec_for()
    result = sweep.run_sweep(spec, tmp_path / "sw")
    assert result.eval_returns.shape == (8, 2)
    data = flatten_trajectories(serialize.load(zoo.demos_path("CartPole-v1"))[:2])
    env = envs.make("CartPole-v1", n_envs=2)
    for i in (0, 7):  # (lr 1e-3, l2 0, seed 0) and (lr 1e-2, l2 1e-2, seed 1)
        run = result.runs[i]
        cfg = bc.Config(**{**BASE, **run.params})
        alone = train(bc, cfg, data, env, seeds=[run.run_seed], progress=False, **TRAIN)
        state = sweep.load_run_state(tmp_path / "sw", i)
        assert float(state.l2_weight) == pytest.approx(run.params["l2_weight"], rel=1e-6)
        assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(run.params["lr"], rel=1e-6)
        assert tree.allclose(state.params, tree.index(alone.states.params, 0), rtol=1e-5, atol=1e-6)
        assert torch.equal(result.eval_returns[i], alone.eval_returns[0])
    # the hyperparameters mattered: lr 1e-3 and 1e-2 of the same seed end in different parameters
    a, b = sweep.load_run_state(tmp_path / "sw", 0), sweep.load_run_state(tmp_path / "sw", 4)
    assert result.runs[0].seed == result.runs[4].seed and not tree.allclose(a.params, b.params)


def test_rl_runs_plug_in_the_same_way(tmp_path):
    """PPO through train_rl: lr / ent_coef are vmapped, n_steps groups; a run equals train_rl with its config."""
    from imitation_fn.rl import ppo
    from imitation_fn.train.rl import train_rl

    base = {"n_envs": 2, "n_steps": 16, "batch_size": 16, "n_epochs": 1}
    spec = sweep.SweepSpec(
        algorithm="ppo",
        config=base,
        grid={"lr": [1e-3, 1e-2], "ent_coef": [0.0, 0.1], "n_steps": [16, 8]},
        seeds=1,
        train={"total_timesteps": 64},
        n_eval_episodes=2,
    )
    result = sweep.run_sweep(spec, tmp_path / "sw")
    assert result.plan.tensor_fields == ["lr", "ent_coef"] and result.plan.structural_fields == ["n_steps"]
    assert len(result.plan.chunks) == 2
    run = result.runs[3]  # lr 1e-2, ent_coef 0.1, n_steps 16
    alone = train_rl(ppo, ppo.Config(**{**base, **run.params}), "CartPole-v1", seeds=[run.run_seed],
                     total_timesteps=64, n_eval_episodes=2, progress=False)  # fmt: skip
    state = sweep.load_run_state(tmp_path / "sw", 3)
    assert tree.allclose(state.params, tree.index(alone.states.params, 0), rtol=1e-5, atol=1e-6)
    assert torch.equal(result.eval_returns[3], alone.eval_returns[0])


def test_gail_runs_plug_in_the_same_way(tmp_path):
    """GAIL through train_adversarial: disc_lr is vmapped; grad_penalty 0 vs > 0 switches the penalty term on, so
    it groups; a run equals train_adversarial with its config and run seed."""
    from imitation_fn.algorithms import gail
    from imitation_fn.train.adversarial import train_adversarial

    base = {"gen": {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 1}, "demo_batch_size": 64}
    spec = sweep.SweepSpec(
        algorithm="gail",
        env="seals/CartPole-v0",
        config=base,
        grid={"disc_lr": [1e-3, 1e-2], "grad_penalty": [0.0, 1.0]},
        seeds=1,
        train={"total_timesteps": 128},
        n_demos=1,
        n_eval_episodes=2,
    )
    result = sweep.run_sweep(spec, tmp_path / "sw")
    assert result.plan.tensor_fields == ["disc_lr"] and result.plan.structural_fields == ["grad_penalty"]
    assert len(result.plan.chunks) == 2
    run = result.runs[3]  # disc_lr 1e-2, grad_penalty 1
    demos = serialize.load(zoo.demos_path("seals/CartPole-v0"))[:1]
    alone = train_adversarial(gail, gail.Config(**{**base, **run.params}), "seals/CartPole-v0", demos,
                              seeds=[run.run_seed], total_timesteps=128, n_eval_episodes=2, progress=False)  # fmt: skip
    state = sweep.load_run_state(tmp_path / "sw", 3)
    assert tree.allclose(state.disc_params, tree.index(alone.states.disc_params, 0), rtol=1e-5, atol=1e-6)
    assert torch.equal(result.eval_returns[3], alone.eval_returns[0])


class Killed(Exception):
    pass


def test_chunks_give_the_same_runs_and_a_killed_sweep_reruns_only_unfinished_chunks(tmp_path):
    whole = sweep.run_sweep(spec_for(), tmp_path / "whole")
    spec = spec_for(chunk_size=3)

    def kill_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Killed

    with pytest.raises(Killed):
        sweep.run_sweep(spec, tmp_path / "cut", on_chunk=kill_after_two)
    assert sweep.finished_chunks(tmp_path / "cut") == [0, 1]
    # a third chunk that died half-way (no checkpoint yet) must restart cleanly, not append to its metrics
    half = sweep.chunk_dir(tmp_path / "cut", 2)
    half.mkdir(parents=True)
    (half / "metrics.jsonl").write_text('{"step": 1, "seed": 0, "kind": "eval", "returns": [1.0]}\n')
    stamps = {c: (sweep.chunk_dir(tmp_path / "cut", c) / "result.json").stat().st_mtime_ns for c in (0, 1)}
    with pytest.raises(FileExistsError, match="resume"):
        sweep.run_sweep(spec, tmp_path / "cut")
    with pytest.raises(ValueError, match="differs"):
        sweep.run_sweep(spec_for(chunk_size=4), tmp_path / "cut", resume=True)
    resumed = sweep.run_sweep(spec, tmp_path / "cut", resume=True)
    for c in (0, 1):  # finished chunks were not run again
        assert (sweep.chunk_dir(tmp_path / "cut", c) / "result.json").stat().st_mtime_ns == stamps[c]
    assert sweep.finished_chunks(tmp_path / "cut") == [0, 1, 2]
    rows = [json.loads(x) for x in (half / "metrics.jsonl").read_text().splitlines()]
    assert all(r["seed"] != 0 or r["step"] != 1 for r in rows)
    assert [r.run_seed for r in resumed.runs] == [r.run_seed for r in whole.runs]
    assert torch.equal(resumed.eval_returns, whole.eval_returns)


def test_resume_from_a_mid_chunk_checkpoint_drops_metrics_logged_after_it(tmp_path):
    spec = spec_for(train={"n_batches": 20, "log_every": 5}, checkpoint_every=10)
    full = sweep.run_sweep(spec, tmp_path / "full")
    # Fake a kill after step 15: the checkpoint of step 10 survives, metrics went on to step 15.
    cut = tmp_path / "cut"
    sweep.run_sweep(spec.model_copy(update={"train": {"n_batches": 10, "log_every": 5}}), cut)
    d = sweep.chunk_dir(cut, 0)
    (d / "result.json").unlink()
    extra = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if json.loads(x)["step"] == 10]
    with (d / "metrics.jsonl").open("a") as f:
        for row in extra:
            f.write(json.dumps({**row, "step": 15}) + "\n")
    (cut / "sweep.json").write_text(spec.model_dump_json())
    resumed = sweep.run_sweep(spec, cut, resume=True)
    assert torch.equal(resumed.eval_returns, full.eval_returns)
    train_rows = lambda p: [  # noqa: E731
        (r["step"], r["seed"], r["loss"])
        for r in map(json.loads, (sweep.chunk_dir(p, 0) / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "train"
    ]
    resumed_rows, full_rows = train_rows(cut), train_rows(tmp_path / "full")
    assert [r[:2] for r in resumed_rows] == [r[:2] for r in full_rows]  # the same (step, seed) rows, in order
    assert [r[2] for r in resumed_rows] == pytest.approx([r[2] for r in full_rows])


def test_cli_sweep_falls_back_to_local_without_ray(tmp_path, monkeypatch, capsys):
    import imitation_fn.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "sweep") if "sweep" not in cli.COMMANDS else cli.COMMANDS)
    monkeypatch.setattr(sweep, "ray_available", lambda: False)
    f = tmp_path / "s.yaml"
    f.write_text(
        "algorithm: bc\nseeds: 2\nn_demos: 2\nn_eval_episodes: 2\nconfig: {batch_size: 64}\n"
        "grid: {lr: [0.001, 0.01]}\ntrain: {n_batches: 10}\n"
    )
    assert cli.main(["sweep", str(f), "--out", str(tmp_path / "o"), "--ray"]) == 0
    text = capsys.readouterr().out
    assert "Ray is not installed" in text and "4 runs in 1 vmapped chunk" in text and "bc[lr=0.001]" in text
    assert cli.main(["sweep", str(f), "--out", str(tmp_path / "o")]) == 2  # exists: asks for --resume
    assert "resume" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"algorithm": "bc", "grid": {"lr": [1e-3]}, "seeds": [5, 5]}))
    assert cli.main(["sweep", str(bad)]) == 2
    assert "seeds must be distinct" in capsys.readouterr().out


# --- Ray: one local instance for the module --------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_bar_two_hyperparameters_by_eight_seeds_local_vmapped_equals_ray_tasks(tmp_path, ray_local):
    """2 hyperparameters × 8 seeds: one vmapped job locally, 2 Ray tasks, identical per-run results."""
    grid = {"lr": [1e-3, 1e-2], "ent_weight": [0.0, 1e-2]}
    local = sweep.run_sweep(spec_for(grid=grid, seeds=8), tmp_path / "local")
    assert len(local.plan.chunks) == 1 and len(local.runs) == 32
    distributed = sweep.run_sweep(spec_for(grid=grid, seeds=8, chunk_size=16), tmp_path / "ray", use_ray=True)
    assert len(distributed.plan.chunks) == 2
    pids = {json.loads((sweep.chunk_dir(tmp_path / "ray", c) / "result.json").read_text())["pid"] for c in (0, 1)}
    assert os.getpid() not in pids  # ran in Ray workers, not here
    assert [(r.point, r.seed) for r in local.runs] == [(r.point, r.seed) for r in distributed.runs]
    torch.testing.assert_close(local.eval_returns, distributed.eval_returns, rtol=0, atol=0)
    for i in (0, 17, 31):
        a, b = sweep.load_run_state(tmp_path / "local", i), sweep.load_run_state(tmp_path / "ray", i)
        assert tree.allclose(a.params, b.params, rtol=1e-5, atol=1e-6)


def test_the_example_sweep_file_is_one_vmapped_group_in_two_chunks():
    spec = sweep.SweepSpec.from_file(Path(__file__).resolve().parents[1] / "examples" / "sweeps" / "bc.yaml")
    p = sweep.plan(spec)
    assert len(p.runs) == 32 and [len(c) for c in p.chunks] == [16, 16] and p.structural_fields == []


def test_cli_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    from imitation_fn.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(
        "algorithm: bc\nenv: CartPole-v1\nseeds: 3\ngrid: {lr: [0.001, 0.01], net_arch: [[16], [32]]}\n"
        "train: {n_batches: 5}\n"
    )
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "12 runs in 2 vmapped chunk(s)" in text  # net_arch is structural: one chunk per architecture
    assert "vmapped fields: lr; grouped (structural): net_arch" in text
    assert text.count("│ 6 │") == 2 and "nothing trained" in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("algorithm", sorted(sweep.ALGORITHMS))
def test_every_algorithm_has_an_example_sweep_that_plans(algorithm, tmp_path, capsys):
    from imitation_fn.cli import main

    path = Path(__file__).resolve().parents[1] / "examples" / "sweeps" / f"{algorithm}.yaml"
    spec = sweep.SweepSpec.from_file(path)
    assert spec.algorithm == algorithm
    sweep_plan = sweep.plan(spec)
    n_points = len(sweep.points(spec))
    assert len(sweep_plan.runs) == n_points * len(spec.seed_list)
    assert sorted(sweep_plan.tensor_fields + sweep_plan.structural_fields) == sorted(spec.grid)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert f"{algorithm} on {spec.env}" in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "out").exists()
