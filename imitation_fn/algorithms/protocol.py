"""The one interface every algorithm implements, and the one ``Task`` they all read the world from.

    state = algo.init(cfg, key, task)                # key: (2,) int64; vmap it over seeds
    state, batch = algo.collect(state, task, key)    # algorithms that act (DAgger, GAIL, AIRL, density, PC, PPO, SAC)
    state, metrics = algo.update(state, batch)
    actions = algo.policy(state)(obs, key)
    rewards = algo.reward(state)(obs, acts, next_obs, dones)   # reward learners

An algorithm is a module with ``Config`` (frozen pydantic), ``State`` (a pytree) and these functions,
all pure: ``torch.func.vmap`` of any of them over stacked states trains many seeds at once.
Offline algorithms (BC, MCE IRL) do not collect: the loop (:mod:`imitation_fn.train.loop`) hands
``update`` batches from the task's data. ``collect`` returns the state too because a torch
environment's state (and the random stream when ``key`` is None) lives inside the algorithm's state:
a vmapped rollout continues exactly where that seed's last one stopped.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from imitation_fn.core import random
from imitation_fn.envs.base import PolicyFn, RewardFn
from imitation_fn.envs.task import Task

Metrics = dict[str, Tensor]


@runtime_checkable
class Algorithm(Protocol):
    """What every algorithm module provides (structurally: modules satisfy it, nothing subclasses it)."""

    Config: type
    State: type

    def init(self, cfg: Any, key: random.Key, task: Task) -> Any: ...

    def update(self, state: Any, batch: Any) -> tuple[Any, Metrics]: ...

    def policy(self, state: Any, deterministic: bool = True) -> PolicyFn: ...


@runtime_checkable
class Acting(Algorithm, Protocol):
    """An algorithm that gathers its own data: ``collect`` then ``update`` on what it collected.

    ``key`` None draws from the state's own random stream (which then advances).
    """

    def collect(self, state: Any, task: Task, key: random.Key | None = None) -> tuple[Any, Any]: ...


@runtime_checkable
class RewardLearner(Algorithm, Protocol):
    """An algorithm that learns a reward: ``reward(state)`` is ``(obs, acts, next_obs, dones) -> rewards``."""

    def reward(self, state: Any) -> RewardFn: ...


__all__ = ["Acting", "Algorithm", "Metrics", "RewardLearner", "Task"]
