"""Parameter layouts of saved policies: the shapes each kind's params must have, from the spaces and
``net_arch`` alone, and the check that params fit them (shared by our files and SB3 zips)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import gymnasium as gym
import torch
import torch.utils._pytree as pytree

from imitation_fn.core import serialization
from imitation_fn.nn.cnn import FEATURES_DIM, is_image_space, nature_cnn_shapes
from imitation_fn.nn.mlp import mlp_sizes

Kind = Literal["actor_critic", "sac_actor", "mlp"]
KINDS: tuple[str, ...] = get_args(Kind)
Params = dict[str, Any]
Spaces = tuple[gym.Space[Any], gym.Space[Any]]


# ---------------------------------------------------------------------------------------------------------------------


def _obs_dim(space: gym.Space[Any]) -> int:
    """The width the MLPs see: NatureCNN's features for images, else the flattened observation."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"policy: unsupported observation space {space!r} (expected Box)")
    return FEATURES_DIM if is_image_space(space) else math.prod(space.shape)


def _act_dim(space: gym.Space[Any]) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return math.prod(space.shape)
    raise TypeError(f"policy: unsupported action space {space!r} (expected Discrete or Box)")


def _mlp_shapes(sizes: Sequence[int]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(len(sizes) - 1):
        shapes[f"layers.{i}.weight"] = (sizes[i + 1], sizes[i])
        shapes[f"layers.{i}.bias"] = (sizes[i + 1],)
    return shapes


def param_shapes(kind: str, observation_space: gym.Space[Any], action_space: gym.Space[Any], net_arch: Any) -> Params:
    """The tree of parameter shapes of a ``kind`` policy with these spaces and ``net_arch``.

    - ``"actor_critic"``: ``net_arch = {"pi": [...], "vf": [...]}`` (optionally ``"shared": [...]``, a
      trunk ``[obs_dim, *shared]`` feeding both heads); ``log_std: (act_dim,)`` for Box actions.
    - ``"sac_actor"``: ``net_arch = [...]``, the trunk widths (SB3: ``[256, 256]``).
    - ``"mlp"``: ``net_arch = [...]``, the hidden widths of ``pi``; ``log_std`` for Box actions.

    Image observations (``nn.cnn.is_image_space``) add ``"cnn"`` (NatureCNN) before the networks above.
    """
    obs_dim, act_dim = _obs_dim(observation_space), _act_dim(action_space)
    box = isinstance(action_space, gym.spaces.Box)
    shapes: Params
    if kind == "actor_critic":
        if not isinstance(net_arch, dict) or not {"pi", "vf"} <= net_arch.keys() <= {"pi", "vf", "shared"}:
            raise ValueError(f"actor_critic net_arch must be {{'pi': [...], 'vf': [...]}}, got {net_arch!r}")
        shared = list(net_arch.get("shared", []))
        head_in = shared[-1] if shared else obs_dim
        shapes = {
            "pi": _mlp_shapes([head_in, *net_arch["pi"], act_dim]),
            "vf": _mlp_shapes([head_in, *net_arch["vf"], 1]),
        }
        if "shared" in net_arch:
            shapes["shared"] = _mlp_shapes([obs_dim, *shared])
    elif kind == "sac_actor":
        if not box:
            raise TypeError(f"sac_actor: SAC needs a Box action space, got {action_space!r}")
        arch = list(net_arch)
        hidden = arch[-1] if arch else obs_dim
        shapes = {
            "trunk": _mlp_shapes([obs_dim, *arch]) if arch else {},
            "mu": _mlp_shapes([hidden, act_dim]),
            "log_std": _mlp_shapes([hidden, act_dim]),
        }
    elif kind == "mlp":
        shapes = {"pi": _mlp_shapes([obs_dim, *net_arch, act_dim])}
    else:
        raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")
    if box and kind != "sac_actor":
        shapes["log_std"] = (act_dim,)
    if is_image_space(observation_space) and kind != "sac_actor":
        shapes["cnn"] = nature_cnn_shapes(observation_space.shape or ())
    return shapes


def infer_net_arch(kind: str, params: Params) -> Any:
    """``net_arch`` read off the parameter shapes (the inverse of :func:`param_shapes`)."""
    if kind == "actor_critic":
        arch: dict[str, list[int]] = {"pi": mlp_sizes(params["pi"])[1:-1], "vf": mlp_sizes(params["vf"])[1:-1]}
        if "shared" in params:
            arch["shared"] = mlp_sizes(params["shared"])[1:]
        return arch
    if kind == "sac_actor":
        return mlp_sizes(params["trunk"])[1:] if params["trunk"] else []
    if kind == "mlp":
        return mlp_sizes(params["pi"])[1:-1]
    raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")


def template(shapes: Any, dtype: torch.dtype) -> Any:
    return pytree.tree_map(
        lambda s: torch.empty(s, dtype=dtype, device="cpu"), shapes, is_leaf=lambda s: isinstance(s, tuple)
    )


def check_params(kind: str, params: Params, spaces: Spaces, net_arch: Any, what: str) -> None:
    """Raise if ``params`` do not have the layout's keys and shapes (names the first mismatching tensor)."""
    expected = param_shapes(kind, *spaces, net_arch)
    dtype = params_dtype(params)
    serialization.from_flat_dict(serialization.to_flat_dict(params), template(expected, dtype), what=what)


def params_dtype(params: Params) -> torch.dtype:
    dtypes = {leaf.dtype for leaf in pytree.tree_leaves(params)}
    if len(dtypes) != 1:
        raise ValueError(f"policy params must share one dtype, got {sorted(map(str, dtypes))}")
    return dtypes.pop()


__all__ = [
    "KINDS",
    "Kind",
    "Params",
    "Spaces",
    "check_params",
    "infer_net_arch",
    "param_shapes",
    "params_dtype",
    "template",
]
