"""The shared skeleton of the classic-control environments: a float64 physics state per
sub-environment, gymnasium's ``TimeLimit`` and auto-reset.

A task supplies ``initial_physics(key)``, ``transition(env_state, action) -> (physics, reward,
terminated)`` and, when its observation is not the physics state itself, ``observe(physics)``;
``reset`` and ``step`` (with the auto-reset bookkeeping of :class:`~imitation_fn.envs.base.TimeStep`)
are written once here.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from imitation_fn.core import struct
from imitation_fn.core.random import Key
from imitation_fn.envs.base import Env, TimeStep, time_limit


def _bool(mask: Tensor) -> Tensor:
    """``mask`` unchanged, stored as bytes viewed as bool.

    Why: inductor's CPU code converts a vectorised comparison to ``bool`` element by element; a ``uint8``
    store is vectorised, and viewing it as ``bool`` is free.
    """
    return torch.where(mask, 1, 0).to(torch.uint8).view(torch.bool)


class PhysicsState(struct.PyTreeNode):
    """``physics: (n_envs, d)`` float64; ``t: (n_envs,)`` int64 steps taken in the current episode."""

    physics: Tensor
    t: Tensor


class PhysicsEnv(Env):
    """A batch of classic-control tasks over a :class:`PhysicsState`."""

    @abc.abstractmethod
    def initial_physics(self, key: Key) -> Tensor:
        """Fresh states ``(n_envs, d)`` float64, drawn from the task's reset distribution."""

    @abc.abstractmethod
    def transition(self, env_state: PhysicsState, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(next physics (n, d) float64, reward (n,) float32, terminated (n,) bool)`` of one step."""

    def observe(self, physics: Tensor) -> Tensor:
        """Observations ``(n, obs_dim)`` float32 of physics states (default: the state itself)."""
        return physics.to(torch.float32)

    def reset(self, key: Key) -> TimeStep:
        physics = self.initial_physics(key)
        obs = self.observe(physics)
        t = torch.zeros(physics.shape[:-1], dtype=torch.int64, device=physics.device)
        done = torch.zeros_like(t, dtype=torch.bool)
        return TimeStep(PhysicsState(physics, t), obs, torch.zeros_like(obs[..., 0]), done, done, obs)

    def step(self, env_state: PhysicsState, action: Tensor, key: Key) -> TimeStep:
        physics, reward, terminated = self.transition(env_state, action)
        t = env_state.t + 1
        truncated = time_limit(t, self.max_episode_steps)
        done = terminated | truncated
        # Auto-reset: fresh noise is drawn for every sub-environment and kept where its episode ended.
        next_physics = torch.where(done.unsqueeze(-1), self.initial_physics(key), physics)
        return TimeStep(
            env_state=PhysicsState(next_physics, torch.where(done, 0, t)),
            obs=self.observe(next_physics),
            reward=reward,
            terminated=_bool(terminated),
            truncated=_bool(truncated),
            final_obs=self.observe(physics),
        )


__all__ = ["PhysicsEnv", "PhysicsState"]
