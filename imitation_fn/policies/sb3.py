"""Bring your stable-baselines3 expert: load an SB3 ``PPO``/``A2C``/``SAC``/``DQN`` ``.zip`` — no SB3, no pickle.

An SB3 zip holds ``data`` (JSON; objects JSON cannot hold are a cloudpickle under ``":serialized:"``
with their readable attributes stored beside it), ``policy.pth`` (a torch ``state_dict``),
``pytorch_variables.pth`` and ``_stable_baselines3_version``. We read only the readable JSON fields,
load the tensors with ``torch.load(weights_only=True)`` and map SB3's names onto our params contract:

    mlp_extractor.policy_net.{0,2,..} + action_net  ->  pi  layers.{0,1,..}      (PPO / A2C)
    mlp_extractor.value_net.{0,2,..}  + value_net   ->  vf  layers.{0,1,..}
    log_std                                         ->  log_std                  (Box actions)
    features_extractor.cnn.{0,2,4} / .linear.0      ->  cnn conv{0,1,2} / linear (CnnPolicy: NatureCNN)
    actor.latent_pi.{0,2,..} / actor.mu / actor.log_std -> trunk / mu / log_std   (SAC)
    critic.qf{i}.{0,2,4} / critic_target.qf{i}...   ->  extras["critic"] / extras["critic_target"] q{i}
    q_net.q_net.{0,2,..} (+ q_net.features_extractor) -> pi layers (+ cnn)       (DQN, kind "mlp")
    q_net_target...                                 ->  extras["q_net_target"] {"pi", "cnn"?}

    expert = policies.load_policy("ppo-CartPole-v1.zip")   # this module's read_sb3, as a LoadedPolicy
    actions = expert.policy_fn()(obs, key)        # what model.predict(obs, deterministic=True) returns

Supported: PPO and A2C ``MlpPolicy`` (``ActorCriticPolicy``) and ``CnnPolicy`` (``ActorCriticCnnPolicy``),
SAC ``MlpPolicy``, DQN ``MlpPolicy`` (``DQNPolicy``) and ``CnnPolicy``. A ``CnnPolicy`` is SB3's NatureCNN
(features_dim 512, pixels divided by 255) on a ``uint8`` image space, our ``"cnn"`` params
(:mod:`imitation_fn.nn.cnn`); SB3 stores the CNN again under ``pi_features_extractor`` and
``vf_features_extractor``, and those copies must equal it (``share_features_extractor=True``, the default).

DQN's greedy policy is our ``"mlp"`` kind: ``pi`` is the Q-network, whose argmax is the deterministic
action (``deterministic`` is True in the loaded config, as ``predict(deterministic=True)``). Acting
stochastically samples ``softmax(Q)``, which is *not* DQN's ε-greedy exploration; the zip's
``exploration_rate`` is kept in ``config["source"]`` for reference.

Class names (the policy class, the activation) come from their readable ``repr`` in the JSON, or
from the global references in the cloudpickle *disassembled* with ``pickletools`` (never executed).
Not supported, with an error that says so: multi-input (Dict) policies, SAC/TD3 ``CnnPolicy``, other
algorithms' policies (TD3, sb3-contrib's), feature extractors other than ``FlattenExtractor`` and
``NatureCNN`` (or NatureCNN with ``features_dim`` other than 512 or ``normalized_image=True``),
``share_features_extractor=False`` with a CNN, ``normalize_images=False`` on images, an ``MlpPolicy`` on
image observations (SB3 rescales them by 1/255), shared ``net_arch`` layers (SB3 < 1.8), gSDE, Dict or
Discrete observations, MultiDiscrete/MultiBinary actions. ``VecNormalize`` statistics live in a separate
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
from imitation_fn.nn.cnn import FEATURES_DIM, is_image_space
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
# The policy classes we read: (module, class) as pickled (SB3's ``MlpPolicy`` aliases pickle as the class they
# name) -> (family, SB3's default features extractor, SB3's default activation). A ``(None, class)`` entry
# matches that class name when no module can be read.
POLICY_CLASSES: dict[tuple[str | None, str], tuple[str, str, str]] = {
    ("stable_baselines3.common.policies", "ActorCriticPolicy"): ("actor_critic", "FlattenExtractor", "tanh"),
    ("stable_baselines3.common.policies", "ActorCriticCnnPolicy"): ("actor_critic", "NatureCNN", "tanh"),
    ("stable_baselines3.sac.policies", "SACPolicy"): ("sac", "FlattenExtractor", "relu"),
    ("stable_baselines3.dqn.policies", "DQNPolicy"): ("dqn", "FlattenExtractor", "relu"),
    ("stable_baselines3.dqn.policies", "CnnPolicy"): ("dqn", "NatureCNN", "relu"),
    (None, "ActorCriticPolicy"): ("actor_critic", "FlattenExtractor", "tanh"),
    (None, "MlpPolicy"): ("actor_critic", "FlattenExtractor", "tanh"),
    (None, "ActorCriticCnnPolicy"): ("actor_critic", "NatureCNN", "tanh"),
    (None, "SACPolicy"): ("sac", "FlattenExtractor", "relu"),
    (None, "DQNPolicy"): ("dqn", "FlattenExtractor", "relu"),
}
ALGORITHM_NAMES = {"sac": "SAC", "dqn": "DQN"}  # actor_critic: PPO or A2C, told apart by clip_range
SUPPORTED_EXTRACTORS = {"FlattenExtractor", "NatureCNN"}
# NatureCNN's modules in SB3's state_dict (under ``features_extractor.``) -> our ``"cnn"`` params.
NATURE_CNN_NAMES = {"conv0": "cnn.0", "conv1": "cnn.2", "conv2": "cnn.4", "linear": "linear.0"}


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
    return class_ref(entry)[1]


def class_ref(entry: Any) -> tuple[str | None, str | None]:
    """``(module, class name)`` of an SB3 JSON entry; the module is ``None`` where it cannot be read."""
    if isinstance(entry, str):
        match = _CLASS_REPR.fullmatch(entry.strip())
        if not match:
            return None, None
        module, _, name = match.group(1).rpartition(".")
        return module or None, name
    if isinstance(entry, dict) and ":serialized:" in entry:
        globs = pickled_globals(entry[":serialized:"])
        if globs:
            module, qualname = globs[0]
            return module, qualname.rsplit(".", 1)[-1]
    return None, None


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


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*(e[-+]?\d+)?|inf|nan)", re.IGNORECASE)
_IMAGE_BOUNDS = {"low": 0, "high": 255}  # SB3's is_image_space


def _box_bound(entry: dict[str, Any], name: str, shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> np.ndarray:
    """A Box's ``low``/``high``, also when numpy's ``str`` cut a large array short with ``...`` (SB3's images).

    Then gymnasium's ``low_repr``/``high_repr`` (one number when the bound is the same everywhere) gives it; else
    a ``uint8`` rank-3 Box whose printed values are all 0 (low) / 255 (high) is an image space, whose bounds SB3
    requires to be exactly that everywhere (its NatureCNN and 1/255 scaling are built only for such spaces).
    """
    text = entry.get(name)
    if isinstance(text, str) and "..." in text:
        short = entry.get(f"{name}_repr")
        if isinstance(short, str) and _NUMBER.fullmatch(short.strip()):
            return _parse_array(short, shape, dtype, f"{what}.{name}")
        tokens = set(text.replace("[", " ").replace("]", " ").replace("...", " ").split())
        if dtype == np.uint8 and len(shape) == 3 and tokens == {str(_IMAGE_BOUNDS[name])}:
            return np.full(shape, _IMAGE_BOUNDS[name], dtype=dtype)
    return _parse_array(text, shape, dtype, f"{what}.{name}")


def read_space(entry: Any, what: str) -> gym.Space[Any]:
    """A ``Box`` or ``Discrete`` space from its readable fields in SB3's ``data`` JSON."""
    if not isinstance(entry, dict):
        raise SB3FormatError(f"the SB3 data has no readable {what}")
    type_name = class_name(entry.get(":type:", "")) or "?"
    try:
        if type_name == "Box":
            shape = tuple(int(s) for s in entry["_shape"])
            dtype = np.dtype(entry.get("dtype", "float32"))
            low = _box_bound(entry, "low", shape, dtype, what)
            high = _box_bound(entry, "high", shape, dtype, what)
            return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if type_name == "Discrete":
            return gym.spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
    except SB3FormatError:
        raise
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise SB3FormatError(f"cannot read the {type_name} {what} from the SB3 data ({type(e).__name__}: {e})") from e
    raise SB3FormatError(f"unsupported {what} {type_name!r} (supported: Box, and Discrete actions)")


def _activation(policy_kwargs: dict[str, Any], default: str, path: Path) -> str:
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


def _refuse_unknown(sd: dict[str, Tensor], used: set[str], cnn: bool) -> None:
    unknown = sorted(set(sd) - used)
    if not unknown:
        return
    if any(k.startswith("mlp_extractor.shared_net") for k in unknown):
        what = "a shared net_arch (mlp_extractor.shared_net, SB3 < 1.8 layout)"
    elif any("features_extractor" in k for k in unknown):
        what = (
            "features extractor parameters that SB3's NatureCNN does not have"
            if cnn
            else "a features extractor with parameters (a CNN or custom) where FlattenExtractor was declared"
        )
    else:
        what = "parameters outside the MLP layout"
    raise SB3FormatError(f"unsupported SB3 policy with {what}: {unknown[:6]}")


def _nature_cnn(sd: dict[str, Tensor], prefix: str, used: set[str]) -> dict[str, Tensor]:
    """Our ``"cnn"`` params from SB3's NatureCNN stored under ``prefix`` (``features_extractor.``)."""
    params: dict[str, Tensor] = {}
    for ours, theirs in NATURE_CNN_NAMES.items():
        w, b = _linear(sd, f"{prefix}{theirs}", used)
        params[f"{ours}.weight"] = w.detach().to(torch.float32).contiguous()
        params[f"{ours}.bias"] = b.detach().to(torch.float32).contiguous()
    return params


def _shared_copies(sd: dict[str, Tensor], used: set[str]) -> None:
    """SB3's ``pi_features_extractor``/``vf_features_extractor`` copies must be the shared ``features_extractor``."""
    for key in [k for k in sd if k.startswith("features_extractor.")]:
        for copy in ("pi_", "vf_"):
            if f"{copy}{key}" not in sd:
                continue  # SB3 < 1.8 wrote no copies
            used.add(f"{copy}{key}")
            if not torch.equal(sd[f"{copy}{key}"], sd[key]):
                raise SB3FormatError(
                    f"unsupported share_features_extractor=False: {copy}{key} differs from {key}, so the policy and "
                    "value networks have separate CNNs; ours share one NatureCNN between both heads"
                )


def _actor_critic_params(sd: dict[str, Tensor], action_space: gym.Space[Any], cnn: bool) -> dict[str, Any]:
    used: set[str] = set()
    pi = [*_sequential(sd, "mlp_extractor.policy_net.", used), _linear(sd, "action_net", used)]
    vf = [*_sequential(sd, "mlp_extractor.value_net.", used), _linear(sd, "value_net", used)]
    params: dict[str, Any] = {"pi": _mlp(pi), "vf": _mlp(vf)}
    if cnn:
        params["cnn"] = _nature_cnn(sd, "features_extractor.", used)
        _shared_copies(sd, used)
    if isinstance(action_space, gym.spaces.Box):
        if "log_std" not in sd:
            raise SB3FormatError("Box actions but no log_std in policy.pth")
        if sd["log_std"].ndim != 1:
            raise SB3FormatError(f"unsupported gSDE policy (log_std has shape {tuple(sd['log_std'].shape)})")
        params["log_std"] = sd["log_std"].detach().to(torch.float32).contiguous()
        used.add("log_std")
    _refuse_unknown(sd, used, cnn)
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
    _refuse_unknown(sd, used, cnn=False)
    return actor, extras


def _q_network(sd: dict[str, Tensor], prefix: str, cnn: bool, used: set[str]) -> dict[str, Any]:
    """A DQN ``QNetwork`` (``{prefix}q_net.{0,2,..}``, NatureCNN at ``{prefix}features_extractor``) as mlp params."""
    layers = _sequential(sd, f"{prefix}q_net.", used)
    if not layers:
        raise SB3FormatError(f"policy.pth has no {prefix}q_net layers (keys: {sorted(sd)[:8]}...)")
    params: dict[str, Any] = {"pi": _mlp(layers)}
    if cnn:
        params["cnn"] = _nature_cnn(sd, f"{prefix}features_extractor.", used)
    return params


def _dqn_params(sd: dict[str, Tensor], cnn: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    used: set[str] = set()
    params = _q_network(sd, "q_net.", cnn, used)
    extras: dict[str, Any] = {}
    if any(k.startswith("q_net_target.") for k in sd):
        extras["q_net_target"] = _q_network(sd, "q_net_target.", cnn, used)
    _refuse_unknown(sd, used, cnn)
    return params, extras


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
    """Read an SB3 ``PPO``/``A2C`` (Box or Discrete actions; MlpPolicy or CnnPolicy), ``SAC`` MlpPolicy or ``DQN``
    (MlpPolicy or CnnPolicy) zip.

    ``kind`` is ``"actor_critic"`` (params ``{"pi", "vf", "log_std"?, "cnn"?}``), ``"sac_actor"`` (params
    ``{"trunk", "mu", "log_std"}``; the critics are in ``extras``) or, for DQN, ``"mlp"`` (params ``{"pi",
    "cnn"?}``, ``pi`` the Q-network; the target network is in ``extras``). ``config["source"]`` records the
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


def _policy_family(entry: Any) -> tuple[str, str, str, str]:
    """``(family, class name, default extractor, default activation)`` of the zip's ``policy_class``."""
    module, name = class_ref(entry)
    found = POLICY_CLASSES.get((module, name or "?")) or (
        POLICY_CLASSES.get((None, name or "?")) if module is None else None
    )
    if found is None:
        where = f"{module}.{name}" if module else (name or "?")
        hint = ""
        if name == "CnnPolicy" and module and ".sac." in f".{module}.":
            hint = "; our SAC actor has no CNN"
        elif name == "MultiInputPolicy" or name == "MultiInputActorCriticPolicy":
            hint = "; Dict observations are not read"
        raise SB3FormatError(
            f"unsupported SB3 policy class {where!r}{hint} (supported: PPO/A2C MlpPolicy and CnnPolicy "
            "(ActorCriticPolicy, ActorCriticCnnPolicy), SAC MlpPolicy (SACPolicy), DQN MlpPolicy and CnnPolicy)"
        )
    family, extractor, activation = found
    return family, name or "?", extractor, activation


def _check_extractor(policy_kwargs: dict[str, Any], default: str, observation_space: gym.Space[Any]) -> bool:
    """Whether the policy has SB3's NatureCNN; raises for extractors and settings we cannot express."""
    extractor = default
    if "features_extractor_class" in policy_kwargs:
        entry = policy_kwargs["features_extractor_class"]
        extractor = class_name(entry) or "?"
        if extractor not in SUPPORTED_EXTRACTORS:
            raise SB3FormatError(
                f"unsupported features_extractor_class {entry if extractor == '?' else extractor!r} "
                "(only FlattenExtractor, the MlpPolicy default, and NatureCNN, the CnnPolicy default)"
            )
    image = is_image_space(observation_space)
    if extractor == "FlattenExtractor":
        if image:
            raise SB3FormatError(
                f"unsupported MlpPolicy on the image observation space {observation_space!r}: SB3 rescales images by "
                "1/255 before its MLP, ours do not (a CnnPolicy on images is supported)"
            )
        return False
    if not image:
        raise SB3FormatError(
            f"NatureCNN on {observation_space!r}, which is not an image space (uint8, rank 3, bounds 0 and 255)"
        )
    kwargs = policy_kwargs.get("features_extractor_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise SB3FormatError(f"unreadable features_extractor_kwargs {kwargs!r}")
    if int(kwargs.get("features_dim", FEATURES_DIM)) != FEATURES_DIM:
        raise SB3FormatError(f"unsupported NatureCNN features_dim={kwargs['features_dim']} (ours has {FEATURES_DIM})")
    if kwargs.get("normalized_image", False):
        raise SB3FormatError("unsupported NatureCNN with normalized_image=True (ours takes pixels in 0..255)")
    unknown = set(kwargs) - {"features_dim", "normalized_image"}
    if unknown:
        raise SB3FormatError(f"unsupported NatureCNN features_extractor_kwargs {sorted(unknown)}")
    if policy_kwargs.get("normalize_images", True) is False:
        raise SB3FormatError("unsupported normalize_images=False: our CNN divides pixels by 255, as SB3's default")
    if policy_kwargs.get("share_features_extractor", True) is False:
        raise SB3FormatError(
            "unsupported share_features_extractor=False: the policy and value networks have separate CNNs; "
            "ours share one NatureCNN between both heads"
        )
    return True


def _read_sb3(path: Path) -> SB3Policy:
    data, state_dict, variables, version = _read_zip(path)
    family, policy_class, default_extractor, default_activation = _policy_family(data.get("policy_class"))
    policy_kwargs = data.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, dict):
        raise SB3FormatError(f"unreadable policy_kwargs {policy_kwargs!r}")
    if data.get("use_sde") or policy_kwargs.get("use_sde"):
        raise SB3FormatError("unsupported gSDE policy (use_sde=True)")
    net_arch = policy_kwargs.get("net_arch")
    if isinstance(net_arch, list) and any(isinstance(x, dict) for x in net_arch):
        raise SB3FormatError(f"unsupported shared net_arch {net_arch!r} (SB3 < 1.8 layout)")

    observation_space = read_space(data.get("observation_space"), "observation_space")
    action_space = read_space(data.get("action_space"), "action_space")
    if not isinstance(observation_space, gym.spaces.Box):
        raise SB3FormatError(f"unsupported observation space {observation_space!r} (only Box)")
    cnn = _check_extractor(policy_kwargs, default_extractor, observation_space)
    activation = _activation(policy_kwargs, default_activation, path)

    extras: dict[str, Any] = {}
    source: dict[str, Any] = {}
    kind: Any
    if family == "sac":
        if not isinstance(action_space, gym.spaces.Box):
            raise SB3FormatError(f"SAC with a non-Box action space {action_space!r}")
        kind, algorithm = "sac_actor", "SAC"
        params, extras = _sac_params(state_dict)
        if "log_ent_coef" in variables:
            extras["log_ent_coef"] = variables["log_ent_coef"].detach().to(torch.float32)
    elif family == "dqn":
        if not isinstance(action_space, gym.spaces.Discrete):
            raise SB3FormatError(f"DQN with a non-Discrete action space {action_space!r}")
        kind, algorithm = "mlp", "DQN"  # the greedy policy: argmax of the Q-network
        params, extras = _dqn_params(state_dict, cnn)
        if isinstance(data.get("exploration_rate"), int | float):
            source["exploration_rate"] = float(data["exploration_rate"])
    else:
        kind = "actor_critic"
        algorithm = "PPO" if "clip_range" in data else "A2C"
        params = _actor_critic_params(state_dict, action_space, cnn)

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
            **source,
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


__all__ = [
    "ACTIVATION_NAMES",
    "NATURE_CNN_NAMES",
    "SB3FormatError",
    "SB3Policy",
    "class_name",
    "class_ref",
    "pickled_globals",
    "read_sb3",
    "read_space",
]
