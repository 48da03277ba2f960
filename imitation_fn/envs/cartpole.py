"""CartPole as a pure, batched torch environment: gymnasium's ``CartPole-v1`` and seals' ``seals/CartPole-v0``.

The physics is a line-by-line transcription of ``gymnasium.envs.classic_control.cartpole`` (euler
integrator, float64 state, float32 observations, the same operation order so rounding agrees), plus
gymnasium's ``TimeLimit(max_episode_steps=500)``. The only source of disagreement is the last bit of
``sin``/``cos`` (torch and numpy use different libm implementations): states agree to ~1e-16 and
observations are equal as float32 in practice.

    env = CartPole(n_envs=16)
    ts = env.reset(random.key(0))
    ts = env.step(ts.env_state, actions, random.key(1))  # actions: (16,) int64 in {0, 1}

:class:`FixedHorizonCartPole` is seals' fixed-horizon variant: it never terminates, lasts exactly
``max_episode_steps`` steps, and pays reward 1 only while the pole is upright and the cart on the track.
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

# gymnasium's constants, computed the same way so the float64 values are bit-identical.
GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02  # seconds between state updates
THETA_THRESHOLD_RADIANS = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
RESET_BOUND = 0.05  # initial state ~ U[-0.05, 0.05) per coordinate


CartPoleState = PhysicsState  # physics (n_envs, 4) float64 (x, x_dot, theta, theta_dot); t (n_envs,) int64


class CartPole(PhysicsEnv):
    """gymnasium's ``CartPole-v1`` (with its ``TimeLimit``), batched over ``n_envs`` and auto-resetting.

    Actions: ``(n_envs,)`` int64, 0 pushes left and 1 pushes right. Observations: ``(n_envs, 4)`` float32.
    Reward 1 on every step, the terminating one included (``sutton_barto_reward=True``: 0 per step, -1 on
    termination). Episodes terminate when ``|x| > 2.4`` or ``|theta| > 12°`` and are truncated after
    ``max_episode_steps`` steps (``None``: never).
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int | None = 500, sutton_barto_reward: bool = False):
        self.n_envs = n_envs
        self.max_episode_steps = max_episode_steps
        self.sutton_barto_reward = sutton_barto_reward
        self.action_space = gym.spaces.Discrete(2)
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD_RADIANS * 2, np.inf], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_envs={self.n_envs}, max_episode_steps={self.max_episode_steps})"

    def initial_physics(self, key: Key) -> Tensor:
        """Fresh states ``(n_envs, 4)`` float64, uniform in ``[-0.05, 0.05)``.

        Drawn at float32 resolution (24 random bits, steps of 6e-9): half the random words of a float64
        draw, and this runs on every step for the auto-reset. Drawn feature-major, as ``dynamics`` stores
        the state: each coordinate's noise is one contiguous run of words (an (n, 4) draw would need a
        transpose inside the compiled step).
        """
        u = random.uniform(key, (4, self.n_envs), torch.float32, -RESET_BOUND, RESET_BOUND)
        return u.to(torch.float64).T

    def transition(self, env_state: PhysicsState, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.outcome(self.dynamics(env_state.physics, action))

    @staticmethod
    def dynamics(physics: Tensor, action: Tensor) -> Tensor:
        """One euler step of the cart-pole ODE: ``(n, 4)`` float64, ``(n,)`` actions -> ``(n, 4)`` (feature-major).

        Same operation order as gymnasium, so every product rounds as it does there.
        """
        x, x_dot, theta, theta_dot = physics.unbind(-1)
        force = torch.where(action == 1, FORCE_MAG, -FORCE_MAG)  # float32 ±10 is exact; promoted below
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + POLEMASS_LENGTH * theta_dot.square() * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * costheta.square() / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        # Stored feature-major ((4, n) in memory, as gymnasium's vectorised CartPole keeps its state): each
        # coordinate is a contiguous row, so a compiled step vectorises (sin/cos included) over environments.
        stepped = [x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc]
        return torch.stack(stepped).movedim(0, -1)

    def outcome(self, physics: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(physics, reward (n,) float32, terminated (n,) bool)`` of the state a step reached."""
        out_of_bounds = physics[..., 0].abs() > X_THRESHOLD
        fallen = physics[..., 2].abs() > THETA_THRESHOLD_RADIANS
        terminated = out_of_bounds | fallen
        if self.sutton_barto_reward:
            reward = torch.where(terminated, -1.0, 0.0).to(torch.float32)
        else:
            reward = torch.ones_like(physics[..., 0], dtype=torch.float32)
        return physics, reward, terminated


class FixedHorizonCartPole(CartPole):
    """seals' ``seals/CartPole-v0``: CartPole without early termination, exactly ``max_episode_steps`` long.

    Reward is 1 while the state is "ok" (``|x| < 2.4`` and ``|theta| < 12°``, theta wrapped to
    ``[-pi, pi)``) and 0 otherwise, so neither the reward nor the horizon leaks when the pole fell.
    ``terminated`` is always ``False``; every episode is truncated after ``max_episode_steps``.
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int = 500):
        super().__init__(n_envs, max_episode_steps)
        f32_max = np.finfo(np.float32).max
        high = np.array([f32_max, f32_max, np.pi, f32_max], dtype=np.float32)  # seals' bounds, cast as Box casts
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def outcome(self, physics: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, theta = physics[..., 0], physics[..., 2]
        theta = torch.remainder(theta + math.pi, 2 * math.pi) - math.pi  # stored wrapped, as seals does
        physics = torch.stack([x, physics[..., 1], theta, physics[..., 3]]).movedim(0, -1)  # as ``dynamics``
        ok = (x.abs() < X_THRESHOLD) & (theta.abs() < THETA_THRESHOLD_RADIANS)
        return physics, ok.to(torch.float32), torch.zeros_like(ok)


__all__ = ["CartPole", "CartPoleState", "FixedHorizonCartPole"]
