"""Collecting experience from an :class:`~imitation_fn.envs.base.Env`, and cutting it into episodes.

Two layers, kept apart on purpose:

- **pure** (vmappable, compilable): :func:`rollout` steps a batched env for a fixed number of steps
  and returns a fixed-shape :class:`Rollout`; :func:`flatten_rollout` turns it into
  :class:`Transitions`. ``torch.func.vmap(lambda k: rollout(env, policy_fn, k, n))(keys)``
  collects for many seeds at once.
- **host-side** (Python lists of variable-length episodes): :func:`to_trajectories`,
  :func:`generate_trajectories` (``imitation``'s ``sample_until`` semantics),
  :func:`flatten_trajectories` and :func:`rollout_stats`.

A policy is any ``policy_fn(obs, key) -> action`` with ``obs: (n_envs, *obs_shape)`` and
``action: (n_envs, *act_shape)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from imitation_fn.core import random, struct, tree
from imitation_fn.core.random import Key
from imitation_fn.data.types import Trajectory, TrajectoryWithRew, Transitions
from imitation_fn.envs.base import Env, PolicyFn, TimeStep, mask


class Rollout(struct.PyTreeNode):
    """``n_steps`` steps of ``n_envs`` auto-resetting environments, time-major.

    ``obs[t]`` is the observation acted on at step ``t``; ``next_obs[t]`` is the observation that
    action reached *before* any auto-reset (the env's ``final_obs``). So ``next_obs[t] == obs[t + 1]``
    except where ``dones[t]``, where ``obs[t + 1]`` starts the next episode.
    """

    obs: Tensor  # (n_steps, n_envs, *obs_shape)
    acts: Tensor  # (n_steps, n_envs, *act_shape)
    rews: Tensor  # (n_steps, n_envs) float32
    terminated: Tensor  # (n_steps, n_envs) bool: next_obs is a terminal state
    truncated: Tensor  # (n_steps, n_envs) bool: the episode was cut by a time limit at next_obs
    next_obs: Tensor  # (n_steps, n_envs, *obs_shape)

    @property
    def dones(self) -> Tensor:
        """``(n_steps, n_envs)`` bool: the episode ended at this step (terminated or truncated)."""
        return mask(self.terminated) | mask(self.truncated)


# --------------------------------------------------------------------------------------------
# Pure
# --------------------------------------------------------------------------------------------


def rollout(
    env: Env,
    policy_fn: PolicyFn,
    key: Key,
    n_steps: int,
    timestep: TimeStep | None = None,
) -> tuple[Rollout, TimeStep]:
    """Step ``env`` ``n_steps`` times under ``policy_fn``. Pure: vmap it over ``key``.

    Starts from ``env.reset`` or, to resume collection, from ``timestep`` (the second return value
    of a previous call). Each step gets its own policy key and env key.

    Returns:
        ``(Rollout, last TimeStep)``; the rollout's tensors have leading axes ``(n_steps, n_envs)``.
    """
    return rollout_with(env, lambda ts, k: policy_fn(ts.obs, k), key, n_steps, timestep)


def rollout_with(
    env: Env,
    act: Callable[[TimeStep, Key], Tensor],
    key: Key,
    n_steps: int,
    timestep: TimeStep | None = None,
) -> tuple[Rollout, TimeStep]:
    """:func:`rollout` for a policy that sees the whole ``TimeStep``: ``act(timestep, key) -> actions``.

    For policies that need more than the observation, e.g. a time-indexed tabular policy reading the
    env state's step count. Pure: vmap it over ``key``.
    """
    if n_steps < 1:
        raise ValueError(f"rollout: n_steps must be >= 1, got {n_steps}")
    if timestep is None:
        keys = random.split(key)
        key, timestep = keys[0], env.reset(keys[1])
    policy_key, env_key = random.split(key)
    policy_keys, env_keys = random.split(policy_key, n_steps), random.split(env_key, n_steps)  # 2 draws, not n

    obs, acts, rews, terminated, truncated, next_obs = [], [], [], [], [], []
    for t in range(n_steps):
        action = act(timestep, policy_keys[t])
        obs.append(timestep.obs)
        acts.append(action)
        timestep = env.step(timestep.env_state, action, env_keys[t])
        rews.append(timestep.reward)
        terminated.append(timestep.terminated)
        truncated.append(timestep.truncated)
        next_obs.append(timestep.final_obs)

    batch = Rollout(
        obs=torch.stack(obs),
        acts=torch.stack(acts),
        rews=torch.stack(rews),
        terminated=torch.stack(terminated),
        truncated=torch.stack(truncated),
        next_obs=torch.stack(next_obs),
    )
    return batch, timestep


def flatten_rollout(batch: Rollout) -> Transitions:
    """Merge the ``(n_steps, n_envs)`` axes into one of ``n_steps * n_envs`` transitions. Pure.

    ``dones`` is ``terminated`` only: a time-limit cut is not the end of the MDP, and ``next_obs``
    already holds the true next observation, so truncated transitions stay bootstrappable.
    """
    return Transitions(
        obs=batch.obs.flatten(0, 1),
        acts=batch.acts.flatten(0, 1),
        next_obs=batch.next_obs.flatten(0, 1),
        dones=batch.terminated.flatten(0, 1),
    )


# --------------------------------------------------------------------------------------------
# Host-side: variable-length episodes
# --------------------------------------------------------------------------------------------


class EpisodeCutter:
    """Cuts a stream of rollouts into complete episodes, carrying unfinished pieces across calls."""

    def __init__(self, n_envs: int) -> None:
        # Per env: the (obs, acts, rews) pieces of its current episode seen in earlier rollouts.
        self._pieces: list[list[tuple[Tensor, Tensor, Tensor]]] = [[] for _ in range(n_envs)]

    def add(self, batch: Rollout) -> list[list[tuple[int, TrajectoryWithRew]]]:
        """Feed the next rollout. Returns, for each step ``t``, the ``(env, episode)`` pairs ending at ``t``."""
        if batch.rews.ndim != 2:
            raise ValueError(
                f"expected one rollout with rews of shape (n_steps, n_envs), got {tuple(batch.rews.shape)}; "
                "for a vmapped rollout, take one seed first: tree.index(batch, i)"
            )
        batch = tree.map(lambda x: x.detach().cpu(), batch)
        n_steps, n_envs = batch.rews.shape
        if n_envs != len(self._pieces):
            raise ValueError(f"rollout has {n_envs} envs, expected {len(self._pieces)}")
        ended: list[list[tuple[int, TrajectoryWithRew]]] = [[] for _ in range(n_steps)]
        dones = batch.dones
        for e in range(n_envs):
            start = 0
            for t in torch.nonzero(dones[:, e]).flatten().tolist():
                pieces = [*self._pieces[e], _piece(batch, e, start, t + 1)]
                ended[t].append((e, _join(pieces, batch.next_obs[t, e], terminal=bool(batch.terminated[t, e]))))
                self._pieces[e], start = [], t + 1
            if start < n_steps:
                self._pieces[e].append(_piece(batch, e, start, n_steps))
        return ended


def _piece(batch: Rollout, env: int, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor]:
    return batch.obs[start:stop, env], batch.acts[start:stop, env], batch.rews[start:stop, env]


def _join(pieces: list[tuple[Tensor, Tensor, Tensor]], final_obs: Tensor, terminal: bool) -> TrajectoryWithRew:
    obs, acts, rews = (torch.cat(parts) for parts in zip(*pieces, strict=True))
    return TrajectoryWithRew(
        obs=torch.cat([obs, final_obs[None]]),
        acts=acts,
        rews=rews.to(torch.float32),
        terminal=terminal,
    )


def to_trajectories(batch: Rollout) -> list[TrajectoryWithRew]:
    """Cut each env's stream of a :class:`Rollout` into complete episodes (host-side).

    An episode's ``obs`` holds its ``T`` observations plus the final one (``T + 1`` rows);
    ``terminal`` is ``terminated`` at its last step (a time-limit cut gives ``terminal=False``).
    Each env's stream is assumed to start an episode at step 0 (true for a rollout that began with
    ``env.reset``); the unfinished piece at the end of each stream is **dropped**. To collect
    across several resumed rollouts without losing episodes, use :func:`generate_trajectories`.

    Returns:
        Episodes ordered by the step they end at, then by env index.
    """
    return [traj for ended in EpisodeCutter(batch.rews.shape[1]).add(batch) for _, traj in ended]


def make_sample_until(
    min_timesteps: int | None = None, min_episodes: int | None = None
) -> Callable[[Sequence[Trajectory]], bool]:
    """``imitation``'s termination condition: at least ``min_timesteps`` steps *and* ``min_episodes`` episodes."""
    if min_timesteps is None and min_episodes is None:
        raise ValueError("At least one of min_timesteps and min_episodes needs to be non-None")
    if min_timesteps is not None and min_timesteps <= 0:
        raise ValueError(f"min_timesteps={min_timesteps} if provided must be positive")
    if min_episodes is not None and min_episodes <= 0:
        raise ValueError(f"min_episodes={min_episodes} if provided must be positive")

    def sample_until(trajs: Sequence[Trajectory]) -> bool:
        if min_episodes is not None and len(trajs) < min_episodes:
            return False
        return min_timesteps is None or sum(len(t) for t in trajs) >= min_timesteps

    return sample_until


def generate_trajectories(
    env: Env,
    policy_fn: PolicyFn,
    key: Key,
    *,
    min_episodes: int | None = None,
    min_timesteps: int | None = None,
    chunk_steps: int | None = None,
) -> list[TrajectoryWithRew]:
    """Complete episodes of ``policy_fn`` in ``env`` until both minimums hold (host-side loop).

    Same sampling as ``imitation.data.rollout.generate_trajectories`` with
    ``make_sample_until(min_timesteps, min_episodes)``: once the condition holds, every env still
    runs its current episode to the end (stopping there would bias the sample towards short
    episodes), so more than ``min_episodes`` may come back; truncate the list if you need exactly
    that many. Episodes still unfinished when the last env finishes are dropped. The result is
    shuffled with a key derived from ``key``, so the order is deterministic for a given ``key``.

    Args:
        chunk_steps: steps per pure :func:`rollout` call; default ``env.max_episode_steps`` or 256.
            The episodes drawn for a key depend on it (it sets how the key is split).

    Like ``imitation``, this loops until every env has finished an episode: an env whose episodes
    never end (no termination, no time limit) keeps it running forever.
    """
    sample_until = make_sample_until(min_timesteps, min_episodes)
    if chunk_steps is None:
        chunk_steps = env.max_episode_steps or 256
    keys = random.split(key)
    rollout_key, shuffle_key = keys[0], keys[1]

    cutter = EpisodeCutter(env.n_envs)
    active = [True] * env.n_envs
    trajs: list[TrajectoryWithRew] = []
    timestep: TimeStep | None = None
    chunk = 0
    # Collection is data, not a graph: no autograd through a policy that holds trainable params.
    with torch.no_grad():
        while any(active):
            batch, timestep = rollout(env, policy_fn, random.fold_in(rollout_key, chunk), chunk_steps, timestep)
            chunk += 1
            for ended in cutter.add(batch):
                finished = [e for e, traj in ended if active[e]]
                trajs.extend(traj for e, traj in ended if active[e])
                if finished and sample_until(trajs):
                    for e in finished:  # these envs completed an episode after the goal: stop them
                        active[e] = False
                if not any(active):
                    break
    order = random.permutation(shuffle_key, len(trajs)).tolist()
    return [trajs[i] for i in order]


def flatten_trajectories(trajectories: Sequence[Trajectory]) -> Transitions:
    """Concatenate episodes into one batch of :class:`Transitions` (``imitation``'s semantics).

    ``next_obs = obs[1:]`` of each episode; ``dones`` is ``True`` only at the last transition of a
    ``terminal`` episode (a truncated episode has no done).
    """
    if len(trajectories) == 0:
        raise ValueError("flatten_trajectories: got an empty sequence of trajectories")
    dones = []
    for traj in trajectories:
        d = torch.zeros(len(traj), dtype=torch.bool)
        if len(traj) > 0:
            d[-1] = traj.terminal
        dones.append(d)
    return Transitions(
        obs=torch.cat([traj.obs[:-1] for traj in trajectories]),
        acts=torch.cat([traj.acts for traj in trajectories]),
        next_obs=torch.cat([traj.obs[1:] for traj in trajectories]),
        dones=torch.cat(dones),
    )


def rollout_stats(trajectories: Sequence[TrajectoryWithRew]) -> dict[str, float]:
    """``imitation``'s ``rollout_stats``: ``n_traj``, ``return_{min,mean,std,max}``, ``len_{min,mean,std,max}``.

    ``std`` is the population standard deviation (``numpy.std``, ``ddof=0``), as in ``imitation``.
    """
    if len(trajectories) == 0:
        raise ValueError("rollout_stats: got an empty sequence of trajectories")
    stats: dict[str, float] = {"n_traj": len(trajectories)}
    descriptors = {
        "return": torch.stack([t.rews.to(torch.float64).sum() for t in trajectories]),
        "len": torch.tensor([len(t) for t in trajectories], dtype=torch.float64),
    }
    for name, values in descriptors.items():
        stats[f"{name}_min"] = float(values.min())
        stats[f"{name}_mean"] = float(values.mean())
        stats[f"{name}_std"] = float(values.std(correction=0))
        stats[f"{name}_max"] = float(values.max())
    return stats


__all__ = [
    "PolicyFn",
    "Rollout",
    "flatten_rollout",
    "flatten_trajectories",
    "generate_trajectories",
    "make_sample_until",
    "rollout",
    "rollout_stats",
    "rollout_with",
    "to_trajectories",
]
