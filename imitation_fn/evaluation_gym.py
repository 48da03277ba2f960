"""Policy evaluation on a :class:`~imitation_fn.envs.gym.GymEnv`: host-side, a fixed number of whole episodes.

The counterpart of :func:`imitation_fn.evaluation.evaluate_policy` for gymnasium environments, with
the semantics of SB3's ``evaluate_policy`` (which ``imitation`` uses): exactly ``n_episodes``
complete episodes, spread evenly over the sub-environments *before* running them, so short episodes
are not over-represented (keeping the first ``n_episodes`` to finish would favour them).
"""

from __future__ import annotations

import torch

from imitation_fn.core import random
from imitation_fn.envs.base import PolicyFn
from imitation_fn.envs.gym import ROLLOUT_INFO_KEY, GymEnv, RawEpisode
from imitation_fn.evaluation import EpisodeStats


def evaluate_gym_policy(
    env: GymEnv,
    policy_fn: PolicyFn,
    key: random.Key,
    n_episodes: int,
    *,
    raw_rewards: bool = False,
    max_steps: int | None = None,
) -> EpisodeStats:
    """Run ``n_episodes`` complete episodes of ``policy_fn`` in ``env``; their returns and lengths.

    Sub-environment ``i`` contributes ``(n_episodes + i) // env.n_envs`` episodes, its first ones after
    ``env.reset(key)``; episodes it finishes beyond that are discarded. Deterministic or stochastic
    acting is up to ``policy_fn(obs (n_envs, *obs_shape), key) -> actions``; its key at step ``t`` is
    ``fold_in(act_key, t)``. ``raw_rewards=True`` sums the rewards of the environment before user
    wrappers (from :class:`~imitation_fn.envs.gym.RolloutInfoWrapper`, as SB3 reads a ``Monitor``).
    ``max_steps`` bounds the number of vector steps (``RuntimeError`` if reached; ``None``: unbounded).

    Returns ``EpisodeStats`` with ``returns: (n_episodes,)`` float32 and ``lengths: (n_episodes,)``
    int64, in the order the episodes finished (ties by sub-environment index).
    """
    if n_episodes < 1:
        raise ValueError(f"evaluate_gym_policy: n_episodes must be >= 1, got {n_episodes}")
    if raw_rewards and not env.rollout_info:
        raise ValueError("evaluate_gym_policy: raw_rewards=True needs a GymEnv built with rollout_info=True")
    reset_key, act_key = random.split(key)
    targets = [(n_episodes + i) // env.n_envs for i in range(env.n_envs)]
    counts = [0] * env.n_envs
    current_return = torch.zeros(env.n_envs, dtype=torch.float64, device="cpu")  # summed on the host
    current_length = [0] * env.n_envs
    returns: list[float] = []
    lengths: list[int] = []

    timestep = env.reset(reset_key)
    t = 0
    while counts != targets:
        if max_steps is not None and t >= max_steps:
            raise RuntimeError(
                f"evaluate_gym_policy: {len(returns)} of {n_episodes} episodes finished within max_steps={max_steps}"
            )
        action = policy_fn(timestep.obs, random.fold_in(act_key, t))
        timestep = env.step(timestep.env_state, action, random.fold_in(act_key, t))  # GymEnv ignores the key
        t += 1
        current_return += timestep.reward.to("cpu", torch.float64)
        done = timestep.done.tolist()
        for i in range(env.n_envs):
            current_length[i] += 1
            if not done[i]:
                continue
            if counts[i] < targets[i]:
                if raw_rewards:
                    raw = timestep.env_state.infos[i][ROLLOUT_INFO_KEY]
                    assert isinstance(raw, RawEpisode)
                    returns.append(float(raw.rews.sum()))
                else:
                    returns.append(float(current_return[i]))
                lengths.append(current_length[i])
                counts[i] += 1
            current_return[i] = 0.0
            current_length[i] = 0
    return EpisodeStats(
        returns=torch.tensor(returns, dtype=torch.float32, device="cpu"),
        lengths=torch.tensor(lengths, dtype=torch.int64, device="cpu"),
    )


__all__ = ["evaluate_gym_policy"]
