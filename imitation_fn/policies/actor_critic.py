"""The actor-critic policy: SB3's ``ActorCriticPolicy`` (MLP) as pure functions of a params dict.

    params = actor_critic.init(key, env.observation_space, env.action_space)   # net_arch (64, 64)
    dist, values = actor_critic.forward(params, obs)                            # obs: (batch, *obs_shape)
    values, log_prob, entropy = actor_critic.evaluate_actions(params, obs, acts)

Parameters (the shared contract; SB3 names in brackets):

- ``"pi"``: MLP ``[obs_dim, *pi_arch, act_dim]`` [``mlp_extractor.policy_net`` + ``action_net``],
- ``"vf"``: MLP ``[obs_dim, *vf_arch, 1]`` [``mlp_extractor.value_net`` + ``value_net``],
- ``"log_std"``: ``(act_dim,)``, only for ``Box`` actions [``log_std``, state-independent, init 0],

orthogonal weights with gain √2 in hidden layers, 0.01 on the action head and 1 on the value head,
zero biases. With ``shared=True``: ``{"shared": trunk [obs_dim, *net_arch], "pi": [h, act_dim],
"vf": [h, 1]}`` (plus ``"log_std"``). Observations are flattened and cast to float32; observation
normalisation is the caller's (it lives in the algorithm's state, not in params). Image observation
spaces (``nn.cnn.is_image_space``) get SB3's ``CnnPolicy`` features: ``"cnn"``, a NatureCNN shared by
both heads [``features_extractor``], whose 512 features replace the flattened observation.

``Box`` actions are Gaussian samples, *not* clipped: log-probabilities refer to the sample, and
:func:`clip_action` clips only what is sent to the environment, as SB3 does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.nn import Categorical, DiagGaussian, mlp_apply, mlp_init
from imitation_fn.nn.cnn import FEATURES_DIM, is_image_space, nature_cnn_apply, nature_cnn_init

Params = dict[str, Any]
NetArch = Sequence[int] | Mapping[str, Sequence[int]]
Distribution = Categorical | DiagGaussian


def action_dim(action_space: gym.Space[Any]) -> int:
    """Width of the action head: ``n`` for ``Discrete(n)``, ``prod(shape)`` for ``Box``."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.Box):
        return math.prod(action_space.shape)
    raise TypeError(f"actor_critic: unsupported action space {action_space!r} (expected Discrete or Box)")


def split_arch(net_arch: NetArch) -> tuple[list[int], list[int]]:
    """``(pi_arch, vf_arch)``: a list is used for both networks (SB3 >= 1.8), a dict names each."""
    if isinstance(net_arch, Mapping):
        unknown = set(net_arch) - {"pi", "vf"}
        if unknown:
            raise ValueError(f"actor_critic: net_arch dict may only have keys 'pi' and 'vf'; got {sorted(unknown)}")
        return list(net_arch.get("pi", ())), list(net_arch.get("vf", ()))
    return list(net_arch), list(net_arch)


def init(
    key: random.Key,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    net_arch: NetArch = (64, 64),
    shared: bool = False,
) -> Params:
    """Parameters of SB3's default actor-critic for these spaces (separate pi/vf networks unless ``shared``)."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"actor_critic: unsupported observation space {observation_space!r} (expected Box)")
    obs_dim, n_act = math.prod(observation_space.shape), action_dim(action_space)
    image = is_image_space(observation_space)
    if image:
        obs_dim = FEATURES_DIM
    k_pi, k_vf, k_shared = random.split(key, 3)
    if shared:
        if isinstance(net_arch, Mapping) or len(net_arch) == 0:
            raise ValueError(f"actor_critic: shared=True needs a non-empty list of layer sizes; got {net_arch!r}")
        sizes = [obs_dim, *net_arch]
        params: Params = {
            # The trunk's last layer is a hidden layer of the whole network: gain √2 as well.
            "shared": mlp_init(k_shared, sizes, output_gain=math.sqrt(2.0)),
            "pi": mlp_init(k_pi, [sizes[-1], n_act], output_gain=0.01),
            "vf": mlp_init(k_vf, [sizes[-1], 1], output_gain=1.0),
        }
    else:
        pi_arch, vf_arch = split_arch(net_arch)
        params = {
            "pi": mlp_init(k_pi, [obs_dim, *pi_arch, n_act], output_gain=0.01),
            "vf": mlp_init(k_vf, [obs_dim, *vf_arch, 1], output_gain=1.0),
        }
    if image:  # its own key (folded in), so MLP policies keep the params they always had
        params["cnn"] = nature_cnn_init(random.fold_in(key, 0xC22), observation_space.shape)
    if isinstance(action_space, gym.spaces.Box):
        # zeros_like a (batched under vmap) bias rather than torch.zeros: see mlp_init.
        params["log_std"] = torch.zeros_like(params["pi"][f"layers.{_last(params['pi'])}.bias"])
    return params


def _last(mlp: dict[str, Tensor]) -> int:
    return len(mlp) // 2 - 1


def _features(params: Params, obs: Tensor, activation: str) -> Tensor:
    x = nature_cnn_apply(params["cnn"], obs) if "cnn" in params else obs.flatten(start_dim=1).to(torch.float32)
    if "shared" in params:
        x = mlp_apply(params["shared"], x, activation, activate_final=True)
    return x


def _dist(params: Params, out: Tensor) -> Distribution:
    if "log_std" in params:
        return DiagGaussian(mean=out, log_std=params["log_std"].expand_as(out))
    return Categorical(logits=out)


def forward(params: Params, obs: Tensor, activation: str = "tanh") -> tuple[Distribution, Tensor]:
    """The action distribution and the values ``(batch,)`` at ``obs: (batch, *obs_shape)``."""
    x = _features(params, obs, activation)
    dist = _dist(params, mlp_apply(params["pi"], x, activation))
    return dist, mlp_apply(params["vf"], x, activation).squeeze(-1)


def distribution(params: Params, obs: Tensor, activation: str = "tanh") -> Distribution:
    """The action distribution at ``obs: (batch, *obs_shape)``."""
    return _dist(params, mlp_apply(params["pi"], _features(params, obs, activation), activation))


def value(params: Params, obs: Tensor, activation: str = "tanh") -> Tensor:
    """State values ``(batch,)`` at ``obs: (batch, *obs_shape)``."""
    return mlp_apply(params["vf"], _features(params, obs, activation), activation).squeeze(-1)


def act(
    params: Params, obs: Tensor, key: random.Key, *, deterministic: bool = False, activation: str = "tanh"
) -> Tensor:
    """Sample an action ``(batch, *act_shape)`` (the mode when ``deterministic``); ``Box`` actions unclipped."""
    dist = distribution(params, obs, activation)
    return dist.mode() if deterministic else dist.sample(key)


def noise(params: Params, key: random.Key, shape: Sequence[int]) -> Tensor:
    """All the randomness for ``shape`` action draws (e.g. ``(n_steps, n_envs)``) in one generator call.

    Gumbel noise ``(*shape, n_actions)`` for discrete actions, standard normal ``(*shape, act_dim)``
    for ``Box``; :func:`sample` turns one slice of it into actions. Drawing a whole rollout's noise at
    once costs one Threefry call instead of one per step (the per-step call dominates eager collection).
    """
    width = params["pi"][f"layers.{_last(params['pi'])}.bias"].shape[-1]
    if "log_std" in params:
        return random.normal(key, (*shape, width))
    return random.gumbel(key, (*shape, width))


def sample(dist: Distribution, noise: Tensor) -> Tensor:
    """An action drawn from ``dist`` with pre-drawn ``noise`` (from :func:`noise`), reparameterised for ``Box``."""
    if isinstance(dist, DiagGaussian):
        return dist.mean + dist.std * noise
    return torch.argmax(dist.logits + noise, dim=-1)  # Gumbel-max


def log_prob(params: Params, obs: Tensor, acts: Tensor, activation: str = "tanh") -> Tensor:
    """``log π(acts | obs)``, ``(batch,)``."""
    return distribution(params, obs, activation).log_prob(acts)


def entropy(params: Params, obs: Tensor, activation: str = "tanh") -> Tensor:
    """Entropy of ``π(· | obs)``, ``(batch,)``."""
    return distribution(params, obs, activation).entropy()


def evaluate_actions(
    params: Params, obs: Tensor, acts: Tensor, activation: str = "tanh"
) -> tuple[Tensor, Tensor, Tensor]:
    """SB3's ``evaluate_actions``: ``(values, log_prob, entropy)``, each ``(batch,)``."""
    dist, values = forward(params, obs, activation)
    return values, dist.log_prob(acts), dist.entropy()


def action_bounds(action_space: gym.Space[Any]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(low, high)`` of a ``Box`` as flat tuples of floats (static, hashable); ``None`` otherwise."""
    if not isinstance(action_space, gym.spaces.Box):
        return None
    low = np.asarray(action_space.low, dtype=np.float64).reshape(-1)
    high = np.asarray(action_space.high, dtype=np.float64).reshape(-1)
    return tuple(float(v) for v in low), tuple(float(v) for v in high)


def clip_action(action: Tensor, bounds: tuple[tuple[float, ...], tuple[float, ...]] | None) -> Tensor:
    """Clip ``action: (batch, act_dim)`` to ``bounds`` (from :func:`action_bounds`) before it goes to the env.

    ``None`` bounds (discrete actions) return ``action`` unchanged.
    """
    if bounds is None:
        return action
    low = torch.tensor(bounds[0], dtype=action.dtype, device=action.device)
    high = torch.tensor(bounds[1], dtype=action.dtype, device=action.device)
    return torch.clamp(action, low, high)


__all__ = [
    "Distribution",
    "NetArch",
    "Params",
    "act",
    "action_bounds",
    "action_dim",
    "clip_action",
    "distribution",
    "entropy",
    "evaluate_actions",
    "forward",
    "init",
    "log_prob",
    "noise",
    "sample",
    "split_arch",
    "value",
]
