"""DAgger: β schedules, labelled mixed collection, vmap ≡ loop, the trainer (masking, resume, files), learning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.func import vmap

from imitation_fn import envs
from imitation_fn.algorithms import dagger, protocol
from imitation_fn.cli.dagger import register
from imitation_fn.core import random, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import buffer, flatten_trajectories, generate_trajectories, serialize
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.envs.task import Task
from imitation_fn.policies import load_policy, zoo
from imitation_fn.stats import is_significant_reward_improvement, permutation_test
from imitation_fn.train import loop
from imitation_fn.train.dagger import (
    checkpoint_capacity,
    evaluate_batched,
    load_dagger_run,
    load_history,
    train_dagger,
)
from imitation_fn.train.run import CHECKPOINT

SMALL = dagger.Config(n_envs=4, batch_size=32)
# A short trainer run: 4 rounds of 64 steps, 3 BC steps each, evaluated once at the end.
FAST_CFG = SMALL.model_copy(update={"rollout_round_min_episodes": 0, "rollout_round_min_timesteps": 64, "n_batches": 3})
FAST: dict[str, Any] = {"total_timesteps": 256, "n_eval_episodes": 2, "eval_every": None, "progress": False}


def _expert(env_id: str):
    try:
        return load_policy(zoo.expert_path(env_id))
    except FileNotFoundError as e:
        pytest.skip(f"shipped expert missing ({e}); run benchmarks/expert_zoo.py --env {env_id}")


def _task(env: envs.Env, total: int, demos: Any = None) -> Task:
    return Task(env=env, expert=cartpole_expert, demos=demos, total=total)


def _states(cfg: dagger.Config, env: envs.Env, seeds: list[int], total: int = 512, demos: Any = None) -> dagger.State:
    keys = torch.stack([random.key(s) for s in seeds])
    task = _task(env, total, demos)
    return vmap(lambda k: dagger.init(cfg, k, task))(keys)


# --- β schedules ------------------------------------------------------------------------------------------------------


def test_beta_schedules_are_imitations() -> None:
    linear = dagger.LinearBetaSchedule(15)
    assert [float(linear(r)) for r in (0, 5, 15, 20)] == pytest.approx([1.0, 10 / 15, 0.0, 0.0])
    assert float(linear(torch.tensor(3))) == pytest.approx(12 / 15)
    exp = dagger.ExponentialBetaSchedule(0.5)
    assert [float(exp(r)) for r in (0, 1, 3)] == pytest.approx([1.0, 0.5, 0.125])
    with pytest.raises(ValueError, match="decay_probability"):
        dagger.ExponentialBetaSchedule(0.0)
    with pytest.raises(ValueError, match="rampdown_rounds"):
        dagger.LinearBetaSchedule(0)
    assert dagger.Config(
        beta_schedule="exponential", decay_probability=0.3
    ).schedule() == dagger.ExponentialBetaSchedule(0.3)
    assert dagger.Config().schedule() == dagger.LinearBetaSchedule(15)  # imitation's default


@pytest.mark.parametrize("b", [0.0, 1.0, 0.5])
def test_collect_labels_every_step_with_the_expert_and_mixes_by_beta(b: float) -> None:
    env = envs.make("CartPole-v1", n_envs=4)
    state = dagger.init(SMALL, random.key(0), _task(env, 1024), beta_schedule=lambda r: torch.tensor(b))
    state, roll = dagger.collect_env(state, env, cartpole_expert, 200)
    state = dagger.store(state, roll)
    torch.testing.assert_close(roll.acts, cartpole_expert(roll.obs))  # labels: the expert's action, always
    driven = roll.expert_driven
    assert torch.equal(roll.executed[driven], roll.acts[driven])
    frac = driven.float().mean().item()
    assert frac == pytest.approx(b, abs=0.06)
    # the aggregate holds exactly the labelled steps, in order
    assert int(state.data.size) == 800 and int(state.timesteps) == 800
    stored = tree.map(lambda x: x[:800], buffer.contents(state.data))
    torch.testing.assert_close(stored.obs, roll.obs.flatten(0, 1))
    torch.testing.assert_close(stored.acts, roll.acts.flatten(0, 1))
    torch.testing.assert_close(stored.dones, roll.terminated.flatten(0, 1))
    if b == 0.0:  # the untrained learner drives: CartPole falls, so episodes end and restart
        assert bool(roll.dones.any())


def test_update_samples_only_the_filled_part_and_learns() -> None:
    env = envs.make("CartPole-v1", n_envs=4)
    state = dagger.init(SMALL, random.key(1), _task(env, 4096))
    state, roll = dagger.collect_env(state, env, cartpole_expert, 100)
    state = dagger.store(state, roll)
    n = int(state.data.size)
    # Poison every unfilled slot: one draw from it would make the loss NaN.
    poisoned = tree.map(lambda x: x.clone(), state.data.storage)
    poisoned.obs[n:] = float("nan")
    state = state.replace(data=state.data.replace(storage=poisoned))
    losses = []
    for _ in range(150):
        state, m = dagger.learn(state)
        losses.append(float(m["loss"]))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.2
    assert float(m["data_size"]) == n and float(m["beta"]) == 1.0


def test_vmapped_round_equals_loop_and_seed_does_not_depend_on_n() -> None:
    env = envs.make("CartPole-v1", n_envs=4)
    seeds = [0, 1, 2]

    def round_(s: dagger.State) -> tuple[dagger.State, dagger.Rollout, dict]:
        return dagger.train_round(s, env, cartpole_expert, n_steps=24, n_updates=3)

    states = _states(SMALL, env, seeds)
    states = states.replace(round=torch.full((3,), 7))  # β = 8/15: both policies drive
    batched, rollouts, metrics = vmap(round_)(states)
    for i in range(3):
        single, roll, m = round_(tree.index(states, i))
        assert tree.allclose(tree.index(batched, i), single, rtol=1e-5, atol=1e-6)
        assert torch.equal(tree.index(rollouts, i).acts, roll.acts)
        torch.testing.assert_close(metrics["loss"][i], m["loss"])
    alone, _, _ = vmap(round_)(tree.index(states, slice(1, 2)))  # seed 1 in a sweep of 1
    assert tree.allclose(tree.index(alone, 0), tree.index(batched, 1), rtol=1e-5, atol=1e-6)
    assert torch.equal(batched.round, torch.full((3,), 8))
    assert bool(rollouts.expert_driven.any()) and bool((~rollouts.expert_driven).any())


def test_batched_collect_equals_vmapped_collect() -> None:
    env = envs.make("CartPole-v1", n_envs=4)
    states = _states(SMALL, env, [3, 4])
    a, ra = dagger.batched_collect(env, cartpole_expert, 10)(states)
    b, rb = vmap(lambda s: dagger.collect_env(s, env, cartpole_expert, 10))(states)
    assert tree.allclose(a, b, rtol=0, atol=0) and tree.allclose(ra, rb, rtol=0, atol=0)


def test_the_protocol_collect_then_update_is_a_minimal_round() -> None:
    assert isinstance(dagger, protocol.Acting)
    cfg = FAST_CFG
    task = _task(envs.make("CartPole-v1", n_envs=4), 256)
    states = _states(cfg, task.env, [0, 1], 256)  # type: ignore[arg-type]
    states, batch = vmap(lambda s: dagger.collect(s, task))(states)
    assert batch.obs.shape[:3] == (2, 16, 4) and int(states.data.size.max()) == 0  # 64 steps: a round's minimum
    new, metrics = vmap(dagger.update)(states, batch)
    stored = vmap(dagger.store)(states, batch)
    assert new.data.size.tolist() == [64, 64] and tree.allclose(new.data, stored.data, rtol=0, atol=0)
    assert new.bc.step.tolist() == [1, 1] and metrics["data_size"].tolist() == [64.0, 64.0]


def test_init_checks_and_demos_start_the_aggregate() -> None:
    env = envs.make("CartPole-v1", n_envs=4)
    with pytest.raises(ValueError, match=r"n_envs=4 but cfg\.n_envs=8"):
        dagger.init(dagger.Config(), random.key(0), _task(env, 100))
    demos = flatten_trajectories(generate_trajectories(env, cartpole_expert, random.key(0), min_episodes=1))
    states = _states(SMALL, env, [0, 1], total=100, demos=demos)
    assert states.data.size.tolist() == [len(demos)] * 2
    torch.testing.assert_close(states.data.storage.obs[1, : len(demos)], demos.obs)


def test_evaluate_batched_equals_the_loops_evaluation() -> None:
    env = envs.make("CartPole-v1", n_envs=5)
    states = _states(SMALL, envs.make("CartPole-v1", n_envs=4), [0, 1, 2])
    keys = torch.stack([random.key(s) for s in (7, 8, 9)])
    expected = loop.evaluate_seeds(dagger, env, states, loop.eval_keys_at(keys, 3))
    got = evaluate_batched(env, states, vmap(random.fold_in)(keys, torch.full((3,), 3)))
    assert torch.equal(got, expected)


# --- the trainer ------------------------------------------------------------------------------------------------------


def test_trainer_masks_seeds_so_each_seed_is_independent_of_the_sweep(tmp_path: Path) -> None:
    # The learner drives (β = 0.2) and rounds need 6 finished episodes: their lengths differ across seeds,
    # and masking must keep the seeds apart.
    kw = dict(FAST, total_timesteps=300, beta_schedule=lambda r: torch.tensor(0.2))
    cfg = FAST_CFG.model_copy(update={"rollout_round_min_episodes": 6})
    full = train_dagger(cfg, "CartPole-v1", cartpole_expert, seeds=[0, 1, 2], scratch_dir=tmp_path, **kw)
    steps = [h["round_steps"] for h in load_history(tmp_path)]
    assert any(len(set(s)) > 1 for s in steps), steps  # the seeds did need different amounts of collection
    alone = train_dagger(cfg, "CartPole-v1", cartpole_expert, seeds=[2], **kw)
    assert tree.allclose(tree.index(alone.states, 0), tree.index(full.states, 2), rtol=1e-5, atol=1e-6)
    timesteps = full.states.timesteps.tolist()
    assert alone.states.timesteps.tolist() == timesteps[2:] and all(t >= 300 for t in timesteps)


def test_resume_after_round_k_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    env = envs.make("CartPole-v1", n_envs=2)
    demos = generate_trajectories(env, cartpole_expert, random.key(5), min_episodes=2)
    kw = dict(FAST, expert_trajs=demos, seeds=[0, 1])
    full = train_dagger(FAST_CFG, "CartPole-v1", cartpole_expert, **kw)
    part = train_dagger(FAST_CFG, "CartPole-v1", cartpole_expert, scratch_dir=tmp_path, max_rounds=2, **kw)
    assert part.states.round.tolist() == [2, 2]
    with pytest.raises(InputError, match="--resume"):
        train_dagger(FAST_CFG, "CartPole-v1", cartpole_expert, scratch_dir=tmp_path, **kw)
    done = train_dagger(FAST_CFG, "CartPole-v1", cartpole_expert, scratch_dir=tmp_path, resume=True, **kw)
    assert done.states.round.tolist() == full.states.round.tolist() == [4, 4]
    assert tree.allclose(done.states, full.states, rtol=0, atol=0)
    torch.testing.assert_close(done.eval_returns, full.eval_returns)

    # The scratch directory: imitation's layout, and its datasets are exactly each seed's aggregate.
    assert {p.name for p in (tmp_path / "demos").iterdir()} == {"expert", *(f"round-{r:03d}" for r in range(4))}
    trajs = serialize.load(tmp_path / "demos" / "expert")
    for r in range(4):
        trajs += serialize.load(tmp_path / "demos" / f"round-{r:03d}" / "seed_1")
    data = flatten_trajectories(trajs)
    seed1 = tree.index(done.states, 1)
    stored = tree.map(lambda x: x[: int(seed1.data.size)], buffer.contents(seed1.data))

    def rows(t: object) -> torch.Tensor:
        x = torch.cat([t.obs, t.acts[:, None].float(), t.next_obs, t.dones[:, None].float()], 1)  # type: ignore[attr-defined]
        return x[torch.argsort(x[:, 0])]

    assert len(data) == len(stored) and torch.equal(rows(data), rows(stored))
    cfg, states, seeds = load_dagger_run(tmp_path, "CartPole-v1")
    assert cfg == FAST_CFG and seeds == [0, 1] and tree.allclose(states, done.states, rtol=0, atol=0)
    policy = load_policy(tmp_path / "policies" / "seed_1")
    obs = seed1.data.storage.obs[:16]
    torch.testing.assert_close(policy.act(obs, random.key(0)), dagger.policy(seed1)(obs, random.key(0)))
    assert len(json.loads((tmp_path / "history.json").read_text())) == 4


def test_resume_after_the_aggregate_grew_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    # Rounds of 6 finished episodes overshoot: seed 1's second round grows the aggregate past its initial
    # capacity while seed 2 goes on for a third, so the resume must load a grown checkpoint.
    kw = dict(FAST, total_timesteps=400, beta_schedule=lambda r: torch.tensor(0.2), seeds=[0, 1, 2])
    cfg = FAST_CFG.model_copy(update={"rollout_round_min_episodes": 6})
    full = train_dagger(cfg, "CartPole-v1", cartpole_expert, **kw)
    train_dagger(cfg, "CartPole-v1", cartpole_expert, scratch_dir=tmp_path, max_rounds=2, **kw)
    assert checkpoint_capacity(tmp_path / CHECKPOINT) > dagger.capacity(cfg, 400)
    done = train_dagger(cfg, "CartPole-v1", cartpole_expert, scratch_dir=tmp_path, resume=True, **kw)
    assert full.states.round.tolist() == [2, 2, 3]
    assert tree.allclose(done.states, full.states, rtol=0, atol=0)


def test_target_return_stops_each_seed_once_reached() -> None:
    result = train_dagger(
        FAST_CFG, "CartPole-v1", cartpole_expert, seeds=[0, 1], target_return=0.0, **{**FAST, "eval_every": 1}
    )
    assert result.states.round.tolist() == [1, 1] and result.steps == 64


def test_trainer_on_a_gymnasium_env_runs_on_the_host() -> None:
    # gymnasium's CartPole-v0 (horizon 200) has no torch version here ("gymnasium:CartPole-v1" would be ours).
    result = train_dagger(FAST_CFG, "CartPole-v0", cartpole_expert, seeds=[0, 1], **FAST)
    assert result.states.round.tolist() == [4, 4] and result.states.timestep is None
    assert result.states.data.size.tolist() == [256, 256]
    stored = result.states.data.storage
    torch.testing.assert_close(stored.acts[:, :256], cartpole_expert(stored.obs[:, :256]))
    assert result.eval_returns.shape == (2, 2)


def test_trainer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_batches"):  # imitation's bc_train_kwargs are config fields
        dagger.Config(n_batches=0)
    with pytest.raises(ValueError, match="total_timesteps must be >= 1"):
        train_dagger(FAST_CFG, "CartPole-v1", cartpole_expert, **{**FAST, "total_timesteps": 0})
    with pytest.raises(ValueError, match="seeds"):
        train_dagger(FAST_CFG, "CartPole-v1", cartpole_expert, seeds=[1, 1], **FAST)


def test_cli_trains_saves_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from imitation_fn.cli.common import CLIError

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    base = ["dagger", "--env", "CartPole-v1", "--expert", "scripted", "--seeds", "2", "--total-timesteps", "128"]
    base += ["--rollout-round-min-timesteps", "64", "--rollout-round-min-episodes", "0", "--n-batches", "2"]
    base += ["--n-envs", "4", "--batch-size", "32", "--n-eval-episodes", "2", "--no-progress", "--out", str(tmp_path)]
    args = parser.parse_args(base)
    args.func(args)
    out = capsys.readouterr().out
    assert "DAgger on CartPole-v1" in out and "2 rounds" in out
    assert (tmp_path / "policies" / "seed_1" / "policy.json").is_file()
    assert dagger.Config.load(tmp_path / "config.json") == FAST_CFG.model_copy(update={"n_batches": 2})
    args = parser.parse_args([*base, "--resume", "--total-timesteps", "192"])
    args.func(args)
    assert "3 rounds" in capsys.readouterr().out
    for bad, match in (
        (["--expert", str(tmp_path / "missing")], "--expert"),
        (["--lr", "-1"], "--lr"),
        (["--env", "Pendulum-v1"], "no scripted expert|No scripted expert"),
    ):
        args = parser.parse_args([*base, *bad])
        with pytest.raises(CLIError, match=match):
            args.func(args)


# --- learning (the bars) --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cartpole_every_seed_reaches_475_within_10k_steps(tmp_path: Path) -> None:
    expert = _expert("CartPole-v1").policy_fn()
    result = train_dagger(
        # 8 envs per seed, imitation's linear β over 15 rounds, 4 BC epochs per round; every step is kept,
        # so rounds need not hold whole episodes
        dagger.Config(rollout_round_min_episodes=0),
        "CartPole-v1",
        expert,
        seeds=range(8),
        total_timesteps=10_000,
        target_return=475,
        scratch_dir=tmp_path,
        progress=False,
    )
    history = load_history(tmp_path)
    reached = [min((h["timesteps"][i] for h in history if h["return_mean"][i] >= 475), default=None) for i in range(8)]
    assert all(r is not None and r <= 10_000 for r in reached), reached
    # Held-out episodes of the final learners (other keys than the training-time evaluations).
    held_out = loop.evaluate_seeds(
        dagger, envs.make("CartPole-v1", n_envs=20), result.states, loop.eval_keys_at(torch.arange(16).reshape(8, 2), 0)
    )
    assert bool((held_out.mean(-1) >= 475).all()), held_out.mean(-1)


@pytest.mark.slow
def test_pendulum_learner_improves_significantly_over_the_novice() -> None:
    expert = _expert("Pendulum-v1").policy_fn()
    # BC's (32, 32) tanh learner, imitation's linear β over 15 rounds, 10 BC epochs per round
    cfg = dagger.Config(n_envs=4, rollout_round_min_episodes=0, n_epochs=10)
    env = envs.make("Pendulum-v1", n_envs=25)
    seed = [0]
    novice = dagger.init(cfg, random.key(0), Task(env=envs.make("Pendulum-v1", n_envs=4), total=1))
    eval_key = random.key(123)
    from imitation_fn.evaluation import evaluate_policy

    before = evaluate_policy(env, dagger.policy(novice), eval_key).returns
    result = train_dagger(
        cfg,
        "Pendulum-v1",
        expert,
        seeds=seed,
        total_timesteps=4_000,
        eval_every=None,
        progress=False,
    )
    after = evaluate_policy(env, dagger.policy(tree.index(result.states, 0)), eval_key).returns
    assert float(before.mean()) < -1000
    assert float(after.mean() - before.mean()) >= 300, (before.mean(), after.mean())
    assert is_significant_reward_improvement(before, after, 0.05)
    assert permutation_test(after, before, alternative="greater").pvalue < 0.05
