"""Mountain car as pure, batched torch environments: gymnasium's ``MountainCar-v0`` and
``MountainCarContinuous-v0``, and seals' fixed-horizon ``seals/MountainCar-v0``.

Line-by-line transcriptions of ``gymnasium.envs.classic_control.mountain_car`` and
``continuous_mountain_car`` plus gymnasium's ``TimeLimit`` (200 and 999 steps), with the same
operation order and dtypes: given ``math.cos`` the arithmetic is bit-identical (tested); torch's own
``cos`` differs from it in the last bit of ~0.1% of float64 inputs, which in practice leaves the
float32 observations equal.

- ``MountainCar-v0`` keeps a float64 state: velocity += (action - 1) * 0.001 - 0.0025 cos(3 position),
  both clipped, and the car stops dead at the left wall.
- ``MountainCarContinuous-v0`` stores its state as float32 after every step (but float64 after a reset)
  and mixes float32 and Python-float arithmetic under numpy's promotion rules. Each such rounding is
  reproduced on a float64 state by rounding through float32 where numpy does, and the first step after a
  reset runs in float64 as in gymnasium.

    env = MountainCar(n_envs=16)
    ts = env.reset(random.key(0))
    ts = env.step(ts.env_state, actions, random.key(1))  # actions: (16,) int64 in {0, 1, 2}

:class:`FixedHorizonMountainCar` is seals' ``seals/MountainCar-v0``: reaching the goal moves the car into
an absorbing state (same observation, reward 0) until the episode is truncated at exactly 200 steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.core.random import Key
from imitation_fn.envs.base import TimeStep, time_limit
from imitation_fn.envs.physics import PhysicsEnv, PhysicsState

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.5  # MountainCar-v0
CONTINUOUS_GOAL_POSITION = 0.45  # MountainCarContinuous-v0
FORCE = 0.001
POWER = 0.0015
GRAVITY = 0.0025
RESET_LOW, RESET_HIGH = -0.6, -0.4  # initial position ~ U[-0.6, -0.4), velocity 0


def _f32(x: float) -> float:
    """The float32 nearest ``x``: what numpy compares a float32 with when given the Python float ``x``."""
    return float(np.float32(x))


def _fl32(x: Tensor) -> Tensor:
    """``x`` rounded to float32 precision, kept float64: with it, float64 arithmetic emulates float32's."""
    return x.to(torch.float32).to(torch.float64)


def _round32(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` rounded to float32 precision where ``mask``."""
    return torch.where(mask, _fl32(x), x)


MountainCarState = PhysicsState  # physics (n_envs, 2) float64 (position, velocity); t (n_envs,) int64


class MountainCar(PhysicsEnv):
    """gymnasium's ``MountainCar-v0`` (with its ``TimeLimit``), batched over ``n_envs`` and auto-resetting.

    Actions: ``(n_envs,)`` int64, 0 accelerates left, 1 not at all, 2 right. Observations: ``(n_envs, 2)``
    float32 ``(position, velocity)``. Reward -1 on every step. Terminates when ``position >= 0.5`` and
    ``velocity >= goal_velocity``; truncated after ``max_episode_steps`` steps (``None``: never).
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int | None = 200, goal_velocity: float = 0.0):
        self.n_envs = n_envs
        self.max_episode_steps = max_episode_steps
        self.goal_velocity = goal_velocity
        self.action_space: gym.Space = gym.spaces.Discrete(3)
        low = np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32)
        high = np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_envs={self.n_envs}, max_episode_steps={self.max_episode_steps})"

    def initial_physics(self, key: Key) -> Tensor:
        """Fresh states ``(n_envs, 2)`` float64: position in ``[-0.6, -0.4)`` (24 random bits), velocity 0."""
        u = random.uniform(key, (self.n_envs, 1)).to(torch.float64)
        scale = torch.tensor([RESET_HIGH - RESET_LOW, 0.0], dtype=torch.float64, device=u.device)
        offset = torch.tensor([RESET_LOW, 0.0], dtype=torch.float64, device=u.device)
        return offset + u * scale  # (low + u (high - low), 0 + u * 0)

    @staticmethod
    def observe(physics: Tensor) -> Tensor:
        """``(n, 2)`` float64 states -> ``(n, 2)`` float32 observations ``(position, velocity)``."""
        return physics.to(torch.float32)

    def transition(self, env_state: MountainCarState, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(next physics (n, 2) float64, reward (n,) float32, terminated (n,) bool)``."""
        physics = self.dynamics(env_state.physics, action)
        terminated = (physics[..., 0] >= GOAL_POSITION) & (physics[..., 1] >= self.goal_velocity)
        return physics, torch.full_like(physics[..., 0], -1.0, dtype=torch.float32), terminated

    @staticmethod
    def dynamics(physics: Tensor, action: Tensor) -> Tensor:
        """One step: ``(n, 2)`` float64 states, ``(n,)`` actions in {0, 1, 2} -> ``(n, 2)`` float64."""
        position, velocity = physics[..., 0], physics[..., 1]
        push = (action - 1).to(torch.float64) * FORCE
        velocity = velocity + (push + torch.cos(3 * position) * -GRAVITY)
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
        position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        velocity = torch.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)  # inelastic left wall
        return torch.stack([position, velocity], dim=-1)


class MountainCarContinuous(MountainCar):
    """gymnasium's ``MountainCarContinuous-v0`` (with its ``TimeLimit``), batched and auto-resetting.

    Actions: ``(n_envs, 1)`` forces, taken as float32 (the action space's dtype) and clipped to ``[-1, 1]``
    for the dynamics. Reward ``-0.1 a^2`` of the unclipped action, plus 100 on reaching the goal
    (``position >= 0.45`` and ``velocity >= goal_velocity``), which terminates. Truncated after
    ``max_episode_steps`` steps (``None``: never).
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int | None = 999, goal_velocity: float = 0.0):
        super().__init__(n_envs, max_episode_steps, goal_velocity)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def transition(self, env_state: MountainCarState, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """gymnasium's ``step`` with its dtypes: float64 on the first step after a reset, float32-rounded after.

        Rounding through float32 in float64 is exact emulation: a float64 result of one operation on two
        float32 numbers, rounded once to float32, is the float32 result. Python floats meeting a float32
        are first rounded to float32 (numpy's promotion rule), so the constants come in both precisions.
        """
        position, velocity = env_state.physics[..., 0], env_state.physics[..., 1]
        f32 = env_state.t > 0  # the stored state is float32 after any step, float64 after a reset
        f64 = torch.float64
        device = position.device
        # Limits and thresholds as numpy compares them: rounded to float32 where they meet a float32 state.
        bounds64 = (MAX_SPEED, MIN_POSITION, MAX_POSITION, CONTINUOUS_GOAL_POSITION, self.goal_velocity)
        bounds32 = torch.tensor([_f32(b) for b in bounds64], dtype=f64, device=device)
        bounds = torch.where(f32.unsqueeze(-1), bounds32, torch.tensor(bounds64, dtype=f64, device=device))
        max_speed, min_position, max_position, goal_position, goal_velocity = bounds.unbind(-1)

        a = _fl32(action[..., 0])
        gravity = GRAVITY * torch.cos(_round32(3 * position, f32))  # math.cos of a float32 or float64 product
        # force = min(max(a, -1.0), 1.0) stays a float32 in range (so force * power - gravity is float32
        # arithmetic) and becomes a Python float when clipped (float64 arithmetic).
        in_range = (a >= -1.0) & (a <= 1.0)
        accel32 = _fl32(_fl32(a * _f32(POWER)) - _fl32(gravity))
        accel = torch.where(in_range, accel32, a.clamp(-1.0, 1.0) * POWER - gravity)
        velocity = _round32(velocity + _round32(accel, f32), f32).clamp(-max_speed, max_speed)
        position = _round32(position + velocity, f32).clamp(min_position, max_position)
        velocity = torch.where((position == min_position) & (velocity < 0), 0.0, velocity)  # inelastic left wall
        terminated = (position >= goal_position) & (velocity >= goal_velocity)
        reward = torch.where(terminated, 100.0, 0.0).to(f64) - a * a * 0.1  # math.pow(action[0], 2) * 0.1
        physics = _fl32(torch.stack([position, velocity], dim=-1))  # gymnasium stores the state as float32
        return physics, reward.to(torch.float32), terminated


class FixedHorizonMountainCarState(struct.PyTreeNode):
    """:class:`MountainCarState` plus ``absorbed: (n_envs,)`` bool, set once the goal has been reached."""

    physics: Tensor
    t: Tensor
    absorbed: Tensor


class FixedHorizonMountainCar(MountainCar):
    """seals' ``seals/MountainCar-v0``: ``MountainCar-v0`` wrapped in seals' ``AbsorbAfterDoneWrapper``.

    Reaching the goal does not end the episode: the step that reaches it pays -1 as usual, and every later
    step repeats that observation with reward 0 (the action is ignored). ``terminated`` is always ``False``;
    every episode is truncated after exactly ``max_episode_steps`` steps.
    """

    def __init__(self, n_envs: int = 1, max_episode_steps: int = 200, goal_velocity: float = 0.0):
        super().__init__(n_envs, max_episode_steps, goal_velocity)

    def reset(self, key: Key) -> TimeStep:
        ts = super().reset(key)
        state = ts.env_state
        return ts.replace(env_state=FixedHorizonMountainCarState(state.physics, state.t, ts.terminated))

    def step(self, env_state: FixedHorizonMountainCarState, action: Tensor, key: Key) -> TimeStep:  # type: ignore[override]
        reached, _, goal = self.transition(MountainCarState(env_state.physics, env_state.t), action)
        absorbed = env_state.absorbed.unsqueeze(-1)
        physics = torch.where(absorbed, env_state.physics, reached)
        reward = torch.where(env_state.absorbed, 0.0, -1.0).to(torch.float32)
        t = env_state.t + 1
        truncated = time_limit(t, self.max_episode_steps)
        next_physics = torch.where(truncated.unsqueeze(-1), self.initial_physics(key), physics)
        next_absorbed = (env_state.absorbed | goal) & ~truncated
        return TimeStep(
            env_state=FixedHorizonMountainCarState(next_physics, torch.where(truncated, 0, t), next_absorbed),
            obs=self.observe(next_physics),
            reward=reward,
            terminated=torch.zeros_like(truncated),
            truncated=truncated,
            final_obs=self.observe(physics),
        )


__all__ = [
    "FixedHorizonMountainCar",
    "FixedHorizonMountainCarState",
    "MountainCar",
    "MountainCarContinuous",
    "MountainCarState",
]
