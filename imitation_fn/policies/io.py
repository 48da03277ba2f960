"""Saved policies: ``policy.safetensors`` (the numbers) + ``policy.json`` (what they mean). No pickle.

A saved policy is a directory holding the two files (or a ``name.safetensors`` / ``name.json`` pair):

    save_policy("runs/expert", "actor_critic", params, (obs_space, act_space), {"activation": "tanh"})
    policy = load_policy("runs/expert")                  # also takes an SB3 ``.zip``
    actions = policy.policy_fn()(obs, key)               # PolicyFn: (n, *obs_shape) -> (n, *act_shape)

``policy.json`` names the ``kind`` (which module's ``act`` runs it: ``"actor_critic"`` — PPO/A2C,
``"sac_actor"`` — SAC, ``"mlp"`` — BC), the spaces, ``net_arch``, ``activation``, the default for
``deterministic`` and whether observation-normalisation statistics are stored. The tensor names in
``policy.safetensors`` are pytree paths (``['params']['pi']['layers.0.weight']``,
``['obs_norm'].mean``) and their shapes follow from the JSON alone, so a file that does not match its
JSON is refused with the tensor's name and both shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch
import torch.utils._pytree as pytree
from torch import Tensor

from imitation_fn.core import random, serialization
from imitation_fn.envs.base import PolicyFn
from imitation_fn.nn import normalize
from imitation_fn.nn.mlp import mlp_sizes
from imitation_fn.nn.normalize import RunningMeanStd

Kind = Literal["actor_critic", "sac_actor", "mlp"]
KINDS: tuple[str, ...] = get_args(Kind)
Params = dict[str, Any]
Spaces = tuple[gym.Space[Any], gym.Space[Any]]

FORMAT = "imitation_fn.policy"
FORMAT_VERSION = 1
PARAMS_FILE = "policy.safetensors"
CONFIG_FILE = "policy.json"

DEFAULT_ACTIVATION: dict[str, str] = {"actor_critic": "tanh", "sac_actor": "relu", "mlp": "tanh"}
DEFAULT_OBS_NORM = {"clip": 10.0, "eps": 1e-8}  # nn.normalize.normalize's defaults (SB3's VecNormalize)


# ---------------------------------------------------------------------------------------------------------------------
# Spaces <-> JSON
# ---------------------------------------------------------------------------------------------------------------------


def _floats_to_json(x: np.ndarray) -> Any:
    """Nested lists of floats; non-finite values as the strings "inf", "-inf", "nan" (JSON has none)."""

    def enc(v: Any) -> Any:
        if isinstance(v, list):
            return [enc(e) for e in v]
        return v if math.isfinite(v) else str(v)

    return enc(np.asarray(x, dtype=np.float64).tolist())


def _floats_from_json(x: Any, dtype: np.dtype[Any]) -> np.ndarray:
    # float("inf") / float("-inf") / float("nan") parse the strings written above.
    return np.asarray(np.asarray(x, dtype=object).astype(np.float64), dtype=dtype)


def space_to_json(space: gym.Space[Any]) -> dict[str, Any]:
    """A JSON description of a ``Box`` or ``Discrete`` space (exact for float32/float64 bounds)."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _floats_to_json(space.low),
            "high": _floats_to_json(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise TypeError(f"cannot describe space {space!r} in a policy file (supported: Box, Discrete)")


def space_from_json(desc: dict[str, Any]) -> gym.Space[Any]:
    """The inverse of :func:`space_to_json`."""
    kind = desc.get("type")
    if kind == "Box":
        dtype = np.dtype(desc["dtype"])
        shape = tuple(desc["shape"])
        low = np.broadcast_to(_floats_from_json(desc["low"], dtype), shape)
        high = np.broadcast_to(_floats_from_json(desc["high"], dtype), shape)
        return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
    raise ValueError(f"unsupported space description {desc!r} (expected type 'Box' or 'Discrete')")


# ---------------------------------------------------------------------------------------------------------------------
# Parameter layouts: the shapes each kind's params must have, from the spaces and net_arch alone
# ---------------------------------------------------------------------------------------------------------------------


def _obs_dim(space: gym.Space[Any]) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"policy: unsupported observation space {space!r} (expected Box)")
    return math.prod(space.shape)


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


def _template(shapes: Any, dtype: torch.dtype) -> Any:
    return pytree.tree_map(lambda s: torch.empty(s, dtype=dtype), shapes, is_leaf=lambda s: isinstance(s, tuple))


def _check_params(kind: str, params: Params, spaces: Spaces, net_arch: Any, what: str) -> None:
    """Raise if ``params`` do not have the layout's keys and shapes (names the first mismatching tensor)."""
    expected = param_shapes(kind, *spaces, net_arch)
    dtype = _params_dtype(params)
    serialization.from_flat_dict(serialization.to_flat_dict(params), _template(expected, dtype), what=what)


def _params_dtype(params: Params) -> torch.dtype:
    dtypes = {leaf.dtype for leaf in pytree.tree_leaves(params)}
    if len(dtypes) != 1:
        raise ValueError(f"policy params must share one dtype, got {sorted(map(str, dtypes))}")
    return dtypes.pop()


# ---------------------------------------------------------------------------------------------------------------------
# The loaded policy
# ---------------------------------------------------------------------------------------------------------------------


def _act_fn(kind: str) -> Callable[..., Tensor]:
    # Imported here: each kind's module is only needed when a policy of that kind acts.
    if kind == "actor_critic":
        from imitation_fn.policies import actor_critic

        return actor_critic.act
    if kind == "sac_actor":
        from imitation_fn.policies import sac

        return sac.act
    if kind == "mlp":
        from imitation_fn.policies import mlp

        return mlp.act
    raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")


def _distribution_fn(kind: str) -> Callable[..., Any]:
    if kind == "actor_critic":
        from imitation_fn.policies import actor_critic

        return actor_critic.distribution
    if kind == "sac_actor":
        from imitation_fn.policies import sac

        return sac.distribution
    if kind == "mlp":
        from imitation_fn.policies import mlp

        return mlp.distribution
    raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
    """A policy read from disk (ours or SB3's): params, spaces, config, optional obs normaliser.

    ``config`` holds ``net_arch``, ``activation``, ``deterministic`` (the default of
    :meth:`policy_fn`), ``clip_actions`` (clip Box actions to the bounds, as SB3's ``predict``),
    ``obs_norm_clip``/``obs_norm_eps`` and free-form provenance (e.g. ``"source"``). ``extras`` holds
    tensors that are not part of the acting policy (SB3's SAC critics, ``log_ent_coef``); they are not
    written by :meth:`save`.
    """

    kind: Kind
    params: Params
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    config: dict[str, Any]
    obs_norm: RunningMeanStd | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Discrete(start=k) offset as a Python int, read once: converting numpy's int inside ``act`` would
    # break a torch.compile graph on every call.
    action_start: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        if isinstance(self.action_space, gym.spaces.Discrete):
            object.__setattr__(self, "action_start", int(self.action_space.start))

    @property
    def activation(self) -> str:
        return str(self.config.get("activation", DEFAULT_ACTIVATION[self.kind]))

    def preprocess(self, obs: Tensor) -> Tensor:
        """Observations as the networks see them: normalised when statistics were saved."""
        if self.obs_norm is None:
            return obs
        return normalize.normalize(
            self.obs_norm,
            obs.to(self.obs_norm.mean.dtype),
            clip=self.config.get("obs_norm_clip", DEFAULT_OBS_NORM["clip"]),
            eps=self.config.get("obs_norm_eps", DEFAULT_OBS_NORM["eps"]),
        )

    def distribution(self, obs: Tensor) -> Any:
        """The kind's action distribution at ``obs: (n, *obs_shape)``.

        For ``"sac_actor"`` it is the tanh-Gaussian over *normalised* actions in ``(-1, 1)``.
        """
        return _distribution_fn(self.kind)(self.params, self.preprocess(obs), self.activation)

    def act(self, obs: Tensor, key: random.Key, *, deterministic: bool | None = None) -> Tensor:
        """Actions ``(n, *act_shape)`` for ``obs: (n, *obs_shape)``; pure (vmappable over params/keys)."""
        if deterministic is None:
            deterministic = bool(self.config.get("deterministic", True))
        fn = _act_fn(self.kind)
        x = self.preprocess(obs)
        space = self.action_space
        if self.kind == "sac_actor":
            assert isinstance(space, gym.spaces.Box)
            low, high = (torch.as_tensor(b, device=obs.device) for b in (space.low, space.high))
            return fn(self.params, x, key, deterministic=deterministic, low=low, high=high, activation=self.activation)
        action = fn(self.params, x, key, deterministic=deterministic, activation=self.activation)
        if isinstance(space, gym.spaces.Box):
            action = action.reshape(action.shape[0], *space.shape)
            if self.config.get("clip_actions", True):
                low, high = (torch.as_tensor(b, dtype=action.dtype, device=obs.device) for b in (space.low, space.high))
                action = torch.clamp(action, low, high)
        elif self.action_start != 0:
            action = action + self.action_start
        return action

    def policy_fn(self, deterministic: bool | None = None) -> PolicyFn:
        """The policy as ``(obs, key) -> actions``; ``deterministic=None`` takes the saved default."""

        def policy(obs: Tensor, key: random.Key) -> Tensor:
            return self.act(obs, key, deterministic=deterministic)

        return policy

    def to(self, device: torch.device | str) -> LoadedPolicy:
        """A copy with every tensor on ``device``."""

        def move(tree: Any) -> Any:
            return pytree.tree_map(lambda x: x.to(device) if isinstance(x, Tensor) else x, tree)

        return dataclasses.replace(
            self, params=move(self.params), obs_norm=move(self.obs_norm), extras=move(self.extras)
        )

    def save(self, path: str | Path) -> None:
        """:func:`save_policy` this policy (``extras`` are not saved)."""
        save_policy(
            path, self.kind, self.params, (self.observation_space, self.action_space), self.config, self.obs_norm
        )


# ---------------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------------


def _paths(path: str | Path) -> tuple[Path, Path]:
    """``(safetensors, json)`` for a directory or for either file of a pair."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    return path / PARAMS_FILE, path / CONFIG_FILE


def save_policy(
    path: str | Path,
    kind: Kind,
    params: Params,
    spaces: Spaces,
    config: dict[str, Any] | None = None,
    obs_norm: RunningMeanStd | None = None,
) -> None:
    """Save a policy as ``path/policy.safetensors`` + ``path/policy.json`` (or ``path`` = ``x.safetensors``).

    ``spaces = (observation_space, action_space)``. ``config`` may set ``activation`` (default: the
    kind's, tanh or relu), ``deterministic`` (default True), ``clip_actions``, ``obs_norm_clip``,
    ``obs_norm_eps`` and any JSON-encodable provenance; ``net_arch`` is read off ``params`` (a given
    one must agree). Raises before writing anything if ``params`` do not fit the spaces.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")
    observation_space, action_space = spaces
    cfg = dict(config or {})
    net_arch = infer_net_arch(kind, params)
    if "net_arch" in cfg and json.loads(json.dumps(cfg["net_arch"])) != net_arch:
        raise ValueError(f"save_policy: config net_arch {cfg['net_arch']!r} does not match the params ({net_arch!r})")
    cfg["net_arch"] = net_arch
    cfg.setdefault("activation", DEFAULT_ACTIVATION[kind])
    cfg.setdefault("deterministic", True)
    _check_params(kind, params, spaces, net_arch, what="save_policy: params")
    tree: dict[str, Any] = {"params": params}
    norm_desc = None
    if obs_norm is not None:
        if tuple(obs_norm.mean.shape) != tuple(observation_space.shape or ()):
            raise ValueError(
                f"save_policy: obs_norm has shape {tuple(obs_norm.mean.shape)}, "
                f"expected the observation shape {tuple(observation_space.shape or ())}"
            )
        tree["obs_norm"] = obs_norm
        norm_desc = {"dtype": str(obs_norm.mean.dtype).removeprefix("torch.")}
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "observation_space": space_to_json(observation_space),
        "action_space": space_to_json(action_space),
        "dtype": str(_params_dtype(params)).removeprefix("torch."),
        "obs_norm": norm_desc,
        "config": cfg,
    }
    text = json.dumps(desc, indent=2, allow_nan=False)  # raises on non-JSON config values before writing
    params_path, json_path = _paths(path)
    serialization.save(params_path, tree, {"format": FORMAT, "kind": kind})
    serialization.write_text_atomic(json_path, text + "\n")


def _torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in policy file")
    return dtype


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load a policy saved by :func:`save_policy`, or a stable-baselines3 ``.zip`` (see ``policies.sb3``).

    Raises ``ValueError`` naming the tensor and both shapes when ``policy.safetensors`` does not match
    the architecture described by ``policy.json``.
    """
    path = Path(path)
    if path.suffix == ".zip":
        from imitation_fn.policies.sb3 import load_sb3

        return load_sb3(path)
    params_path, json_path = _paths(path)
    for p in (params_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"load_policy: no {p.name} at {p.parent} (a saved policy needs both files)")
    desc = json.loads(json_path.read_text())
    if desc.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not an imitation_fn policy file (format {desc.get('format')!r})")
    if desc.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{json_path} has format_version {desc['format_version']}; this code reads {FORMAT_VERSION}")
    kind = desc["kind"]
    if kind not in KINDS:
        raise ValueError(f"{json_path}: unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")
    observation_space = space_from_json(desc["observation_space"])
    action_space = space_from_json(desc["action_space"])
    cfg = desc.get("config", {})
    shapes: dict[str, Any] = {"params": param_shapes(kind, observation_space, action_space, cfg["net_arch"])}
    dtype = _torch_dtype(desc.get("dtype", "float32"))
    template: dict[str, Any] = {"params": _template(shapes["params"], dtype)}
    if desc.get("obs_norm") is not None:
        template["obs_norm"] = normalize.init(
            observation_space.shape or (), dtype=_torch_dtype(desc["obs_norm"].get("dtype", "float32"))
        )
    tree = serialization.load(params_path, template)
    return LoadedPolicy(
        kind=kind,
        params=tree["params"],
        observation_space=observation_space,
        action_space=action_space,
        config=cfg,
        obs_norm=tree.get("obs_norm"),
    )


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_ACTIVATION",
    "KINDS",
    "PARAMS_FILE",
    "Kind",
    "LoadedPolicy",
    "infer_net_arch",
    "load_policy",
    "param_shapes",
    "save_policy",
    "space_from_json",
    "space_to_json",
]
