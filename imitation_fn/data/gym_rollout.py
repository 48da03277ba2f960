"""Demonstrations from gymnasium environments: episodes with raw observations, rewards and per-step infos.

``imitation_fn.data.rollout.generate_trajectories`` already runs on a :class:`~imitation_fn.envs.gym.GymEnv`
(it has the same ``Env`` interface). This module adds what only a gymnasium env has:

- the **original** observations and rewards when user wrappers change them (normalised rewards,
  resized frames): :class:`~imitation_fn.envs.gym.RolloutInfoWrapper`, applied innermost by
  ``GymEnv(rollout_info=True)``, records them and :func:`collect_episodes` puts them in the
  trajectories, as ``imitation``'s ``RolloutInfoWrapper`` + ``unwrap_traj`` do;
- the per-step ``info`` dicts, kept beside the tensor pytrees (``infos[i][t]`` for step ``t`` of
  trajectory ``i``), never inside them; ``serialize.save(path, episodes.trajectories,
  infos=episodes.infos)`` stores them (JSON values, see :mod:`imitation_fn.data.infos`).

    env = GymEnv("Pendulum-v1", n_envs=4, wrappers=[lambda e: gym.wrappers.TransformReward(e, lambda r: r / 10)])
    episodes = collect_episodes(env, policy_fn, random.key(0), min_episodes=20)
    episodes.trajectories[0].rews  # Pendulum's own rewards, not divided by 10
"""

from __future__ import annotations

from typing import Any

import torch

from imitation_fn.core import random
from imitation_fn.core.random import Key
from imitation_fn.data.rollout import EpisodeCutter, Rollout, make_sample_until
from imitation_fn.data.types import EpisodesWithInfos, TrajectoryWithRew
from imitation_fn.envs.base import PolicyFn
from imitation_fn.envs.gym import ROLLOUT_INFO_KEY, GymEnv, GymEnvState, RawEpisode, obs_to_tensor

Info = dict[str, Any]


def collect_episodes(
    env: GymEnv,
    policy_fn: PolicyFn,
    key: Key,
    *,
    min_episodes: int | None = None,
    min_timesteps: int | None = None,
    unwrap: bool = True,
) -> EpisodesWithInfos[TrajectoryWithRew]:
    """Complete episodes of ``policy_fn`` in ``env`` until both minimums hold, with their infos (host-side).

    Sampling as :func:`imitation_fn.data.rollout.generate_trajectories` (``imitation``'s
    ``sample_until``): once the condition holds, envs still mid-episode run it to the end and then stop,
    so more than ``min_episodes`` may come back; the result is shuffled with a key derived from ``key``.
    ``policy_fn(obs, key)`` gets a fresh key each step (a deterministic policy ignores it).

    Args:
        unwrap: replace each episode's ``obs`` and ``rews`` by the raw ones recorded by
            :class:`~imitation_fn.envs.gym.RolloutInfoWrapper` (``GymEnv(rollout_info=True)``), and drop
            that record from the last info. ``False`` keeps what the wrapped env returned.

    Raises:
        ValueError: ``unwrap`` and ``env`` has user wrappers but no raw record (``rollout_info=False``),
            or a wrapper changes where episodes end (the raw episode then does not match).
    """
    sample_until = make_sample_until(min_timesteps, min_episodes)
    reset_key, policy_key, shuffle_key = random.split(key, 3)
    cutter = EpisodeCutter(env.n_envs)
    pending: list[list[Info]] = [[] for _ in range(env.n_envs)]  # infos of each env's unfinished episode
    active = [True] * env.n_envs
    trajs: list[TrajectoryWithRew] = []
    infos: list[list[Info]] = []

    timestep = env.reset(reset_key)
    t = 0
    with torch.no_grad():  # collection is data, not a graph
        while any(active):
            action = policy_fn(timestep.obs, random.fold_in(policy_key, t))
            nxt = env.step(timestep.env_state, action, reset_key)  # a GymEnv ignores step keys
            state: GymEnvState = nxt.env_state
            for e, info in enumerate(state.infos):
                pending[e].append(info)
            one_step = Rollout(
                obs=timestep.obs[None],
                acts=action[None],
                rews=nxt.reward[None],
                terminated=nxt.terminated[None],
                truncated=nxt.truncated[None],
                next_obs=nxt.final_obs[None],
            )
            finished = []
            for e, traj in cutter.add(one_step)[0]:
                ep_infos, pending[e] = pending[e], []
                if not active[e]:
                    continue  # an env that already delivered its last wanted episode
                if unwrap:
                    traj, ep_infos = _unwrap(env, traj, ep_infos)
                trajs.append(traj)
                infos.append(ep_infos)
                finished.append(e)
            if finished and sample_until(trajs):
                for e in finished:
                    active[e] = False
            timestep, t = nxt, t + 1

    order = random.permutation(shuffle_key, len(trajs)).tolist()
    return EpisodesWithInfos([trajs[i] for i in order], [infos[i] for i in order])


def generate_trajectories(
    env: GymEnv,
    policy_fn: PolicyFn,
    key: Key,
    *,
    min_episodes: int | None = None,
    min_timesteps: int | None = None,
    unwrap: bool = True,
) -> list[TrajectoryWithRew]:
    """:func:`collect_episodes` without the infos: raw observations and rewards under user wrappers."""
    return collect_episodes(
        env, policy_fn, key, min_episodes=min_episodes, min_timesteps=min_timesteps, unwrap=unwrap
    ).trajectories


def _unwrap(env: GymEnv, traj: TrajectoryWithRew, infos: list[Info]) -> tuple[TrajectoryWithRew, list[Info]]:
    """``traj`` with the raw obs/rews recorded in its last info (``imitation``'s ``unwrap_traj``)."""
    raw = infos[-1].get(ROLLOUT_INFO_KEY)
    if not isinstance(raw, RawEpisode):
        if not env.wrappers:
            return traj, infos  # nothing wraps the env: what it returned is already raw
        raise ValueError(
            f"collect_episodes(unwrap=True): an episode of {env!r} ended without a raw record in its info. "
            "Build the env with rollout_info=True (the default), or pass unwrap=False to keep the wrapped "
            "observations and rewards. (A wrapper that ends episodes itself, e.g. a TimeLimit passed in "
            "`wrappers`, also causes this: pass max_episode_steps to GymEnv instead.)"
        )
    if len(raw.rews) != len(traj):
        raise ValueError(
            f"collect_episodes(unwrap=True): the raw episode has {len(raw.rews)} steps but the wrapped one "
            f"{len(traj)}: a wrapper in {env.wrappers} changes where episodes end, so raw and wrapped steps "
            "cannot be matched. Pass unwrap=False to keep the wrapped observations and rewards."
        )
    raw_traj = traj.replace(obs=obs_to_tensor(raw.obs), rews=torch.as_tensor(raw.rews, dtype=torch.float32))
    last = {k: v for k, v in infos[-1].items() if k != ROLLOUT_INFO_KEY}
    return raw_traj, [*infos[:-1], last]


__all__ = ["EpisodesWithInfos", "collect_episodes", "generate_trajectories"]
