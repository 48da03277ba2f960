"""Acrobot as a pure, batched torch environment: gymnasium's ``Acrobot-v1``.

A line-by-line transcription of ``gymnasium.envs.classic_control.acrobot`` (``book_or_nips="book"``
dynamics, no torque noise, one step of gymnasium's ``rk4`` over ``dt = 0.2``, angles wrapped to
``[-pi, pi]`` by repeated subtraction as its ``wrap`` does, velocities clipped) plus gymnasium's
``TimeLimit(max_episode_steps=500)``. Every expression keeps gymnasium's operation order, so given
numpy's ``sin``/``cos``/``**2`` the float64 arithmetic is bit-identical (tested). Torch's own
``sin``/``cos`` differ from numpy's in the last bit of ~0.1% of inputs (and numpy's ``x**2`` may come
from an SVML ``pow`` that is not always ``x*x``), so one step agrees to ~1e-15; the double pendulum is
chaotic, and over a few hundred steps those last bits grow into visible differences. gymnasium takes
the reset observation's ``cos``/``sin`` of its float32 reset state in float32; here they are float64,
rounded, which is one float32 ulp apart in ~0.1% of elements.

    env = Acrobot(n_envs=16)
    ts = env.reset(random.key(0))
    ts = env.step(ts.env_state, actions, random.key(1))  # actions: (16,) int64 in {0, 1, 2}: torque -1, 0, +1
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

DT = 0.2
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
GRAVITY = 9.8
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
RESET_BOUND = 0.1  # initial state ~ U[-0.1, 0.1) per coordinate, stored as float32 (as gymnasium does)
# From states at the velocity bounds one rk4 step can carry an angle to 9.5 pi (the largest of 15M sampled),
# 5 turns of gymnasium's `while x > pi: x -= 2 pi` away from [-pi, pi]; 6 for margin.
WRAP_ITERATIONS = 6

# gymnasium's constant sub-expressions, evaluated in its order so the float64 values are identical.
m1, m2, l1, lc1, lc2, I1, I2, g = (
    LINK_MASS_1,
    LINK_MASS_2,
    LINK_LENGTH_1,
    LINK_COM_POS_1,
    LINK_COM_POS_2,
    LINK_MOI,
    LINK_MOI,
    GRAVITY,
)
_D1_CONST = l1**2 + lc2**2  # d1 = m1 lc1^2 + m2 (l1^2 + lc2^2 + 2 l1 lc2 cos t2) + I1 + I2
_D1_COS = 2 * l1 * lc2
_D2_COS = l1 * lc2  # d2 = m2 (lc2^2 + l1 lc2 cos t2) + I2
_PHI2 = m2 * lc2 * g
_PHI1_A = -m2 * l1 * lc2  # times dtheta2^2 sin t2
_PHI1_B = 2 * m2 * l1 * lc2  # times dtheta2 dtheta1 sin t2
_PHI1_C = (m1 * lc1 + m2 * l1) * g  # times cos(t1 - pi/2)
_BOOK = m2 * l1 * lc2  # times dtheta1^2 sin t2
_DENOM = m2 * lc2**2 + I2  # minus d2^2 / d1
del m1, m2, l1, lc1, lc2, I1, I2, g


AcrobotState = PhysicsState  # physics (n_envs, 4) float64 (theta1, theta2, dtheta1, dtheta2); t (n_envs,) int64


def dsdt(s: Tensor, torque: Tensor) -> Tensor:
    """gymnasium's ``AcrobotEnv._dsdt`` (book dynamics): ``(n, 4)`` states, ``(n,)`` torques -> ``(n, 4)``."""
    theta1, theta2, dtheta1, dtheta2 = s.unbind(-1)
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = LINK_MASS_1 * LINK_COM_POS_1**2 + LINK_MASS_2 * (_D1_CONST + _D1_COS * cos2) + LINK_MOI + LINK_MOI
    d2 = LINK_MASS_2 * (LINK_COM_POS_2**2 + _D2_COS * cos2) + LINK_MOI
    phi2 = _PHI2 * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        _PHI1_A * torch.square(dtheta2) * sin2
        - _PHI1_B * dtheta2 * dtheta1 * sin2
        + _PHI1_C * torch.cos(theta1 - math.pi / 2)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - _BOOK * torch.square(dtheta1) * sin2 - phi2) / (
        _DENOM - torch.square(d2) / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], dim=-1)


def rk4_step(s: Tensor, torque: Tensor, dt: float = DT) -> Tensor:
    """One step of gymnasium's ``rk4(_dsdt, s, [0, dt])``: ``(n, 4)`` float64 -> ``(n, 4)`` float64."""
    dt2 = dt / 2.0
    k1 = dsdt(s, torque)
    k2 = dsdt(s + dt2 * k1, torque)
    k3 = dsdt(s + dt2 * k2, torque)
    k4 = dsdt(s + dt * k3, torque)
    return s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def wrap(x: Tensor) -> Tensor:
    """gymnasium's ``wrap(x, -pi, pi)``: ``while x > pi: x -= 2 pi``, then ``while x < -pi: x += 2 pi``.

    Repeated subtraction rounds differently from ``x - k * 2 pi``, so it is repeated here, with the count
    estimated up front (never more than the loop's, at most one fewer) and a last conditional turn: a chain of
    ``torch.where`` on ``x`` itself would do the same, but makes inductor's compile time explode.
    """
    two_pi = 2 * math.pi
    turns = torch.ceil((x.abs() - math.pi) / two_pi - 1e-9)  # exact count unless x lands within 6e-9 of pi
    turn = torch.sign(x) * two_pi
    for i in range(WRAP_ITERATIONS):
        x = x - turn * (turns > i)  # x - 2 pi, x + 2 pi or x - 0
    x = torch.where(x > math.pi, x - two_pi, x)
    return torch.where(x < -math.pi, x + two_pi, x)


class Acrobot(PhysicsEnv):
    """gymnasium's ``Acrobot-v1`` (with its ``TimeLimit``), batched over ``n_envs`` and auto-resetting.

    Actions: ``(n_envs,)`` int64, torque ``action - 1`` on the joint between the links. Observations:
    ``(n_envs, 6)`` float32 ``(cos t1, sin t1, cos t2, sin t2, dt1, dt2)``. Reward -1 per step and 0 on
    the step that terminates, which is when the free end rises one link length above the pivot
    (``-cos t1 - cos(t1 + t2) > 1``). Truncated after ``max_episode_steps`` steps (``None``: never).
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int | None = 500):
        self.n_envs = n_envs
        self.max_episode_steps = max_episode_steps
        self.action_space = gym.spaces.Discrete(3)
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_envs={self.n_envs}, max_episode_steps={self.max_episode_steps})"

    def initial_physics(self, key: Key) -> Tensor:
        """Fresh states ``(n_envs, 4)`` float64 holding float32 values in ``[-0.1, 0.1]`` (float32 draw)."""
        u = random.uniform(key, (self.n_envs, 4), torch.float32, -RESET_BOUND, RESET_BOUND)
        return u.to(torch.float64)

    @staticmethod
    def observe(physics: Tensor) -> Tensor:
        """``(n, 4)`` float64 states -> ``(n, 6)`` float32 observations."""
        angles = physics[..., :2]
        cos, sin = torch.cos(angles), torch.sin(angles)
        trig = torch.stack([cos, sin], dim=-1).flatten(-2)  # cos t1, sin t1, cos t2, sin t2
        return torch.cat([trig, physics[..., 2:]], dim=-1).to(torch.float32)

    def transition(self, env_state: PhysicsState, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        physics = self.dynamics(env_state.physics, action)
        theta1, theta2 = physics[..., 0], physics[..., 1]
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        return physics, torch.where(terminated, 0.0, -1.0).to(torch.float32), terminated

    @staticmethod
    def dynamics(physics: Tensor, action: Tensor) -> Tensor:
        """rk4 over one ``dt``, then wrap the angles and clip the velocities: ``(n, 4)`` float64 -> ``(n, 4)``."""
        torque = action.to(torch.float64) - 1.0  # AVAIL_TORQUE = [-1.0, 0.0, +1]
        s = rk4_step(physics, torque)
        angles = wrap(s[..., :2])
        max_vel = torch.tensor([MAX_VEL_1, MAX_VEL_2], dtype=s.dtype, device=s.device)
        velocities = torch.minimum(torch.maximum(s[..., 2:], -max_vel), max_vel)
        return torch.cat([angles, velocities], dim=-1)


__all__ = ["Acrobot", "AcrobotState", "dsdt", "rk4_step", "wrap"]
