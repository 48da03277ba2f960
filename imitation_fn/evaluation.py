"""Batched policy evaluation on torch environments (pure, vmappable over seeds)."""

from __future__ import annotations

import torch
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.envs.base import Env, PolicyFn


class EpisodeStats(struct.PyTreeNode):
    returns: Tensor  # (n_envs,) float32: undiscounted return of each env's first episode
    lengths: Tensor  # (n_envs,) int64: its length


def evaluate_policy(env: Env, policy_fn: PolicyFn, key: random.Key, max_steps: int | None = None) -> EpisodeStats:
    """Run one episode in each of ``env.n_envs`` sub-environments and return their returns and lengths.

    Pure: a fixed ``max_steps`` loop (default ``env.max_episode_steps``) with rewards masked once a
    sub-environment's first episode has ended, so it works inside ``vmap`` over seeds.
    """
    horizon = max_steps or env.max_episode_steps
    if horizon is None:
        raise ValueError("evaluate_policy: the env has no max_episode_steps; pass max_steps")
    reset_key, act_key, step_key = random.split(key, 3)
    act_keys, step_keys = random.split(act_key, horizon), random.split(step_key, horizon)  # two draws, not 2×horizon
    timestep = env.reset(reset_key)
    device = timestep.reward.device
    returns = torch.zeros(env.n_envs, device=device)
    lengths = torch.zeros(env.n_envs, dtype=torch.int64, device=device)
    running = torch.ones(env.n_envs, dtype=torch.bool, device=device)
    for t in range(horizon):
        action = policy_fn(timestep.obs, act_keys[t])
        timestep = env.step(timestep.env_state, action, step_keys[t])
        returns = returns + torch.where(running, timestep.reward, 0.0)
        lengths = lengths + running.to(torch.int64)
        running = running & ~timestep.done
    return EpisodeStats(returns=returns, lengths=lengths)


__all__ = ["EpisodeStats", "evaluate_policy"]
