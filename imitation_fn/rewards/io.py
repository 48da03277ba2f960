"""Saved reward nets: ``reward.safetensors`` (params, normaliser statistics) + ``reward.json`` (the spec). No pickle.

    rewards.save("runs/airl/reward", net, params, norm_state)      # a directory, or "x.safetensors"
    loaded = rewards.load("runs/airl/reward")                       # LoadedReward(net, params, norm_state)
    reward_fn = rewards.load_reward("normalized", "runs/airl/reward", env)
    state, rollout = ppo.collect_env(state, env, reward_fn=reward_fn)  # (obs, acts, next_obs, dones) -> (N,)

``reward.json`` holds the net's spec (``net.to_json()``: spaces, flags, widths), from which the params'
shapes follow. The safetensors header records the spec, dtype and normalisation flag with their
:func:`~imitation_fn.core.serialization.fingerprint`, so a JSON edited after the weights were saved (or
weights of another reward) is refused with what changed, as is any tensor whose name, shape or dtype
differs from the spec's (files saved before the fingerprint are checked by their recorded spec). Bad
files raise ``InputError`` naming the file.

``load_reward`` kinds (``imitation``'s ``RewardNet_*`` names are accepted too):

- ``"normalized"``: the net's reward normalised by the saved running statistics (frozen: imitation's
  ``update_stats=False``); needs a file saved with ``norm_state``;
- ``"unnormalized"``: the net's reward as it is (shaped, for a shaped net; the mean, for an ensemble);
- ``"shaped"``: the shaped reward of a ``ShapedRewardNet`` (refuses other nets);
- ``"unshaped"``: a shaped net's base reward ``r(s, a, s')`` (AIRL's test-time reward); other nets as is;
- ``"std_added"``: ``mean + alpha · std`` of an ``AddSTDRewardWrapper`` (``alpha=`` overrides its default),
  or of a plain ``RewardEnsemble`` (what preference comparisons with ``ensemble_size`` saves), whose
  alpha is ``alpha=`` or else imitation's ``AddSTDRewardWrapper`` default, 0.0 (the mean); pass a negative
  alpha (e.g. ``-1.0``) for a conservative reward;
- ``"zero"``: zeros (the path is ignored).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from imitation_fn.core import random, serialization, tree
from imitation_fn.core.errors import InputError
from imitation_fn.envs.base import RewardFn
from imitation_fn.nn.normalize import RunningMeanStd
from imitation_fn.rewards import normalize
from imitation_fn.rewards.cnn import BasicPotentialCNN, CnnRewardNet
from imitation_fn.rewards.ensemble import AddSTDRewardWrapper, RewardEnsemble
from imitation_fn.rewards.nets import (
    BasicPotentialMLP,
    BasicRewardNet,
    Params,
    RewardNet,
    ShapedRewardNet,
    SpaceSpec,
)

FORMAT = "imitation_fn.reward"
FORMAT_VERSION = 1
PARAMS_FILE = "reward.safetensors"
CONFIG_FILE = "reward.json"

KINDS: tuple[str, ...] = ("normalized", "unnormalized", "shaped", "unshaped", "std_added", "zero")
DTYPES = ("float32", "float64", "float16", "bfloat16")
DEFAULT_STD_ALPHA = 0.0  # imitation's AddSTDRewardWrapper(default_alpha=0.0), for a plain ensemble
IMITATION_KINDS: dict[str, str] = {
    "RewardNet_normalized": "normalized",
    "RewardNet_unnormalized": "unnormalized",
    "RewardNet_shaped": "shaped",
    "RewardNet_unshaped": "unshaped",
    "RewardNet_std_added": "std_added",
}

# ---------------------------------------------------------------------------------------------------------------------
# Specs <-> JSON
# ---------------------------------------------------------------------------------------------------------------------

_SIMPLE: dict[str, type] = {
    "BasicRewardNet": BasicRewardNet,
    "BasicPotentialMLP": BasicPotentialMLP,
    "CnnRewardNet": CnnRewardNet,
    "BasicPotentialCNN": BasicPotentialCNN,
}


def net_from_json(desc: dict[str, Any]) -> Any:
    """The reward net (or potential) a ``to_json()`` dict describes."""
    if not isinstance(desc, dict) or "type" not in desc:
        raise ValueError(f"not a reward net description (no 'type'): {desc!r}")
    kind, fields = desc["type"], {k: v for k, v in desc.items() if k != "type"}
    try:
        if kind in _SIMPLE:
            cls = _SIMPLE[kind]
            names = {f.name for f in dataclasses.fields(cls)}
            if set(fields) != names:
                raise ValueError(f"fields {sorted(fields)} differ from {sorted(names)}")
            args = {
                k: SpaceSpec.from_json(v) if k.endswith("_space") else tuple(v) if isinstance(v, list) else v
                for k, v in fields.items()
            }
            return cls(**args)
        if kind == "ShapedRewardNet":
            return ShapedRewardNet(
                net_from_json(fields["base"]), net_from_json(fields["potential"]), float(fields["discount_factor"])
            )
        if kind == "RewardEnsemble":
            return RewardEnsemble(net_from_json(fields["member"]), int(fields["num_members"]))
        if kind == "AddSTDRewardWrapper":
            return AddSTDRewardWrapper(net_from_json(fields["base"]), float(fields["default_alpha"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"invalid {kind} description: {e}") from e
    known = [*_SIMPLE, "ShapedRewardNet", "RewardEnsemble", "AddSTDRewardWrapper"]
    raise ValueError(f"unknown reward net type {kind!r}; expected one of {', '.join(known)}")


# ---------------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------------


def _paths(path: str | Path) -> tuple[Path, Path]:
    """``(safetensors, json)`` for a directory or for either file of a pair."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    return path / PARAMS_FILE, path / CONFIG_FILE


def _dtype(params: Params) -> torch.dtype:
    dtypes = {x.dtype for x in tree.leaves(params)}
    if len(dtypes) != 1:
        raise ValueError(f"reward params must share one dtype, got {sorted(map(str, dtypes))}")
    return dtypes.pop()


def _template(net: RewardNet, dtype: torch.dtype, with_norm: bool) -> dict[str, Any]:
    # The params' structure and shapes follow from the spec: build them (tiny nets, cheap) and compare.
    out: dict[str, Any] = {"params": net.init(random.key(0), dtype)}
    if with_norm:
        out["norm"] = normalize.init(dtype=torch.float32, device="cpu")
    return out


def save(
    path: str | Path,
    net: RewardNet,
    params: Params,
    norm_state: RunningMeanStd | None = None,
    *,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Save ``net``'s ``params`` (and reward-normalisation statistics) as ``path/reward.{safetensors,json}``.

    ``path`` is a directory, or ``name.safetensors`` for a ``name.safetensors`` / ``name.json`` pair.
    ``metadata`` is free-form JSON (provenance). Raises before writing if ``params`` do not fit ``net``.
    """
    spec = net.to_json()
    dtype = _dtype(params)
    tree_out: dict[str, Any] = {"params": params}
    if norm_state is not None:
        tree_out["norm"] = tree.cast(norm_state, torch.float32)
    # Raises with the tensor's name and both shapes when params were made for another net.
    serialization.from_flat_dict(
        serialization.to_flat_dict(tree_out), _template(net, dtype, norm_state is not None), what="rewards.save"
    )
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "net": spec,
        "dtype": str(dtype).removeprefix("torch."),
        "normalized": norm_state is not None,
        "metadata": metadata or {},
    }
    text = json.dumps(desc, indent=2, allow_nan=False)  # raises on non-JSON metadata before writing
    tied = _tied(json.loads(text))
    header = {"format": FORMAT, **tied, "fingerprint": serialization.fingerprint(tied)}
    params_path, json_path = _paths(path)
    serialization.save(params_path, tree_out, header)
    serialization.write_text_atomic(json_path, text + "\n")


def _tied(desc: dict[str, Any]) -> dict[str, Any]:
    """What in ``reward.json`` the weights depend on (``metadata`` is free provenance)."""
    return {"net": desc["net"], "dtype": desc["dtype"], "normalized": desc["normalized"]}


@dataclasses.dataclass(frozen=True)
class LoadedReward:
    """A reward net read from disk: its spec, params, optional normaliser statistics and metadata.

    ``path`` is the file or directory it was loaded from (for messages).
    """

    net: Any  # a RewardNet spec (BasicRewardNet, ShapedRewardNet, CnnRewardNet, RewardEnsemble, AddSTDRewardWrapper)
    params: Params
    norm_state: RunningMeanStd | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None

    def reward_fn(self, kind: str = "unnormalized", **kwargs: Any) -> RewardFunction:
        """The reward of ``kind`` (see the module docstring) as a pure ``(obs, acts, next_obs, dones) -> (N,)``."""
        return RewardFunction(self, _canonical_kind(kind), kwargs)

    def to(self, device: torch.device | str) -> LoadedReward:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self, params=tree.to(self.params, device), norm_state=tree.to(self.norm_state, device)
        )


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: compiled steps cache per function
class RewardFunction:
    """A loaded reward as a :data:`RewardFn` that can move: ``Task.to(device)`` puts its tensors beside the run's."""

    reward: LoadedReward
    kind: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    fn: RewardFn = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fn", _reward_fn(self.reward, self.kind, **self.kwargs))

    def __call__(self, obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        return self.fn(obs, acts, next_obs, dones)

    def to(self, device: torch.device | str) -> RewardFunction:
        return RewardFunction(self.reward.to(device), self.kind, self.kwargs)


def _describe(desc: Any, json_path: Path) -> tuple[Any, torch.dtype, bool]:
    """``(net, dtype, normalized)`` of a validated ``reward.json`` value."""
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        got = desc.get("format") if isinstance(desc, dict) else None
        raise InputError(f"{json_path} is not a saved reward net (format {got!r}, expected {FORMAT!r})")
    if desc.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{json_path} has format_version {desc.get('format_version')!r}; this version reads {FORMAT_VERSION}"
        )
    try:
        net = net_from_json(desc.get("net") or {})
    except ValueError as e:
        raise InputError(f"{json_path}: net: {e}") from None
    dtype_name = desc.get("dtype", "float32")
    if dtype_name not in DTYPES:
        raise InputError(f"{json_path}: dtype is {dtype_name!r}; expected one of {', '.join(DTYPES)}")
    normalized = desc.get("normalized", False)
    if not isinstance(normalized, bool):
        raise InputError(f"{json_path}: normalized is {normalized!r}; expected true or false")
    if not isinstance(desc.get("metadata", {}), dict):
        raise InputError(f"{json_path}: metadata is {desc['metadata']!r}; expected a JSON object")
    return net, getattr(torch, dtype_name), normalized


def _check_header(header: dict[str, Any], desc: dict[str, Any], params_path: Path, json_path: Path) -> None:
    """Refuse a ``reward.json`` that no longer describes the weights saved beside it."""
    if header.get("format") != FORMAT:
        raise InputError(f"{params_path} is not the params file of a saved reward net (no {FORMAT!r} header)")
    if "fingerprint" in header:
        current = _tied({"dtype": "float32", "normalized": False, **desc})
        saved = {k: header.get(k) for k in current}
        changed = header["fingerprint"] != serialization.fingerprint(current)
    else:  # saved before fingerprints: the header holds the spec alone
        current, saved = {"net": desc.get("net")}, {"net": header.get("net")}
        changed = saved != current
    if changed:
        diff = "; ".join(serialization.json_changes(saved, current, limit=3))
        raise InputError(
            f"{json_path} was changed after its weights were saved"
            + (f" ({diff})" if diff else "")
            + f"; restore it or re-save the reward (or {params_path.name} was replaced by another reward's weights)"
        )


def load(path: str | Path, device: torch.device | str | None = None) -> LoadedReward:
    """Load a reward saved by :func:`save`.

    Raises ``FileNotFoundError`` when a file is missing, and ``InputError`` naming the file when the
    JSON is malformed or was edited after saving, or the safetensors file is truncated or does not fit.
    """
    params_path, json_path = _paths(path)
    if not json_path.is_file() or not params_path.is_file():
        raise FileNotFoundError(f"no saved reward at {path}: expected {params_path} and {json_path}")
    desc = serialization.read_json(json_path)
    net, dtype, normalized = _describe(desc, json_path)
    _check_header(serialization.load_metadata(params_path), desc, params_path, json_path)
    loaded = serialization.load(params_path, _template(net, dtype, normalized))
    if device is not None:
        loaded = tree.to(loaded, device)
    return LoadedReward(net, loaded["params"], loaded.get("norm"), dict(desc.get("metadata") or {}), Path(path))


# ---------------------------------------------------------------------------------------------------------------------
# Reward functions of each kind
# ---------------------------------------------------------------------------------------------------------------------


def _canonical_kind(kind: str) -> str:
    kind = IMITATION_KINDS.get(kind, kind)
    if kind not in KINDS:
        names = ", ".join(repr(k) for k in (*KINDS, *IMITATION_KINDS))
        raise InputError(f"unknown reward kind {kind!r}; expected one of {names}")
    return kind


def zero_reward(obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
    """Zeros ``(N,)`` (``imitation``'s ``load_zero``)."""
    return torch.zeros_like(dones, dtype=torch.float32)


def _reward_fn(loaded: LoadedReward, kind: str, **kwargs: Any) -> RewardFn:
    net, params = loaded.net, loaded.params
    where = f"the reward at {loaded.path}" if loaded.path is not None else "this reward"
    alpha = kwargs.pop("alpha", None)
    if kwargs:
        raise TypeError(f"unexpected arguments for a {kind!r} reward: {sorted(kwargs)}")
    if kind == "std_added" and isinstance(net, RewardEnsemble):
        # A plain ensemble (preference comparisons' ensemble_size) has the variance std_added needs.
        net = AddSTDRewardWrapper(net, DEFAULT_STD_ALPHA)
    if alpha is not None and not isinstance(net, AddSTDRewardWrapper):
        raise TypeError(f"alpha applies to an AddSTDRewardWrapper reward, not to a {type(net).__name__}")
    apply: Callable[..., Tensor] = (
        (lambda o, a, n, d: net.apply(params, o, a, n, d, alpha=alpha))
        if isinstance(net, AddSTDRewardWrapper)
        else (lambda *xs: net.apply(params, *xs))
    )

    if kind == "zero":
        return zero_reward
    if kind == "normalized":
        norm = loaded.norm_state
        if norm is None:
            raise InputError(
                f"{where} was saved without normalisation statistics (norm_state); "
                "load it as 'unnormalized', or save it with rewards.save(path, net, params, norm_state)"
            )
        fn = lambda *xs: normalize.apply(norm, apply(*xs))  # noqa: E731
    elif kind == "unnormalized":
        fn = apply
    elif kind == "shaped":
        if not isinstance(net, ShapedRewardNet):
            raise InputError(f"a 'shaped' reward needs a ShapedRewardNet, {where} is a {type(net).__name__}")
        fn = apply
    elif kind == "unshaped":
        fn = (lambda *xs: net.unshaped(params, *xs)) if isinstance(net, ShapedRewardNet) else apply
    else:  # std_added
        if not isinstance(net, AddSTDRewardWrapper):
            raise InputError(
                f"a 'std_added' reward needs an AddSTDRewardWrapper or a RewardEnsemble, {where} is a "
                f"{type(net).__name__}"
            )
        fn = apply

    def reward_fn(obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        return fn(obs, acts, next_obs, dones).to(torch.float32)

    return reward_fn


def load_reward(
    kind: str,
    path: str | Path | None,
    env: Any = None,
    *,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> RewardFn | RewardFunction:
    """A saved reward as ``reward_fn(obs, acts, next_obs, dones) -> (N,)`` for ``ppo.collect_env(..., reward_fn=)``.

    ``kind``: one of ``KINDS`` (or imitation's ``RewardNet_*`` names). ``env`` (optional, anything with
    ``observation_space``/``action_space``) is checked against the saved spaces. ``kwargs``: ``alpha``
    for ``std_added``. The function is pure: it runs inside a vmapped ``collect``.
    """
    kind = _canonical_kind(kind)
    if kind == "zero":
        return zero_reward
    if path is None:
        raise InputError(f"a {kind!r} reward needs the path of a saved reward net")
    loaded = load(path, device=device)
    if env is not None:
        for name in ("observation_space", "action_space"):
            want, got = getattr(loaded.net, name), SpaceSpec.of(getattr(env, name))
            if want != got:
                raise InputError(f"the reward at {path} was saved for {name} {want}, but the environment has {got}")
    return loaded.reward_fn(kind, **kwargs)


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_STD_ALPHA",
    "FORMAT",
    "IMITATION_KINDS",
    "KINDS",
    "PARAMS_FILE",
    "LoadedReward",
    "RewardFn",
    "RewardFunction",
    "load",
    "load_reward",
    "net_from_json",
    "save",
    "zero_reward",
]
