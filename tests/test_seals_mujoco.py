"""The seals MuJoCo family: seals' observation sizes, positions in the observation, no early end, horizon 1000."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn import envs
from imitation_fn.algorithms import airl, dagger, density, gail, preference_comparisons
from imitation_fn.core import random, tree
from imitation_fn.data.rollout import generate_trajectories
from imitation_fn.envs import seals_mujoco
from imitation_fn.envs.gym import GymEnv
from imitation_fn.rl import ppo, sac
from imitation_fn.train import dagger as train_dagger
from imitation_fn.train import density as train_density
from imitation_fn.train import loop
from imitation_fn.train import preference_comparisons as train_pc
from imitation_fn.train.adversarial import train_adversarial
from imitation_fn.train.rl import train_rl

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


# --- Every acting algorithm on seals/Hopper-v1 (host env), 2 seeds, a few thousand steps ---------------------------

HOPPER = "seals/Hopper-v1"
PPO_HOPPER = {"n_envs": 2, "n_steps": 512, "batch_size": 256, "n_epochs": 1}


@pytest.fixture(scope="module")
def hopper_demos() -> list[Any]:
    """Two full episodes of an untrained PPO policy: the smoke tests check the machinery, not learning."""
    cfg = ppo.Config(**PPO_HOPPER)
    result = train_rl(ppo, cfg, HOPPER, total_timesteps=1024, seeds=[0], n_eval_episodes=1, progress=False)
    policy = ppo.policy(tree.index(result.states, 0))
    return generate_trajectories(envs.make(HOPPER, 2), policy, random.key(0), min_episodes=2)


def _check(result: loop.Result, budget: int) -> None:
    assert result.steps >= budget and result.eval_returns.shape[0] == 2
    assert torch.isfinite(result.eval_returns).all()


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_rl_smoke_on_seals_hopper(algo: str) -> None:
    if algo == "ppo":
        module, cfg, budget = ppo, ppo.Config(**PPO_HOPPER), 2048
    else:
        module, cfg, budget = sac, sac.Config(n_envs=2, learning_starts=256, batch_size=64, net_arch=(64, 64)), 512
    _check(
        train_rl(module, cfg, HOPPER, total_timesteps=budget, seeds=[0, 1], n_eval_episodes=1, progress=False), budget
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gail", "airl"])
def test_adversarial_smoke_on_seals_hopper(name: str, hopper_demos: list[Any]) -> None:
    algo = {"gail": gail, "airl": airl}[name]
    cfg = algo.Config(gen=ppo.Config(**PPO_HOPPER), demo_batch_size=256)
    result = train_adversarial(algo, cfg, HOPPER, hopper_demos, total_timesteps=2048, seeds=[0, 1], n_eval_episodes=1,
                               progress=False)  # fmt: skip
    _check(result, 2048)


@pytest.mark.slow
def test_density_smoke_on_seals_hopper(hopper_demos: list[Any]) -> None:
    cfg = density.Config(density_type="state", rl=ppo.Config(**PPO_HOPPER))
    result = train_density.train_policy(cfg, HOPPER, hopper_demos, total_timesteps=2048, seeds=[0, 1],
                                        n_eval_episodes=1, progress=False)  # fmt: skip
    _check(result, 2048)


@pytest.mark.slow
def test_preference_comparisons_smoke_on_seals_hopper() -> None:
    agent = {"n_envs": 2, "learning_starts": 256, "batch_size": 64, "buffer_size": 4096, "net_arch": [64, 64]}
    cfg = preference_comparisons.Config(total_timesteps=1024, total_comparisons=20, num_iterations=2,
                                        fragment_length=25, agent="sac", agent_config=agent)  # fmt: skip
    result = train_pc.train(cfg, HOPPER, seeds=[0, 1], n_eval_episodes=1, progress=False)
    assert torch.isfinite(result.eval_returns).all() and result.eval_returns.shape[0] == 2


@pytest.mark.slow
def test_dagger_smoke_on_seals_hopper(hopper_demos: list[Any]) -> None:
    cfg = dagger.Config(n_envs=2, rollout_round_min_timesteps=1000, rollout_round_min_episodes=1, n_batches=20,
                        batch_size=64)  # fmt: skip
    policy = ppo.policy(tree.index(train_rl(ppo, ppo.Config(**PPO_HOPPER), HOPPER, total_timesteps=1024, seeds=[0],
                                            n_eval_episodes=1, progress=False).states, 0))  # fmt: skip
    result = train_dagger.train_dagger(cfg, HOPPER, policy, total_timesteps=2000, seeds=[0, 1], n_eval_episodes=1)
    assert torch.isfinite(result.eval_returns).all() and result.eval_returns.shape[0] == 2
