"""Tests for imitation_fn.envs.gym (any gymnasium env behind the Env interface) and imitation_fn.data.gym_rollout."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

from imitation_fn.core import random, tree
from imitation_fn.data import gym_rollout, rollout
from imitation_fn.envs.base import PolicyFn
from imitation_fn.envs.gym import GymEnv, RawEpisode, RolloutInfoWrapper, make_gym

# ------------------------------------------------------------------------------------------------
# A tiny gymnasium env whose episodes are known in advance, in several observation spaces
# ------------------------------------------------------------------------------------------------


class CountEnv(gym.Env[Any, Any]):
    """Terminates after ``horizon`` steps. Reward = 10 * action + t; info = {"t": t}.

    The observation shows ``t`` (steps taken) and ``noise`` (drawn at reset from the env's seeded
    generator) in the form ``kind`` asks for: "box" ``[t, noise]``, "multidiscrete" ``[t, noise // 10]``,
    "dict" ``{"flag": t % 3, "pos": [t, noise]}``, "image" an 8x8x3 uint8 frame filled with ``t``.
    """

    def __init__(self, kind: str = "box", horizon: int = 3) -> None:
        self.kind, self.horizon = kind, horizon
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = {
            "box": gym.spaces.Box(-np.inf, np.inf, (2,), np.float64),
            "multidiscrete": gym.spaces.MultiDiscrete([100, 10]),
            "dict": gym.spaces.Dict(
                {"pos": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), "flag": gym.spaces.Discrete(3)}
            ),
            "image": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
        }[kind]
        self.t, self.noise = 0, 0

    def _obs(self) -> Any:
        if self.kind == "box":
            return np.array([self.t, self.noise], dtype=np.float64)
        if self.kind == "multidiscrete":
            return np.array([self.t, self.noise // 10], dtype=np.int64)
        if self.kind == "dict":
            return {"flag": self.t % 3, "pos": np.array([self.t, self.noise], dtype=np.float32)}
        return np.full((8, 8, 3), self.t, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t, self.noise = 0, int(self.np_random.integers(0, 100))
        return self._obs(), {"t": 0}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return self._obs(), float(10 * action + self.t), self.t >= self.horizon, False, {"t": self.t}


def random_actions(env: GymEnv, key: Tensor) -> Tensor:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return random.randint(key, (env.n_envs,), 0, int(space.n))
    assert isinstance(space, gym.spaces.Box)
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    return random.uniform(key, (env.n_envs, *space.shape), torch.float32, low, high)


def random_policy(env: GymEnv) -> PolicyFn:
    return lambda obs, key: random_actions(env, key)


def run(env: GymEnv, key: Tensor, n_steps: int) -> list[Any]:
    """Reset and step ``n_steps`` random actions; the TimeSteps in order, env_state replaced by its ``elapsed``."""
    reset_key, act_key = random.split(key)
    ts = env.reset(reset_key)
    out = [ts.replace(env_state=ts.env_state.elapsed)]
    for t in range(n_steps):
        ts = env.step(ts.env_state, random_actions(env, random.fold_in(act_key, t)), act_key)
        out.append(ts.replace(env_state=ts.env_state.elapsed))
    return out


# ------------------------------------------------------------------------------------------------
# GymEnv
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "obs_shape", "act_dtype"),
    [("CartPole-v1", (4,), torch.int64), ("Pendulum-v1", (3,), torch.float32), ("MountainCar-v0", (2,), torch.int64)],
)
def test_classic_control_shapes_and_dtypes(env_id: str, obs_shape: tuple[int, ...], act_dtype: torch.dtype) -> None:
    with GymEnv(env_id, n_envs=3) as env:
        assert env.max_episode_steps == gym.spec(env_id).max_episode_steps
        assert env.observation_space.shape == obs_shape
        steps = run(env, random.key(0), 5)
        for ts in steps:
            assert ts.obs.shape == ts.final_obs.shape == (3, *obs_shape)
            assert ts.obs.dtype == ts.final_obs.dtype == torch.float32
            assert ts.reward.shape == ts.terminated.shape == ts.truncated.shape == (3,)
            assert ts.reward.dtype == torch.float32
            assert ts.terminated.dtype == ts.truncated.dtype == torch.bool
            assert all(env.observation_space.contains(o.numpy()) for o in ts.obs)
        assert not steps[0].done.any() and (steps[0].reward == 0).all()
        assert random_actions(env, random.key(0)).dtype == act_dtype


def test_matches_gymnasium_step_by_step_with_same_step_autoreset() -> None:
    """Seeds come from the key; done steps report the reached obs in final_obs and the next episode's in obs."""
    n, n_steps, key = 2, 150, random.key(3)
    env = GymEnv("CartPole-v1", n_envs=n, max_episode_steps=30)
    steps = run(env, key, n_steps)

    reset_key, act_key = random.split(key)
    seeds = random.bits(reset_key, n).tolist()
    refs = [gym.make("CartPole-v1", max_episode_steps=30) for _ in range(n)]
    obs = np.stack([r.reset(seed=s)[0] for r, s in zip(refs, seeds, strict=True)])
    np.testing.assert_array_equal(steps[0].obs.numpy(), obs)
    n_done = 0
    for t in range(n_steps):
        actions = random_actions(env, random.fold_in(act_key, t)).numpy()
        ts = steps[t + 1]
        for i, ref in enumerate(refs):
            reached, rew, term, trunc, _ = ref.step(int(actions[i]))
            np.testing.assert_array_equal(ts.final_obs[i].numpy(), reached)
            assert (float(ts.reward[i]), bool(ts.terminated[i]), bool(ts.truncated[i])) == (rew, term, trunc)
            if term or trunc:
                n_done += 1
                reached = ref.reset()[0]  # unseeded: continues the generator seeded above
            np.testing.assert_array_equal(ts.obs[i].numpy(), reached)
    assert n_done >= 2 and any(bool(ts.truncated.any()) for ts in steps), "exercise both kinds of episode end"


def test_autoreset_bookkeeping_and_elapsed() -> None:
    env = GymEnv(lambda: CountEnv("box", horizon=3), n_envs=2)
    ts = env.reset(random.key(0))
    for t in range(1, 7):
        ts = env.step(ts.env_state, torch.zeros(2, dtype=torch.int64), random.key(0))
        done_now = t % 3 == 0
        assert ts.terminated.tolist() == [done_now] * 2 and not ts.truncated.any()
        assert ts.final_obs[:, 0].tolist() == [float(t % 3 or 3)] * 2
        assert ts.obs[:, 0].tolist() == [float(t % 3)] * 2
        assert ts.env_state.elapsed.tolist() == [t % 3] * 2
        assert [info["t"] for info in ts.env_state.infos] == [t % 3 or 3] * 2  # the step's info, not the reset's
        if done_now:  # a new episode draws new noise
            assert not torch.equal(ts.obs[:, 1], ts.final_obs[:, 1])


def test_same_key_same_episodes_and_different_key_different() -> None:
    a = run(GymEnv("Pendulum-v1", n_envs=2), random.key(7), 20)
    b = run(GymEnv("Pendulum-v1", n_envs=2), random.key(7), 20)
    c = run(GymEnv("Pendulum-v1", n_envs=2), random.key(8), 20)
    assert tree.allclose(a, b, rtol=0, atol=0)
    assert not torch.equal(a[0].obs, c[0].obs)
    assert not torch.equal(a[0].obs[0], a[0].obs[1]), "sub-environments get different seeds"


def test_max_episode_steps_for_ids_and_factories() -> None:
    for env in (
        GymEnv("CartPole-v1", n_envs=2, max_episode_steps=4),
        GymEnv(lambda: CountEnv(horizon=99), 2, max_episode_steps=4),
    ):
        assert env.max_episode_steps == 4
        steps = run(env, random.key(0), 4)
        assert [bool(ts.truncated.all()) for ts in steps] == [False] * 4 + [True]
    assert GymEnv(lambda: CountEnv()).max_episode_steps is None


def test_multidiscrete_image_and_dict_observations() -> None:
    md = run(GymEnv(lambda: CountEnv("multidiscrete"), 2), random.key(0), 2)
    assert md[1].obs.dtype == torch.int64 and md[1].obs.shape == (2, 2)
    assert md[1].obs[:, 0].tolist() == [1, 1]

    img = run(GymEnv(lambda: CountEnv("image"), 2), random.key(0), 2)
    assert img[2].obs.dtype == torch.uint8 and img[2].obs.shape == (2, 8, 8, 3)
    assert bool((img[2].obs == 2).all())

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # flattening a Dict (Discrete one-hot) is the supported path: no warning
        env = GymEnv(lambda: CountEnv("dict"), 2)
    assert isinstance(env.unflattened_observation_space, gym.spaces.Dict)
    assert env.observation_space.shape == (5,)  # Discrete(3) one-hot, then pos (keys in sorted order)
    ts = run(env, random.key(0), 3)
    assert ts[2].obs.dtype == torch.float32
    assert ts[2].obs[0].tolist()[:4] == [0.0, 0.0, 1.0, 2.0]  # flag = 2 one-hot, then pos = (t, noise)
    assert ts[3].final_obs[0].tolist()[:4] == [1.0, 0.0, 0.0, 3.0]  # the step reached t = 3 (flag 0) ...
    assert ts[3].obs[0].tolist()[:4] == [1.0, 0.0, 0.0, 0.0]  # ... and the next episode starts at t = 0


def test_user_wrappers_apply_to_each_sub_env() -> None:
    wrappers = [
        lambda e: gym.wrappers.TransformReward(e, lambda r: -float(r)),
        lambda e: gym.wrappers.TransformObservation(e, lambda o: o * 10, e.observation_space),
    ]
    env = GymEnv(lambda: CountEnv("box"), 2, wrappers=wrappers)
    steps = run(env, random.key(0), 2)
    assert steps[1].obs[:, 0].tolist() == [10.0, 10.0]
    assert bool((steps[1].reward <= -1).all())


def test_async_matches_sync() -> None:
    sync = run(GymEnv("CartPole-v1", n_envs=2), random.key(1), 10)
    with GymEnv("CartPole-v1", n_envs=2, vectorization="async") as env:
        assert tree.allclose(run(env, random.key(1), 10), sync, rtol=0, atol=0)


def test_inside_vmap_raises_a_clear_error() -> None:
    env = GymEnv("CartPole-v1", n_envs=2)
    with pytest.raises(RuntimeError, match="cannot be transformed"):
        torch.func.vmap(env.reset)(random.split(random.key(0), 3))
    ts = env.reset(random.key(0))
    with pytest.raises(RuntimeError, match="vmap"):
        torch.func.vmap(lambda a: env.step(ts.env_state, a, random.key(0)).obs)(torch.zeros(3, 2, dtype=torch.int64))


def test_stale_state_and_bad_action_shape_raise() -> None:
    env = GymEnv("CartPole-v1", n_envs=2)
    first = env.reset(random.key(0))
    env.step(first.env_state, torch.zeros(2, dtype=torch.int64), random.key(0))
    with pytest.raises(RuntimeError, match="latest state"):
        env.step(first.env_state, torch.zeros(2, dtype=torch.int64), random.key(0))
    with pytest.raises(ValueError, match=r"expected \(2,\)"):
        env.step(env.reset(random.key(0)).env_state, torch.zeros(3, dtype=torch.int64), random.key(0))


def test_make_gym() -> None:
    env = make_gym("MountainCar-v0", 2)
    assert isinstance(env, GymEnv) and env.n_envs == 2 and env.max_episode_steps == 200


# ------------------------------------------------------------------------------------------------
# RolloutInfoWrapper and rollouts
# ------------------------------------------------------------------------------------------------


def test_rollout_info_wrapper_records_raw_episode() -> None:
    env = RolloutInfoWrapper(CountEnv("box", horizon=3))
    env.reset(seed=0)
    infos = [env.step(2)[-1] for _ in range(3)]
    assert "rollout" not in infos[0] and "rollout" not in infos[1]
    raw = infos[2]["rollout"]
    assert isinstance(raw, RawEpisode)
    np.testing.assert_array_equal(raw.obs[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(raw.rews, [21, 22, 23])


def _scaling_wrappers() -> list[Any]:
    """Rewards x100 and a different observation (shape and values): what the raw record must undo."""
    extra = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    return [
        lambda e: gym.wrappers.TransformReward(e, lambda r: 100 * float(r)),
        lambda e: gym.wrappers.TransformObservation(e, lambda o: np.append(o * -1, 7.0), extra),
    ]


def test_collect_episodes_records_raw_obs_rews_and_infos_under_wrappers() -> None:
    horizons = itertools.count(2)  # sub-env i ends every 2 + i steps: both end at step 6 with lengths 2 and 3
    env = GymEnv(lambda: CountEnv("box", horizon=next(horizons)), n_envs=2, wrappers=_scaling_wrappers())
    policy = random_policy(env)
    episodes = gym_rollout.collect_episodes(env, policy, random.key(0), min_episodes=6)
    assert len(episodes.trajectories) >= 6 and len(episodes.infos) == len(episodes.trajectories)
    for traj, infos in zip(episodes.trajectories, episodes.infos, strict=True):
        assert len(traj) in (2, 3) and traj.terminal
        assert traj.obs.shape == (len(traj) + 1, 2) and traj.obs.dtype == torch.float32  # raw, not (.., 3)
        torch.testing.assert_close(traj.obs[:, 0], torch.arange(len(traj) + 1, dtype=torch.float32))
        torch.testing.assert_close(traj.rews, 10 * traj.acts.float() + torch.arange(1, len(traj) + 1))
        assert [info["t"] for info in infos] == list(range(1, len(traj) + 1))
        assert all("rollout" not in info for info in infos)

    wrapped = gym_rollout.collect_episodes(env, policy, random.key(0), min_episodes=6, unwrap=False)
    traj = wrapped.trajectories[0]
    assert traj.obs.shape[1] == 3 and bool((traj.obs[:, 2] == 7).all())
    torch.testing.assert_close(traj.rews, 100 * (10 * traj.acts.float() + torch.arange(1, len(traj) + 1)))
    assert isinstance(wrapped.infos[0][-1]["rollout"], RawEpisode)


def test_collect_episodes_same_key_same_data_and_stochastic_policy_varies() -> None:
    env = GymEnv("CartPole-v1", n_envs=2)
    a = gym_rollout.generate_trajectories(env, random_policy(env), random.key(0), min_episodes=3)
    b = gym_rollout.generate_trajectories(env, random_policy(env), random.key(0), min_episodes=3)
    c = gym_rollout.generate_trajectories(env, random_policy(env), random.key(1), min_episodes=3)
    assert len(a) == len(b) and all(tree.allclose(x, y, rtol=0, atol=0) for x, y in zip(a, b, strict=True))
    assert [len(t) for t in a] != [len(t) for t in c] or not torch.equal(a[0].acts, c[0].acts)


def test_deterministic_policy_gives_deterministic_actions() -> None:
    env = GymEnv("CartPole-v1", n_envs=2)
    push_toward_pole = lambda obs, key: (obs[:, 2] + obs[:, 3] > 0).long()  # noqa: E731 - a fixed controller
    trajs = gym_rollout.generate_trajectories(env, push_toward_pole, random.key(0), min_episodes=2)
    for traj in trajs:
        assert torch.equal(traj.acts, (traj.obs[:-1, 2] + traj.obs[:-1, 3] > 0).long())
        assert len(traj) == 500 and not traj.terminal  # it balances until the time limit


def test_unwrap_errors_when_raw_record_is_missing() -> None:
    env = GymEnv("CartPole-v1", n_envs=1, wrappers=_scaling_wrappers()[:1], rollout_info=False)
    with pytest.raises(ValueError, match="rollout_info=True"):
        gym_rollout.collect_episodes(env, random_policy(env), random.key(0), min_episodes=1)
    # A wrapper that ends episodes itself hides the end from RolloutInfoWrapper.
    cut = GymEnv(lambda: CountEnv(horizon=99), 1, wrappers=[lambda e: gym.wrappers.TimeLimit(e, 5)])
    with pytest.raises(ValueError, match="TimeLimit"):
        gym_rollout.collect_episodes(cut, random_policy(cut), random.key(0), min_episodes=1)
    # Without user wrappers there is nothing to undo: no record needed.
    plain = GymEnv("CartPole-v1", n_envs=1, rollout_info=False)
    assert len(gym_rollout.generate_trajectories(plain, random_policy(plain), random.key(0), min_episodes=1)) >= 1


@pytest.mark.parametrize(("min_episodes", "min_timesteps"), [(5, None), (None, 300), (3, 200)])
def test_sample_until_on_gym_env(min_episodes: int | None, min_timesteps: int | None) -> None:
    env = GymEnv("CartPole-v1", n_envs=3)
    policy = random_policy(env)
    generic = rollout.generate_trajectories(
        env, policy, random.key(0), min_episodes=min_episodes, min_timesteps=min_timesteps, chunk_steps=32
    )
    ours = gym_rollout.generate_trajectories(
        env, policy, random.key(0), min_episodes=min_episodes, min_timesteps=min_timesteps
    )
    for trajs in (generic, ours):
        assert len(trajs) >= (min_episodes or 1)
        assert sum(len(t) for t in trajs) >= (min_timesteps or 0)
        for traj in trajs:
            assert traj.obs.shape == (len(traj) + 1, 4) and traj.acts.shape == (len(traj),)
            assert traj.terminal == (len(traj) < 500)
            assert bool((traj.rews == 1).all())
