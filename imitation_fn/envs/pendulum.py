"""Pendulum as a pure, batched torch environment: gymnasium's ``Pendulum-v1``.

A line-by-line transcription of ``gymnasium.envs.classic_control.pendulum`` (semi-implicit euler,
float64 state, float32 observations) plus gymnasium's ``TimeLimit(max_episode_steps=200)``, with
numpy's type promotion reproduced: gymnasium clips the float32 action in float32, so ``0.001 * u**2``
and ``3.0 * u`` are float32 products added to float64 terms, and so they are here. Given numpy's
``sin``/``cos``/``**2`` the arithmetic is bit-identical (tested); torch's own ``sin``/``cos`` differ
from them in the last bit of ~0.1% of float64 inputs, so a step agrees to ~1e-16 and float32
observations are equal in practice.

    env = Pendulum(n_envs=16)
    ts = env.reset(random.key(0))
    ts = env.step(ts.env_state, torques, random.key(1))  # torques: (16, 1) float32, clipped to [-2, 2]
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.core.random import Key
from imitation_fn.envs.physics import PhysicsEnv, PhysicsState

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0
RESET_HIGH = (math.pi, 1.0)  # initial (theta, theta_dot) ~ U[-high, high)


PendulumState = PhysicsState  # physics (n_envs, 2) float64 (theta, theta_dot); t (n_envs,) int64


def angle_normalize(x: Tensor) -> Tensor:
    """``x`` wrapped to ``[-pi, pi)``, as gymnasium's ``angle_normalize`` (``torch.remainder`` is numpy's ``%``)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Pendulum(PhysicsEnv):
    """gymnasium's ``Pendulum-v1`` (with its ``TimeLimit``), batched over ``n_envs`` and auto-resetting.

    Actions: ``(n_envs, 1)`` torques, taken as float32 (the action space's dtype) and clipped to ``[-2, 2]``.
    Observations: ``(n_envs, 3)`` float32 ``(cos theta, sin theta, theta_dot)``. Reward
    ``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)`` of the state before the step, theta normalised to
    ``[-pi, pi)``. Never terminates; truncated after ``max_episode_steps`` steps (``None``: never).
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int | None = 200, g: float = 10.0):
        self.n_envs = n_envs
        self.max_episode_steps = max_episode_steps
        self.g = g
        self.action_space = gym.spaces.Box(-MAX_TORQUE, MAX_TORQUE, shape=(1,), dtype=np.float32)
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_envs={self.n_envs}, max_episode_steps={self.max_episode_steps}, g={self.g})"

    def initial_physics(self, key: Key) -> Tensor:
        """Fresh states ``(n_envs, 2)`` float64 in ``[-pi, pi) x [-1, 1)`` (24 random bits per coordinate)."""
        u = random.uniform(key, (self.n_envs, 2)).to(torch.float64)
        high = torch.tensor(RESET_HIGH, dtype=torch.float64, device=u.device)
        return (2 * u - 1) * high  # 2u - 1 is exact, so |value| < high

    @staticmethod
    def observe(physics: Tensor) -> Tensor:
        """``(n, 2)`` float64 states -> ``(n, 3)`` float32 observations ``(cos, sin, theta_dot)``."""
        theta = physics[..., :1]
        return torch.cat([torch.cos(theta), torch.sin(theta), physics[..., 1:]], dim=-1).to(torch.float32)

    def transition(self, env_state: PhysicsState, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        physics, cost = self.dynamics(env_state.physics, action)
        return physics, (-cost).to(torch.float32), torch.zeros_like(env_state.t, dtype=torch.bool)  # never terminates

    def dynamics(self, physics: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``(n, 2)`` float64 states, ``(n, 1)`` torques -> ``(next states (n, 2), cost (n,) float64)``.

        Same operation order and dtypes as gymnasium: the torque stays float32 until it meets a float64 term.
        """
        th, thdot = physics[..., 0], physics[..., 1]
        u = action[..., 0].to(torch.float32).clamp(-MAX_TORQUE, MAX_TORQUE)
        cost = torch.square(angle_normalize(th)) + 0.1 * torch.square(thdot) + 0.001 * torch.square(u)
        newthdot = thdot + (3 * self.g / (2 * LENGTH) * torch.sin(th) + 3.0 / (MASS * LENGTH**2) * u) * DT
        newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED)
        newth = th + newthdot * DT
        return torch.stack([newth, newthdot], dim=-1), cost


__all__ = ["Pendulum", "PendulumState", "angle_normalize"]
