"""SAC's actor and twin critics as pure functions of parameter dicts (SB3's SAC ``MlpPolicy`` layout).

Actor ``{"trunk", "mu", "log_std"}``: a ReLU trunk ``[obs_dim, *net_arch]`` (activated after its last
layer, SB3's ``actor.latent_pi``) feeding two linear heads ``[net_arch[-1], act_dim]`` (``actor.mu``
and the state-dependent ``actor.log_std``, clipped to ``[-20, 2]``). Actions are ``tanh`` of a
Gaussian sample, in ``(-1, 1)^d``, then rescaled affinely to the Box bounds when ``low``/``high`` are
given. Critics ``{"q0", "q1"}``: two MLPs ``[obs_dim + act_dim, *net_arch, 1]`` (``critic.qf0/qf1``)
over the *normalised* action in ``[-1, 1]``, as SB3 stores and evaluates them.

All layers use ``nn.Linear``'s default initialisation (SB3 does not apply orthogonal init to SAC).

    actor = actor_init(key, env.observation_space, env.action_space)
    a = act(actor, obs, key, low=space.low, high=space.high)   # (batch, act_dim), within the bounds
    q = critic_apply(critic, obs, a_normalised)                # (2, batch)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.nn import TanhGaussian, mlp_apply, mlp_init

Params = dict[str, Any]
Bound = Tensor | np.ndarray | float | Sequence[float] | None

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


def _dims(observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> tuple[int, int]:
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"SAC policy: unsupported observation space {observation_space!r} (expected Box)")
    if not isinstance(action_space, gym.spaces.Box):
        raise TypeError(f"SAC policy: SAC needs a continuous (Box) action space, got {action_space!r}")
    return math.prod(observation_space.shape), math.prod(action_space.shape)


def _flat(obs: Tensor) -> Tensor:
    return obs.flatten(start_dim=1).to(torch.float32)


# ---------------------------------------------------------------------------------------------------------------------
# Actor
# ---------------------------------------------------------------------------------------------------------------------


def actor_init(
    key: random.Key,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    net_arch: Sequence[int] = (256, 256),
) -> Params:
    """Actor parameters ``{"trunk": [obs_dim, *net_arch], "mu": [h, act_dim], "log_std": [h, act_dim]}``."""
    obs_dim, act_dim = _dims(observation_space, action_space)
    k_trunk, k_mu, k_log_std = random.split(key, 3)
    hidden = list(net_arch)[-1] if net_arch else obs_dim
    return {
        # An empty net_arch has no trunk layers; SB3 then feeds the features straight to the heads.
        "trunk": mlp_init(k_trunk, [obs_dim, *net_arch], init="torch_default") if net_arch else {},
        "mu": mlp_init(k_mu, [hidden, act_dim], init="torch_default"),
        "log_std": mlp_init(k_log_std, [hidden, act_dim], init="torch_default"),
    }


def actor_apply(params: Params, obs: Tensor, activation: str = "relu") -> tuple[Tensor, Tensor]:
    """``obs: (batch, *obs_shape)`` -> ``(mean, log_std)``, each ``(batch, act_dim)``; log_std in ``[-20, 2]``."""
    h = _flat(obs)
    if params["trunk"]:
        h = mlp_apply(params["trunk"], h, activation, activate_final=True)
    mean = mlp_apply(params["mu"], h)
    log_std = torch.clamp(mlp_apply(params["log_std"], h), LOG_STD_MIN, LOG_STD_MAX)
    return mean, log_std


def distribution(params: Params, obs: Tensor, activation: str = "relu") -> TanhGaussian:
    """The squashed Gaussian over normalised actions in ``(-1, 1)^act_dim``."""
    mean, log_std = actor_apply(params, obs, activation)
    return TanhGaussian(mean=mean, log_std=log_std)


def _bounds(low: Bound, high: Bound, like: Tensor) -> tuple[Tensor, Tensor] | None:
    if low is None and high is None:
        return None
    if low is None or high is None:
        raise ValueError("SAC policy: give both low and high, or neither")
    low_t = torch.as_tensor(low, dtype=like.dtype, device=like.device)
    high_t = torch.as_tensor(high, dtype=like.dtype, device=like.device)
    return low_t.reshape(-1), high_t.reshape(-1)


def rescale(action: Tensor, low: Bound = None, high: Bound = None) -> Tensor:
    """Map normalised actions in ``[-1, 1]`` to ``[low, high]`` (SB3's ``unscale_action``); identity without bounds."""
    bounds = _bounds(low, high, action)
    if bounds is None:
        return action
    lo, hi = bounds
    return lo + 0.5 * (action + 1.0) * (hi - lo)


def normalize(action: Tensor, low: Bound = None, high: Bound = None) -> Tensor:
    """Inverse of :func:`rescale`: ``[low, high]`` -> ``[-1, 1]`` (SB3's ``scale_action``)."""
    bounds = _bounds(low, high, action)
    if bounds is None:
        return action
    lo, hi = bounds
    return 2.0 * (action - lo) / (hi - lo) - 1.0


def sample_and_log_prob(
    params: Params, obs: Tensor, key: random.Key, *, low: Bound = None, high: Bound = None, activation: str = "relu"
) -> tuple[Tensor, Tensor]:
    """A reparameterised action ``(batch, act_dim)`` and its log-density ``(batch,)``.

    Without bounds: the action is in ``(-1, 1)`` and the density is the tanh-Gaussian's (what SAC's
    losses use). With ``low``/``high`` the action is rescaled to the bounds and the density includes
    the affine Jacobian, ``- sum(log((high - low) / 2))``.
    """
    action, log_prob = distribution(params, obs, activation).sample_and_log_prob(key)
    bounds = _bounds(low, high, action)
    if bounds is None:
        return action, log_prob
    lo, hi = bounds
    return rescale(action, lo, hi), log_prob - torch.log(0.5 * (hi - lo)).sum()


def act(
    params: Params,
    obs: Tensor,
    key: random.Key,
    *,
    deterministic: bool = False,
    low: Bound = None,
    high: Bound = None,
    activation: str = "relu",
) -> Tensor:
    """An action ``(batch, act_dim)``: ``tanh(mean)`` when ``deterministic``, else a sample; rescaled to the bounds."""
    dist = distribution(params, obs, activation)
    action = dist.mode() if deterministic else dist.sample(key)
    return rescale(action, low, high)


# ---------------------------------------------------------------------------------------------------------------------
# Twin critics
# ---------------------------------------------------------------------------------------------------------------------


def critic_init(
    key: random.Key,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    net_arch: Sequence[int] = (256, 256),
) -> Params:
    """Twin Q parameters ``{"q0", "q1"}``, each an MLP ``[obs_dim + act_dim, *net_arch, 1]``."""
    obs_dim, act_dim = _dims(observation_space, action_space)
    k0, k1 = random.split(key)
    sizes = [obs_dim + act_dim, *net_arch, 1]
    return {"q0": mlp_init(k0, sizes, init="torch_default"), "q1": mlp_init(k1, sizes, init="torch_default")}


def critic_apply(params: Params, obs: Tensor, action: Tensor, activation: str = "relu") -> Tensor:
    """Both Q-values ``(2, batch)`` of ``obs: (batch, *obs_shape)`` and normalised ``action: (batch, act_dim)``."""
    x = torch.cat([_flat(obs), action.to(torch.float32)], dim=-1)
    return torch.stack([mlp_apply(params[q], x, activation).squeeze(-1) for q in ("q0", "q1")])


__all__ = [
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "act",
    "actor_apply",
    "actor_init",
    "critic_apply",
    "critic_init",
    "distribution",
    "normalize",
    "rescale",
    "sample_and_log_prob",
]
