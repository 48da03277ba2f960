"""Bring your stable-baselines3 expert: load an SB3 ``PPO``/``A2C``/``SAC`` MlpPolicy ``.zip`` — no SB3, no pickle.

An SB3 zip holds ``data`` (JSON; objects JSON cannot hold are a cloudpickle under ``":serialized:"``
with their readable attributes stored beside it), ``policy.pth`` (a torch ``state_dict``),
``pytorch_variables.pth`` and ``_stable_baselines3_version``. We read only the readable JSON fields,
load the tensors with ``torch.load(weights_only=True)`` and map SB3's names onto our params contract:

    mlp_extractor.policy_net.{0,2,..} + action_net  ->  pi  layers.{0,1,..}      (PPO / A2C)
    mlp_extractor.value_net.{0,2,..}  + value_net   ->  vf  layers.{0,1,..}
    log_std                                         ->  log_std                  (Box actions)
    actor.latent_pi.{0,2,..} / actor.mu / actor.log_std -> trunk / mu / log_std   (SAC)
    critic.qf{i}.{0,2,4} / critic_target.qf{i}...   ->  extras["critic"] / extras["critic_target"] q{i}

    expert = policies.load_policy("ppo-CartPole-v1.zip")   # this module's read_sb3, as a LoadedPolicy
    actions = expert.policy_fn()(obs, key)        # what model.predict(obs, deterministic=True) returns

Class names (the policy class, the activation) come from their readable ``repr`` in the JSON, or
from the global references in the cloudpickle *disassembled* with ``pickletools`` (never executed).
Not supported, with an error that says so: CNN / multi-input policies, feature extractors other than
``FlattenExtractor``, shared ``net_arch`` layers (SB3 < 1.8), gSDE, image, Dict or Discrete
observations, MultiDiscrete/MultiBinary actions. ``VecNormalize`` statistics live in a separate
pickle file and are not read: pass observations normalised the way the expert saw them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
import pickle
import pickletools
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core.errors import InputError
from imitation_fn.policies.layout import Kind, Params, check_params, infer_net_arch

# torch.nn activation classes SB3 users pass as ``activation_fn`` -> our ACTIVATIONS names.
ACTIVATION_NAMES: dict[str, str] = {
    "Tanh": "tanh",
    "ReLU": "relu",
    "ELU": "elu",
    "GELU": "gelu",
    "SiLU": "silu",
    "LeakyReLU": "leaky_relu",
    "Identity": "identity",
}
DEFAULT_ACTIVATION = {"ActorCriticPolicy": "tanh", "SACPolicy": "relu"}  # SB3's defaults
# SB3 aliases: ``MlpPolicy`` is ``ActorCriticPolicy`` (PPO, A2C) and ``SACPolicy`` (SAC).
ACTOR_CRITIC_CLASSES = {"ActorCriticPolicy", "MlpPolicy"}
SAC_CLASSES = {"SACPolicy"}
SUPPORTED_EXTRACTORS = {"FlattenExtractor"}


class SB3FormatError(InputError):
    """The zip is not an SB3 model we can load (the message names the zip and says what is wrong)."""


# ---------------------------------------------------------------------------------------------------------------------
# Reading the ``data`` JSON without unpickling
# ---------------------------------------------------------------------------------------------------------------------


def pickled_globals(serialized: str) -> list[tuple[str, str]]:
    """The ``(module, name)`` global references in a base64 pickle, by disassembly only (nothing runs).

    Follows the string pushes and memo get/put opcodes just far enough to resolve each
    ``STACK_GLOBAL`` / ``GLOBAL`` opcode; anything malformed gives an empty list.
    """
    try:
        data = base64.b64decode(serialized)
        ops = list(pickletools.genops(data))
    except (binascii.Error, ValueError, TypeError):
        return []
    found: list[tuple[str, str]] = []
    pushed: list[Any] = []  # what each stack-pushing opcode pushed (None where we do not care)
    memo: dict[Any, Any] = {}
    for op, arg, _ in ops:
        name = op.name
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"):
            pushed.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif name == "STACK_GLOBAL":
            module, qualname = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            if isinstance(module, str) and isinstance(qualname, str):
                found.append((module, qualname))
            pushed.append(None)
        elif name in ("GLOBAL", "INST"):
            module, _, qualname = str(arg).partition(" ")
            found.append((module, qualname))
            pushed.append(None)
        elif name not in ("PROTO", "FRAME", "STOP"):
            pushed.append(None)
    return found


_CLASS_REPR = re.compile(r"<class '([\w.]+)'>")


def class_name(entry: Any) -> str | None:
    """The class name of an SB3 JSON entry: a ``"<class 'a.b.C'>"`` string or a serialised class."""
    if isinstance(entry, str):
        match = _CLASS_REPR.fullmatch(entry.strip())
        return match.group(1).rsplit(".", 1)[-1] if match else None
    if isinstance(entry, dict) and ":serialized:" in entry:
        globs = pickled_globals(entry[":serialized:"])
        if globs:
            return globs[0][1].rsplit(".", 1)[-1]
    return None


def _parse_array(text: Any, shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> np.ndarray:
    """A numpy ``str(array)`` ("[-4.8  -inf  0.41887903]", possibly nested) back to an array."""
    if isinstance(text, int | float):
        return np.full(shape, text, dtype=dtype)
    if not isinstance(text, str) or "..." in text:
        raise SB3FormatError(f"cannot read {what} from the SB3 data entry {text!r}")
    tokens = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError as e:
        raise SB3FormatError(f"cannot read {what} from the SB3 data entry {text!r}") from e
    if values.size == 1:
        values = np.full(shape, values[0])
    if values.size != math.prod(shape):
        raise SB3FormatError(f"{what} has {values.size} values in the SB3 data entry, expected shape {shape}")
    return values.reshape(shape).astype(dtype)


def read_space(entry: Any, what: str) -> gym.Space[Any]:
    """A ``Box`` or ``Discrete`` space from its readable fields in SB3's ``data`` JSON."""
    if not isinstance(entry, dict):
        raise SB3FormatError(f"the SB3 data has no readable {what}")
    type_name = class_name(entry.get(":type:", "")) or "?"
    try:
        if type_name == "Box":
            shape = tuple(int(s) for s in entry["_shape"])
            dtype = np.dtype(entry.get("dtype", "float32"))
            low = _parse_array(entry.get("low"), shape, dtype, f"{what}.low")
            high = _parse_array(entry.get("high"), shape, dtype, f"{what}.high")
            return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if type_name == "Discrete":
            return gym.spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
    except SB3FormatError:
        raise
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise SB3FormatError(f"cannot read the {type_name} {what} from the SB3 data ({type(e).__name__}: {e})") from e
    raise SB3FormatError(f"unsupported {what} {type_name!r} (supported: Box, and Discrete actions)")


def _activation(policy_kwargs: dict[str, Any], policy_class: str, path: Path) -> str:
    default = DEFAULT_ACTIVATION["SACPolicy" if policy_class in SAC_CLASSES else "ActorCriticPolicy"]
    if "activation_fn" not in policy_kwargs:
        # SB3 stores every first-level policy_kwargs item readably: absent means the default was used.
        return default
    name = class_name(policy_kwargs["activation_fn"])
    if name is None and ":serialized:" in policy_kwargs:
        # Unreadable repr: look for a torch activation class among the pickle's global references.
        found = [n for m, n in pickled_globals(policy_kwargs[":serialized:"]) if m == "torch.nn.modules.activation"]
        name = found[0] if found else None
    if name is None:
        warnings.warn(
            f"{path}: cannot read activation_fn {policy_kwargs['activation_fn']!r}; assuming SB3's default {default!r}",
            stacklevel=3,
        )
        return default
    if name not in ACTIVATION_NAMES:
        raise SB3FormatError(f"unsupported activation_fn {name!r} (supported: {', '.join(sorted(ACTIVATION_NAMES))})")
    return ACTIVATION_NAMES[name]


# ---------------------------------------------------------------------------------------------------------------------
# state_dict -> params
# ---------------------------------------------------------------------------------------------------------------------


def _sequential(sd: dict[str, Tensor], prefix: str, used: set[str]) -> list[tuple[Tensor, Tensor]]:
    """The Linear layers of an ``nn.Sequential`` stored under ``prefix`` (indices 0, 2, 4, ...), in order."""
    indices = sorted({int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)})
    layers = []
    for i in indices:
        w, b = f"{prefix}{i}.weight", f"{prefix}{i}.bias"
        if w not in sd or b not in sd:
            raise SB3FormatError(f"unsupported layer {prefix}{i} (expected a Linear with weight and bias)")
        layers.append((sd[w], sd[b]))
        used.update((w, b))
    return layers


def _mlp(layers: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    params: dict[str, Tensor] = {}
    for i, (w, b) in enumerate(layers):
        params[f"layers.{i}.weight"] = w.detach().to(torch.float32).contiguous()
        params[f"layers.{i}.bias"] = b.detach().to(torch.float32).contiguous()
    return params


def _linear(sd: dict[str, Tensor], name: str, used: set[str]) -> tuple[Tensor, Tensor]:
    w, b = f"{name}.weight", f"{name}.bias"
    if w not in sd or b not in sd:
        raise SB3FormatError(f"policy.pth has no {name} layer (keys: {sorted(sd)[:8]}...)")
    used.update((w, b))
    return sd[w], sd[b]


def _refuse_unknown(sd: dict[str, Tensor], used: set[str]) -> None:
    unknown = sorted(set(sd) - used)
    if not unknown:
        return
    if any(k.startswith("mlp_extractor.shared_net") for k in unknown):
        what = "a shared net_arch (mlp_extractor.shared_net, SB3 < 1.8 layout)"
    elif any("features_extractor" in k for k in unknown):
        what = "a features extractor with parameters (CNN or custom)"
    else:
        what = "parameters outside the MLP layout"
    raise SB3FormatError(f"unsupported SB3 policy with {what}: {unknown[:6]}")


def _actor_critic_params(sd: dict[str, Tensor], action_space: gym.Space[Any]) -> dict[str, Any]:
    used: set[str] = set()
    pi = [*_sequential(sd, "mlp_extractor.policy_net.", used), _linear(sd, "action_net", used)]
    vf = [*_sequential(sd, "mlp_extractor.value_net.", used), _linear(sd, "value_net", used)]
    params: dict[str, Any] = {"pi": _mlp(pi), "vf": _mlp(vf)}
    if isinstance(action_space, gym.spaces.Box):
        if "log_std" not in sd:
            raise SB3FormatError("Box actions but no log_std in policy.pth")
        if sd["log_std"].ndim != 1:
            raise SB3FormatError(f"unsupported gSDE policy (log_std has shape {tuple(sd['log_std'].shape)})")
        params["log_std"] = sd["log_std"].detach().to(torch.float32).contiguous()
        used.add("log_std")
    _refuse_unknown(sd, used)
    return params


def _sac_params(sd: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
    used: set[str] = set()
    actor = {
        "trunk": _mlp(_sequential(sd, "actor.latent_pi.", used)),
        "mu": _mlp([_linear(sd, "actor.mu", used)]),
        "log_std": _mlp([_linear(sd, "actor.log_std", used)]),
    }
    extras: dict[str, Any] = {}
    for part in ("critic", "critic_target"):
        n_critics = len({k.split(".")[1] for k in sd if k.startswith(f"{part}.qf")})
        if n_critics:
            extras[part] = {f"q{i}": _mlp(_sequential(sd, f"{part}.qf{i}.", used)) for i in range(n_critics)}
    _refuse_unknown(sd, used)
    return actor, extras


# ---------------------------------------------------------------------------------------------------------------------
# read_sb3
# ---------------------------------------------------------------------------------------------------------------------


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _state_dict(raw: bytes, name: str) -> dict[str, Tensor]:
    """A ``{name: tensor}`` dict from a ``.pth`` entry, read by torch's restricted unpickler."""
    try:
        # weights_only=True: torch's restricted unpickler, which only rebuilds tensors and containers.
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own message is not passed on: it recommends the unsafe way round.
        found = _GLOBAL.search(str(e))
        if found:
            raise SB3FormatError(
                f"{name} holds objects other than tensors (it references {found.group(1)}), "
                "so it cannot be loaded safely; nothing in it was run"
            ) from None
        raise SB3FormatError(f"{name} is not a torch file of tensors, or it is damaged") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise SB3FormatError(f"{name} is damaged or not a torch file ({str(e).split('. ')[0]})") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise SB3FormatError(f"{name} does not hold a state_dict (a dict of tensors by name)")
    return obj


def _read_zip(path: Path) -> tuple[dict[str, Any], dict[str, Tensor], dict[str, Tensor], str | None]:
    """``(data, policy state_dict, pytorch_variables, SB3 version)`` from an SB3 zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for required in ("data", "policy.pth"):
                if required not in names:
                    # A cut zip can show the entries of a zip stored inside it (a .pth is one), hence "truncated".
                    raise SB3FormatError(
                        f"not an SB3 model zip, or a truncated one (no {required!r} entry; entries: {names[:8]})"
                    )
            raw_data = archive.read("data")
            raw_policy = archive.read("policy.pth")
            raw_variables = archive.read("pytorch_variables.pth") if "pytorch_variables.pth" in names else None
            raw_version = archive.read("_stable_baselines3_version") if "_stable_baselines3_version" in names else None
    except zipfile.BadZipFile as e:
        raise SB3FormatError(f"not a zip file, or a truncated or damaged one ({e})") from None
    except (zlib.error, EOFError, NotImplementedError) as e:
        raise SB3FormatError(f"a damaged zip file ({e})") from None
    try:
        data = json.loads(raw_data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SB3FormatError(f"its 'data' entry is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SB3FormatError("its 'data' entry is not a JSON object")
    variables = _state_dict(raw_variables, "pytorch_variables.pth") if raw_variables is not None else {}
    version = raw_version.decode(errors="replace").strip() if raw_version is not None else None
    return data, _state_dict(raw_policy, "policy.pth"), variables, version


@dataclasses.dataclass(frozen=True)
class SB3Policy:
    """What an SB3 zip holds of its policy, in our layout (``policies.io.load_sb3`` makes it a ``LoadedPolicy``)."""

    kind: Kind
    params: Params
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    config: dict[str, Any]
    extras: dict[str, Any]
    path: Path


def read_sb3(zip_path: str | Path) -> SB3Policy:
    """Read an SB3 ``PPO``/``A2C`` (Box or Discrete actions) or ``SAC`` MlpPolicy zip.

    ``kind`` is ``"actor_critic"`` (params ``{"pi", "vf", "log_std"?}``) or ``"sac_actor"`` (params
    ``{"trunk", "mu", "log_std"}``; the critics are in ``extras``). ``config["source"]`` records the
    algorithm, policy class and SB3 version. Raises :class:`SB3FormatError` (an ``InputError``) naming
    the zip for a malformed or unsupported model, ``FileNotFoundError`` when there is no file.
    """
    path = Path(zip_path)
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 model zip at {path}")
    try:
        return _read_sb3(path)
    except SB3FormatError as e:
        raise SB3FormatError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:  # a readable but malformed data field
        raise SB3FormatError(f"{path}: unreadable SB3 data ({type(e).__name__}: {e})") from e


def _read_sb3(path: Path) -> SB3Policy:
    data, state_dict, variables, version = _read_zip(path)
    policy_class = class_name(data.get("policy_class")) or "?"
    if policy_class not in ACTOR_CRITIC_CLASSES | SAC_CLASSES:
        raise SB3FormatError(
            f"unsupported SB3 policy class {policy_class!r} "
            "(supported: PPO/A2C ActorCriticPolicy (MlpPolicy) and SAC MlpPolicy)"
        )
    policy_kwargs = data.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, dict):
        raise SB3FormatError(f"unreadable policy_kwargs {policy_kwargs!r}")
    extractor = class_name(policy_kwargs.get("features_extractor_class"))
    if "features_extractor_class" in policy_kwargs and extractor not in SUPPORTED_EXTRACTORS:
        raise SB3FormatError(
            f"unsupported features_extractor_class {extractor or policy_kwargs['features_extractor_class']!r} "
            "(only FlattenExtractor, the MlpPolicy default)"
        )
    if data.get("use_sde") or policy_kwargs.get("use_sde"):
        raise SB3FormatError("unsupported gSDE policy (use_sde=True)")
    net_arch = policy_kwargs.get("net_arch")
    if isinstance(net_arch, list) and any(isinstance(x, dict) for x in net_arch):
        raise SB3FormatError(f"unsupported shared net_arch {net_arch!r} (SB3 < 1.8 layout)")

    observation_space = read_space(data.get("observation_space"), "observation_space")
    action_space = read_space(data.get("action_space"), "action_space")
    if not isinstance(observation_space, gym.spaces.Box):
        raise SB3FormatError(f"unsupported observation space {observation_space!r} (only Box)")
    if observation_space.dtype == np.uint8 and len(observation_space.shape) == 3:
        raise SB3FormatError(f"unsupported image observation space {observation_space!r}")
    activation = _activation(policy_kwargs, policy_class, path)

    extras: dict[str, Any] = {}
    if policy_class in SAC_CLASSES:
        if not isinstance(action_space, gym.spaces.Box):
            raise SB3FormatError(f"SAC with a non-Box action space {action_space!r}")
        kind: Any = "sac_actor"
        algorithm = "SAC"
        params, extras = _sac_params(state_dict)
        if "log_ent_coef" in variables:
            extras["log_ent_coef"] = variables["log_ent_coef"].detach().to(torch.float32)
    else:
        kind = "actor_critic"
        algorithm = "PPO" if "clip_range" in data else "A2C"
        params = _actor_critic_params(state_dict, action_space)

    arch = infer_net_arch(kind, params)
    # Same checks as save/load of our own files: every tensor must fit the spaces and the architecture.
    try:
        check_params(kind, params, (observation_space, action_space), arch, what="policy.pth")
    except ValueError as e:
        raise SB3FormatError(str(e)) from e
    config = {
        "net_arch": arch,
        "activation": activation,
        "deterministic": True,
        "clip_actions": True,  # SB3's predict clips Box actions of unsquashed policies to the bounds
        "source": {
            "format": "stable-baselines3",
            "algorithm": algorithm,
            "policy_class": policy_class,
            "version": version,
        },
    }
    return SB3Policy(
        kind=kind,
        params=params,
        observation_space=observation_space,
        action_space=action_space,
        config=config,
        extras=extras,
        path=path,
    )


__all__ = ["ACTIVATION_NAMES", "SB3FormatError", "SB3Policy", "class_name", "pickled_globals", "read_sb3", "read_space"]
