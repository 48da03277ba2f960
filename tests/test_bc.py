"""Behavioural cloning: the loss, purity under vmap, the driver end to end, and learning."""

import functools
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from pydantic import ValidationError
from torch.func import vmap

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import checks, random, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import flatten_trajectories, generate_trajectories
from imitation_fn.data.types import Transitions
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.envs.task import Task
from imitation_fn.train import load_run, train
from imitation_fn.train.logger import read_metrics

OBS = gym.spaces.Box(-1.0, 1.0, (4,))
DISCRETE = gym.spaces.Discrete(3)
CONTINUOUS = gym.spaces.Box(-1.0, 1.0, (2,))


def _batch(key: torch.Tensor, n: int = 64, continuous: bool = False) -> Transitions:
    k1, k2 = random.split(key)
    obs = random.normal(k1, (n, 4))
    acts = obs[:, :2] * 0.5 if continuous else random.randint(k2, (n,), 0, 3)
    return Transitions(obs=obs, acts=acts, next_obs=obs, dones=torch.zeros(n, dtype=torch.bool))


@pytest.fixture(scope="module")
def demos() -> Transitions:
    env = envs.make("CartPole-v1", n_envs=50)
    return flatten_trajectories(generate_trajectories(env, cartpole_expert, random.key(0), min_episodes=50)[:50])


def test_loss_matches_imitation_definition() -> None:
    cfg = bc.Config(ent_weight=0.1, l2_weight=0.01)
    state = bc.init(cfg, random.key(0), Task(spaces=(OBS, DISCRETE)))
    batch = _batch(random.key(1))
    total, m = bc.loss(state.params, state, batch)
    # Recompute with torch.distributions and the parameter list, as imitation's loss calculator does.
    h = batch.obs
    layers = state.params["pi"]
    n_layers = len(layers) // 2
    for i in range(n_layers):
        h = h @ layers[f"layers.{i}.weight"].T + layers[f"layers.{i}.bias"]
        h = torch.tanh(h) if i < n_layers - 1 else h
    dist = torch.distributions.Categorical(logits=h)
    log_prob = dist.log_prob(batch.acts)
    l2 = sum((p**2).sum() for p in tree.leaves(state.params)) / 2
    expected = -log_prob.mean() - 0.1 * dist.entropy().mean() + 0.01 * l2
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(m["prob_true_act"], log_prob.exp().mean())
    torch.testing.assert_close(m["l2_norm"], l2)
    assert set(m) == {"neglogp", "entropy", "ent_loss", "prob_true_act", "l2_norm", "l2_loss", "loss"}


@pytest.mark.parametrize("space", [DISCRETE, CONTINUOUS], ids=["discrete", "continuous"])
def test_update_lowers_the_loss(space: gym.Space) -> None:
    continuous = isinstance(space, gym.spaces.Box)
    state = bc.init(bc.Config(lr=1e-2), random.key(0), Task(spaces=(OBS, space)))
    batch = _batch(random.key(1), n=256, continuous=continuous)
    first = None
    for _ in range(100):
        state, m = bc.update(state, batch)
        first = m["loss"] if first is None else first
    assert int(state.step) == 100
    assert float(m["loss"]) < float(first) - 0.1
    checks.assert_finite(state)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_vmapped_update_equals_loop_and_does_not_depend_on_n(n: int) -> None:
    init = functools.partial(bc.init, bc.Config(), task=Task(spaces=(OBS, DISCRETE)))
    keys = torch.stack([random.key(s) for s in range(n)])
    batches = tree.stack([_batch(random.key(100 + s)) for s in range(n)])
    states = vmap(init)(keys)
    for _ in range(5):
        states, metrics = vmap(bc.update)(states, batches)
    for i in range(n):
        solo = init(keys[i])
        for _ in range(5):
            solo, solo_metrics = bc.update(solo, tree.index(batches, i))
        checks.assert_trees_allclose(tree.index(states, i).params, solo.params, rtol=1e-6, atol=1e-6)
        checks.assert_trees_allclose(tree.index(metrics, i), solo_metrics, rtol=1e-6, atol=1e-6)


def test_learning_rate_and_weights_are_sweepable_under_vmap() -> None:
    lrs = [1e-4, 1e-3, 1e-2]
    states = tree.stack([bc.init(bc.Config(lr=lr), random.key(0), Task(spaces=(OBS, DISCRETE))) for lr in lrs])
    batch = _batch(random.key(1))
    batches = tree.stack([batch] * len(lrs))
    states, _ = vmap(bc.update)(states, batches)
    for i, lr in enumerate(lrs):
        solo, _ = bc.update(bc.init(bc.Config(lr=lr), random.key(0), Task(spaces=(OBS, DISCRETE))), batch)
        checks.assert_trees_allclose(tree.index(states, i).params, solo.params, rtol=1e-6, atol=1e-7)
    moved = [
        float(
            (
                tree.index(states, i).params["pi"]["layers.0.weight"]
                - bc.init(bc.Config(), random.key(0), Task(spaces=(OBS, DISCRETE))).params["pi"]["layers.0.weight"]
            )
            .abs()
            .max()
        )
        for i in range(len(lrs))
    ]
    assert moved[0] < moved[1] < moved[2]


def test_driver_seed_results_do_not_depend_on_sweep_size(demos: Transitions) -> None:
    env = envs.make("CartPole-v1", n_envs=2)
    data = tree.index(demos, slice(0, 2048))
    run = functools.partial(train, bc, bc.Config(), data, env, n_batches=20, progress=False)
    alone = run(seeds=[1])
    sweep3 = run(seeds=[0, 1, 2])
    sweep8 = run(seeds=list(range(8)))
    for sweep, i in ((sweep3, 1), (sweep8, 1)):
        checks.assert_trees_allclose(
            tree.index(sweep.states, i).params, tree.index(alone.states, 0).params, rtol=1e-6, atol=1e-6
        )
    assert sweep8.eval_returns is not None and sweep8.eval_returns.shape == (8, 2)
    torch.testing.assert_close(sweep8.eval_returns[1], alone.eval_returns[0])  # type: ignore[index]
    assert not tree.allclose(tree.index(sweep3.states, 0).params, tree.index(sweep3.states, 1).params)


def test_driver_resume_equals_uninterrupted_run(demos: Transitions, tmp_path: Path) -> None:
    env = envs.make("CartPole-v1", n_envs=2)
    data = tree.index(demos, slice(0, 1024))  # 4 batches per epoch: resuming crosses epochs
    run = functools.partial(train, bc, bc.Config(), data, env, seeds=[0, 1], progress=False, log_every=1)
    full = run(n_batches=10)
    run(n_batches=6, log_dir=tmp_path)  # "killed" after 6 steps, checkpoint on disk
    resumed = run(n_batches=10, log_dir=tmp_path, resume=True)
    checks.assert_trees_allclose(resumed.states, full.states, rtol=0, atol=0)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows if r["kind"] == "train" and r["seed"] == 0] == list(range(1, 11))
    with pytest.raises(InputError, match="--resume"):
        run(n_batches=10, log_dir=tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        train(bc, bc.Config(), data, env, seeds=[5], n_batches=10, log_dir=tmp_path, resume=True, progress=False)


def test_saved_run_loads_with_only_the_config(demos: Transitions, tmp_path: Path) -> None:
    env = envs.make("CartPole-v1", n_envs=2)
    cfg = bc.Config(net_arch=(16,), lr=1e-2)
    result = train(
        bc, cfg, tree.index(demos, slice(0, 1024)), env, seeds=[3, 5], n_batches=4, log_dir=tmp_path, progress=False
    )
    run = load_run(bc, tmp_path, env.observation_space, env.action_space)
    assert run.cfg == cfg and run.seeds == [3, 5] and run.step == 4
    checks.assert_trees_allclose(run.states, result.states, rtol=0, atol=0)
    with pytest.raises(InputError, match="not a run directory"):
        load_run(bc, tmp_path / "nothing", env.observation_space, env.action_space)


@pytest.mark.slow
def test_bc_learns_cartpole_from_50_expert_episodes(demos: Transitions) -> None:
    env = envs.make("CartPole-v1", n_envs=10)
    result = train(bc, bc.Config(), demos, env, seeds=range(8), n_epochs=10, progress=False)
    assert result.eval_returns is not None
    per_seed = result.eval_returns.mean(-1)
    assert (per_seed >= 475).all(), per_seed


def test_bad_input_gets_clear_errors(demos: Transitions) -> None:
    env = envs.make("CartPole-v1", n_envs=2)
    cfg = bc.Config()
    empty = tree.index(demos, slice(0, 0))
    with pytest.raises(ValueError, match="empty"):
        train(bc, cfg, empty, env, n_epochs=1, progress=False)
    wrong = demos.replace(obs=torch.zeros(len(demos), 5))
    with pytest.raises(ValueError, match=r"shape \(5,\).*shape \(4,\)"):
        train(bc, cfg, wrong, env, n_epochs=1, progress=False)
    nan = demos.replace(obs=demos.obs.clone().index_put_((torch.tensor([7]),), torch.tensor(float("nan"))))
    with pytest.raises(AssertionError, match="non-finite"):
        train(bc, cfg, nan, env, n_epochs=1, progress=False)
    with pytest.raises(ValidationError, match="batch_sise"):
        bc.Config(batch_sise=64)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="lr"):
        bc.Config(lr=-1.0)
    state = bc.init(cfg, random.key(0), Task(spaces=(OBS, DISCRETE)))
    with pytest.raises(AssertionError, match=r"batch.obs has shape \(8, 3\), expected \(8, 4\)"):
        bc.update(
            state,
            Transitions(
                obs=torch.zeros(8, 3),
                acts=torch.zeros(8, dtype=torch.int64),
                next_obs=torch.zeros(8, 3),
                dones=torch.zeros(8, dtype=torch.bool),
            ),
        )
    with pytest.raises(ValueError, match="exactly one"):
        train(bc, cfg, demos, env, progress=False)
    with pytest.raises(InputError, match=r"the dataset has 100 transitions, fewer than batch_size=256"):
        train(bc, cfg, tree.index(demos, slice(0, 100)), env, n_batches=1, progress=False)
