"""N seeds' copies of a host (gymnasium) environment, stepped together as one vector env.

A torch environment lives inside each seed's state and is stepped under ``vmap``. A gymnasium
environment cannot be: it steps on the host. :class:`HostEnvs` gives the training loop the same
picture from outside the transform: one :class:`~imitation_fn.envs.gym.GymEnv` of
``n_seeds * n_envs`` sub-environments whose tensors are seen as ``(n_seeds, n_envs, ...)``, so the
policy forward runs vmapped over seeds and the simulators step once per time step::

    envs = HostEnvs(gym_env, n_seeds=8)           # 8 * gym_env.n_envs sub-environments
    ts = envs.reset(keys)                         # keys: (8, 2); ts.obs: (8, n_envs, *obs_shape)
    ts = envs.step(actions)                       # actions: (8, n_envs, *act_shape)

Seed ``i``'s sub-environments are seeded from ``keys[i]`` exactly as ``gym_env.reset(keys[i])`` seeds
its own, and each sub-environment has its own generator, so seed ``i`` meets the same episodes alone
as in a sweep. The simulator state lives only here, never in a checkpoint: a resumed run restarts its
episodes from fresh resets (see :func:`restart_keys`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from imitation_fn.core import random, tree
from imitation_fn.envs.base import TimeStep
from imitation_fn.envs.gym import GymEnv

RESTART_TAG = 0x5EED  # folded into a state's key to draw the keys that (re)start its host envs


def restart_keys(keys: Tensor) -> Tensor:
    """``(n_seeds, 2)`` reset keys from the seeds' state keys, without advancing them.

    A state's key depends only on its seed and how far it has trained, so a run that starts, or resumes
    from a checkpoint, resets its host environments the same way every time it reaches that point.
    """
    return torch.stack([random.fold_in(k, RESTART_TAG) for k in keys])


def running(envs: HostEnvs | None, env: GymEnv, state_keys: Tensor) -> tuple[HostEnvs, bool]:
    """``envs`` with its copies running, and whether they (re)started in this call.

    ``None`` makes one of ``env`` for ``len(state_keys)`` seeds; copies that have not started are reset from
    :func:`restart_keys` of the seeds' state keys, so a run and its resume start them alike.
    """
    n_seeds = state_keys.shape[0]
    envs = envs if envs is not None else HostEnvs(env, n_seeds)
    if envs.n_seeds != n_seeds:
        raise ValueError(f"HostEnvs: made for {envs.n_seeds} seeds, stepped for {n_seeds}")
    if envs.timestep is not None:
        return envs, False
    envs.reset(restart_keys(state_keys))
    return envs, True


class HostEnvs:
    """``n_seeds`` seeds' copies of ``env`` (``env.n_envs`` each) in one host vector env.

    ``timestep`` is the latest reset/step, its tensors shaped ``(n_seeds, n_envs, ...)``; ``None``
    until the first :meth:`reset`.
    """

    def __init__(self, env: GymEnv, n_seeds: int, vectorization: Literal["sync", "async"] | None = None) -> None:
        self.n_seeds, self.n_envs = n_seeds, env.n_envs
        self.env = env.resized(n_seeds * env.n_envs, vectorization)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.max_episode_steps = env.max_episode_steps
        self._flat: TimeStep | None = None
        self.timestep: TimeStep | None = None

    def __repr__(self) -> str:
        return f"HostEnvs({self.env.env_id!r}, n_seeds={self.n_seeds}, n_envs={self.n_envs})"

    def close(self) -> None:
        self.env.close()

    def reset(self, keys: Tensor) -> TimeStep:
        """Reset every seed's sub-environments, seed ``i``'s with seeds drawn from ``keys[i]``."""
        if keys.shape[0] != self.n_seeds:
            raise ValueError(f"HostEnvs.reset: {keys.shape[0]} keys for {self.n_seeds} seeds")
        seeds = [s for k in keys for s in random.bits(k, self.n_envs).tolist()]
        return self._seen(self.env.reset_seeds(seeds))

    def step(self, actions: Tensor) -> TimeStep:
        """Step every sub-environment; ``actions: (n_seeds, n_envs, *act_shape)``."""
        if self._flat is None:
            raise RuntimeError("HostEnvs.step: reset first")
        return self._seen(self.env.step(self._flat.env_state, actions.flatten(0, 1), random.key(0)))

    def advance(self, offsets: Tensor, act: Callable[[Tensor, int], Tensor]) -> TimeStep:
        """Put sub-environment ``j`` of every seed ``offsets[j]`` steps into its episode, acting with ``act``.

        ``act(obs (n_seeds, n_envs, ...), t) -> actions``. A vector env steps all its copies at once, so
        every copy takes ``max(offsets)`` steps and copy ``j`` restarts ``offsets[j]`` steps before the end.
        """
        total = int(offsets.max()) if offsets.numel() else 0
        restart_at = (total - offsets).repeat(self.n_seeds)  # (n_seeds * n_envs,) flat, as the vector env is
        timestep = self.timestep
        assert timestep is not None and self._flat is not None, "HostEnvs.advance: reset first"
        for t in range(1, total + 1):
            timestep = self.step(act(timestep.obs, t - 1))
            if bool((restart_at == t).any()):
                timestep = self._seen(self.env.reset_where(self._flat.env_state, restart_at == t))
        return timestep

    def _seen(self, flat: TimeStep) -> TimeStep:
        """The flat timestep kept (to step from), and returned seen as ``(n_seeds, n_envs, ...)``."""
        self._flat = flat
        seen = tree.map(lambda x: x.unflatten(0, (self.n_seeds, self.n_envs)), flat.replace(env_state=()))
        self.timestep = seen.replace(env_state=flat.env_state)
        return self.timestep


__all__ = ["RESTART_TAG", "HostEnvs", "restart_keys", "running"]
