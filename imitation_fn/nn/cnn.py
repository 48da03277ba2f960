"""NatureCNN (Mnih et al. 2015), SB3's image feature extractor, as pure functions of a params dict.

    params = nature_cnn_init(key, (4, 84, 84))     # an image space's shape, channels first or last
    features = nature_cnn_apply(params, obs)        # obs: (N, 4, 84, 84) uint8 -> (N, 512)

Pixels are scaled to ``[0, 1]`` (SB3's ``preprocess_obs`` for image spaces), then three ReLU convolutions
(32 8×8 stride 4, 64 4×4 stride 2, 64 3×3 stride 1), a flatten and a ReLU linear layer to ``features_dim``.
Parameters ``conv{0,1,2}.{weight,bias}`` and ``linear.{weight,bias}`` [SB3: ``features_extractor.cnn.{0,2,4}``,
``features_extractor.linear.0``], orthogonal with gain √2 and zero biases (SB3's ``ortho_init``).
Channels-last images ``(N, H, W, C)`` are transposed first (SB3 does it with ``VecTransposeImage``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.nn.mlp import Params, orthogonal

FEATURES_DIM = 512
_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))  # (out channels, kernel, stride)


def is_image_space(space: gym.Space[Any]) -> bool:
    """SB3's ``is_image_space``: a ``uint8`` ``Box`` of rank 3 with bounds 0 and 255."""
    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
    )


def channels_first(shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image shape, channels first or last (the smaller end axis is the channels, as SB3)."""
    a, b, c = shape
    return (a, b, c) if a <= c else (c, a, b)


def _out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def nature_cnn_init(
    key: random.Key, shape: Sequence[int], features_dim: int = FEATURES_DIM, dtype: torch.dtype = torch.float32
) -> Params:
    """Parameters of NatureCNN for images of ``shape`` (a pure function of ``key``)."""
    channels, height, width = channels_first(shape)
    keys = random.split(key, len(_CONVS) + 1)
    params: Params = {}
    for i, (out, kernel, stride) in enumerate(_CONVS):
        w = orthogonal(keys[i], (out, channels * kernel * kernel), gain=math.sqrt(2.0), dtype=dtype)
        params[f"conv{i}.weight"] = w.reshape(out, channels, kernel, kernel)
        params[f"conv{i}.bias"] = torch.zeros_like(w[:, 0])
        channels, height, width = out, _out(height, kernel, stride), _out(width, kernel, stride)
    if height < 1 or width < 1:
        raise ValueError(
            f"NatureCNN: images of shape {tuple(shape)} are too small for its convolutions (36x36 at least)"
        )
    w = orthogonal(keys[-1], (features_dim, channels * height * width), gain=math.sqrt(2.0), dtype=dtype)
    params["linear.weight"], params["linear.bias"] = w, torch.zeros_like(w[:, 0])
    return params


def nature_cnn_apply(params: Params, obs: Tensor) -> Tensor:
    """Features ``(N, features_dim)`` of images ``obs: (N, C, H, W)`` or ``(N, H, W, C)`` with pixels in 0..255."""
    in_channels = params["conv0.weight"].shape[-3]
    if obs.shape[1] != in_channels and obs.shape[-1] == in_channels:
        obs = obs.permute(0, 3, 1, 2)
    x = obs.to(params["linear.weight"].dtype) / 255.0
    for i, (_, _, stride) in enumerate(_CONVS):
        x = F.relu(F.conv2d(x, params[f"conv{i}.weight"], params[f"conv{i}.bias"], stride=stride))
    return F.relu(F.linear(x.flatten(start_dim=1), params["linear.weight"], params["linear.bias"]))


def nature_cnn_shapes(shape: Sequence[int], features_dim: int = FEATURES_DIM) -> dict[str, tuple[int, ...]]:
    """The parameter shapes :func:`nature_cnn_init` gives for images of ``shape``."""
    channels, height, width = channels_first(shape)
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (out, kernel, stride) in enumerate(_CONVS):
        shapes[f"conv{i}.weight"], shapes[f"conv{i}.bias"] = (out, channels, kernel, kernel), (out,)
        channels, height, width = out, _out(height, kernel, stride), _out(width, kernel, stride)
    shapes["linear.weight"], shapes["linear.bias"] = (features_dim, channels * height * width), (features_dim,)
    return shapes


__all__ = [
    "FEATURES_DIM",
    "channels_first",
    "is_image_space",
    "nature_cnn_apply",
    "nature_cnn_init",
    "nature_cnn_shapes",
]
