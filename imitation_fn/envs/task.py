"""``Task``: what an algorithm reads from the world, one type for every algorithm (see ``algorithms.protocol``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch

from imitation_fn.core import tree
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.base import Env, PolicyFn, RewardFn
from imitation_fn.envs.tabular import TabularMDP


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so compiled steps cache per task
class Task:
    """What an algorithm needs from the world; every field an algorithm does not use stays None.

    ``env`` is the training environment (``n_envs`` copies per seed) and gives the spaces; ``demos``
    the expert data as the user gave it; ``expert`` a policy to query (DAgger); ``mdp`` a tabular MDP
    (MCE IRL); ``reward_fn`` replaces the environment's reward in training (RL on a learned reward);
    ``total`` is the run's budget in the algorithm's unit (schedules such as PPO's linear learning rate
    and the preference-query schedule are fractions of it); ``eval_env`` runs the evaluations;
    ``spaces`` gives ``(observation_space, action_space)`` to an offline algorithm without an env.
    """

    env: Env | None = None
    demos: Sequence[Trajectory] | Transitions | None = None
    expert: PolicyFn | None = None
    mdp: TabularMDP | None = None
    reward_fn: RewardFn | None = None
    total: int | None = None
    eval_env: Env | None = None
    spaces: tuple[gym.Space[Any], gym.Space[Any]] | None = None  # (observation, action) when there is no env

    @property
    def observation_space(self) -> gym.Space[Any]:
        if self.spaces is not None:
            return self.spaces[0]
        if self.env is not None:
            return self.env.observation_space
        if self.mdp is not None:  # the MDP's observation vectors (one-hot states by default)
            return gym.spaces.Box(-float("inf"), float("inf"), (self.mdp.obs_dim,))
        raise ValueError("Task: none of spaces, env and mdp is set, so there are no spaces")

    @property
    def action_space(self) -> gym.Space[Any]:
        if self.spaces is not None:
            return self.spaces[1]
        if self.env is not None:
            return self.env.action_space
        if self.mdp is not None:
            return gym.spaces.Discrete(self.mdp.n_actions)
        raise ValueError("Task: none of spaces, env and mdp is set, so there are no spaces")

    def to(self, device: torch.device | str) -> Task:
        """This task with its data on ``device``: environments (:meth:`Env.to`), demonstrations, the MDP, and an
        expert or reward that can move (a loaded policy or reward); plain functions are left as they are, so
        they must follow the device of their inputs."""

        def move(value: Any) -> Any:  # an object that moves itself, or a pytree (a plain function is a leaf)
            return value.to(device) if hasattr(value, "to") else tree.to(value, device)

        fields = ("env", "eval_env", "demos", "mdp", "expert", "reward_fn")
        return dataclasses.replace(self, **{name: move(getattr(self, name)) for name in fields})

    def require(self, *names: str, who: str) -> None:
        """Raise one clear error if a field ``who`` needs is missing."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{who}: the task needs {', '.join(missing)}")


__all__ = ["Task"]
