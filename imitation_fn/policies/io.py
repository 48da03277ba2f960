"""Saved policies: ``policy.safetensors`` (the numbers) + ``policy.json`` (what they mean). No pickle.

A saved policy is a directory holding the two files (or a ``name.safetensors`` / ``name.json`` pair):

    save_policy("runs/expert", "actor_critic", params, (obs_space, act_space), {"activation": "tanh"})
    policy = load_policy("runs/expert")                  # also takes an SB3 ``.zip``
    check_spaces(policy, env.observation_space, env.action_space, "CartPole-v1")  # InputError if it cannot act there
    actions = policy.policy_fn()(obs, key)               # PolicyFn: (n, *obs_shape) -> (n, *act_shape)

``policy.json`` names the ``kind`` (which module's ``act`` runs it: ``"actor_critic"`` — PPO/A2C,
``"sac_actor"`` — SAC, ``"mlp"`` — BC), the spaces, ``net_arch``, ``activation``, the default for
``deterministic`` and whether observation-normalisation statistics are stored. The tensor names in
``policy.safetensors`` are pytree paths (``['params']['pi']['layers.0.weight']``,
``['obs_norm'].mean``) and their shapes follow from the JSON alone, so a file that does not match its
JSON is refused with the tensor's name and both shapes. The safetensors header records a
:func:`~imitation_fn.core.serialization.fingerprint` of what in ``policy.json`` defines the network
(kind, spaces, dtype, ``net_arch``, ``activation``, observation normalisation), so a JSON edited after
the weights were saved (say, ``activation``) is refused instead of silently acting differently; files
saved before the fingerprint existed load unchecked. Bad files raise ``InputError`` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random, serialization, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import hub
from imitation_fn.nn import normalize
from imitation_fn.nn.mlp import ACTIVATIONS
from imitation_fn.nn.normalize import RunningMeanStd
from imitation_fn.policies import sb3
from imitation_fn.policies.layout import (
    KINDS,
    Kind,
    Params,
    Spaces,
    check_params,
    infer_net_arch,
    param_shapes,
    params_dtype,
    template,
)

FORMAT = "imitation_fn.policy"
FORMAT_VERSION = 1
PARAMS_FILE = "policy.safetensors"
CONFIG_FILE = "policy.json"

DEFAULT_ACTIVATION: dict[str, str] = {"actor_critic": "tanh", "sac_actor": "relu", "mlp": "tanh"}
DEFAULT_OBS_NORM = {"clip": 10.0, "eps": 1e-8}  # nn.normalize.normalize's defaults (SB3's VecNormalize)
DTYPES = ("float32", "float64", "float16", "bfloat16")


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
    written by :meth:`save`. ``path`` is the file or directory it was loaded from (for messages).
    """

    kind: Kind
    params: Params
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    config: dict[str, Any]
    obs_norm: RunningMeanStd | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None
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

    def policy_fn(self, deterministic: bool | None = None) -> PolicyFunction:
        """The policy as ``(obs, key) -> actions``; ``deterministic=None`` takes the saved default."""
        return PolicyFunction(self, deterministic)

    def to(self, device: torch.device | str) -> LoadedPolicy:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self,
            params=tree.to(self.params, device),
            obs_norm=tree.to(self.obs_norm, device),
            extras=tree.to(self.extras, device),
        )

    def save(self, path: str | Path) -> None:
        """:func:`save_policy` this policy (``extras`` are not saved)."""
        save_policy(
            path, self.kind, self.params, (self.observation_space, self.action_space), self.config, self.obs_norm
        )


# ---------------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: compiled steps cache per function
class PolicyFunction:
    """A loaded policy as a :data:`PolicyFn` ``(obs, key) -> actions`` that can move: ``Task.to(device)`` puts
    its tensors beside the run's."""

    policy: LoadedPolicy
    deterministic: bool | None = None

    def __call__(self, obs: Tensor, key: random.Key) -> Tensor:
        return self.policy.act(obs, key, deterministic=self.deterministic)

    def to(self, device: torch.device | str) -> PolicyFunction:
        return dataclasses.replace(self, policy=self.policy.to(device))


def _paths(path: str | Path) -> tuple[Path, Path]:
    """``(safetensors, json)`` for a directory or for either file of a pair."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    return path / PARAMS_FILE, path / CONFIG_FILE


@dataclasses.dataclass(frozen=True)
class _Description:
    """A validated ``policy.json``; ``network`` is the part that defines the network (fingerprinted)."""

    kind: Kind
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    dtype: torch.dtype
    obs_norm_dtype: torch.dtype | None
    config: dict[str, Any]
    shapes: Params
    network: dict[str, Any]


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _dtype_field(value: Any, field: str, what: str) -> torch.dtype:
    if value not in DTYPES:
        raise InputError(f"{what}: {field} is {value!r}; expected one of {_names(DTYPES)}")
    dtype: torch.dtype = getattr(torch, value)
    return dtype


def _space_field(desc: dict[str, Any], field: str, what: str) -> gym.Space[Any]:
    entry = desc.get(field)
    try:
        if not isinstance(entry, dict):
            raise TypeError("not a JSON object")
        return space_from_json(entry)
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise InputError(
            f"{what}: {field} is not a valid space ({e}); expected "
            '{"type": "Box", "shape": [...], "dtype": ..., "low": [...], "high": [...]} '
            'or {"type": "Discrete", "n": ..., "start": ...}'
        ) from None


def _widths_ok(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in x)


def _check_net_arch(kind: str, net_arch: Any, what: str) -> None:
    if kind == "actor_critic":
        ok = (
            isinstance(net_arch, dict)
            and {"pi", "vf"} <= net_arch.keys() <= {"pi", "vf", "shared"}
            and all(_widths_ok(v) for v in net_arch.values())
        )
        expected = '{"pi": [widths], "vf": [widths]} (optionally "shared": [widths])'
    else:
        ok = _widths_ok(net_arch)
        expected = "a list of positive layer widths"
    if not ok:
        raise InputError(f"{what}: config.net_arch {net_arch!r} is not valid for a {kind} policy; expected {expected}")


def _describe(desc: Any, what: str) -> _Description:
    """Validate a ``policy.json`` value; every problem is an ``InputError`` starting with ``what``."""
    if not isinstance(desc, dict):
        raise InputError(f"{what} is not an imitation_fn policy file (expected a JSON object)")
    if desc.get("format") != FORMAT:
        raise InputError(
            f"{what} is not an imitation_fn policy file (format {desc.get('format')!r}, expected {FORMAT!r})"
        )
    version = desc.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{what}: format_version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{what} has format_version {version}; this imitation_fn reads up to {FORMAT_VERSION}: upgrade imitation_fn"
        )
    kind = desc.get("kind")
    if kind not in KINDS:
        raise InputError(f"{what}: unknown policy kind {kind!r}; expected one of {_names(KINDS)}")
    observation_space = _space_field(desc, "observation_space", what)
    action_space = _space_field(desc, "action_space", what)
    dtype = _dtype_field(desc.get("dtype", "float32"), "dtype", what)
    norm = desc.get("obs_norm")
    if norm is not None and not isinstance(norm, dict):
        raise InputError(f'{what}: obs_norm is {norm!r}; expected null or {{"dtype": ...}}')
    norm_dtype = None if norm is None else _dtype_field(norm.get("dtype", "float32"), "obs_norm.dtype", what)

    cfg = desc.get("config", {})
    if not isinstance(cfg, dict):
        raise InputError(f"{what}: config is {cfg!r}; expected a JSON object")
    if "net_arch" not in cfg:
        raise InputError(f"{what}: config.net_arch is missing (the hidden layer widths)")
    _check_net_arch(kind, cfg["net_arch"], what)
    activation = cfg.get("activation", DEFAULT_ACTIVATION[kind])
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise InputError(f"{what}: unknown activation {activation!r}; expected one of {_names(ACTIVATIONS)}")
    for flag in ("deterministic", "clip_actions"):
        if flag in cfg and not isinstance(cfg[flag], bool):
            raise InputError(f"{what}: config.{flag} is {cfg[flag]!r}; expected true or false")
    clip, eps = cfg.get("obs_norm_clip", DEFAULT_OBS_NORM["clip"]), cfg.get("obs_norm_eps", DEFAULT_OBS_NORM["eps"])
    if clip is not None and not (_is_number(clip) and clip > 0):
        raise InputError(f"{what}: config.obs_norm_clip is {clip!r}; expected a positive number or null (no clipping)")
    if not (_is_number(eps) and eps >= 0):
        raise InputError(f"{what}: config.obs_norm_eps is {eps!r}; expected a non-negative number")
    try:
        shapes = param_shapes(kind, observation_space, action_space, cfg["net_arch"])
    except (TypeError, ValueError) as e:  # e.g. a Discrete observation space, or SAC with Discrete actions
        raise InputError(f"{what}: {e}") from None

    # What the weights' meaning depends on; deterministic, clip_actions and provenance are free to edit.
    # Spaces are re-serialised so that equivalent spellings ("low": -1 vs [-1.0, -1.0]) fingerprint alike.
    # Numbers as floats: 10 and 10.0 are one setting.
    norm_settings = None
    if norm_dtype is not None:
        norm_settings = {
            "dtype": str(norm_dtype).removeprefix("torch."),
            "clip": None if clip is None else float(clip),
            "eps": float(eps),
        }
    network: dict[str, Any] = {
        "kind": kind,
        "observation_space": space_to_json(observation_space),
        "action_space": space_to_json(action_space),
        "dtype": str(dtype).removeprefix("torch."),
        "net_arch": cfg["net_arch"],
        "activation": activation,
        "obs_norm": norm_settings,
    }
    return _Description(kind, observation_space, action_space, dtype, norm_dtype, cfg, shapes, network)


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
    check_params(kind, params, spaces, net_arch, what="save_policy: params")
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
        "dtype": str(params_dtype(params)).removeprefix("torch."),
        "obs_norm": norm_desc,
        "config": cfg,
    }
    text = json.dumps(desc, indent=2, allow_nan=False)  # raises on non-JSON config values before writing
    # Validated as load_policy will read it back, so what is fingerprinted is what load recomputes.
    network = _describe(json.loads(text), "save_policy").network
    header = {"format": FORMAT, "kind": kind, "network": network, "fingerprint": serialization.fingerprint(network)}
    params_path, json_path = _paths(path)
    serialization.save(params_path, tree, header)
    serialization.write_text_atomic(json_path, text + "\n")


def _check_fingerprint(header: dict[str, Any], described: _Description, params_path: Path, json_path: Path) -> None:
    """Refuse a ``policy.json`` that no longer describes the network its weights were saved for."""
    if header.get("format") != FORMAT:
        raise InputError(
            f"{params_path} is not the weights file of a saved policy (its header has no {FORMAT!r} format); "
            "save policies with save_policy"
        )
    if "fingerprint" in header:
        current = described.network
        saved = header.get("network", {})
        changed = header["fingerprint"] != serialization.fingerprint(current)
    else:  # saved before fingerprints: only the kind was recorded
        current = {"kind": described.kind}
        saved = {"kind": header.get("kind", described.kind)}
        changed = saved != current
    if changed:
        diff = "; ".join(serialization.json_changes(saved, current, limit=3))
        raise InputError(
            f"{json_path} was changed after its weights were saved"
            + (f" ({diff})" if diff else "")
            + f"; restore it or re-save the policy (or {params_path.name} was replaced by another policy's weights)"
        )


def load_sb3(zip_path: str | Path) -> LoadedPolicy:
    """An SB3 ``PPO``/``A2C`` or ``SAC`` MlpPolicy zip as a :class:`LoadedPolicy` (see :func:`sb3.read_sb3`)."""
    return LoadedPolicy(**dataclasses.asdict(sb3.read_sb3(zip_path)))


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load a policy saved by :func:`save_policy`, or a stable-baselines3 ``.zip`` (see ``policies.sb3``).

    Raises ``FileNotFoundError`` when a file is missing and ``InputError`` naming the file for anything
    else: malformed or edited ``policy.json`` (unknown kind or activation, a changed network), a
    truncated ``policy.safetensors``, a tensor whose shape differs from what the JSON implies.
    A ``path`` that does not exist but reads ``org/algo-env`` is a Hugging Face Hub model repo holding
    the SB3 zip ``algo-env.zip`` (``huggingface_sb3`` naming, see :mod:`imitation_fn.data.hub`).
    """
    if hub.is_repo_id(path):
        path = hub.sb3_zip(str(path))
    path = Path(path)
    if path.suffix == ".zip":
        return load_sb3(path)
    params_path, json_path = _paths(path)
    for p in (params_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"load_policy: no {p.name} at {p.parent} (a saved policy needs both files)")
    described = _describe(serialization.read_json(json_path), str(json_path))
    _check_fingerprint(serialization.load_metadata(params_path), described, params_path, json_path)
    like: dict[str, Any] = {"params": template(described.shapes, described.dtype)}
    if described.obs_norm_dtype is not None:
        like["obs_norm"] = normalize.init(described.observation_space.shape or (), dtype=described.obs_norm_dtype)
    tree = serialization.load(params_path, like)
    return LoadedPolicy(
        kind=described.kind,
        params=tree["params"],
        observation_space=described.observation_space,
        action_space=described.action_space,
        config=described.config,
        obs_norm=tree.get("obs_norm"),
        path=path,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Does a policy fit an environment?
# ---------------------------------------------------------------------------------------------------------------------


def _bound(x: np.ndarray) -> str:
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    if flat.size and bool(np.all(flat == flat[0])):
        return f"{flat[0]:g}"
    if flat.size <= 8:
        return "[" + ", ".join(f"{v:.3g}" for v in flat) + "]"
    return "[...]"


def describe_space(space: gym.Space[Any]) -> str:
    """A short description: ``Discrete(2)``, ``Box(-2, 2, (1,))``, ``Box([-1, -1, -8], [1, 1, 8], (3,))``."""
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({int(space.n)}" + (f", start={int(space.start)})" if int(space.start) else ")")
    if isinstance(space, gym.spaces.Box):
        return f"Box({_bound(space.low)}, {_bound(space.high)}, {tuple(space.shape)})"
    return repr(space)


def spaces_match(a: gym.Space[Any], b: gym.Space[Any]) -> bool:
    """Whether a policy for space ``a`` can act in space ``b``.

    Discrete: the same ``n`` and ``start``; Box: the same shape (dtype and bounds may differ: actions
    are clipped to the bounds, observations cast); other spaces: the same type and shape.
    """
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return int(a.n) == int(b.n) and int(a.start) == int(b.start)
    return type(a) is type(b) and tuple(a.shape or ()) == tuple(b.shape or ())


def check_spaces(
    policy: LoadedPolicy,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    env_id: str | None = None,
) -> None:
    """Raise ``InputError`` naming both pairs of spaces when ``policy`` cannot act in this environment.

    Call it after loading a policy for an environment: a mismatch otherwise surfaces as a shape error
    deep inside the network ("mat1 and mat2 shapes cannot be multiplied"), or not at all.
    """
    if spaces_match(policy.observation_space, observation_space) and spaces_match(policy.action_space, action_space):
        return
    name = f"policy {policy.path}" if policy.path is not None else "the policy"
    env = env_id if env_id is not None else "the environment"
    raise InputError(
        f"{name} was trained on {describe_space(policy.observation_space)} observations and "
        f"{describe_space(policy.action_space)} actions, but {env} has {describe_space(observation_space)} "
        f"and {describe_space(action_space)}"
    )


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_ACTIVATION",
    "KINDS",
    "PARAMS_FILE",
    "Kind",
    "LoadedPolicy",
    "PolicyFunction",
    "check_spaces",
    "describe_space",
    "infer_net_arch",
    "load_policy",
    "param_shapes",
    "save_policy",
    "space_from_json",
    "space_to_json",
    "spaces_match",
]
