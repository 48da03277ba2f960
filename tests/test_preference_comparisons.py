"""Preference comparisons: every piece against a hand computation, purity under vmap, the driver, and learning."""

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from preference_setup import SHORT, SMALL, random_fragments
from pydantic import ValidationError

from imitation_fn import envs, presets, rewards, stats
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import checks, optim, random, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import preferences
from imitation_fn.data.preferences import Fragments
from imitation_fn.data.query_schedule import comparison_schedule
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.envs.cartpole import CartPole
from imitation_fn.envs.task import Task
from imitation_fn.train import preference_comparisons as tpc

# Pendulum with 20-step episodes: every round samples, trains and evaluates in a fraction of the time.
SHORT_CARTPOLE = "test/CartPole50-v0"  # terminates early: a variable horizon
envs.register(SHORT_CARTPOLE, lambda n_envs=1: CartPole(n_envs, max_episode_steps=50), overwrite=True)

OBS = gym.spaces.Box(-1.0, 1.0, (3,))
ACT = gym.spaces.Box(-2.0, 2.0, (1,))


def _traj(rews: list[float], terminal: bool = False, offset: float = 0.0) -> TrajectoryWithRew:
    n = len(rews)
    obs = torch.arange(n + 1, dtype=torch.float32)[:, None].expand(n + 1, 3) + offset
    return TrajectoryWithRew(obs=obs.clone(), acts=torch.zeros(n, 1), rews=torch.tensor(rews), terminal=terminal)


# --------------------------------------------------------------------------------------------------------------------
# The plan (the query schedule: test_query_schedule.py)
# --------------------------------------------------------------------------------------------------------------------


def test_plan_splits_agent_steps_exactly_and_bounds_the_dataset() -> None:
    cfg = pc.Config(
        total_timesteps=10_000,
        total_comparisons=100,
        num_iterations=4,
        comparison_queue_size=40,
        fragment_length=10,
        agent="sac",
        agent_config={"n_envs": 4},
    )
    rounds = pc.plan(cfg, horizon=200)
    assert len(rounds) == 5 and sum(r.num_pairs for r in rounds) == 100
    assert sum(r.agent_calls for r in rounds) * 4 == 10_000
    assert [r.dataset_size for r in rounds] == [min(40, sum(x.num_pairs for x in rounds[: i + 1])) for i in range(5)]
    assert rounds[0].epoch_multiplier == 200.0 and all(r.epoch_multiplier == 1.0 for r in rounds[1:])
    for r in rounds:  # enough transitions: ceil(oversampling * 2 * pairs * L) in whole episodes
        assert r.pool_envs * r.pool_steps >= 2 * r.num_pairs * 10 and r.pool_steps == 200


def test_config_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValidationError, match="minibatch_size"):
        pc.Config(batch_size=32, minibatch_size=5)
    with pytest.raises(ValidationError, match="ensemble"):
        pc.Config(fragmenter="active")
    with pytest.raises(ValidationError, match="val_split"):
        pc.Config(regularizer="lp", lambda_updater="interval")
    with pytest.raises(ValidationError, match="regularizer_lambda > 0"):
        pc.Config(regularizer="lp")
    with pytest.raises(ValidationError, match="lambda_updater"):
        pc.Config(regularizer="lp", regularizer_lambda=0.1, val_split=0.2)
    with pytest.raises(ValidationError, match="not a valid sac config"):
        pc.Config(agent="sac", agent_config={"n_envz": 3})


# --------------------------------------------------------------------------------------------------------------------
# Active selection (the building blocks: test_fragments.py, test_gatherers.py, test_preference_model.py)
# --------------------------------------------------------------------------------------------------------------------


def test_active_selection_picks_the_most_disagreeing_pairs() -> None:
    cfg = pc.Config(
        ensemble_size=3,
        fragmenter="active",
        fragment_sample_factor=4.0,
        fragment_length=5,
        total_comparisons=20,
        agent_config={"n_envs": 1},
    )
    state = pc.init(cfg, random.key(0), Task(spaces=(OBS, ACT)))
    trajs = [_traj([0.0] * 40, offset=float(i)) for i in range(6)]
    for t in trajs:
        t.obs.copy_(random.normal(random.key(len(t.obs)), t.obs.shape))
    pool = pc.pool_from_trajectories(trajs, 5)
    rnd = pc.Round(0, 5, 5, 1.0, 0, 0, 0)
    _, frags, metrics = pc.fragments(state, Task(spaces=(OBS, ACT), demos=trajs), rnd)
    # Re-draw the 20 candidates with the same key and check that the 5 kept are the top-5 by variance.
    _, _, k_frag = random.split(state.key, 3)
    cands = pc.random_fragments(k_frag, pool, 5, 20)
    var = pc.variance_estimate(pc.fragment_rewards(state.net, state.reward_params, cands), "logit")
    top = torch.topk(var, 5).indices
    torch.testing.assert_close(frags.obs, cands.obs[top])
    assert float(metrics["active/variance_selected"]) >= float(metrics["active/variance_all"])
    assert float(var[top].min()) >= float(var.sort(descending=True).values[5])


# --------------------------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------------------------


def test_dataset_is_a_bounded_fifo_and_round_trips(tmp_path: Path) -> None:
    frags = random_fragments(random.key(0), n_pairs=3)
    data = preferences.init(4, frags)
    data = preferences.push(data, frags, torch.tensor([0.0, 1.0, 0.5]))
    assert int(data.size) == 3
    more = random_fragments(random.key(1), n_pairs=3)
    data = preferences.push(data, more, torch.tensor([1.0, 1.0, 0.0]))
    held, prefs = preferences.contents(data)
    assert int(data.size) == 4 and prefs.tolist() == [0.5, 1.0, 1.0, 0.0]  # the two oldest evicted
    torch.testing.assert_close(held.obs, torch.cat([frags.obs[2:], more.obs]))
    big = random_fragments(random.key(2), n_pairs=6)  # more than the capacity at once: the newest 4 survive
    held, prefs = preferences.contents(preferences.push(data, big, torch.arange(6.0) / 10))
    torch.testing.assert_close(held.obs, big.obs[2:])
    preferences.save(tmp_path / "p.safetensors", data)
    back = preferences.load(tmp_path / "p.safetensors")
    assert back.capacity == 4 and tree.allclose(back, data)
    with pytest.raises(ValueError, match="preferences have shape"):
        preferences.push(data, frags, torch.zeros(2))
    with pytest.raises(ValueError, match="item shape"):
        preferences.push(data, random_fragments(random.key(3), n_pairs=2, length=6), torch.zeros(2))


def test_example_fragments_fit_the_spaces_and_flatten_to_transitions() -> None:
    example = preferences.example_fragments(OBS, gym.spaces.Discrete(3), 5)
    assert example.obs.shape == (1, 2, 5, 3) and example.acts.shape == (1, 2, 5) and example.acts.dtype == torch.int64
    frags = random_fragments(random.key(0), n_pairs=3)
    obs, acts, next_obs, dones = frags.transitions()
    assert obs.shape == next_obs.shape == (30, 3) and acts.shape == (30, 1) and dones.shape == (30,)
    torch.testing.assert_close(obs[5:10], frags.obs[0, 1])  # pair 0, fragment 2


# --------------------------------------------------------------------------------------------------------------------
# The reward trainer
# --------------------------------------------------------------------------------------------------------------------


def _trained(cfg: pc.Config, n: int = 8) -> tuple[pc.State, pc.State, dict[str, torch.Tensor]]:
    state = pc.init(cfg.model_copy(update={"fragment_length": 5}), random.key(0), Task(spaces=(OBS, ACT)))
    frags = random_fragments(random.key(1), n_pairs=n)
    prefs = (frags.rews[:, 0].sum(-1) > frags.rews[:, 1].sum(-1)).float()
    state = state.replace(dataset=preferences.push(state.dataset, frags, prefs))
    new, metrics = pc.train_reward(state, n)
    return state, new, metrics


def test_one_reward_step_equals_adamw_with_the_weight_decay_regularizer() -> None:
    cfg = pc.Config(
        batch_size=8,
        regularizer="weight_decay",
        regularizer_lambda=0.5,
        lr=0.01,
        weight_decay=0.02,
        total_comparisons=8,
    )
    state, new, _ = _trained(cfg)
    frags, prefs = preferences.contents(state.dataset)
    order = random.permutation(random.fold_in(random.split(state.key, 4)[2], 0), 8)
    grads = torch.func.grad(
        lambda p: pc.cross_entropy_loss(p, state.net, tree.index(frags, order), prefs[order], cfg)[0]
    )(state.reward_params)
    decayed = tree.map(lambda x: x * (1 - 0.5 * 0.01), state.reward_params)  # WeightDecayRegularizer, then AdamW
    opt = optim.adamw(0.01, weight_decay=0.02)
    updates, _ = opt.update(grads, opt.init(decayed), decayed)
    checks.assert_trees_allclose(new.reward_params, optim.apply_updates(decayed, updates), rtol=1e-5, atol=1e-6)


def test_lp_regularizer_and_the_interval_updater_move_lambda() -> None:
    base: dict[str, Any] = dict(
        regularizer="lp",
        regularizer_lambda=0.1,
        lambda_updater="interval",
        val_split=0.25,
        epochs=3,
        total_comparisons=8,
    )
    _, stay, m = _trained(pc.Config(**base, tolerable_interval=(0.0, 1e9)))
    torch.testing.assert_close(stay.reg_lambda, torch.tensor(0.1))
    _, down, _ = _trained(pc.Config(**base, tolerable_interval=(1e8, 1e9), scaling_factor=0.5))
    torch.testing.assert_close(down.reg_lambda, torch.tensor(0.1 * 0.5**3))  # ratio below: shrinks every epoch
    _, plain, _ = _trained(pc.Config(total_comparisons=8, epochs=3))
    norm = lambda s: float(pc.lp_penalty(s.reward_params, 2))  # noqa: E731
    _, strong, _ = _trained(pc.Config(total_comparisons=8, epochs=3, regularizer="lp", regularizer_lambda=1.0))
    assert norm(strong) < norm(plain)
    assert set(m) >= {"loss", "accuracy", "gt_reward_loss", "regularization_lambda"}


def test_reward_training_fits_the_preferences() -> None:
    cfg = pc.Config(total_comparisons=64, epochs=60, lr=3e-3, fragment_length=5)
    state = pc.init(cfg, random.key(0), Task(spaces=(OBS, ACT)))
    frags = random_fragments(random.key(1), n_pairs=64)
    frags = frags.replace(rews=frags.obs[..., 0] - frags.acts[..., 0] ** 2)  # a learnable true reward
    prefs, _ = pc.synthetic_preferences(random.key(2), frags.rews, temperature=0.0)
    state = state.replace(dataset=preferences.push(state.dataset, frags, prefs))
    _, before = pc.cross_entropy_loss(state.reward_params, state.net, frags, prefs, cfg)
    _, m = pc.train_reward(state, 64)
    assert float(m["accuracy"]) > 0.9 and float(m["loss"]) < float(before["loss"]) - 0.2


def test_ensemble_trainer_bootstraps_each_member() -> None:
    cfg = pc.Config(total_comparisons=16, ensemble_size=3, epochs=2, batch_size=8, fragment_length=5)
    state = pc.init(cfg, random.key(0), Task(spaces=(OBS, ACT)))
    assert state.reward_params["mlp"]["layers.0.weight"].shape[0] == 3
    frags = random_fragments(random.key(1), n_pairs=16)
    prefs = (frags.rews[:, 0].sum(-1) > frags.rews[:, 1].sum(-1)).float()
    state = state.replace(dataset=preferences.push(state.dataset, frags, prefs))
    boot = random.randint(random.key(3), (3, 16), 0, 16)
    loss, _ = pc.cross_entropy_loss(state.reward_params, state.net, frags, prefs, cfg, boot)
    per_member = []
    for i in range(3):
        member = tree.map(lambda x: x[i], state.reward_params)  # noqa: B023
        sub = tree.map(lambda x: x[boot[i]], frags)  # noqa: B023
        per_member.append(pc.cross_entropy_loss(member, state.net.member, sub, prefs[boot[i]], cfg)[0])
    torch.testing.assert_close(loss, torch.stack(per_member).sum(), rtol=1e-5, atol=1e-6)
    new, metrics = pc.train_reward(state, 16)
    assert "loss_std" in metrics
    # Each member moved, and differently (its own bootstrap).
    w0, w1 = state.reward_params["mlp"]["layers.0.weight"], new.reward_params["mlp"]["layers.0.weight"]
    deltas = (w1 - w0).flatten(1)
    assert torch.all(deltas.norm(dim=1) > 0) and not torch.allclose(deltas[0], deltas[1])


# --------------------------------------------------------------------------------------------------------------------
# A whole round: purity under vmap, the driver, the CLI
# --------------------------------------------------------------------------------------------------------------------


def test_one_whole_iteration_vmaps_and_seeds_are_independent_of_n() -> None:
    task = Task(env=envs.make(SHORT, n_envs=2))
    rnd = pc.task_plan(SMALL, task)[1]
    keys = random.split(random.key(7), 3)
    init = torch.func.vmap(lambda k: pc.init(SMALL, k, task))
    step = torch.func.vmap(lambda s: pc.update(*pc.collect_round(s, task, rnd)))
    states, metrics = step(init(keys))
    assert int(states.round[0]) == 1 and int(states.dataset.size[0]) == rnd.num_pairs
    assert not tree.allclose(states.reward_params, tree.map(lambda x: x[[0, 0, 0]], states.reward_params))
    for i in range(3):
        solo, solo_m = step(init(keys[i : i + 1]))
        one = tree.index(states, slice(i, i + 1))
        # Sampling, fragments, labels and the dataset are bit-identical alone and in the batch of 3 ...
        assert tree.allclose(one.dataset, solo.dataset, rtol=0, atol=0)
        assert torch.equal(one.agent.buffer.storage.obs, solo.agent.buffer.storage.obs)
        # ... and the trained params agree to float rounding, which batched matmuls change in the last bit
        # and Adam's sign-like first steps amplify on near-zero gradients to at most ~lr.
        checks.assert_trees_allclose(one.reward_params, solo.reward_params, rtol=0, atol=2e-3)
        checks.assert_trees_allclose(one.agent.actor, solo.agent.actor, rtol=0, atol=2e-3)
        checks.assert_trees_allclose(tree.index(metrics, slice(i, i + 1)), solo_m, rtol=1e-2, atol=1e-2)


def test_protocol_collect_finds_its_round_and_update_trains_the_agent() -> None:
    """One seed through the protocol: ``collect`` is ``collect_round`` of the round the state has reached, and
    ``update`` trains the reward, then the agent for the round's share of ``total_timesteps``."""
    task = tpc.make_task(SMALL, SHORT, budget=SMALL.num_iterations + 1, n_eval_episodes=1)
    state = pc.init(SMALL, random.key(0), task)
    rounds = pc.task_plan(SMALL, task)
    for rnd in rounds:
        _, expected = pc.collect_round(state, task, rnd)
        state, batch = pc.collect(state, task)
        assert batch.rnd == rnd and batch.env is task.env
        assert tree.allclose((batch.fragments, batch.prefs), (expected.fragments, expected.prefs), rtol=0, atol=0)
        state, metrics = pc.update(state, batch)
        assert {"reward/accuracy", "agent/n_updates"} <= set(metrics)
    assert int(state.round) == len(rounds) and int(state.agent.timesteps) == SMALL.total_timesteps
    with pytest.raises(ValueError, match="counted in rounds"):  # a budget that is not the schedule's rounds
        pc.init(SMALL, random.key(0), tpc.make_task(SMALL, SHORT, budget=96, n_eval_episodes=1))


def test_driver_with_a_human_gatherer_and_artifacts(tmp_path: Path) -> None:
    calls = []

    def gatherer(frags: Fragments) -> torch.Tensor:  # a "human" who prefers the higher true return
        calls.append(len(frags))
        r = frags.rews.sum(-1)
        return (r[:, 0] > r[:, 1]).float()

    result = tpc.train(
        SMALL, SHORT, seeds=[0, 1], gatherer=gatherer, n_eval_episodes=2, log_dir=tmp_path / "run", progress=False
    )
    assert calls == [r.num_pairs for r in pc.plan(SMALL, 20) for _ in range(2)]
    assert result.eval_returns is not None and result.eval_returns.shape == (2, 2)
    assert int(result.states.dataset.size[0]) == 12
    paths = tpc.save_artifacts(result, SHORT, tmp_path / "out")
    loaded = rewards.load(paths[0] / "reward")
    assert loaded.norm_state is not None and (paths[0] / "policy").exists()
    assert int(preferences.load(paths[1] / "preferences.safetensors").size) == 12
    with pytest.raises(InputError, match="--resume"):
        tpc.train(SMALL, SHORT, seeds=[0, 1], gatherer=gatherer, log_dir=tmp_path / "run", progress=False)
    # Resuming a finished run does no new round and keeps the states.
    again = tpc.train(
        SMALL,
        SHORT,
        seeds=[0, 1],
        gatherer=gatherer,
        log_dir=tmp_path / "run",
        resume=True,
        n_eval_episodes=2,
        progress=False,
    )
    assert tree.allclose(again.states.reward_params, result.states.reward_params)


def test_fixed_dataset_source_learns_the_reward_and_refuses_variable_horizons() -> None:
    trajs = []
    for i in range(20):
        obs = random.uniform(random.key(i), (41, 3), minval=-1.0, maxval=1.0)
        acts = random.uniform(random.key(100 + i), (40, 1), minval=-2.0, maxval=2.0)
        trajs.append(TrajectoryWithRew(obs=obs, acts=acts, rews=obs[:-1, 0] - 0.5 * acts[:, 0] ** 2, terminal=False))
    cfg = pc.Config(
        total_comparisons=200,
        num_iterations=2,
        fragment_length=10,
        initial_epoch_multiplier=20,
        epochs=5,
        warning_threshold=0,
        gatherer_temperature=0.0,
    )
    last: dict[str, torch.Tensor] = {}
    with pytest.warns(UserWarning, match="Fewer transitions"):  # 800 transitions for 2 * 180 fragments of 10
        result = tpc.train(
            cfg, "Pendulum-v1", seeds=[0, 1], trajectories=trajs, progress=False, callback=lambda *a: last.update(a[2])
        )
    assert "returns" not in result.evaluation and float(last["reward/accuracy"].min()) > 0.9
    bad = [
        *trajs[:2],
        TrajectoryWithRew(obs=trajs[0].obs[:21], acts=trajs[0].acts[:20], rews=trajs[0].rews[:20], terminal=True),
        TrajectoryWithRew(obs=trajs[0].obs, acts=trajs[0].acts, rews=trajs[0].rews, terminal=True),
    ]
    with pytest.raises(ValueError, match="different length"):
        tpc.train(cfg, "Pendulum-v1", trajectories=bad, progress=False)


def test_variable_horizon_env_is_refused() -> None:
    cfg = pc.Config(
        total_timesteps=64,
        total_comparisons=6,
        num_iterations=1,
        fragment_length=5,
        warning_threshold=0,
        initial_epoch_multiplier=1,
        agent_config={"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
    )
    with pytest.raises(ValueError, match="allow_variable_horizon"):
        tpc.train(cfg, SHORT_CARTPOLE, progress=False)
    result = tpc.train(
        cfg.model_copy(update={"allow_variable_horizon": True}), SHORT_CARTPOLE, progress=False, n_eval_episodes=2
    )
    assert result.eval_returns is not None


def test_cli_runs_and_saves(tmp_path: Path) -> None:
    from imitation_fn.cli import build_parser
    from imitation_fn.cli import preference_comparisons as cli_pc

    parser = build_parser() if "preference_comparisons" in __import__("imitation_fn.cli").cli.COMMANDS else None
    if parser is None:  # the command list is owned by cli/__init__; register ours on a private parser
        import argparse

        parser = argparse.ArgumentParser()
        cli_pc.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "preference-comparisons",
            "--env",
            SHORT,
            "--seeds",
            "2",
            "--total-timesteps",
            "64",
            "--total-comparisons",
            "12",
            "--num-iterations",
            "1",
            "--fragment-length",
            "10",
            "--initial-epoch-multiplier",
            "2",
            "--agent",
            "sac",
            "--agent-config",
            '{"n_envs": 2, "net_arch": [16, 16], "learning_starts": 16, "buffer_size": 256, "batch_size": 32}',
            "--n-eval-episodes",
            "2",
            "--no-progress",
            "--out",
            str(tmp_path / "pc"),
        ]
    )
    args.func(args)
    for seed in (0, 1):
        assert (tmp_path / "pc" / f"seed_{seed}" / "reward" / "reward.safetensors").exists()
        assert (tmp_path / "pc" / f"seed_{seed}" / "preferences.safetensors").exists()
    assert (tmp_path / "pc" / "metrics.jsonl").exists()


# --------------------------------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_learned_reward_ranks_upright_cartpole_states_higher() -> None:
    cfg = pc.Config(
        total_comparisons=400,
        fragment_length=10,
        epochs=30,
        gatherer_temperature=0.0,
        agent_config={"n_envs": 8, "n_steps": 32},
    )
    state = pc.init(cfg, random.key(0), Task(env=envs.make("seals/CartPole-v0", n_envs=8)))
    pool, _ = pc.sample_pool(state, envs.make("seals/CartPole-v0", n_envs=20), 500, random.key(1))
    frags = pc.random_fragments(random.key(2), pool, 10, 400)
    prefs, _ = pc.synthetic_preferences(random.key(3), frags.rews, temperature=0.0)
    state = state.replace(dataset=preferences.push(state.dataset, frags, prefs))
    state, _ = pc.train_reward(state, 400)
    flat = [x.reshape(-1, *x.shape[2:]) for x in (pool.obs, pool.acts, pool.next_obs, pool.terminal)]
    learned, true = pc.raw_reward_fn(state)(*flat), pool.rews.reshape(-1)
    assert float(torch.corrcoef(torch.stack([learned, true]))[0, 1]) > 0.3
    up, down = learned[true > 0], learned[true == 0]
    assert stats.is_significant_reward_improvement(down[:: max(1, len(down) // 500)], up, 0.001)


def test_cli_presets_are_valid_configs_within_the_issues_budgets() -> None:
    cfgs = {}
    for env_id in presets.env_ids("preference_comparisons"):
        preset = presets.get("preference_comparisons", env_id)
        assert preset is not None
        cfgs[env_id] = pc.Config(**preset.config, total_timesteps=preset.total_timesteps)
    assert cfgs["Pendulum-v1"].total_comparisons <= 1_000 and cfgs["Pendulum-v1"].total_timesteps <= 150_000
    assert cfgs["seals/CartPole-v0"].total_comparisons <= 500
    for cfg in cfgs.values():
        counts = comparison_schedule(
            cfg.total_comparisons, cfg.num_iterations, cfg.initial_comparison_frac, cfg.query_schedule
        )
        assert sum(counts) == cfg.total_comparisons and min(counts) > 0, counts
