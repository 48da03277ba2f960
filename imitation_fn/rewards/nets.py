"""Reward networks as pure functions: ``imitation``'s ``BasicRewardNet``, potentials and potential shaping.

A reward net is a small frozen *spec* (static structure: spaces, flags, widths) with pure methods over a
params pytree (``dict`` of tensors):

    net = BasicRewardNet(env.observation_space, env.action_space)          # use_state, use_action
    params = net.init(key)                                                 # {"mlp": {...}}
    rews = net.apply(params, obs, acts, next_obs, dones)                   # (N,)

``apply`` takes raw transitions (integer actions, uint8 images) and runs ``preprocess`` first, as
``imitation``'s ``predict_th`` does; ``forward`` takes preprocessed tensors (one-hot actions, images
scaled to [0, 1]) and is what a discriminator loss differentiates (also through interpolated inputs,
e.g. a gradient penalty). All methods are pure: ``vmap`` them over stacked params (seeds, ensemble
members) and differentiate them with ``torch.func.grad``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import checks, random
from imitation_fn.nn.mlp import get_activation, mlp_apply, mlp_init

Params = dict[str, Any]
Init = Literal["torch_default", "orthogonal"]
Transition = tuple[Tensor, Tensor, Tensor, Tensor]

# ---------------------------------------------------------------------------------------------------------------------
# Spaces: what preprocessing needs to know, static and hashable (gym spaces are neither)
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpaceSpec:
    """A ``Box`` or ``Discrete`` space as preprocessing sees it (SB3's ``preprocess_obs``).

    ``shape`` is one raw element's shape (``()`` for Discrete); ``n``/``start`` describe a Discrete
    space; ``is_image`` marks SB3's image spaces (uint8 Box of rank 3 with bounds [0, 255]), which
    preprocessing scales to [0, 1] when the net's ``normalize_images`` is set.
    """

    kind: Literal["box", "discrete"]
    shape: tuple[int, ...]
    n: int = 0
    start: int = 0
    is_image: bool = False

    @classmethod
    def of(cls, space: SpaceSpec | gym.Space[Any]) -> SpaceSpec:
        if isinstance(space, SpaceSpec):
            return space
        if isinstance(space, gym.spaces.Discrete):
            return cls("discrete", (), n=int(space.n), start=int(space.start))
        if isinstance(space, gym.spaces.Box):
            shape = tuple(int(s) for s in space.shape)
            image = (
                len(shape) == 3
                and space.dtype == np.uint8
                and bool(np.all(space.low == 0))
                and bool(np.all(space.high == 255))
            )
            return cls("box", shape, is_image=image)
        raise TypeError(f"reward nets support Box and Discrete spaces, got {space!r}")

    def __str__(self) -> str:
        if self.kind == "discrete":
            return f"Discrete({self.n}" + (f", start={self.start})" if self.start else ")")
        return f"Box(shape={self.shape}" + (", image)" if self.is_image else ")")

    @property
    def flat_dim(self) -> int:
        """Features per element after preprocessing and flattening (one-hot width for Discrete)."""
        return self.n if self.kind == "discrete" else math.prod(self.shape)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SpaceSpec:
        return cls(d["kind"], tuple(d["shape"]), int(d["n"]), int(d["start"]), bool(d["is_image"]))


SpaceLike = SpaceSpec | gym.Space[Any]


def preprocess_space(space: SpaceSpec, x: Tensor, normalize_images: bool = True) -> Tensor:
    """``(N, *space.shape)`` raw -> float32 features: one-hot ``(N, n)`` for Discrete, images / 255."""
    if space.kind == "discrete":
        # A comparison, not F.one_hot: no data-dependent checks, so it runs under vmap and compile.
        idx = x.long() - space.start
        return (idx.unsqueeze(-1) == torch.arange(space.n, device=x.device)).to(torch.float32)
    y = x.to(torch.float32)
    return y / 255.0 if space.is_image and normalize_images else y


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def _check_transition(
    obs_space: SpaceSpec, act_space: SpaceSpec, obs: Tensor, acts: Tensor, nxt: Tensor, dones: Tensor
) -> None:
    n = obs.shape[0] if obs.ndim > 0 else None
    checks.assert_shape(obs, (n, *obs_space.shape), name="obs")
    checks.assert_shape(acts, (n, *act_space.shape), name="acts")
    checks.assert_shape(nxt, (n, *obs_space.shape), name="next_obs")
    checks.assert_shape(dones, (n,), name="dones")


def preprocess(
    observation_space: SpaceSpec,
    action_space: SpaceSpec,
    obs: Tensor,
    acts: Tensor,
    next_obs: Tensor,
    dones: Tensor,
    normalize_images: bool = True,
) -> Transition:
    """``imitation``'s ``RewardNet.preprocess``: raw ``(N, ...)`` transitions -> float32 network inputs.

    ``obs, next_obs: (N, *obs_shape)``, ``acts: (N, *act_shape)`` (``(N,)`` integers for Discrete),
    ``dones: (N,)`` bool or float (tensors, or numpy arrays outside transforms). Discrete inputs become
    one-hot, image observations are scaled to [0, 1] (``normalize_images``), ``dones`` become 0./1.
    """
    obs, acts, next_obs, dones = (
        x if isinstance(x, Tensor) else torch.as_tensor(x) for x in (obs, acts, next_obs, dones)
    )
    _check_transition(observation_space, action_space, obs, acts, next_obs, dones)
    return (
        preprocess_space(observation_space, obs, normalize_images),
        preprocess_space(action_space, acts, normalize_images),
        preprocess_space(observation_space, next_obs, normalize_images),
        dones.to(torch.float32),
    )


# ---------------------------------------------------------------------------------------------------------------------
# The protocol every reward net follows
# ---------------------------------------------------------------------------------------------------------------------


@runtime_checkable
class RewardNet(Protocol):
    """``init(key) -> params``; ``apply(params, obs, acts, next_obs, dones) -> (N,)`` on raw transitions;
    ``forward`` the same on preprocessed inputs."""

    @property
    def observation_space(self) -> SpaceSpec: ...

    @property
    def action_space(self) -> SpaceSpec: ...

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params: ...

    def preprocess(self, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Transition: ...

    def forward(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor: ...

    def apply(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor: ...

    def to_json(self) -> dict[str, Any]: ...


@runtime_checkable
class Potential(Protocol):
    """A state potential ``Φ``: ``init(key)``; ``forward(params, obs_preprocessed) -> (N,)``."""

    @property
    def observation_space(self) -> SpaceSpec: ...

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params: ...

    def forward(self, params: Params, obs: Tensor) -> Tensor: ...

    def apply(self, params: Params, obs: Tensor) -> Tensor: ...

    def to_json(self) -> dict[str, Any]: ...


class _RawInputs:
    """``preprocess`` and ``apply`` for a net with ``forward`` and the spec fields they need."""

    observation_space: SpaceSpec
    action_space: SpaceSpec
    normalize_images: bool

    def forward(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        raise NotImplementedError

    def preprocess(self, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Transition:
        """Raw ``(N, ...)`` transitions -> network inputs (see :func:`preprocess`)."""
        return preprocess(self.observation_space, self.action_space, obs, acts, next_obs, dones, self.normalize_images)

    def apply(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """Rewards ``(N,)`` of raw transitions: ``forward(params, *preprocess(...))``."""
        return self.forward(params, *self.preprocess(obs, acts, next_obs, dones))


def _check_init(init: str) -> None:
    if init not in ("torch_default", "orthogonal"):
        raise ValueError(f"unknown init {init!r}; expected 'torch_default' (imitation's) or 'orthogonal'")


def _init_mlp(key: random.Key, sizes: Sequence[int], init: Init, dtype: torch.dtype) -> Params:
    # torch_default is nn.Linear's init, which imitation's build_mlp uses; orthogonal uses gain sqrt(2)/1.
    return mlp_init(key, sizes, init=init, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------------
# BasicRewardNet and BasicPotentialMLP
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, init=False)
class BasicRewardNet(_RawInputs):
    """MLP on the concatenation of the flattened inputs selected by ``use_*`` (``imitation``'s defaults).

    Params: ``{"mlp": mlp params}`` with layer widths ``[in, *hid_sizes, 1]``. ``activation`` is a name
    in ``nn.ACTIVATIONS`` (imitation: ReLU); ``init="torch_default"`` is ``nn.Linear``'s (imitation's).
    """

    observation_space: SpaceSpec
    action_space: SpaceSpec
    use_state: bool
    use_action: bool
    use_next_state: bool
    use_done: bool
    hid_sizes: tuple[int, ...]
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
        *,
        hid_sizes: Sequence[int] = (32, 32),
        activation: str = "relu",
        init_scheme: Init = "torch_default",
        normalize_images: bool = True,
    ) -> None:
        if not (use_state or use_action or use_next_state or use_done):
            raise ValueError("BasicRewardNet needs at least one input: use_state, use_action, use_next_state, use_done")
        get_activation(activation)  # raises on an unknown name
        _check_init(init_scheme)
        _set(
            self,
            observation_space=SpaceSpec.of(observation_space),
            action_space=SpaceSpec.of(action_space),
            use_state=bool(use_state),
            use_action=bool(use_action),
            use_next_state=bool(use_next_state),
            use_done=bool(use_done),
            hid_sizes=tuple(int(h) for h in hid_sizes),
            activation=str(activation),
            init_scheme=init_scheme,
            normalize_images=bool(normalize_images),
        )

    @property
    def in_size(self) -> int:
        obs, act = self.observation_space.flat_dim, self.action_space.flat_dim
        return self.use_state * obs + self.use_action * act + self.use_next_state * obs + self.use_done * 1

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        """``{"mlp": ...}``, a pure function of ``key``."""
        return {"mlp": _init_mlp(key, [self.in_size, *self.hid_sizes, 1], self.init_scheme, dtype)}

    def forward(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """Rewards ``(N,)`` from preprocessed inputs (``obs: (N, *obs_shape)`` float, ``acts`` one-hot for Discrete)."""
        parts = []
        if self.use_state:
            parts.append(_flat(obs))
        if self.use_action:
            parts.append(_flat(acts))
        if self.use_next_state:
            parts.append(_flat(next_obs))
        if self.use_done:
            parts.append(dones.reshape(-1, 1).to(obs.dtype))
        x = torch.cat(parts, dim=1).to(params["mlp"]["layers.0.weight"].dtype)
        return mlp_apply(params["mlp"], x, self.activation).squeeze(-1)

    def to_json(self) -> dict[str, Any]:
        return {"type": "BasicRewardNet", **_fields_json(self)}


@dataclasses.dataclass(frozen=True, init=False)
class BasicPotentialMLP:
    """Potential ``Φ(s)``: an MLP on the flattened preprocessed observation. Params: ``{"mlp": ...}``."""

    observation_space: SpaceSpec
    hid_sizes: tuple[int, ...]
    activation: str
    init_scheme: Init
    normalize_images: bool

    def __init__(
        self,
        observation_space: SpaceLike,
        hid_sizes: Sequence[int] = (32, 32),
        *,
        activation: str = "relu",
        init_scheme: Init = "torch_default",
        normalize_images: bool = True,
    ) -> None:
        get_activation(activation)
        _check_init(init_scheme)
        _set(
            self,
            observation_space=SpaceSpec.of(observation_space),
            hid_sizes=tuple(int(h) for h in hid_sizes),
            activation=str(activation),
            init_scheme=init_scheme,
            normalize_images=bool(normalize_images),
        )

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        sizes = [self.observation_space.flat_dim, *self.hid_sizes, 1]
        return {"mlp": _init_mlp(key, sizes, self.init_scheme, dtype)}

    def forward(self, params: Params, obs: Tensor) -> Tensor:
        """``Φ`` of preprocessed ``obs: (N, *obs_shape)`` -> ``(N,)``."""
        x = _flat(obs).to(params["mlp"]["layers.0.weight"].dtype)
        return mlp_apply(params["mlp"], x, self.activation).squeeze(-1)

    def apply(self, params: Params, obs: Tensor) -> Tensor:
        """``Φ`` of raw ``obs: (N, *obs_shape)`` -> ``(N,)``."""
        checks.assert_shape(obs, (obs.shape[0] if obs.ndim else None, *self.observation_space.shape), name="obs")
        return self.forward(params, preprocess_space(self.observation_space, obs, self.normalize_images))

    def to_json(self) -> dict[str, Any]:
        return {"type": "BasicPotentialMLP", **_fields_json(self)}


# ---------------------------------------------------------------------------------------------------------------------
# Potential shaping (AIRL's reward net)
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShapedRewardNet(_RawInputs):
    """``r(s, a, s') + γ (1 - done) Φ(s') − Φ(s)`` (``imitation``'s ``ShapedRewardNet``).

    The potential of a terminal next state is fixed to 0 (``(1 - done)``), which keeps shaping
    policy-invariant with variable-length episodes. Params: ``{"base": ..., "potential": ...}``.
    ``unshaped`` is the base reward ``r`` alone (AIRL's test-time reward).
    """

    base: RewardNet
    potential: Potential
    discount_factor: float = 0.99

    def __post_init__(self) -> None:
        if isinstance(self.base, ShapedRewardNet):
            raise ValueError("ShapedRewardNet: the base must be an unshaped reward net")
        if self.potential.observation_space != self.base.observation_space:
            raise ValueError(
                f"ShapedRewardNet: the potential's observation space {self.potential.observation_space} differs "
                f"from the base net's {self.base.observation_space}"
            )
        if not 0.0 <= self.discount_factor <= 1.0:
            raise ValueError(f"ShapedRewardNet: discount_factor must be in [0, 1], got {self.discount_factor}")

    @property
    def observation_space(self) -> SpaceSpec:  # type: ignore[override]
        return self.base.observation_space

    @property
    def action_space(self) -> SpaceSpec:  # type: ignore[override]
        return self.base.action_space

    def preprocess(self, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Transition:
        return self.base.preprocess(obs, acts, next_obs, dones)

    def init(self, key: random.Key, dtype: torch.dtype = torch.float32) -> Params:
        k_base, k_pot = random.split(key)
        return {"base": self.base.init(k_base, dtype), "potential": self.potential.init(k_pot, dtype)}

    def forward(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """Shaped rewards ``(N,)`` from preprocessed inputs."""
        rew = self.base.forward(params["base"], obs, acts, next_obs, dones)
        old = self.potential.forward(params["potential"], obs)
        new = self.potential.forward(params["potential"], next_obs)
        return rew + self.discount_factor * (1.0 - dones.to(new.dtype)) * new - old

    def unshaped(self, params: Params, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        """The base reward ``r(s, a, s')`` ``(N,)`` of raw transitions, without shaping."""
        return self.base.apply(params["base"], obs, acts, next_obs, dones)

    def potential_values(self, params: Params, obs: Tensor) -> Tensor:
        """``Φ(obs)`` ``(N,)`` of raw observations."""
        return self.potential.apply(params["potential"], obs)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "ShapedRewardNet",
            "base": self.base.to_json(),
            "potential": self.potential.to_json(),
            "discount_factor": float(self.discount_factor),
        }


def BasicShapedRewardNet(  # named as imitation's class: it builds one
    observation_space: SpaceLike,
    action_space: SpaceLike,
    *,
    reward_hid_sizes: Sequence[int] = (32,),
    potential_hid_sizes: Sequence[int] = (32, 32),
    use_state: bool = True,
    use_action: bool = True,
    use_next_state: bool = False,
    use_done: bool = False,
    discount_factor: float = 0.99,
    activation: str = "relu",
    init_scheme: Init = "torch_default",
    normalize_images: bool = True,
) -> ShapedRewardNet:
    """A ``BasicRewardNet`` shaped by a ``BasicPotentialMLP`` (imitation's defaults: (32,) and (32, 32))."""
    common: dict[str, Any] = dict(activation=activation, init_scheme=init_scheme, normalize_images=normalize_images)
    base = BasicRewardNet(
        observation_space,
        action_space,
        use_state,
        use_action,
        use_next_state,
        use_done,
        hid_sizes=reward_hid_sizes,
        **common,
    )
    potential = BasicPotentialMLP(observation_space, potential_hid_sizes, **common)
    return ShapedRewardNet(base, potential, discount_factor)


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def _set(obj: Any, **values: Any) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def _fields_json(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = v.to_json() if isinstance(v, SpaceSpec) else list(v) if isinstance(v, tuple) else v
    return out


__all__ = [
    "BasicPotentialMLP",
    "BasicRewardNet",
    "BasicShapedRewardNet",
    "Params",
    "Potential",
    "RewardNet",
    "ShapedRewardNet",
    "SpaceSpec",
    "preprocess",
    "preprocess_space",
]
