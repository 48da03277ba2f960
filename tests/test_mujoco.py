"""A MuJoCo task through GymEnv: a short rollout, not training (needs the optional ``mujoco`` extra)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn.core import random
from imitation_fn.data import gym_rollout
from imitation_fn.envs.gym import GymEnv

pytest.importorskip("mujoco")
pytest.importorskip("imageio")  # gymnasium's MuJoCo envs import it (gymnasium[mujoco])


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MuJoCo writes compiler warnings to MUJOCO_LOG.TXT in the working directory: keep it out of the repo."""
    monkeypatch.chdir(tmp_path)


def test_hopper_short_rollout_matches_gymnasium() -> None:
    n, n_steps, key = 2, 50, random.key(0)
    env = GymEnv("Hopper-v5", n_envs=n, max_episode_steps=20)
    assert env.observation_space.shape == (11,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (3,)

    reset_key, act_key = random.split(key)
    ts = env.reset(reset_key)
    refs = [gym.make("Hopper-v5", max_episode_steps=20) for _ in range(n)]
    ref_obs = [r.reset(seed=s)[0] for r, s in zip(refs, random.bits(reset_key, n).tolist(), strict=True)]
    n_done = 0
    for t in range(n_steps):
        action = random.uniform(random.fold_in(act_key, t), (n, 3), torch.float32, -1.0, 1.0)
        for i in range(n):  # MuJoCo observations are float64; ours are them cast to float32
            np.testing.assert_array_equal(ts.obs[i].numpy(), np.float32(ref_obs[i]))
        ts = env.step(ts.env_state, action, act_key)
        assert ts.obs.shape == ts.final_obs.shape == (n, 11) and ts.obs.dtype == torch.float32
        assert ts.reward.dtype == torch.float32 and bool(torch.isfinite(ts.reward).all())
        for i, ref in enumerate(refs):
            reached, rew, term, trunc, _ = ref.step(action[i].numpy())
            np.testing.assert_array_equal(ts.final_obs[i].numpy(), np.float32(reached))
            assert (bool(ts.terminated[i]), bool(ts.truncated[i])) == (term, trunc)
            torch.testing.assert_close(ts.reward[i], torch.tensor(rew, dtype=torch.float32))
            ref_obs[i] = ref.reset()[0] if term or trunc else reached
            n_done += term or trunc
    assert n_done >= n  # every sub-env reset at least once (time limit 20 in 50 steps)


def test_half_cheetah_trajectories() -> None:
    env = GymEnv("HalfCheetah-v5", n_envs=2, max_episode_steps=25)
    policy = lambda obs, key: random.uniform(key, (obs.shape[0], 6), torch.float32, -1.0, 1.0)  # noqa: E731
    trajs = gym_rollout.generate_trajectories(env, policy, random.key(0), min_timesteps=50)
    assert len(trajs) >= 2 and all(len(t) == 25 and not t.terminal for t in trajs)
    assert trajs[0].obs.shape == (26, 17) and trajs[0].acts.shape == (25, 6)
