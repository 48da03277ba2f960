"""Policies that need no parameters — random and zero — and ``imitation``'s exploration wrapper, purely.

    rand = random_policy(env.action_space)         # PolicyFn: (obs (n, ...), key) -> actions (n, ...)
    state = exploration_init(key, n_envs, random_prob=0.1)
    state, action = exploration_act(state, expert_fn, rand, obs, key, random_prob=0.1, switch_prob=0.5)

All three are pure (explicit keys, fixed shapes, no Python branching on tensor values), so they run
inside ``torch.func.vmap`` and in the pure rollouts of the torch environments.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.envs.base import PolicyFn


def _box_sampler(space: gym.spaces.Box) -> PolicyFn:
    """gymnasium's ``Box.sample``: uniform if bounded, shifted exponential if half-bounded, else normal."""
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    lo_ok, hi_ok = np.isfinite(low), np.isfinite(high)
    # Replace infinite bounds by 0 so that the unused branches of torch.where stay finite.
    low0, high0 = np.where(lo_ok, low, 0.0), np.where(hi_ok, high, 0.0)
    dtype = torch.float64 if space.dtype == np.float64 else torch.float32
    integer = np.issubdtype(space.dtype, np.integer)

    def policy(obs: Tensor, key: random.Key) -> Tensor:
        shape = (obs.shape[0], *space.shape)
        k_u, k_n = random.split(key)
        u = random.uniform(k_u, shape, dtype)
        as_t = lambda a: torch.as_tensor(a, device=obs.device)  # noqa: E731
        lo, hi, has_lo, has_hi = as_t(low0).to(dtype), as_t(high0).to(dtype), as_t(lo_ok), as_t(hi_ok)
        if integer:  # gymnasium samples integer Boxes uniformly over [low, high] inclusive, via floor
            hi = hi + 1
        exp = -torch.log1p(-u)  # Exponential(1) from the same uniform
        bounded = lo + u * (hi - lo)
        out = torch.where(
            has_lo & has_hi,
            bounded,
            torch.where(has_lo, lo + exp, torch.where(has_hi, hi - exp, random.normal(k_n, shape, dtype))),
        )
        if integer:
            return torch.floor(out).to(torch.int64)
        return out

    return policy


def random_policy(action_space: gym.Space[Any]) -> PolicyFn:
    """Uniformly random actions: ``(obs (n, ...), key) -> actions (n, *act_shape)``.

    Box: uniform in the bounds (gymnasium's rule for unbounded dimensions); Discrete: uniform over
    ``start .. start + n - 1`` (int64); MultiDiscrete: uniform per component; MultiBinary: fair coins.
    """
    if isinstance(action_space, gym.spaces.Box):
        return _box_sampler(action_space)
    if isinstance(action_space, gym.spaces.Discrete):
        start, n = int(action_space.start), int(action_space.n)

        def discrete(obs: Tensor, key: random.Key) -> Tensor:
            return random.randint(key, (obs.shape[0],), start, start + n).to(obs.device)

        return discrete
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec, np.int64)
        start_vec = np.asarray(getattr(action_space, "start", np.zeros_like(nvec)), np.int64)

        def multi_discrete(obs: Tensor, key: random.Key) -> Tensor:
            lo = torch.as_tensor(start_vec, device=obs.device)
            return random.randint(key, (obs.shape[0], *nvec.shape), lo, lo + torch.as_tensor(nvec, device=obs.device))

        return multi_discrete
    if isinstance(action_space, gym.spaces.MultiBinary):
        shape = tuple(action_space.shape)

        def multi_binary(obs: Tensor, key: random.Key) -> Tensor:
            return random.bernoulli(key, 0.5, (obs.shape[0], *shape)).to(torch.int8)

        return multi_binary
    raise TypeError(f"random_policy: unsupported action space {action_space!r}")


def zero_policy(action_space: gym.Space[Any]) -> PolicyFn:
    """All-zero actions ``(n, *act_shape)``, as ``imitation``'s ``ZeroPolicy`` (Discrete: action ``start``)."""
    if isinstance(action_space, gym.spaces.Discrete):
        start = int(action_space.start)

        def discrete(obs: Tensor, key: random.Key) -> Tensor:
            del key
            return torch.full((obs.shape[0],), start, dtype=torch.int64, device=obs.device)

        return discrete
    if isinstance(action_space, gym.spaces.Box | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        shape = tuple(action_space.shape or ())
        dtype = torch.from_numpy(np.zeros((), dtype=action_space.dtype)).dtype

        def zeros(obs: Tensor, key: random.Key) -> Tensor:
            del key
            return torch.zeros((obs.shape[0], *shape), dtype=dtype, device=obs.device)

        return zeros
    raise TypeError(f"zero_policy: unsupported action space {action_space!r}")


# ---------------------------------------------------------------------------------------------------------------------
# Exploration wrapper (imitation.policies.exploration_wrapper.ExplorationWrapper, as a pure function)
# ---------------------------------------------------------------------------------------------------------------------


class ExplorationState(struct.PyTreeNode):
    """Per sub-environment: whether it currently takes random actions, ``is_random: (n_envs,)`` bool."""

    is_random: Tensor


def exploration_init(key: random.Key, n_envs: int, random_prob: float | Tensor) -> ExplorationState:
    """Draw each sub-environment's starting mode: random with probability ``random_prob``."""
    return ExplorationState(is_random=random.bernoulli(key, random_prob, (n_envs,)))


def exploration_act(
    state: ExplorationState,
    policy_fn: PolicyFn,
    random_fn: PolicyFn,
    obs: Tensor,
    key: random.Key,
    random_prob: float | Tensor,
    switch_prob: float | Tensor,
) -> tuple[ExplorationState, Tensor]:
    """Act with ``random_fn`` where ``state.is_random``, else ``policy_fn``; then maybe switch modes.

    As ``imitation``'s ``ExplorationWrapper``: after each step, with probability ``switch_prob`` the
    mode is re-drawn (random with probability ``random_prob``, so it may stay the same). In the long
    run a fraction ``random_prob`` of steps is random, and a mode lasts ``1 / (switch_prob *
    (1 - p_same))`` steps on average. Unlike ``imitation`` (one coin for the whole vector env), each
    sub-environment has its own mode. Both policies are evaluated on every step (fixed shapes);
    ``obs: (n_envs, *obs_shape)``; the probabilities may be 0-d tensors (sweepable under vmap).
    """
    k_policy, k_random, k_switch, k_mode = random.split(key, 4)
    n_envs = state.is_random.shape[0]
    expert = policy_fn(obs, k_policy)
    rand = random_fn(obs, k_random).to(expert.dtype)
    mask = state.is_random.reshape(n_envs, *([1] * (expert.ndim - 1)))
    action = torch.where(mask, rand, expert)
    switch = random.bernoulli(k_switch, switch_prob, (n_envs,))
    redraw = random.bernoulli(k_mode, random_prob, (n_envs,))
    return ExplorationState(is_random=torch.where(switch, redraw, state.is_random)), action


__all__ = ["ExplorationState", "exploration_act", "exploration_init", "random_policy", "zero_policy"]
