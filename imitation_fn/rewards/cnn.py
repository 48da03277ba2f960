"""Convolutional reward and potential nets for image observations (``imitation``'s ``CnnRewardNet``,
``BasicPotentialCNN``).

The CNN is ``imitation``'s ``build_cnn``: ``len(hid_channels)`` convolutions (``kernel_size`` 3, stride 1,
"same" padding), each followed by the activation, then global average pooling and one linear layer.
Images arrive channels-last ``(N, H, W, C)`` by default (``hwc_format=True``, what gymnasium returns) and
are transposed to ``(N, C, H, W)``; ``hwc_format=False`` takes channels-first input as is.

Parameters are ``{"cnn": {"conv{i}.weight": (out, in, k, k), "conv{i}.bias": (out,),
"dense_final.weight": (out_size, hid[-1]), "dense_final.bias": (out_size,)}}``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from imitation_fn.core import checks, random
from imitation_fn.nn.mlp import get_activation, orthogonal
from imitation_fn.rewards.nets import (
    Init,
    Params,
    SpaceLike,
    SpaceSpec,
    _check_init,
    _fields_json,
    _RawInputs,
    _set,
    preprocess_space,
)

# ---------------------------------------------------------------------------------------------------------------------
# The CNN as pure functions
# ---------------------------------------------------------------------------------------------------------------------


def _init_weight(key: random.Key, shape: tuple[int, ...], init: Init, gain: float, dtype: torch.dtype) -> Tensor:
    fan_in = math.prod(shape[1:])
    if init == "orthogonal":
        return orthogonal(key, (shape[0], fan_in), gain=gain, dtype=dtype).reshape(shape)
    bound = 1.0 / math.sqrt(fan_in)  # nn.Conv2d / nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    return random.uniform(key, shape, torch.float32, -bound, bound).to(dtype)


def _init_bias(key: random.Key, weight: Tensor, init: Init) -> Tensor:
    if init == "orthogonal":
        return torch.zeros_like(weight.reshape(weight.shape[0], -1)[:, 0])
    bound = 1.0 / math.sqrt(math.prod(weight.shape[1:]))
    return random.uniform(key, (weight.shape[0],), torch.float32, -bound, bound).to(weight.dtype)


def cnn_init(
    key: random.Key,
    in_channels: int,
    hid_channels: Sequence[int],
    out_size: int,
    *,
    kernel_size: int = 3,
    init: Init = "torch_default",
    dtype: torch.dtype = torch.float32,
) -> Params:
    """Parameters of ``build_cnn(in_channels, hid_channels, out_size)``, a pure function of ``key``."""
    keys = random.split(key, 2 * (len(hid_channels) + 1))
    params: Params = {}
    prev = in_channels
    for i, ch in enumerate(hid_channels):
        w = _init_weight(keys[2 * i], (ch, prev, kernel_size, kernel_size), init, math.sqrt(2.0), dtype)
        params[f"conv{i}.weight"], params[f"conv{i}.bias"] = w, _init_bias(keys[2 * i + 1], w, init)
        prev = ch
    w = _init_weight(keys[-2], (out_size, prev), init, 1.0, dtype)
    params["dense_final.weight"], params["dense_final.bias"] = w, _init_bias(keys[-1], w, init)
    return params


def cnn_apply(
    params: Params, x: Tensor, activation: str = "relu", *, stride: int = 1, padding: int | str = "same"
) -> Tensor:
    """``x: (N, C, H, W) -> (N, out_size)``: convolutions, global average pooling, a linear layer."""
    act = get_activation(activation)
    x = x.to(params["dense_final.weight"].dtype)
    i = 0
    while f"conv{i}.weight" in params:
        x = act(F.conv2d(x, params[f"conv{i}.weight"], params[f"conv{i}.bias"], stride=stride, padding=padding))
        i += 1
    x = x.mean(dim=(-2, -1))  # AdaptiveAvgPool2d(1) + Flatten
    return F.linear(x, params["dense_final.weight"], params["dense_final.bias"])


def cnn_transpose(x: Tensor) -> Tensor:
    """``(N, H, W, C) -> (N, C, H, W)``."""
    if x.ndim != 4:
        raise ValueError(f"cnn_transpose: expected a (N, H, W, C) tensor, got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2)


def _check_cnn_args(space: SpaceSpec, what: str, kernel_size: int, stride: int, padding: int | str, act: str) -> None:
    if not space.is_image:
        raise ValueError(
            f"{what} requires image observations (a uint8 Box of rank 3 with bounds [0, 255]), got {space}"
        )
    if padding == "same" and stride != 1:
        raise ValueError(f"{what}: padding='same' needs stride 1, got stride={stride}; give an integer padding")
    if kernel_size < 1 or stride < 1:
        raise ValueError(f"{what}: kernel_size and stride must be positive, got {kernel_size} and {stride}")
    get_activation(act)


def _channels(space: SpaceSpec, hwc_format: bool) -> int:
    return space.shape[-1] if hwc_format else space.shape[0]


# ---------------------------------------------------------------------------------------------------------------------
# CnnRewardNet
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, init=False)
class CnnRewardNet(_RawInputs):
    """A CNN on the stacked images ``s`` and/or ``s'``, with one output per (action, done) case.

    As ``imitation``: the observations (``use_state``, ``use_next_state``; at least one) are stacked
    along channels; with ``use_action`` (Discrete only) the CNN outputs one reward per action and the
    taken action's is picked by its one-hot; ``use_done`` doubles the outputs (done false / true).
    """

    observation_space: SpaceSpec
    action_space: SpaceSpec
    use_state: bool
    use_action: bool
    use_next_state: bool
    use_done: bool
    hwc_format: bool
    hid_channels: tuple[int, ...]
    kernel_size: int
    stride: int
    padding: int | str
    activation: str
    init_scheme: Init
    normalize_images: bool

    def __init__(
        self,
        observation_space: SpaceLike,
        action_space: SpaceLike,
        use_state: bool = True,
        use_action: bool = True,
        use_next_state: bool = False,
        use_done: bool = False,
        hwc_format: bool = True,
        *,
        hid_channels: Sequence[int] = (32, 32),
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str = "same",
        activation: str = "relu",
        init_scheme: Init = "torch_default",
        normalize_images: bool = True,
    ) -> None:
        obs_space, act_space = SpaceSpec.of(observation_space), SpaceSpec.of(action_space)
        if not (use_state or use_next_state):
            raise ValueError("CnnRewardNet must take the current or next state as input (use_state/use_next_state)")
        _check_cnn_args(obs_space, "CnnRewardNet", kernel_size, stride, padding, activation)
        if use_action and act_space.kind != "discrete":
            raise ValueError(f"CnnRewardNet can only use Discrete action spaces with use_action=True, got {act_space}")
        _check_init(init_scheme)
        _set(
            self,
            observation_space=obs_space,
            action_space=act_space,
            use_state=bool(use_state),
            use_action=bool(use_action),
            use_next_state=bool(use_next_state),
            use_done=bool(use_done),
            hwc_format=bool(hwc_format),
            hid_channels=tuple(int(c) for c in hid_channels),
            kernel_size=int(kernel_size),
            stride=int(stride),
            padding=padding,
            activation=str(activation),
            init_scheme=init_scheme,
            normalize_images=bool(normalize_images),
        )

    @property
    def in_channels(self) -> int:
        return (self.use_state + self.use_next_state) * _channels(self.observation_space, self.hwc_format)

    @property
    def out_size(self) -> int:
        return (self.action_space.n if self.use_action else 1) * (2 if self.use_done else 1)

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        return {
            "cnn": cnn_init(
                key,
                self.in_channels,
                self.hid_channels,
                self.out_size,
                kernel_size=self.kernel_size,
                init=self.init_scheme,
                dtype=dtype,
            )
        }

    def forward(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """Rewards ``(N,)`` from preprocessed inputs (images scaled, ``acts`` one-hot ``(N, n)``)."""
        images = [x for x, used in ((obs, self.use_state), (next_obs, self.use_next_state)) if used]
        x = torch.cat([cnn_transpose(im) if self.hwc_format else im for im in images], dim=1)
        out = cnn_apply(params["cnn"], x, self.activation, stride=self.stride, padding=self.padding)
        d = dones.to(out.dtype).unsqueeze(-1)  # (N, 1)
        if self.use_action and self.use_done:
            select = torch.cat([acts * (1.0 - d), acts * d], dim=1)  # first n outputs: not done; last n: done
        elif self.use_action:
            select = acts
        elif self.use_done:
            select = torch.cat([1.0 - d, d], dim=1)  # one-hot of done
        else:
            return out.squeeze(-1)
        return (out * select).sum(dim=1)

    def to_json(self) -> dict[str, Any]:
        return {"type": "CnnRewardNet", **_fields_json(self)}


@dataclasses.dataclass(frozen=True, init=False)
class BasicPotentialCNN:
    """Potential ``Φ(s)`` of an image observation: ``build_cnn(channels, hid_sizes, 1)``. Params ``{"cnn": ...}``."""

    observation_space: SpaceSpec
    hid_sizes: tuple[int, ...]
    hwc_format: bool
    kernel_size: int
    stride: int
    padding: int | str
    activation: str
    init_scheme: Init
    normalize_images: bool

    def __init__(
        self,
        observation_space: SpaceLike,
        hid_sizes: Sequence[int] = (32, 32),
        hwc_format: bool = True,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str = "same",
        activation: str = "relu",
        init_scheme: Init = "torch_default",
        normalize_images: bool = True,
    ) -> None:
        space = SpaceSpec.of(observation_space)
        _check_cnn_args(space, "BasicPotentialCNN", kernel_size, stride, padding, activation)
        _check_init(init_scheme)
        _set(
            self,
            observation_space=space,
            hid_sizes=tuple(int(c) for c in hid_sizes),
            hwc_format=bool(hwc_format),
            kernel_size=int(kernel_size),
            stride=int(stride),
            padding=padding,
            activation=str(activation),
            init_scheme=init_scheme,
            normalize_images=bool(normalize_images),
        )

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        channels = _channels(self.observation_space, self.hwc_format)
        cnn = cnn_init(
            key, channels, self.hid_sizes, 1, kernel_size=self.kernel_size, init=self.init_scheme, dtype=dtype
        )
        return {"cnn": cnn}

    def forward(self, params: Params, obs: Tensor) -> Tensor:
        """``Φ`` of preprocessed images ``(N, *obs_shape)`` -> ``(N,)``."""
        x = cnn_transpose(obs) if self.hwc_format else obs
        return cnn_apply(params["cnn"], x, self.activation, stride=self.stride, padding=self.padding).squeeze(-1)

    def apply(self, params: Params, obs: Tensor) -> Tensor:
        """``Φ`` of raw (e.g. uint8) images ``(N, *obs_shape)`` -> ``(N,)``."""
        checks.assert_shape(obs, (obs.shape[0] if obs.ndim else None, *self.observation_space.shape), name="obs")
        return self.forward(params, preprocess_space(self.observation_space, obs, self.normalize_images))

    def to_json(self) -> dict[str, Any]:
        return {"type": "BasicPotentialCNN", **_fields_json(self)}


__all__ = ["BasicPotentialCNN", "CnnRewardNet", "cnn_apply", "cnn_init", "cnn_transpose"]
