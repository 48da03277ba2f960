"""The torch CartPoles against gymnasium (and a transcription of seals), plus the registry and the expert."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control import CartPoleEnv
from gymnasium.wrappers import TimeLimit

from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random, tree
from imitation_fn.envs import CartPole, CartPoleState, Env, FixedHorizonCartPole, GymEnv, make, register, registry
from imitation_fn.envs.base import mask
from imitation_fn.envs.experts import cartpole_expert, expert_for


class SealsCartPole(CartPoleEnv):
    """seals' ``FixedHorizonCartPole`` (seals/classic_control.py), transcribed: seals is not a dependency."""

    def __init__(self) -> None:
        super().__init__()
        f32_max = np.finfo(np.float32).max
        high = np.array([f32_max, f32_max, np.pi, f32_max])
        with warnings.catch_warnings():  # "Box high's precision lowered by casting to float32"
            warnings.simplefilter("ignore")
            self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def step(self, action):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*You are calling.*")
            super().step(action)
        state = np.array(self.state, dtype=np.float64)
        x, theta = state[0], state[2]
        theta = (theta + np.pi) % (2 * np.pi) - np.pi  # np.float64 arithmetic, as in seals
        state[2] = theta
        self.state = state
        state_ok = bool(abs(x) < self.x_threshold and abs(theta) < self.theta_threshold_radians)
        return np.array(self.state, dtype=np.float32), 1.0 if state_ok else 0.0, False, False, {}


def _lockstep(gym_envs: list[gym.Env], env: Env, n_steps: int, expert_envs: int = 0, seed: int = 0) -> dict[str, int]:
    """Step gymnasium envs and the torch env side by side with the same actions and compare every transition.

    The torch state is set from gymnasium's after each gymnasium reset; in between both run freely. The first
    ``expert_envs`` sub-environments follow the expert with 10% random actions, so they reach the time limit.
    """
    rng = np.random.default_rng(seed)
    n = len(gym_envs)
    next_seed = iter(range(seed * 100_000, (seed + 1) * 100_000))
    obs = np.stack([g.reset(seed=next(next_seed))[0] for g in gym_envs])

    def gym_physics() -> torch.Tensor:
        states = [np.asarray(g.unwrapped.state, dtype=np.float64) for g in gym_envs]  # type: ignore[attr-defined]
        return torch.tensor(np.array(states))

    state = CartPoleState(gym_physics(), torch.zeros(n, dtype=torch.int64))
    counts = {"terminated": 0, "truncated": 0}
    keys = random.split(random.key(seed), n_steps)
    for i in range(n_steps):
        actions = rng.integers(0, 2, n)
        expert = cartpole_expert(torch.from_numpy(obs)).numpy()
        follow = (np.arange(n) < expert_envs) & (rng.random(n) > 0.1)
        actions = np.where(follow, expert, actions)
        ts = env.step(state, torch.from_numpy(actions), keys[i])
        results = [g.step(int(a)) for g, a in zip(gym_envs, actions, strict=True)]
        g_obs = np.stack([r[0] for r in results])
        g_rew = np.array([r[1] for r in results], dtype=np.float32)
        g_term = np.array([r[2] for r in results])
        g_trunc = np.array([r[3] for r in results])

        np.testing.assert_allclose(ts.final_obs.numpy(), g_obs, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ts.reward.numpy(), g_rew)
        np.testing.assert_array_equal(ts.terminated.numpy(), g_term)
        np.testing.assert_array_equal(ts.truncated.numpy(), g_trunc)
        assert ts.reward.dtype == torch.float32 and ts.obs.dtype == torch.float32

        done = g_term | g_trunc
        counts["terminated"] += int(g_term.sum())
        counts["truncated"] += int(g_trunc.sum())
        elapsed = np.array([0 if d else g._elapsed_steps for g, d in zip(gym_envs, done, strict=True)])  # type: ignore[attr-defined]
        np.testing.assert_array_equal(ts.env_state.t.numpy(), elapsed)
        np.testing.assert_array_equal(ts.obs.numpy()[~done], ts.final_obs.numpy()[~done])
        for j in np.flatnonzero(done):
            g_obs[j] = gym_envs[j].reset(seed=next(next_seed))[0]
        obs = g_obs
        state = ts.env_state.replace(
            physics=torch.where(torch.from_numpy(done)[:, None], gym_physics(), ts.env_state.physics)
        )
    return counts


def test_cartpole_matches_gymnasium_step_by_step() -> None:
    n = 16
    counts = _lockstep([gym.make("CartPole-v1") for _ in range(n)], CartPole(n), n_steps=700, expert_envs=8)
    assert counts["terminated"] > 100  # random-action episodes end in ~20 steps
    assert counts["truncated"] >= 8  # the expert-driven ones reach the 500-step limit


def test_cartpole_sutton_barto_reward_and_short_limit_match_gymnasium() -> None:
    n = 8
    gym_envs = [gym.make("CartPole-v1", sutton_barto_reward=True, max_episode_steps=50) for _ in range(n)]
    counts = _lockstep(
        gym_envs, CartPole(n, max_episode_steps=50, sutton_barto_reward=True), 300, expert_envs=4, seed=1
    )
    assert counts["terminated"] > 20 and counts["truncated"] > 10


def test_fixed_horizon_cartpole_matches_seals() -> None:
    n = 8
    gym_envs: list[gym.Env] = [TimeLimit(SealsCartPole(), max_episode_steps=500) for _ in range(n)]
    counts = _lockstep(gym_envs, FixedHorizonCartPole(n), n_steps=1000, expert_envs=2, seed=2)
    assert counts == {"terminated": 0, "truncated": 2 * n}


def test_spaces_match_gymnasium() -> None:
    env = make("CartPole-v1", n_envs=3)
    reference = gym.make("CartPole-v1")
    assert env.observation_space == reference.observation_space
    assert env.action_space == reference.action_space
    assert env.max_episode_steps == reference.spec.max_episode_steps == 500  # type: ignore[union-attr]
    seals = make("seals/CartPole-v0")
    assert seals.observation_space == SealsCartPole().observation_space
    assert seals.action_space == gym.spaces.Discrete(2)
    assert seals.max_episode_steps == 500


def test_reset_distribution() -> None:
    n = 200_000
    ts = CartPole(n).reset(random.key(3))
    x = ts.env_state.physics
    assert x.shape == (n, 4) and x.dtype == torch.float64
    assert ts.obs.shape == (n, 4) and ts.obs.dtype == torch.float32
    torch.testing.assert_close(ts.obs, x.to(torch.float32), rtol=0, atol=0)
    assert bool((x >= -0.05).all()) and bool((x < 0.05).all())
    # U[-a, a): mean 0 (standard error 0.1/sqrt(12 n) ≈ 6e-5), variance a²/3, uncorrelated coordinates.
    assert float(x.mean(0).abs().max()) < 4e-4
    torch.testing.assert_close(x.var(0), torch.full((4,), 0.05**2 / 3, dtype=torch.float64), rtol=0.02, atol=0)
    assert float(torch.corrcoef(x.T).fill_diagonal_(0).abs().max()) < 0.02
    assert not bool(ts.done.any()) and bool((ts.reward == 0).all()) and bool((ts.env_state.t == 0).all())
    # Deterministic in the key, different across keys.
    torch.testing.assert_close(CartPole(5).reset(random.key(3)).obs, CartPole(5).reset(random.key(3)).obs)
    assert not torch.equal(CartPole(5).reset(random.key(3)).obs, CartPole(5).reset(random.key(4)).obs)


def test_auto_reset_returns_final_obs() -> None:
    env = CartPole(4)
    physics = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # keeps going
            [0.0, 0.0, 0.2, 2.0],  # falls this step
            [2.39, 1.0, 0.0, 0.0],  # leaves the track this step
            [0.0, 0.0, 0.0, 0.0],  # hits the time limit this step
        ],
        dtype=torch.float64,
    )
    state = CartPoleState(physics, torch.tensor([0, 7, 7, 499]))
    key = random.key(9)
    ts = env.step(state, torch.tensor([1, 1, 1, 0]), key)
    reached = CartPole.dynamics(physics, torch.tensor([1, 1, 1, 0]))
    fresh = env.initial_physics(key)

    torch.testing.assert_close(ts.final_obs, reached.to(torch.float32), rtol=0, atol=0)
    assert ts.terminated.tolist() == [False, True, True, False]
    assert ts.truncated.tolist() == [False, False, False, True]
    assert ts.env_state.t.tolist() == [1, 0, 0, 0]
    expected = torch.where(ts.done[:, None], fresh, reached)
    torch.testing.assert_close(ts.env_state.physics, expected, rtol=0, atol=0)
    torch.testing.assert_close(ts.obs, expected.to(torch.float32), rtol=0, atol=0)
    assert ts.reward.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_terminated_and_truncated_on_the_same_step() -> None:
    state = CartPoleState(torch.tensor([[0.0, 0.0, 0.2, 2.0]], dtype=torch.float64), torch.tensor([499]))
    ts = CartPole(1).step(state, torch.tensor([1]), random.key(0))
    assert ts.terminated.tolist() == [True] and ts.truncated.tolist() == [True]  # as gymnasium's TimeLimit


def _rollout(env: Env, key: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reset, then ``n_steps`` random actions; returns the stacked obs and rewards."""
    k_reset, k_steps = random.split(key)
    ts = env.reset(k_reset)
    obs, rews = [ts.obs], []
    for k in random.split(k_steps, n_steps):
        k_act, k_env = random.split(k)
        action = random.bernoulli(k_act, 0.5, (env.n_envs,)).to(torch.int64)
        ts = env.step(ts.env_state, action, k_env)
        obs.append(ts.obs)
        rews.append(ts.reward)
    return torch.stack(obs), torch.stack(rews)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "seals/CartPole-v0"])
def test_vmap_over_seeds_equals_loop(env_id: str) -> None:
    env = make(env_id, n_envs=3)
    keys = random.split(random.key(5), 6)
    batched = torch.func.vmap(lambda k: _rollout(env, k, 40))(keys)
    looped = tree.stack([_rollout(env, k, 40) for k in keys])
    for b, lp in zip(batched, looped, strict=True):
        torch.testing.assert_close(b, lp, rtol=0, atol=1e-6)
    obs, rews = batched
    if env_id == "CartPole-v1":  # 1 on every step, the terminating one included
        assert bool((rews == 1).all())
    else:  # seals: 1 only while the state reached is ok (|x| < 2.4, |theta| < 12°); 40 steps < 500: no resets
        reached = obs[:, 1:]
        ok = (reached[..., 0].abs() < 2.4) & (reached[..., 2].abs() < 12 * 2 * math.pi / 360)
        assert torch.equal(rews, ok.to(rews.dtype))
        assert bool((rews == 0).any() and (rews == 1).any())  # random actions let some poles fall


def test_compiled_step_equals_eager_and_state_stays_feature_major() -> None:
    env = make("CartPole-v1", n_envs=64)
    state = env.reset(random.key(0)).env_state
    step = torch.compile(env.step, dynamic=False)
    for key in random.split(random.key(1), 10):
        actions = random.randint(random.fold_in(key, 1), (64,), 0, 2)
        eager, compiled = env.step(state, actions, key), step(state, actions, key)
        torch.testing.assert_close(compiled.env_state.physics, eager.env_state.physics, rtol=0, atol=1e-12)
        for field in ("obs", "final_obs", "reward", "terminated", "truncated"):
            torch.testing.assert_close(getattr(compiled, field), getattr(eager, field), rtol=0, atol=1e-6)
        assert compiled.terminated.dtype == compiled.truncated.dtype == torch.bool
        # Each coordinate a contiguous row of memory (what lets the compiled step vectorise), step after step.
        assert eager.env_state.physics.stride() == compiled.env_state.physics.stride() == (1, 64)
        state = eager.env_state
    seals = make("seals/CartPole-v0", n_envs=64)
    ts = seals.reset(random.key(0))
    for key in random.split(random.key(2), 3):
        ts = seals.step(ts.env_state, torch.ones(64, dtype=torch.int64), key)
        assert ts.env_state.physics.stride() == (1, 64)


def test_flags_compute_inside_a_vectorised_compiled_graph() -> None:
    # Rollouts use the step's flags in the graph that made them (done masks, float dones for a replay
    # buffer). Stored as bytes viewed as bool, they break inductor's vectorised C++ build from 16 envs on
    # unless read through ``envs.base.mask``, as ``TimeStep.done`` does.
    env = make("CartPole-v1", n_envs=32)
    state = env.reset(random.key(0)).env_state

    def step_and_use_flags(state: CartPoleState, actions: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ts = env.step(state, actions, key)
        return ts.done, mask(ts.terminated).to(torch.float32), torch.where(ts.done, 0.0, ts.reward)

    compiled = compile_lib.compiled(step_and_use_flags)  # vectorised C++
    for key in random.split(random.key(1), 40):
        actions = random.randint(random.fold_in(key, 1), (32,), 0, 2)
        for got, want in zip(compiled(state, actions, key), step_and_use_flags(state, actions, key), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        state = env.step(state, actions, key).env_state


def test_fixed_horizon_never_terminates_and_lasts_exactly_500_steps() -> None:
    env = FixedHorizonCartPole(4)
    ts = env.reset(random.key(0))
    k_act, k_env = random.split(random.key(1))
    actions = random.bernoulli(k_act, 0.5, (1000, 4)).to(torch.int64)
    steps = []
    for i, key in enumerate(random.split(k_env, 1000)):
        ts = env.step(ts.env_state, actions[i], key)
        steps.append(ts)
    traj = tree.stack(steps)  # every leaf (1000, 4, ...)
    assert not bool(traj.terminated.any())
    assert torch.equal(traj.truncated, (torch.arange(1, 1001) % 500 == 0)[:, None].expand(1000, 4))
    # Reward 1 exactly while the reached state is upright and on the track, theta wrapped to [-pi, pi).
    x, theta = traj.final_obs[..., 0].double(), traj.final_obs[..., 2].double()
    assert bool((theta.abs() <= math.pi).all()) and float(theta.abs().max()) > 3  # the pole swung all the way round
    ok = (x.abs() < 2.4) & (theta.abs() < 12 * 2 * math.pi / 360)
    torch.testing.assert_close(traj.reward, ok.float(), rtol=0, atol=0)
    # Random actions drop the pole early, but the episode (and its zero rewards) continue to step 500.
    assert bool((traj.reward[:5] == 1).all()) and float(traj.reward[:500].mean()) < 0.5


@pytest.mark.parametrize("env_id", ["CartPole-v1", "seals/CartPole-v0"])
def test_expert_scores_500_on_every_episode(env_id: str) -> None:
    env = make(env_id, n_envs=200)
    expert = expert_for(env_id)
    ts = env.reset(random.key(0))
    returns = torch.zeros(200)
    keys = random.split(random.key(1), 500)
    for i in range(500):
        ts = env.step(ts.env_state, expert(ts.obs, keys[i]), keys[i])
        returns += ts.reward
        assert not bool(ts.terminated.any())
    assert bool(ts.truncated.all())
    assert returns.tolist() == [500.0] * 200


def test_expert_on_gymnasium_and_policy_signature() -> None:
    g = gym.make("CartPole-v1")
    for seed in range(3):
        obs, _ = g.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = g.step(int(cartpole_expert(torch.from_numpy(obs))))
            total += float(r)
            done = term or trunc
        assert total == 500.0
    obs = torch.tensor([[0.0, 0.0, 0.1, 0.0], [0.0, 0.0, -0.1, 0.0]])
    assert cartpole_expert(obs).tolist() == [1, 0]  # push towards the side the pole leans to
    assert cartpole_expert(obs).dtype == torch.int64
    torch.testing.assert_close(cartpole_expert(obs, random.key(0)), cartpole_expert(obs))
    assert cartpole_expert(obs[0]).shape == ()
    with pytest.raises(KeyError, match=r"No scripted expert for 'Pendulum-v1'.*CartPole-v1"):
        expert_for("Pendulum-v1")


def test_make_and_register(monkeypatch: pytest.MonkeyPatch) -> None:
    env = make("CartPole-v1", n_envs=7, max_episode_steps=20)
    assert isinstance(env, CartPole) and not isinstance(env, FixedHorizonCartPole)
    assert env.n_envs == 7 and env.max_episode_steps == 20
    assert isinstance(make("seals/CartPole-v0"), FixedHorizonCartPole)
    with pytest.raises(ValueError, match=r"Unknown .*'CartPole-v9'.*Did you mean 'CartPole-v1'.*seals/CartPole-v0"):
        make("CartPole-v9")
    # Ids with no torch version fall back to gymnasium, host-side.
    fallback = make("FrozenLake-v1", n_envs=2)
    assert isinstance(fallback, GymEnv) and fallback.n_envs == 2
    with pytest.raises(ValueError, match="already registered"):
        register("CartPole-v1", CartPole)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register("ShortCartPole-v0", lambda n_envs: CartPole(n_envs, max_episode_steps=10))
    assert make("ShortCartPole-v0", n_envs=2).max_episode_steps == 10
    assert "ShortCartPole-v0" in registry.registered_ids()
