"""The environment protocol: pure, batched ``reset`` / ``step`` over an explicit state (gymnax-style).

An :class:`Env` object holds only static configuration (Python numbers, the number of parallel
environments, the spaces). All changing data lives in ``env_state``, a pytree returned inside a
:class:`TimeStep`, so ``reset`` and ``step`` are pure functions that ``torch.func.vmap`` can batch
over seeds and ``torch.compile`` can fuse.

Every environment is batched over ``n_envs`` sub-environments and auto-resets: when a
sub-environment terminates or is truncated, ``step`` returns the first observation of its next
episode in ``obs`` and the observation the step actually reached in ``final_obs`` (gymnasium's
``final_obs``; SB3's ``terminal_observation``).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import Any, Self

import gymnasium as gym
import torch
from torch import Tensor

from imitation_fn.core import struct, tree
from imitation_fn.core.errors import InputError
from imitation_fn.core.random import Key

PolicyFn = Callable[[Tensor, Key], Tensor]
"""A policy acting in an Env: ``(obs (n, *obs_shape), key) -> actions (n, *act_shape)``."""
RewardFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""A reward of transitions: ``(obs, acts, next_obs, dones) -> rewards``, each with a leading ``(n,)`` axis."""


class TimeStep(struct.PyTreeNode):
    """What ``reset`` and ``step`` return. Leading axis ``n_envs`` on every tensor."""

    env_state: Any  # the environment's own pytree of tensors
    obs: Tensor  # (n_envs, *obs_shape): observation to act on (after auto-reset)
    reward: Tensor  # (n_envs,) float32: reward of the step just taken (0 after reset)
    terminated: Tensor  # (n_envs,) bool: the episode reached a terminal state
    truncated: Tensor  # (n_envs,) bool: the episode was cut by a time limit
    final_obs: Tensor  # (n_envs, *obs_shape): observation reached before any auto-reset

    @property
    def done(self) -> Tensor:
        return mask(self.terminated) | mask(self.truncated)


def mask(flag: Tensor) -> Tensor:
    """A ``TimeStep`` flag (``terminated``, ``truncated``) as a bool mask to compute with in compiled code.

    Why: the torch envs store their flags as bytes viewed as bool (a vectorised store; see
    ``physics._bool``), and inductor's vectorised CPU code cannot compute with that view inside the graph
    that made it (torch 2.13: ``Vectorized<bool>`` has no member ``cast``, a C++ build error from 16
    sub-envs on); it can with the bytes. Eager, this is the flag itself (non-bool flags: ``flag != 0``).
    """
    return flag.view(torch.uint8) != 0 if flag.dtype == torch.bool else flag != 0


def time_limit(t: Tensor, max_episode_steps: int | None) -> Tensor:
    """gymnasium's ``TimeLimit``: ``(n,)`` bool, true once ``t`` steps reach ``max_episode_steps`` (``None``: never)."""
    return t >= max_episode_steps if max_episode_steps is not None else torch.zeros_like(t, dtype=torch.bool)


class Env(abc.ABC):
    """A batch of ``n_envs`` identical environments with pure, auto-resetting dynamics."""

    n_envs: int
    observation_space: gym.Space[Any]  # of one sub-environment
    action_space: gym.Space[Any]  # of one sub-environment
    max_episode_steps: int | None  # truncation horizon, or None
    # True for environments stepped on the host (gymnasium's): not pure, so never inside vmap/compile; the
    # training loop steps N seeds' copies together outside the vmapped update (``envs.host.HostEnvs``).
    host: bool = False

    @abc.abstractmethod
    def reset(self, key: Key) -> TimeStep:
        """Start every sub-environment; ``reward`` is zero and no episode is done."""

    @abc.abstractmethod
    def step(self, env_state: Any, action: Tensor, key: Key) -> TimeStep:
        """Advance every sub-environment by one action, ``action: (n_envs, *action_shape)``."""

    def to(self, device: torch.device | str) -> Self:
        """This environment with its tensors on ``device`` (a shallow copy; ``self`` when nothing moves).

        A torch environment's states follow the device of its ``reset`` key, so only tensors it holds
        (a tabular MDP's matrices) move; a host environment overrides this to say where its tensors go.
        """
        moved = {
            name: tree.to(value, device)
            for name, value in vars(self).items()
            if any(isinstance(x, Tensor) and x.device != torch.device(device) for x in tree.leaves(value))
        }
        if not moved:
            return self
        env = copy.copy(self)
        vars(env).update(moved)
        return env


def require_supported(env: Env, who: str) -> None:
    """One clear error for an env whose spaces the policies and reward nets cannot take: observations must be a
    ``Box``, actions a ``Box`` or ``Discrete``.

    A gymnasium ``Dict``/``Tuple`` observation reaches us flattened into one ``Box`` (``envs.gym.GymEnv``:
    ``Box`` entries raveled, ``Discrete``/``MultiDiscrete`` entries one-hot, as SB3's ``CombinedExtractor``
    does), so it is accepted; one with an entry that has no fixed-size vector form (``Sequence``, ``Graph``)
    stays composite and is refused here.
    """
    if isinstance(env.observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        raise InputError(
            f"{who}: observation space {env.observation_space} is not supported: an entry has no fixed-size "
            "vector form (e.g. Sequence or Graph), so it cannot be flattened into the one vector the policies and "
            "reward nets take (Dict/Tuple of Box, Discrete, MultiDiscrete and MultiBinary entries can)"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise InputError(f"{who}: observation space {env.observation_space} is not supported (Box, or Dict/Tuple)")
    if not isinstance(env.action_space, gym.spaces.Box | gym.spaces.Discrete):
        raise InputError(f"{who}: action space {env.action_space} is not supported (Box and Discrete are)")


__all__ = ["Env", "PolicyFn", "TimeStep", "mask", "require_supported", "time_limit"]
