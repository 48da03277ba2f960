"""Export our policies as stable-baselines3 zips that ``PPO.load`` / ``SAC.load`` open with no ``custom_objects``.

The inverse of :mod:`imitation_fn.policies.sb3`, written without SB3 installed: the zip holds SB3's ``data``
JSON (objects JSON cannot hold are a base64 pickle under ``":serialized:"`` with their readable attributes
beside it, as ``save_util.data_to_json`` writes them), ``policy.pth`` (our params under SB3's names),
fresh Adam states for SB3's optimizers (``load`` insists on every one), ``pytorch_variables.pth``,
``_stable_baselines3_version`` and ``system_info.txt``. Class references (the policy class, the
activation) are pickled by name, so writing them imports nothing of SB3.

    export_sb3("runs/ppo/policies/seed_0", "expert.zip")       # actor_critic / mlp -> PPO, sac_actor -> SAC
    model = PPO.load("expert.zip")                             # in an environment with stable-baselines3
    action, _ = model.predict(obs, deterministic=True)         # == our policy's deterministic action

- ``actor_critic`` -> PPO ``ActorCriticPolicy``, ``net_arch=dict(pi=[...], vf=[...])``, our activation.
- ``mlp`` (BC's policy: no value net) -> the same, with a value net of pi's widths freshly initialised as
  SB3 initialises one (orthogonal, gain √2 on hidden layers and 1 on the head, zero biases; key 0).
- Either with a ``"cnn"`` (image observations, :mod:`imitation_fn.nn.cnn`) -> PPO ``CnnPolicy``
  (``ActorCriticCnnPolicy``: SB3's NatureCNN, ``features_dim`` 512, pixels divided by 255) with our CNN as its
  ``features_extractor``, written again as ``pi_features_extractor`` and ``vf_features_extractor`` as SB3 writes a
  shared extractor. The observation space is written channels first, as SB3's policy sees it behind
  ``VecTransposeImage``, so a channels-last policy's zip loads on the channels-last env (SB3 transposes).
  A DQN zip read by ``load_policy`` is an ``mlp`` policy (its greedy Q policy) and is written this way too,
  as PPO: there is no DQN writer.
- ``sac_actor`` -> SAC ``SACPolicy``; the critics and ``log_ent_coef`` come from ``policy.extras`` (an SB3
  zip read by ``load_policy`` keeps them), else fresh critics (``nn.Linear``'s init, key 0), target = critic,
  and ``log_ent_coef = 0`` (SB3's start, entropy coefficient 1).

Dict observations: our policies act on the flattened vector (``envs.gym.GymEnv``), which is what SB3's
``MultiInputPolicy`` (``CombinedExtractor``: each non-image entry ``nn.Flatten``-ed, concatenated in the
``Dict``'s key order) feeds its MLPs, so the weights are the same. Given ``observation_space=`` the env's
``Dict`` (``env.unflattened_observation_space``; entries must be ``Box``, not images), the zip is a
``MultiInputPolicy`` (PPO ``MultiInputActorCriticPolicy``, SAC ``MultiInputPolicy``) that acts on the env's
dict observations; its ``VecNormalize`` statistics, if any, are split per key. Without it, the zip is an
``MlpPolicy`` on the flat ``Box``: use it on ``gymnasium.wrappers.FlattenObservation(env)``.

Everything else — learning rate, ``n_steps``, buffer sizes — is SB3's default for ``PPO("MlpPolicy", env)``
/ ``SAC("MlpPolicy", env)`` in the SB3 that loads the zip; pass overrides to ``load`` (``PPO.load(path,
n_steps=256)``). Params are written as float32 (SB3's dtype).

Observation normalisation: SB3 keeps ``VecNormalize`` statistics outside the model zip, so a policy with
``obs_norm`` also gets ``<out stem>_vecnormalize.pkl`` (see :func:`vecnormalize_path`), the pickle that
``VecNormalize.load(path, venv)`` reads: our mean, variance, count, clip and epsilon, with
``training=False`` and ``norm_reward=False`` (SB3's advice for evaluation; set ``venv.training = True``
to keep updating the statistics while training on).

Refused with :class:`SB3ExportError` (what SB3 cannot express): a shared actor-critic trunk (SB3 >= 1.8 has
none), ``clip_actions=False`` (SB3's ``predict`` always clips Box actions), non-Box observations, image
observations for SAC (our SAC actor has no CNN) or without a ``"cnn"``, image entries in a ``Dict``,
``Discrete(start != 0)`` actions, Box actions with infinite bounds (SB3 cannot train with them), and an
``algo`` the policy kind cannot be.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import math
import pickle
import platform
import sys
import zipfile
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random, serialization
from imitation_fn.core.errors import InputError
from imitation_fn.nn.cnn import FEATURES_DIM, channels_first, is_image_space
from imitation_fn.nn.mlp import mlp_init, mlp_sizes
from imitation_fn.policies import sac
from imitation_fn.policies.io import DEFAULT_OBS_NORM, LoadedPolicy, describe_space, load_policy
from imitation_fn.policies.sb3 import ACTIVATION_NAMES, NATURE_CNN_NAMES

Algo = Literal["ppo", "sac"]
ALGOS: tuple[str, ...] = ("ppo", "sac")
ALGO_OF_KIND: dict[str, Algo] = {"actor_critic": "ppo", "mlp": "ppo", "sac_actor": "sac"}
SB3_FORMAT_VERSION = "2.9.2"  # the SB3 release whose save format this writes (tested with its load)

ACTOR_CRITIC_POLICY = ("stable_baselines3.common.policies", "ActorCriticPolicy")
ACTOR_CRITIC_CNN_POLICY = ("stable_baselines3.common.policies", "ActorCriticCnnPolicy")
SAC_POLICY = ("stable_baselines3.sac.policies", "SACPolicy")
# For Dict observations: CombinedExtractor (their default extractor) instead of FlattenExtractor.
MULTI_INPUT_POLICY = {
    "ppo": ("stable_baselines3.common.policies", "MultiInputActorCriticPolicy"),
    "sac": ("stable_baselines3.sac.policies", "MultiInputPolicy"),
}
VEC_NORMALIZE = ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize")
RUNNING_MEAN_STD = ("stable_baselines3.common.running_mean_std", "RunningMeanStd")
TORCH_ACTIVATIONS: dict[str, str] = {ours: torch_name for torch_name, ours in ACTIVATION_NAMES.items()}

# SB3's defaults that the written optimizer states and VecNormalize must agree with.
LEARNING_RATE = 3e-4
PPO_ADAM_EPS = 1e-5  # ActorCriticPolicy's optimizer_kwargs default
PPO_CLIP_RANGE = 0.2  # written so that readers (policies.sb3) tell PPO from A2C, as in SB3's own zips
VEC_NORMALIZE_DEFAULTS = {"clip_reward": 10.0, "gamma": 0.99}


class SB3ExportError(InputError):
    """The policy cannot be written as an SB3 model (the message names the policy and says why)."""


# ---------------------------------------------------------------------------------------------------------------------
# Pickles written without SB3
# ---------------------------------------------------------------------------------------------------------------------


def _global_pickle(module: str, name: str) -> bytes:
    """A protocol-4 pickle of a reference to the class ``module.name`` (cloudpickle's, less its frame)."""
    m, n = module.encode(), name.encode()
    return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x94\x8c" + bytes([len(n)]) + n + b"\x94\x93\x94."


class _Opcodes(bytes):
    """Pickle opcodes that build one object (no PROTO header, no STOP), to splice into a larger pickle."""


def _opcodes(value: Any) -> _Opcodes:
    """``value`` pickled by the standard pickler (protocol 2: no frames), as opcodes to splice in.

    Each fragment's memo puts precede its own gets, so fragments may reuse memo indices safely. A dict
    holding fragments (``{key: _instance(...)}``) is built around them.
    """
    if isinstance(value, _Opcodes):
        return value
    if isinstance(value, dict) and any(isinstance(v, _Opcodes) for v in value.values()):
        items = b"".join(_opcodes(k) + _opcodes(v) for k, v in value.items())
        return _Opcodes(pickle.EMPTY_DICT + pickle.MARK + items + pickle.SETITEMS)
    data = pickle.dumps(value, protocol=2)
    assert data[:2] == b"\x80\x02" and data[-1:] == pickle.STOP
    return _Opcodes(data[2:-1])


def _instance(cls: tuple[str, str], state: dict[str, Any]) -> _Opcodes:
    """Opcodes for ``cls.__new__(cls)`` given ``state`` (``__setstate__`` or ``__dict__``), the class named only."""
    module, name = cls
    items = b"".join(_opcodes(k) + _opcodes(v) for k, v in state.items())
    state_ops = pickle.EMPTY_DICT + pickle.MARK + items + pickle.SETITEMS
    return _Opcodes(
        pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.EMPTY_TUPLE + pickle.NEWOBJ + state_ops + pickle.BUILD
    )


def _vecnormalize_pickle(policy: LoadedPolicy, dict_space: gym.spaces.Dict | None = None) -> bytes:
    """What ``VecNormalize.save`` writes, for ``VecNormalize.load(path, venv)``: our statistics and settings.

    For a ``dict_space``, the statistics of the flat vector split into one ``RunningMeanStd`` per key
    (normalisation is elementwise, so it is the same map).
    """
    norm = policy.obs_norm
    assert norm is not None
    clip = policy.config.get("obs_norm_clip", DEFAULT_OBS_NORM["clip"])

    def stats(mean: Tensor | np.ndarray, var: Tensor | np.ndarray, count: float) -> _Opcodes:
        arrays = {"mean": np.asarray(mean, dtype=np.float64), "var": np.asarray(var, dtype=np.float64)}
        return _instance(RUNNING_MEAN_STD, {**arrays, "count": float(count)})

    mean, var, count = norm.mean.detach().cpu().numpy(), norm.var.detach().cpu().numpy(), float(norm.count)
    obs_rms: _Opcodes | dict[str, _Opcodes] = stats(mean, var, count)
    if dict_space is not None:
        obs_rms, start = {}, 0
        for key, sub in dict_space.spaces.items():
            shape, size = tuple(sub.shape or ()), math.prod(sub.shape or ())
            piece = slice(start, start + size)
            obs_rms[key] = stats(mean[piece].reshape(shape), var[piece].reshape(shape), count)
            start += size
    state = {
        "num_envs": 1,  # set_venv replaces it
        "observation_space": policy.observation_space if dict_space is None else dict_space,
        "action_space": policy.action_space,
        "norm_obs": True,
        "norm_obs_keys": None if dict_space is None else list(dict_space.spaces),
        "obs_rms": obs_rms,
        "ret_rms": stats(np.zeros(()), np.ones(()), 1e-4),  # SB3's fresh return statistics (unused: norm_reward off)
        "clip_obs": math.inf if clip is None else float(clip),
        "clip_reward": VEC_NORMALIZE_DEFAULTS["clip_reward"],
        "gamma": VEC_NORMALIZE_DEFAULTS["gamma"],
        "epsilon": float(policy.config.get("obs_norm_eps", DEFAULT_OBS_NORM["eps"])),
        "training": False,
        "norm_reward": False,
        "old_reward": np.array([]),
    }
    return pickle.PROTO + b"\x02" + _instance(VEC_NORMALIZE, state) + pickle.STOP


# ---------------------------------------------------------------------------------------------------------------------
# The ``data`` JSON, as save_util.data_to_json writes it
# ---------------------------------------------------------------------------------------------------------------------


def _readable(value: Any, full: bool = True) -> Any:
    """A JSON value as SB3 stores it beside a pickle: itself when JSON can hold it, else ``str`` (arrays in full
    unless ``full=False``: then cut short with ``...`` as numpy prints large arrays, as in SB3's own zips)."""
    try:
        json.dumps(value)
        return value
    except TypeError:
        with np.printoptions(threshold=sys.maxsize if full else 1000, floatmode="unique"):
            return str(value)


def _serialized(pickled: bytes, type_repr: str, attributes: dict[str, Any], full: bool = True) -> dict[str, Any]:
    entry = {":type:": type_repr, ":serialized:": base64.b64encode(pickled).decode()}
    return entry | {name: _readable(value, full) for name, value in attributes.items()}


def _class_entry(cls: tuple[str, str]) -> dict[str, Any]:
    return _serialized(_global_pickle(*cls), "<class 'abc.ABCMeta'>", {"__module__": cls[0]})


def _object_entry(obj: Any) -> dict[str, Any]:
    """A picklable object (a gymnasium space, a dict of kwargs) with its first-level attributes.

    An image space's bounds (0 and 255 everywhere) are printed short, as SB3's own zips have them, with
    gymnasium's one-number ``low_repr``/``high_repr`` beside them for readers.
    """
    attributes = dict(obj if isinstance(obj, dict) else vars(obj))
    image = is_image_space(obj)
    if image:
        attributes |= {"low_repr": "0", "high_repr": "255"}
    return _serialized(pickle.dumps(obj, protocol=4), str(type(obj)), attributes, full=not image)


# ---------------------------------------------------------------------------------------------------------------------
# What SB3 can express
# ---------------------------------------------------------------------------------------------------------------------


def _name(policy: LoadedPolicy) -> str:
    return f"policy {policy.path}" if policy.path is not None else "the policy"


def _check(policy: LoadedPolicy, algo: str | None) -> Algo:
    """The SB3 algorithm for ``policy``; raises :class:`SB3ExportError` for what SB3 cannot express."""
    name = _name(policy)
    if algo is not None and algo not in ALGOS:
        raise SB3ExportError(f"unknown algo {algo!r}; expected one of {', '.join(ALGOS)}")
    expected = ALGO_OF_KIND[policy.kind]
    if algo is not None and algo != expected:
        why = (
            "SAC's actor (a tanh-squashed Gaussian with a state-dependent std) is no PPO ActorCriticPolicy"
            if expected == "sac"
            else "its actor is no SAC actor (SAC squashes a Gaussian with a state-dependent std through tanh)"
        )
        raise SB3ExportError(
            f"{name} has kind {policy.kind}: it exports as SB3 {expected.upper()}, not {algo.upper()} ({why})"
        )
    obs, act = policy.observation_space, policy.action_space
    if not isinstance(obs, gym.spaces.Box):
        raise SB3ExportError(f"{name}: cannot export {describe_space(obs)} observations (only Box: SB3's MlpPolicy)")
    if is_image_space(obs) and (policy.kind == "sac_actor" or "cnn" not in policy.params):
        raise SB3ExportError(
            f"{name}: cannot export {policy.kind} policy on image observations {describe_space(obs)} without a CNN "
            "(our SAC actor has none; SB3 would rescale the pixels by 1/255 before its MLP, ours take them raw)"
        )
    if isinstance(act, gym.spaces.Discrete):
        if int(act.start) != 0:
            raise SB3ExportError(f"{name}: cannot export {describe_space(act)} actions (SB3's actions start at 0)")
    elif isinstance(act, gym.spaces.Box):
        if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
            raise SB3ExportError(
                f"{name}: cannot export {describe_space(act)} actions: SB3 needs finite Box action bounds"
            )
        if policy.kind != "sac_actor" and not policy.config.get("clip_actions", True):
            raise SB3ExportError(
                f"{name} has clip_actions=False, but SB3's predict always clips Box actions to the bounds"
            )
    else:
        raise SB3ExportError(f"{name}: cannot export {describe_space(act)} actions (only Discrete and Box)")
    if policy.kind == "actor_critic" and "shared" in policy.params:
        raise SB3ExportError(
            f"{name} has a shared actor-critic trunk, which SB3 (>= 1.8) cannot express: "
            "its ActorCriticPolicy has separate pi and vf networks"
        )
    if policy.activation not in TORCH_ACTIVATIONS:
        raise SB3ExportError(f"{name}: activation {policy.activation!r} has no torch.nn class for SB3's activation_fn")
    return expected


# ---------------------------------------------------------------------------------------------------------------------
# params -> SB3 state_dicts
# ---------------------------------------------------------------------------------------------------------------------


def _sequential(mlp: dict[str, Tensor], prefix: str, head: str | None = None) -> dict[str, Tensor]:
    """An MLP's layers under SB3's ``nn.Sequential`` names (Linear at 0, 2, 4, ...); the last at ``head`` if given."""
    n = len(mlp) // 2
    out: dict[str, Tensor] = {}
    for i in range(n):
        name = head if head is not None and i == n - 1 else f"{prefix}{2 * i}"
        for p in ("weight", "bias"):
            out[f"{name}.{p}"] = mlp[f"layers.{i}.{p}"]
    return out


def _float32(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state_dict.items()}


def _adam_state(n_params: int, eps: float = 1e-8) -> dict[str, Any]:
    """A fresh Adam ``state_dict`` over ``n_params`` tensors, from this torch's Adam (SB3 loads it over its own)."""
    dummies = [torch.zeros(1, requires_grad=True) for _ in range(n_params)]
    return torch.optim.Adam(dummies, lr=LEARNING_RATE, eps=eps).state_dict()


def _check_dict_space(policy: LoadedPolicy, space: gym.Space[Any] | None) -> gym.spaces.Dict | None:
    """``space`` when SB3's ``MultiInputPolicy`` on it computes our flat input; ``None`` for ``None`` or the flat
    ``Box`` itself; :class:`SB3ExportError` otherwise (the message says why)."""
    if space is None or space == policy.observation_space:
        return None
    name = _name(policy)
    if not isinstance(space, gym.spaces.Dict):
        raise SB3ExportError(f"{name}: observation_space must be the env's Dict space (or None), got {space}")
    for key, sub in space.spaces.items():
        if not isinstance(key, str):
            raise SB3ExportError(f"{name}: observation_space key {key!r} is not a str, as SB3's dict observations need")
        if not isinstance(sub, gym.spaces.Box) or (sub.dtype == np.uint8 and len(sub.shape) == 3):
            raise SB3ExportError(
                f"{name}: cannot export observation_space entry {key!r} = {sub}: only Box entries that are not images "
                "(SB3's CombinedExtractor flattens those as we do; it puts a NatureCNN on images)"
            )
        if len(sub.shape) == 0:
            raise SB3ExportError(f"{name}: observation_space entry {key!r} is a scalar Box; SB3 flattens from axis 1")
    flat = gym.spaces.flatten_space(space)
    ours = policy.observation_space
    assert isinstance(flat, gym.spaces.Box) and isinstance(ours, gym.spaces.Box)
    # Compared as float32, the dtype GymEnv gives a flattened float space (and so the policy file).
    bounds = ((flat.low, ours.low), (flat.high, ours.high))
    same = flat.shape == ours.shape and all(
        np.array_equal(a.astype(np.float32), b.astype(np.float32)) for a, b in bounds
    )
    if not same:
        raise SB3ExportError(
            f"{name} acts on {describe_space(ours)} observations, but observation_space {space} flattens to "
            f"{describe_space(flat)}: give the Dict space of the env the policy was trained on"
        )
    return space


def _obs_dim(policy: LoadedPolicy) -> int:
    """The width the MLPs see: NatureCNN's features for CNN policies, else the flattened observation."""
    return FEATURES_DIM if "cnn" in policy.params else math.prod(policy.observation_space.shape or ())


def _observation_space(policy: LoadedPolicy) -> gym.Space[Any]:
    """The observation space SB3's policy has: an image channels first (behind SB3's ``VecTransposeImage``)."""
    space = policy.observation_space
    if "cnn" in policy.params and isinstance(space, gym.spaces.Box) and space.shape != channels_first(space.shape):
        return gym.spaces.Box(0, 255, channels_first(space.shape), np.uint8)
    return space


def _ppo(policy: LoadedPolicy) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Tensor]]:
    """``(policy_kwargs, {file: state_dict}, pytorch_variables)`` of a PPO ``ActorCriticPolicy``."""
    params = policy.params
    pi_arch = mlp_sizes(params["pi"])[1:-1]
    if policy.kind == "mlp":
        # BC has no value net; SB3's PPO needs one: fresh, as SB3 initialises it, of pi's widths.
        vf = mlp_init(random.key(0), [_obs_dim(policy), *pi_arch, 1], output_gain=1.0)
    else:
        vf = params["vf"]
    sd = {
        **_sequential(params["pi"], "mlp_extractor.policy_net.", head="action_net"),
        **_sequential(vf, "mlp_extractor.value_net.", head="value_net"),
    }
    n_params = len(sd)
    if "cnn" in params:
        # SB3 registers its one shared NatureCNN three times (the optimizer sees it once).
        cnn = {
            f"{theirs}.{p}": params["cnn"][f"{ours}.{p}"]
            for ours, theirs in NATURE_CNN_NAMES.items()
            for p in ("weight", "bias")
        }
        for prefix in ("features_extractor.", "pi_features_extractor.", "vf_features_extractor."):
            sd.update({prefix + k: v for k, v in cnn.items()})
        n_params += len(cnn)
    if "log_std" in params:
        sd["log_std"] = params["log_std"]
        n_params += 1
    kwargs = {
        "net_arch": {"pi": pi_arch, "vf": mlp_sizes(vf)[1:-1]},
        "activation_fn": getattr(torch.nn, TORCH_ACTIVATIONS[policy.activation]),
    }
    files = {"policy": _float32(sd), "policy.optimizer": _adam_state(n_params, eps=PPO_ADAM_EPS)}
    return kwargs, files, {}


def _critics(policy: LoadedPolicy, trunk_arch: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(critic, critic_target)``: from ``policy.extras`` when they fit the spaces, else fresh."""
    critic = policy.extras.get("critic")
    if critic is None:
        critic = sac.critic_init(random.key(0), policy.observation_space, policy.action_space, trunk_arch)
    target = policy.extras.get("critic_target", critic)
    in_dim = _obs_dim(policy) + math.prod(policy.action_space.shape or ())
    archs = set()
    for part, tree in (("critic", critic), ("critic_target", target)):
        if not isinstance(tree, dict) or not tree or set(tree) != {f"q{i}" for i in range(len(tree))}:
            raise SB3ExportError(f"{_name(policy)}: extras[{part!r}] is not a set of critics q0, q1, ...")
        for q, mlp in tree.items():
            sizes = mlp_sizes(mlp)
            if sizes[0] != in_dim or sizes[-1] != 1:
                raise SB3ExportError(
                    f"{_name(policy)}: extras[{part!r}][{q!r}] maps {sizes[0]} -> {sizes[-1]}, expected {in_dim} -> 1"
                )
            archs.add(tuple(sizes[1:-1]))
    if len(archs) != 1 or len(critic) != len(target):
        raise SB3ExportError(
            f"{_name(policy)}: the critics in extras differ in shape; SB3's critics share one net_arch"
        )
    return critic, target


def _sac(policy: LoadedPolicy) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Tensor]]:
    """``(policy_kwargs, {file: state_dict}, pytorch_variables)`` of a SAC ``SACPolicy``."""
    params = policy.params
    trunk_arch = mlp_sizes(params["trunk"])[1:] if params["trunk"] else []
    critic, target = _critics(policy, trunk_arch)
    qf_arch = mlp_sizes(critic["q0"])[1:-1]
    actor = {
        **(_sequential(params["trunk"], "actor.latent_pi.") if params["trunk"] else {}),
        **_sequential(params["mu"], "", head="actor.mu"),
        **_sequential(params["log_std"], "", head="actor.log_std"),
    }
    critics = {
        k: v
        for part, tree in (("critic", critic), ("critic_target", target))
        for q, mlp in tree.items()
        for k, v in _sequential(mlp, f"{part}.qf{q[1:]}.").items()
    }
    log_ent_coef = policy.extras.get("log_ent_coef", torch.zeros(1))
    kwargs: dict[str, Any] = {
        "net_arch": trunk_arch if qf_arch == trunk_arch else {"pi": trunk_arch, "qf": qf_arch},
        "activation_fn": getattr(torch.nn, TORCH_ACTIVATIONS[policy.activation]),
        "use_sde": False,
    }
    if len(critic) != 2:
        kwargs["n_critics"] = len(critic)
    n_critic_params = sum(1 for k in critics if k.startswith("critic."))
    files = {
        "policy": _float32({**actor, **critics}),
        "actor.optimizer": _adam_state(len(actor)),
        "critic.optimizer": _adam_state(n_critic_params),
        "ent_coef_optimizer": _adam_state(1),
    }
    variables = {"log_ent_coef": log_ent_coef.detach().to("cpu", torch.float32).reshape(1).clone().requires_grad_()}
    return kwargs, files, variables


# ---------------------------------------------------------------------------------------------------------------------
# export_sb3
# ---------------------------------------------------------------------------------------------------------------------


def _zip_path(out: str | Path) -> Path:
    """``out`` with ``.zip`` appended unless it has it (SB3's ``save`` does the same)."""
    out = Path(out)
    return out if out.suffix == ".zip" else out.with_name(out.name + ".zip")


def vecnormalize_path(out: str | Path) -> Path:
    """Where :func:`export_sb3` writes the ``VecNormalize`` statistics of a policy exported to ``out``."""
    out = _zip_path(out)
    return out.with_name(f"{out.stem}_vecnormalize.pkl")


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _system_info() -> str:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"- OS: {platform.platform()}\n- Python: {platform.python_version()}\n"
        f"- Stable-Baselines3: {SB3_FORMAT_VERSION} (format; written by imitation_fn {version('imitation-fn')})\n"
        f"- PyTorch: {torch.__version__}\n- Numpy: {np.__version__}\n"
        f"- Gymnasium: {version('gymnasium')}\n"
    )


def _zip_bytes(data: dict[str, Any], files: dict[str, dict[str, Any]], variables: dict[str, Tensor]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w") as archive:
        archive.writestr("data", json.dumps(data, indent=4))
        archive.writestr("pytorch_variables.pth", _torch_bytes(variables))
        for name, state_dict in files.items():
            archive.writestr(f"{name}.pth", _torch_bytes(state_dict))
        archive.writestr("_stable_baselines3_version", SB3_FORMAT_VERSION)
        archive.writestr("system_info.txt", _system_info())
    return buffer.getvalue()


def _write(path: Path, content: bytes) -> None:
    serialization._atomic_write(path, lambda tmp: Path(tmp).write_bytes(content))


def export_sb3(
    policy: LoadedPolicy | str | Path,
    out: str | Path,
    *,
    algo: Algo | None = None,
    overwrite: bool = False,
    observation_space: gym.Space[Any] | None = None,
) -> Path:
    """Write ``policy`` (a :class:`LoadedPolicy` or a path :func:`load_policy` reads) as an SB3 model zip.

    ``algo`` is inferred from the kind (``actor_critic``/``mlp`` -> ``"ppo"``, ``sac_actor`` -> ``"sac"``);
    another raises. ``out`` gets ``.zip`` appended unless it ends in it. An existing file is replaced only
    with ``overwrite=True`` (else ``FileExistsError``): nothing trained is lost silently. With observation
    normalisation, :func:`vecnormalize_path` ``(out)`` is written too. ``observation_space``: for a policy
    trained on a Dict env, the env's ``Dict`` space, to write a ``MultiInputPolicy`` (module docstring).
    Returns the zip's path. Raises :class:`SB3ExportError` (an ``InputError``) for what SB3 cannot
    express (see the module docstring).
    """
    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    chosen = _check(loaded, algo)
    dict_space = _check_dict_space(loaded, observation_space)
    zip_path = _zip_path(out)
    targets = [zip_path] + ([vecnormalize_path(zip_path)] if loaded.obs_norm is not None else [])
    for target in targets:
        if target.is_dir():
            raise SB3ExportError(f"{target} is a directory; give the model's file name, e.g. {target / 'model.zip'}")
        if target.exists() and not overwrite:
            error = FileExistsError(f"{target} exists; pass overwrite=True to replace it")
            error.filename = str(target)
            raise error

    kwargs, files, variables = _ppo(loaded) if chosen == "ppo" else _sac(loaded)
    if dict_space is not None:
        policy_class = MULTI_INPUT_POLICY[chosen]
    elif chosen == "ppo":
        policy_class = ACTOR_CRITIC_CNN_POLICY if "cnn" in loaded.params else ACTOR_CRITIC_POLICY
    else:
        policy_class = SAC_POLICY
    data: dict[str, Any] = {
        "policy_class": _class_entry(policy_class),
        "policy_kwargs": _object_entry(kwargs),
        "observation_space": _object_entry(_observation_space(loaded) if dict_space is None else dict_space),
        "action_space": _object_entry(loaded.action_space),
        "n_envs": 1,  # load(path, env) and set_env replace it
        "verbose": 0,
        "use_sde": False,
    }
    if chosen == "ppo":
        data["clip_range"] = PPO_CLIP_RANGE
    else:
        # SAC's "auto" target entropy reads it off the env, which load(path) without an env lacks (SB3's zips
        # store the number too).
        data["ent_coef"] = "auto"
        data["target_entropy"] = -float(math.prod(loaded.action_space.shape or ()))
    content = _zip_bytes(data, files, variables)
    if loaded.obs_norm is not None:
        _write(vecnormalize_path(zip_path), _vecnormalize_pickle(loaded, dict_space))
    _write(zip_path, content)
    return zip_path


__all__ = ["ALGOS", "ALGO_OF_KIND", "Algo", "SB3ExportError", "export_sb3", "vecnormalize_path"]
