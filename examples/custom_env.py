"""A custom environment: write a pure, batched torch Env, register it, and train on it.

    python examples/custom_env.py
    python examples/custom_env.py --tiny

Mirrors ``imitation``'s "Train with a custom environment" tutorial. ``Corridor`` is a fixed-horizon
1-D task: the agent at ``x`` sees ``(x, goal)`` and steps left, stays, or steps right; the reward is
``-|x - goal|``. Everything that changes lives in ``env_state``; ``reset``/``step`` are pure functions of
their inputs (``torch.where`` for the auto-reset, keys from ``imitation_fn.core.random``), so rollouts
vmap over seeds. Any gymnasium environment works too (``envs.make("my_pkg:MyEnv-v0")``), stepped on the host.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from _common import parse_args
from torch import Tensor

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import random, struct
from imitation_fn.core.random import Key
from imitation_fn.data import flatten_trajectories, rollout, rollout_stats
from imitation_fn.envs.base import Env, TimeStep
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.policies.simple import random_policy
from imitation_fn.train import train


class CorridorState(struct.PyTreeNode):
    x: Tensor  # (n_envs,) float32 position
    goal: Tensor  # (n_envs,) float32 target
    t: Tensor  # (n_envs,) int64 steps taken in the episode


class Corridor(Env):
    """Walk to a random goal in [-1, 1]; fixed horizon (no early termination: the horizon leaks nothing)."""

    STEP = 0.1

    def __init__(self, n_envs: int = 1, max_episode_steps: int = 30):
        self.n_envs = n_envs
        self.max_episode_steps = self.horizon = max_episode_steps
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(3)  # 0 left, 1 stay, 2 right

    def _start(self, key: Key) -> CorridorState:
        kx, kg = random.split(key)
        x = random.uniform(kx, (self.n_envs,), minval=-1.0, maxval=1.0)
        goal = random.uniform(kg, (self.n_envs,), minval=-1.0, maxval=1.0)
        return CorridorState(x=x, goal=goal, t=torch.zeros(self.n_envs, dtype=torch.int64))

    @staticmethod
    def _obs(s: CorridorState) -> Tensor:
        return torch.stack([s.x, s.goal], -1)

    def reset(self, key: Key) -> TimeStep:
        s = self._start(key)
        no = torch.zeros(self.n_envs, dtype=torch.bool)
        return TimeStep(s, self._obs(s), torch.zeros(self.n_envs), no, no, self._obs(s))

    def step(self, env_state: CorridorState, action: Tensor, key: Key) -> TimeStep:
        x = (env_state.x + (action.to(torch.float32) - 1.0) * self.STEP).clamp(-2.0, 2.0)
        moved = env_state.replace(x=x, t=env_state.t + 1)
        reward = -(x - env_state.goal).abs()
        truncated = moved.t >= self.horizon
        fresh = self._start(key)  # auto-reset, selected per sub-environment with torch.where
        nxt = CorridorState(
            x=torch.where(truncated, fresh.x, moved.x),
            goal=torch.where(truncated, fresh.goal, moved.goal),
            t=torch.where(truncated, fresh.t, moved.t),
        )
        terminated = torch.zeros_like(truncated)
        return TimeStep(nxt, self._obs(nxt), reward, terminated, truncated, self._obs(moved))


def expert(obs: Tensor, key: Key) -> Tensor:
    """Step toward the goal; stay when within half a step."""
    gap = obs[:, 1] - obs[:, 0]
    return torch.where(gap.abs() < Corridor.STEP / 2, 1, torch.where(gap > 0, 2, 0)).to(torch.int64)


def main() -> None:
    args = parse_args(__doc__ or "")
    envs.register("examples/Corridor-v0", lambda n_envs=1: Corridor(n_envs), overwrite=True)
    env = envs.make("examples/Corridor-v0", n_envs=8)

    n = 8 if args.tiny else 64
    demos = rollout.generate_trajectories(env, expert, random.key(0), min_episodes=n)[:n]
    rnd = evaluate_policy(env, random_policy(env.action_space), random.key(1)).returns.mean()
    print(f"expert return {rollout_stats(demos)['return_mean']:.2f}, random policy {float(rnd):.2f}")

    result = train(
        bc, bc.Config(batch_size=64), flatten_trajectories(demos), env,
        seeds=range(4), n_batches=30 if args.tiny else 2000, progress=not args.tiny,
    )  # fmt: skip
    print(f"BC on Corridor, return per seed: {[round(float(r), 2) for r in result.eval_returns.mean(-1)]}")


if __name__ == "__main__":
    main()
