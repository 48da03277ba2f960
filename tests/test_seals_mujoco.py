"""The seals MuJoCo family: seals' observation sizes, positions in the observation, no early end, horizon 1000."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from imitation_fn import envs
from imitation_fn.core import random
from imitation_fn.envs import seals_mujoco
from imitation_fn.envs.gym import GymEnv

pytest.importorskip("mujoco")

# seals 0.2.1 on gymnasium 0.29 (its *-v4 environments).
OBS_SIZE = {"HalfCheetah": 18, "Hopper": 12, "Swimmer": 10, "Walker2d": 18, "Ant": 29, "Humanoid": 378}


@pytest.mark.parametrize("name", sorted(OBS_SIZE))
def test_observation_keeps_positions_and_episodes_run_the_full_horizon(name: str) -> None:
    env = gym.make(seals_mujoco.env_id(name))
    assert env.observation_space.shape == (OBS_SIZE[name],)
    assert env.spec is not None and env.spec.max_episode_steps == seals_mujoco.HORIZON == 1000
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    qpos = env.unwrapped.data.qpos  # type: ignore[attr-defined]
    for t in range(1, 1001):
        # Full-scale random actions: Hopper, Walker2d, Ant and Humanoid fall within steps, which ends gymnasium's
        # own episodes early (terminate_when_unhealthy); seals' never end before the time limit.
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        np.testing.assert_allclose(obs[0], qpos[0], rtol=0, atol=1e-12)  # the root's x position, not dropped
        assert not terminated, f"{name} terminated at step {t}"
        assert truncated == (t == 1000)
    env.close()


def test_gymnasium_own_versions_would_end_early_or_drop_positions() -> None:
    # What the seals variants change, shown on gymnasium's defaults (so the test above can fail).
    hopper = gym.make("Hopper-v4")
    assert hopper.observation_space.shape == (11,)
    hopper.reset(seed=0)
    hopper.action_space.seed(0)
    ended = any(hopper.step(hopper.action_space.sample())[2] for _ in range(1000))
    assert ended
    hopper.close()


def test_made_through_the_registry_as_a_host_env() -> None:
    env = envs.make("seals/Hopper-v1", n_envs=2)
    assert isinstance(env, GymEnv) and env.max_episode_steps == 1000
    ts = env.reset(random.key(0))
    assert tuple(ts.obs.shape) == (2, 12)
