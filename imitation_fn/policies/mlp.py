"""The MLP policy: observations → an action distribution, as pure functions of a params dict.

SB3's ``ActorCriticPolicy`` actor (orthogonal init, gain √2 in hidden layers, 0.01 on the action
head, state-independent ``log_std`` initialised to 0 for continuous actions), which is also what
``imitation``'s BC trains (``FeedForward32Policy``: two hidden layers of 32 units, tanh). Image observation
spaces get a NatureCNN (``"cnn"``, :mod:`imitation_fn.nn.cnn`) before the MLP, as SB3's ``CnnPolicy``.

The parameter dict's keys carry the static structure: a ``log_std`` entry means continuous actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.nn import Categorical, DiagGaussian, mlp_apply, mlp_init
from imitation_fn.nn.cnn import FEATURES_DIM, is_image_space, nature_cnn_apply, nature_cnn_init

Params = dict[str, Any]


def _action_dim(action_space: gym.Space[Any]) -> int:
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.Box):
        return math.prod(action_space.shape)
    raise TypeError(f"policy: unsupported action space {action_space!r} (expected Discrete or Box)")


def init(
    key: random.Key,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    net_arch: Sequence[int] = (32, 32),
) -> Params:
    """Parameters of an MLP policy for these spaces."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"policy: unsupported observation space {observation_space!r} (expected Box)")
    image = is_image_space(observation_space)
    obs_dim = FEATURES_DIM if image else math.prod(observation_space.shape)
    params: Params = {
        "pi": mlp_init(key, [obs_dim, *net_arch, _action_dim(action_space)], output_gain=0.01),
    }
    if image:  # SB3's NatureCNN features; its own key, so MLP policies keep the params they always had
        params["cnn"] = nature_cnn_init(random.fold_in(key, 0xC22), observation_space.shape)
    if isinstance(action_space, gym.spaces.Box):
        params["log_std"] = torch.zeros(_action_dim(action_space))
    return params


def distribution(params: Params, obs: Tensor, activation: str = "tanh") -> Categorical | DiagGaussian:
    """The action distribution at ``obs: (batch, *obs_shape)``."""
    x = nature_cnn_apply(params["cnn"], obs) if "cnn" in params else obs.flatten(start_dim=1).to(torch.float32)
    out = mlp_apply(params["pi"], x, activation=activation)
    if "log_std" in params:
        return DiagGaussian(mean=out, log_std=params["log_std"].expand_as(out))
    return Categorical(logits=out)


def act(
    params: Params, obs: Tensor, key: random.Key, *, deterministic: bool = False, activation: str = "tanh"
) -> Tensor:
    """Sample an action (or take the mode when ``deterministic``)."""
    dist = distribution(params, obs, activation)
    return dist.mode() if deterministic else dist.sample(key)
