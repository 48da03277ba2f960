"""Time-indexed tabular policies (``imitation``'s ``TabularPolicy``) and their rollouts in a ``TabularEnv``.

A finite-horizon soft-optimal policy depends on the time step as well as the state, so it cannot be a plain
``PolicyFn(obs, key)``: it reads the state index and the step count from the env's ``TabularState``.

    policy = TabularPolicy(pi)                            # pi: (horizon, n_states, n_actions)
    batch, _ = rollout(env, policy, key, n_steps=env.mdp.horizon)      # pure: vmap it over keys
    trajs = generate_trajectories(env, policy, key, n_episodes=100)    # host-side list of episodes
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.core.random import Key
from imitation_fn.data import rollout as rollout_lib
from imitation_fn.data.rollout import Rollout, to_trajectories
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.envs.base import TimeStep
from imitation_fn.envs.tabular import TabularEnv


class TabularPolicy(struct.PyTreeNode):
    """``pi: (horizon, n_states, n_actions)``: ``pi[t, s, a]`` is the probability of action ``a`` in state ``s``
    at step ``t`` of the episode (e.g. ``mce_partition_fh``'s third output)."""

    pi: Tensor

    def act(self, state: Tensor, t: Tensor, key: Key, deterministic: bool = False) -> Tensor:
        """Actions ``(n,)`` int64 for states ``(n,)`` at steps ``t: (n,)``. Pure.

        ``deterministic`` takes the most probable action (``imitation``'s ``predict(deterministic=True)``);
        otherwise actions are drawn from ``pi[t, state]``. Steps past the horizon reuse the last step's row.
        """
        probs = self.pi[t.clamp(max=self.pi.shape[-3] - 1), state]  # (n, A)
        if deterministic:
            return probs.argmax(-1)
        return random.categorical(key, torch.log(probs))  # log 0 = -inf: never drawn


def rollout(
    env: TabularEnv,
    policy: TabularPolicy,
    key: Key,
    n_steps: int,
    timestep: TimeStep | None = None,
    deterministic: bool = False,
) -> tuple[Rollout, TimeStep]:
    """``data.rollout.rollout`` for a time-indexed policy: the policy sees ``env_state.state`` and ``env_state.t``.

    Pure (vmap it over ``key``, or over ``policy`` and ``key`` for a batch of policies). The recorded ``obs``
    are the env's observations (observation-matrix rows, or state indices with ``expose_state=True``).
    """
    if policy.pi.shape[-2:] != (env.mdp.n_states, env.mdp.n_actions):
        raise ValueError(
            f"TabularPolicy.pi has shape {tuple(policy.pi.shape)}, expected (horizon, {env.mdp.n_states}, "
            f"{env.mdp.n_actions}) for this env"
        )
    return rollout_lib.rollout_with(
        env, lambda ts, k: policy.act(ts.env_state.state, ts.env_state.t, k, deterministic), key, n_steps, timestep
    )


def generate_trajectories(
    env: TabularEnv, policy: TabularPolicy, key: Key, *, n_episodes: int, deterministic: bool = False
) -> list[TrajectoryWithRew]:
    """Exactly ``n_episodes`` complete episodes (``horizon`` steps each) of ``policy`` in ``env``. Host-side.

    Every episode of a tabular env lasts ``mdp.horizon`` steps, so ``ceil(n_episodes / n_envs)`` episodes per
    sub-environment are collected in one pure :func:`rollout` and cut with ``data.rollout.to_trajectories``
    (episodes ordered by the step they end at, then by env index). Episodes are time-limit cuts:
    ``terminal=False``.
    """
    if n_episodes < 1:
        raise ValueError(f"generate_trajectories: n_episodes must be >= 1, got {n_episodes}")
    n_steps = env.mdp.horizon * math.ceil(n_episodes / env.n_envs)
    with torch.no_grad():
        batch, _ = rollout(env, policy, key, n_steps, deterministic=deterministic)
    return to_trajectories(batch)[:n_episodes]


__all__ = ["TabularPolicy", "generate_trajectories", "rollout"]
