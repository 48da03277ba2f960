"""Reward ensembles as a vmapped member axis, and the AddSTD confidence-bound reward.

    ens = RewardEnsemble(BasicRewardNet(obs_space, act_space), num_members=5)
    params = ens.init(key)                                     # every leaf (5, ...)
    mean, var = ens.moments(params, obs, acts, next_obs, dones)   # (N,), (N,)
    lcb = AddSTDRewardWrapper(ens, default_alpha=-1.0).apply(params, obs, acts, next_obs, dones)

As ``imitation``'s ``RewardEnsemble``: at least two members, ``apply`` is the mean, the variance is the
unbiased sample variance over members (``ddof=1``). Members share one structure (one spec), so the
member axis is a leading axis of every parameter and one ``vmap`` evaluates them all; member ``i``'s
params are ``member.init(random.split(key, num_members)[i])``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from imitation_fn.core import random, tree
from imitation_fn.rewards.nets import Params, RewardNet, SpaceSpec, Transition


@dataclasses.dataclass(frozen=True)
class RewardEnsemble:
    """``num_members`` reward nets of one structure ``member``; params stacked on a leading axis."""

    member: RewardNet
    num_members: int

    def __post_init__(self) -> None:
        if self.num_members < 2:
            raise ValueError(f"RewardEnsemble needs at least 2 members, got num_members={self.num_members}")
        if isinstance(self.member, RewardEnsemble | AddSTDRewardWrapper):
            raise ValueError("RewardEnsemble: a member must be a single reward net, not an ensemble")

    @property
    def observation_space(self) -> SpaceSpec:
        return self.member.observation_space

    @property
    def action_space(self) -> SpaceSpec:
        return self.member.action_space

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        """Member params stacked: every leaf ``(num_members, ...)``."""
        keys = random.split(key, self.num_members)
        return tree.stack([self.member.init(keys[i], dtype) for i in range(self.num_members)])

    def preprocess(self, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Transition:
        return self.member.preprocess(obs, acts, next_obs, dones)

    def forward_all(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """Every member's rewards ``(num_members, N)`` from preprocessed inputs (differentiable)."""
        return torch.func.vmap(self.member.forward, in_dims=(0, None, None, None, None))(
            params, obs, acts, next_obs, dones
        )

    def apply_all(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """Every member's rewards ``(num_members, N)`` of raw transitions."""
        return self.forward_all(params, *self.preprocess(obs, acts, next_obs, dones))

    def moments(
        self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(mean, var)`` over members, each ``(N,)``; ``var`` is unbiased (``ddof=1``, as imitation)."""
        rews = self.apply_all(params, obs, acts, next_obs, dones)
        return rews.mean(dim=0), rews.var(dim=0, correction=1)

    def forward(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """The members' mean reward ``(N,)`` from preprocessed inputs."""
        return self.forward_all(params, obs, acts, next_obs, dones).mean(dim=0)

    def apply(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """The members' mean reward ``(N,)`` (imitation's ``RewardEnsemble.predict``)."""
        return self.apply_all(params, obs, acts, next_obs, dones).mean(dim=0)

    def to_json(self) -> dict[str, Any]:
        return {"type": "RewardEnsemble", "member": self.member.to_json(), "num_members": self.num_members}


def add_std(mean: Tensor, var: Tensor, alpha: float | Tensor) -> Tensor:
    """``mean + alpha * sqrt(var)``: an upper (``alpha > 0``) or lower (``alpha < 0``) confidence bound."""
    return mean + alpha * torch.sqrt(var)


@dataclasses.dataclass(frozen=True)
class AddSTDRewardWrapper:
    """``mean + alpha · std`` of an ensemble's rewards (``imitation``'s ``AddSTDRewardWrapper``).

    ``default_alpha`` (imitation: 0.0) is used when ``apply`` gets no ``alpha``; a negative value gives
    the conservative (lower-bound) reward. Params are the ensemble's.
    """

    base: RewardEnsemble
    default_alpha: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.base, RewardEnsemble):
            raise TypeError(
                "AddSTDRewardWrapper needs a RewardEnsemble (a reward net with variance), "
                f"got {type(self.base).__name__}"
            )

    @property
    def observation_space(self) -> SpaceSpec:
        return self.base.observation_space

    @property
    def action_space(self) -> SpaceSpec:
        return self.base.action_space

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        return self.base.init(key, dtype)

    def preprocess(self, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Transition:
        return self.base.preprocess(obs, acts, next_obs, dones)

    def forward(
        self,
        params: Params,
        obs: Tensor,
        acts: Tensor,
        next_obs: Tensor,
        dones: Tensor,
        alpha: float | Tensor | None = None,
    ) -> Tensor:
        """``mean + alpha · std`` ``(N,)`` from preprocessed inputs."""
        rews = self.base.forward_all(params, obs, acts, next_obs, dones)
        a = self.default_alpha if alpha is None else alpha
        return add_std(rews.mean(dim=0), rews.var(dim=0, correction=1), a)

    def apply(
        self,
        params: Params,
        obs: Tensor,
        acts: Tensor,
        next_obs: Tensor,
        dones: Tensor,
        alpha: float | Tensor | None = None,
    ) -> Tensor:
        """``mean + alpha · std`` ``(N,)`` of raw transitions (``alpha`` defaults to ``default_alpha``)."""
        return self.forward(params, *self.preprocess(obs, acts, next_obs, dones), alpha=alpha)

    def to_json(self) -> dict[str, Any]:
        return {"type": "AddSTDRewardWrapper", "base": self.base.to_json(), "default_alpha": float(self.default_alpha)}


__all__ = ["AddSTDRewardWrapper", "RewardEnsemble", "add_std"]
