"""Loading stable-baselines3 zips without SB3 and without unpickling.

The zips are built here with SB3's exact layout (the ``data`` JSON as ``save_util.data_to_json`` writes
it, a ``policy.pth`` state_dict of ``torch.nn`` modules named the SB3 way), and the loaded policy must
act exactly like those modules. When stable-baselines3 is installed, real SB3 models are compared too.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from imitation_fn.core import random
from imitation_fn.core.errors import InputError
from imitation_fn.policies import actor_critic, sac
from imitation_fn.policies.io import load_policy, load_sb3
from imitation_fn.policies.sb3 import SB3FormatError, class_name, pickled_globals, read_space

# ---------------------------------------------------------------------------------------------------------------------
# Building SB3-layout zips
# ---------------------------------------------------------------------------------------------------------------------


def _pickled_global(module: str, name: str) -> str:
    """Base64 of the protocol-4 pickle of a class reference, byte for byte what cloudpickle writes for one."""
    m, n = module.encode(), name.encode()
    return base64.b64encode(
        b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x94\x8c" + bytes([len(n)]) + n + b"\x94\x93\x94."
    ).decode()


# Unpickling this would import a module that does not exist: any pickle.loads on our path fails loudly.
POISON = _pickled_global("imitation_fn_tests_never_unpickle", "Boom")
ACTOR_CRITIC_POLICY = "gAWVOwAAAAAAAACMIXN0YWJsZV9iYXNlbGluZXMzLmNvbW1vbi5wb2xpY2llc5SMEUFjdG9yQ3JpdGljUG9saWN5lJOULg=="
SAC_POLICY = "gAWVMAAAAAAAAACMHnN0YWJsZV9iYXNlbGluZXMzLnNhYy5wb2xpY2llc5SMCVNBQ1BvbGljeZSTlC4="


def _space_entry(space: gym.Space[Any]) -> dict[str, Any]:
    """A space as SB3's data_to_json stores it: the pickle plus str() of each attribute."""
    if isinstance(space, gym.spaces.Box):
        return {
            ":type:": "<class 'gymnasium.spaces.box.Box'>",
            ":serialized:": POISON,
            "dtype": str(space.dtype),
            "_shape": list(space.shape),
            "low": str(space.low),
            "bounded_below": str(space.bounded_below),
            "high": str(space.high),
            "bounded_above": str(space.bounded_above),
            "low_repr": None,
            "high_repr": None,
            "_np_random": None,
        }
    if isinstance(space, gym.spaces.Discrete):
        return {
            ":type:": "<class 'gymnasium.spaces.discrete.Discrete'>",
            ":serialized:": POISON,
            "dtype": "int64",
            "n": str(space.n),
            "start": str(space.start),
            "_shape": [],
            "_np_random": None,
        }
    return {":type:": f"<class '{type(space).__module__}.{type(space).__name__}'>", ":serialized:": POISON}


def _data(
    policy_class: str,
    obs_space: gym.Space[Any],
    act_space: gym.Space[Any],
    policy_kwargs: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(policy_kwargs or {})
    if any(isinstance(v, str) and v.startswith("<class") for v in kwargs.values()):
        # Not JSON-serialisable in SB3's eyes: pickled, with the readable items beside the pickle.
        kwargs = {":type:": "<class 'dict'>", ":serialized:": POISON, **kwargs}
    return {
        "policy_class": {
            ":type:": "<class 'abc.ABCMeta'>",
            ":serialized:": policy_class,
            "__module__": "stable_baselines3.common.policies",
        },
        "policy_kwargs": kwargs,
        "observation_space": _space_entry(obs_space),
        "action_space": _space_entry(act_space),
        "use_sde": False,
        "lr_schedule": {":type:": "<class 'function'>", ":serialized:": POISON},
        **extra,
    }


def _write_zip(path: Path, data: dict[str, Any], state_dict: dict[str, torch.Tensor], variables: Any = None) -> Path:
    def pth(obj: Any) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", json.dumps(data, indent=4))
        z.writestr("pytorch_variables.pth", pth(variables or {}))
        z.writestr("policy.pth", pth(state_dict))
        z.writestr("policy.optimizer.pth", pth({}))
        z.writestr("_stable_baselines3_version", "2.3.0")
        z.writestr("system_info.txt", "- OS: test")
    return path


def _mlp(sizes: list[int], act: type[nn.Module], activate_final: bool) -> nn.Sequential:
    """SB3's create_mlp: Linear, act, Linear, act, ... (indices 0, 2, 4 hold the Linear layers)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or activate_final:
            layers.append(act())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """SB3's ActorCriticPolicy (MlpPolicy, separate pi/vf networks), same module names."""

    def __init__(self, obs_dim: int, act_space: gym.Space[Any], pi: list[int], vf: list[int], act: type[nn.Module]):
        super().__init__()
        self.mlp_extractor = nn.Module()
        self.mlp_extractor.policy_net = _mlp([obs_dim, *pi], act, activate_final=True)
        self.mlp_extractor.value_net = _mlp([obs_dim, *vf], act, activate_final=True)
        self.box = isinstance(act_space, gym.spaces.Box)
        n_out = int(np.prod(act_space.shape)) if self.box else int(act_space.n)  # type: ignore[attr-defined]
        self.action_net = nn.Linear(pi[-1] if pi else obs_dim, n_out)
        self.value_net = nn.Linear(vf[-1] if vf else obs_dim, 1)
        if self.box:
            self.log_std = nn.Parameter(torch.linspace(-1.0, 0.5, n_out))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        out = self.action_net(self.mlp_extractor.policy_net(obs))
        if self.box:
            return torch.distributions.Normal(out, self.log_std.exp())
        return torch.distributions.Categorical(logits=out)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(self.mlp_extractor.value_net(obs)).squeeze(-1)


class SACPolicy(nn.Module):
    """SB3's SACPolicy: actor (latent_pi, mu, log_std) and twin critics, same module names."""

    def __init__(self, obs_dim: int, act_dim: int, arch: list[int]):
        super().__init__()
        self.actor = nn.Module()
        self.actor.latent_pi = _mlp([obs_dim, *arch], nn.ReLU, activate_final=True)
        self.actor.mu = nn.Linear(arch[-1], act_dim)
        self.actor.log_std = nn.Linear(arch[-1], act_dim)
        with torch.no_grad():
            self.actor.log_std.bias[0] = 30.0  # outside [-20, 2]: the loader's policy must clamp it as SB3 does
        for part in ("critic", "critic_target"):
            critic = nn.Module()
            for i in range(2):
                setattr(critic, f"qf{i}", _mlp([obs_dim + act_dim, *arch, 1], nn.ReLU, activate_final=False))
            setattr(self, part, critic)

    def mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.actor.latent_pi(obs)
        return self.actor.mu(h), torch.clamp(self.actor.log_std(h), -20, 2)


OBS = gym.spaces.Box(
    low=np.array([-4.8, -np.inf, -0.41887903, -np.inf], np.float32),
    high=np.array([4.8, np.inf, 0.41887903, np.inf], np.float32),
)
BOX_ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
IMAGES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # what SB3's CnnPolicy sees on Atari (stacked, transposed)


def _obs(n: int = 64, dim: int = 4, seed: int = 0) -> torch.Tensor:
    return 2.0 * random.normal(random.key(seed), (n, dim))


# ---------------------------------------------------------------------------------------------------------------------
# SB3-layout zips built here
# ---------------------------------------------------------------------------------------------------------------------


def test_ppo_discrete_default_acts_like_sb3_modules(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = ActorCritic(4, gym.spaces.Discrete(2), [64, 64], [64, 64], nn.Tanh)
    data = _data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(2), clip_range={":type:": "x", ":serialized:": POISON})
    policy = load_sb3(_write_zip(tmp_path / "ppo.zip", data, ref.state_dict()))

    assert policy.kind == "actor_critic"
    assert policy.config["activation"] == "tanh"
    assert policy.config["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    assert policy.config["source"]["algorithm"] == "PPO"
    assert policy.action_space == gym.spaces.Discrete(2)
    np.testing.assert_array_equal(policy.observation_space.low, OBS.low)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(policy.observation_space.high, OBS.high)  # type: ignore[attr-defined]

    obs = _obs()
    with torch.no_grad():
        dist = ref.dist(obs)
        acts = dist.sample()
        torch.testing.assert_close(policy.policy_fn()(obs, random.key(1)), torch.argmax(dist.logits, -1))
        torch.testing.assert_close(policy.distribution(obs).log_prob(acts), dist.log_prob(acts))
        torch.testing.assert_close(actor_critic.value(policy.params, obs, "tanh"), ref.value(obs))


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_box_actions_relu_custom_arch_act_like_sb3_modules(tmp_path: Path, algo: str) -> None:
    torch.manual_seed(1)
    ref = ActorCritic(4, BOX_ACT, [16], [8, 8], nn.ReLU)
    with torch.no_grad():
        ref.action_net.bias += 3.0  # means beyond the bounds: predict clips them
    kwargs = {"activation_fn": "<class 'torch.nn.modules.activation.ReLU'>", "net_arch": {"pi": [16], "vf": [8, 8]}}
    extra = {"clip_range": {":type:": "x", ":serialized:": POISON}} if algo == "PPO" else {}
    policy = load_sb3(
        _write_zip(tmp_path / "m.zip", _data(ACTOR_CRITIC_POLICY, OBS, BOX_ACT, kwargs, **extra), ref.state_dict())
    )

    assert policy.config["activation"] == "relu"
    assert policy.config["net_arch"] == {"pi": [16], "vf": [8, 8]}
    assert policy.config["source"]["algorithm"] == algo
    obs = _obs()
    with torch.no_grad():
        dist = ref.dist(obs)
        acts = dist.sample()
        expected = torch.clamp(dist.mean, -2.0, 2.0)
        assert (dist.mean > 2.0).any(), "the test must exercise clipping"
        torch.testing.assert_close(policy.policy_fn()(obs, random.key(0)), expected)
        ours = policy.distribution(obs)
        torch.testing.assert_close(ours.mode(), dist.mean)
        torch.testing.assert_close(ours.log_prob(acts), dist.log_prob(acts).sum(-1))
        torch.testing.assert_close(actor_critic.value(policy.params, obs, "relu"), ref.value(obs))


def test_sac_acts_like_sb3_modules(tmp_path: Path) -> None:
    torch.manual_seed(2)
    act_space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32))
    ref = SACPolicy(4, 2, [32, 32])
    data = _data(SAC_POLICY, OBS, act_space, {"use_sde": False, "net_arch": [32, 32]})
    variables = {"log_ent_coef": torch.tensor([-0.7], requires_grad=True)}
    policy = load_sb3(_write_zip(tmp_path / "sac.zip", data, ref.state_dict(), variables))

    assert policy.kind == "sac_actor"
    assert policy.config["activation"] == "relu"
    assert policy.config["net_arch"] == [32, 32]
    assert policy.config["source"]["algorithm"] == "SAC"
    obs = _obs()
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 0.5])
    with torch.no_grad():
        mean, log_std = ref.mean_log_std(obs)
        assert (log_std == 2.0).all(dim=0).any(), "the test must exercise the log_std clamp"
        deterministic = low + 0.5 * (torch.tanh(mean) + 1.0) * (high - low)  # SB3's unscale_action
        torch.testing.assert_close(policy.policy_fn()(obs, random.key(0)), deterministic)
        # Log-density of squashed actions: the Gaussian's at atanh(x) minus log|d tanh|.
        x = 1.9 * torch.rand(64, 2) - 0.95
        u = torch.atanh(x)
        expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) - torch.log1p(-(x**2)).sum(-1)
        torch.testing.assert_close(policy.distribution(obs).log_prob(x), expected, rtol=1e-4, atol=1e-4)
        a = 2.0 * torch.rand(64, 2) - 1.0
        q = sac.critic_apply(policy.extras["critic"], obs, a)
        torch.testing.assert_close(q[0], ref.critic.qf0(torch.cat([obs, a], -1)).squeeze(-1))
        torch.testing.assert_close(q[1], ref.critic.qf1(torch.cat([obs, a], -1)).squeeze(-1))
        q_target = sac.critic_apply(policy.extras["critic_target"], obs, a)
        torch.testing.assert_close(q_target[1], ref.critic_target.qf1(torch.cat([obs, a], -1)).squeeze(-1))
    torch.testing.assert_close(policy.extras["log_ent_coef"], torch.tensor([-0.7]))


def test_no_pickle_is_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = ActorCritic(4, gym.spaces.Discrete(3), [8], [8], nn.Tanh)
    path = _write_zip(tmp_path / "m.zip", _data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(3)), ref.state_dict())

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    policy = load_sb3(path)
    with torch.no_grad():
        torch.testing.assert_close(policy.policy_fn()(_obs(), random.key(0)), torch.argmax(ref.dist(_obs()).logits, -1))


def test_load_policy_dispatches_zip_and_converts_to_our_format(tmp_path: Path) -> None:
    ref = ActorCritic(4, BOX_ACT, [8], [8], nn.Tanh)
    path = _write_zip(tmp_path / "m.zip", _data(ACTOR_CRITIC_POLICY, OBS, BOX_ACT), ref.state_dict())
    policy = load_policy(path)
    policy.save(tmp_path / "converted")
    again = load_policy(tmp_path / "converted")
    obs = _obs()
    torch.testing.assert_close(again.policy_fn()(obs, random.key(0)), policy.policy_fn()(obs, random.key(0)))
    assert again.config["source"]["format"] == "stable-baselines3"


def test_activation_fallback_warns(tmp_path: Path) -> None:
    ref = ActorCritic(4, gym.spaces.Discrete(2), [8], [8], nn.ReLU)
    data = _data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(2))
    data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": POISON, "activation_fn": "<unreadable>"}
    with pytest.warns(UserWarning, match="activation_fn"):
        policy = load_sb3(_write_zip(tmp_path / "m.zip", data, ref.state_dict()))
    assert policy.config["activation"] == "tanh"
    # The pickle alone is enough when it references a torch activation class (read by disassembly).
    data["policy_kwargs"][":serialized:"] = base64.b64encode(pickle.dumps({"activation_fn": nn.ReLU})).decode()
    assert load_sb3(_write_zip(tmp_path / "m2.zip", data, ref.state_dict())).config["activation"] == "relu"


def _unsupported(tmp_path: Path, **changes: Any) -> str:
    ref = ActorCritic(4, gym.spaces.Discrete(2), [8], [8], nn.Tanh)
    sd = dict(ref.state_dict())
    sd.update(changes.pop("state_dict", {}))
    data = _data(
        changes.pop("policy_class", ACTOR_CRITIC_POLICY),
        changes.pop("obs", OBS),
        changes.pop("act", gym.spaces.Discrete(2)),
        changes.pop("policy_kwargs", None),
    )
    data.update(changes)
    with pytest.raises(SB3FormatError) as info:
        load_sb3(_write_zip(tmp_path / "bad.zip", data, sd))
    return str(info.value)


def test_unsupported_models_are_refused_with_a_reason(tmp_path: Path) -> None:
    assert "TD3Policy" in _unsupported(
        tmp_path, policy_class=_pickled_global("stable_baselines3.td3.policies", "TD3Policy")
    )
    assert "our SAC actor has no CNN" in _unsupported(
        tmp_path, policy_class=_pickled_global("stable_baselines3.sac.policies", "CnnPolicy"), obs=IMAGES
    )
    cnn_policy = _pickled_global("stable_baselines3.common.policies", "ActorCriticCnnPolicy")
    assert "not an image space" in _unsupported(tmp_path, policy_class=cnn_policy)
    assert "MlpPolicy on the image" in _unsupported(tmp_path, obs=IMAGES)
    for kwargs, says in (
        ({"normalize_images": False}, "normalize_images=False"),
        ({"share_features_extractor": False}, "share_features_extractor=False"),
        ({"features_extractor_kwargs": {"features_dim": 256}}, "features_dim=256"),
        ({"features_extractor_kwargs": {"normalized_image": True}}, "normalized_image=True"),
        ({"features_extractor_class": "<class 'my.module.ResNet'>"}, "ResNet"),
    ):
        assert says in _unsupported(tmp_path, policy_class=cnn_policy, obs=IMAGES, policy_kwargs=kwargs)
    dqn_box = _pickled_global("stable_baselines3.dqn.policies", "DQNPolicy")
    assert "non-Discrete" in _unsupported(tmp_path, policy_class=dqn_box, act=BOX_ACT)
    cnn = {
        "features_extractor.cnn.0.weight": torch.zeros(32, 4, 8, 8),
        "features_extractor.cnn.0.bias": torch.zeros(32),
    }
    assert "features extractor" in _unsupported(tmp_path, state_dict=cnn)
    shared = {"mlp_extractor.shared_net.0.weight": torch.zeros(8, 4), "mlp_extractor.shared_net.0.bias": torch.zeros(8)}
    assert "shared" in _unsupported(tmp_path, state_dict=shared)
    assert "shared net_arch" in _unsupported(tmp_path, policy_kwargs={"net_arch": [8, {"pi": [8], "vf": [8]}]})
    nature = "<class 'stable_baselines3.common.torch_layers.NatureCNN'>"
    assert "NatureCNN" in _unsupported(tmp_path, policy_kwargs={"features_extractor_class": nature})
    assert "Softplus" in _unsupported(
        tmp_path, policy_kwargs={"activation_fn": "<class 'torch.nn.modules.activation.Softplus'>"}
    )
    assert "gSDE" in _unsupported(tmp_path, use_sde=True)
    assert "Discrete" in _unsupported(tmp_path, obs=gym.spaces.Discrete(5))
    assert "MultiDiscrete" in _unsupported(tmp_path, act=gym.spaces.MultiDiscrete([2, 3]))
    wrong = {"action_net.weight": torch.zeros(2, 9)}
    assert "['pi']['layers.1.weight']" in _unsupported(tmp_path, state_dict=wrong)


def test_not_an_sb3_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(SB3FormatError, match="no 'data' entry"):
        load_sb3(path)


RAN: list[str] = []


class Payload:
    """A non-tensor object in policy.pth: unpickling it would run ``__setstate__`` (and record it)."""

    def __init__(self) -> None:
        self.value = 1

    def __setstate__(self, state: dict[str, Any]) -> None:
        RAN.append("Payload.__setstate__")
        self.__dict__.update(state)


def _zip_with(path: Path, entries: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return path


def _pth(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_policy_pth_with_pickled_objects_is_refused_without_running_them(tmp_path: Path) -> None:
    ref = ActorCritic(4, gym.spaces.Discrete(2), [8], [8], nn.Tanh)
    sd: dict[str, Any] = {**ref.state_dict(), "extra": Payload()}
    path = _write_zip(tmp_path / "m.zip", _data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(2)), sd)
    with pytest.raises(InputError) as info:
        load_policy(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: policy.pth holds objects other than tensors")
    assert f"{__name__}.Payload" in msg and "cannot be loaded safely" in msg
    assert "weights_only" not in msg and "trust" not in msg  # never point at the unsafe way round
    assert RAN == []
    # The same in pytorch_variables.pth.
    path = _write_zip(
        tmp_path / "v.zip", _data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(2)), ref.state_dict(), {"x": Payload()}
    )
    with pytest.raises(SB3FormatError, match=r"pytorch_variables.pth holds objects other than tensors"):
        load_sb3(path)
    assert RAN == []


def test_malformed_zips_are_input_errors_naming_the_zip(tmp_path: Path) -> None:
    ref = ActorCritic(4, gym.spaces.Discrete(2), [8], [8], nn.Tanh)
    good = _write_zip(tmp_path / "good.zip", _data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(2)), ref.state_dict())
    data = json.dumps(_data(ACTOR_CRITIC_POLICY, OBS, gym.spaces.Discrete(2)))
    policy = _pth(ref.state_dict())
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, expected: str, **entries: bytes | str) -> None:
        cases[name] = (_zip_with(tmp_path / f"{name}.zip", entries), expected)

    (tmp_path / "text.zip").write_text("not a zip at all")
    cases["text"] = (tmp_path / "text.zip", r"not a zip file, or a truncated or damaged one")
    (tmp_path / "cut.zip").write_bytes(good.read_bytes()[:-200])
    cases["cut"] = (tmp_path / "cut.zip", r"not an SB3 model zip, or a truncated one")
    case("no_policy", r"not an SB3 model zip, or a truncated one \(no 'policy.pth' entry", data=data)
    case("bad_json", r"its 'data' entry is not valid JSON", data="{'policy_class': ", **{"policy.pth": policy})
    case("json_list", r"its 'data' entry is not a JSON object", data="[1, 2]", **{"policy.pth": policy})
    case("garbage_pth", r"policy.pth is (not a torch file|damaged)", data=data, **{"policy.pth": b"\x00garbage"})
    case("cut_pth", r"policy.pth is damaged or not a torch file", data=data, **{"policy.pth": policy[:100]})
    case("list_pth", r"policy.pth does not hold a state_dict", data=data, **{"policy.pth": _pth([torch.zeros(2)])})
    broken = json.loads(data)
    del broken["observation_space"]["_shape"]
    case(
        "no_shape",
        r"cannot read the Box observation_space .*KeyError",
        data=json.dumps(broken),
        **{"policy.pth": policy},
    )
    for name, (path, expected) in cases.items():
        with pytest.raises(InputError, match=re.escape(str(path)) + ": " + expected) as info:
            load_policy(path)
        assert isinstance(info.value, SB3FormatError), name
    assert load_policy(good).path == good  # for messages such as check_spaces'


def test_pickled_globals_reads_class_references_by_disassembly() -> None:
    assert pickled_globals(SAC_POLICY) == [("stable_baselines3.sac.policies", "SACPolicy")]
    assert class_name({":serialized:": ACTOR_CRITIC_POLICY}) == "ActorCriticPolicy"
    # Real pickles: memoised module strings (BINGET) for a second class of the same module; protocol 2 GLOBAL.
    blob = base64.b64encode(pickle.dumps([nn.ReLU, nn.Tanh, nn.ReLU], protocol=5)).decode()
    assert pickled_globals(blob) == [
        ("torch.nn.modules.activation", "ReLU"),
        ("torch.nn.modules.activation", "Tanh"),
    ]
    blob2 = base64.b64encode(pickle.dumps(nn.ELU, protocol=2)).decode()
    assert pickled_globals(blob2) == [("torch.nn.modules.activation", "ELU")]
    assert pickled_globals("not base64 at all!") == []
    assert class_name("<class 'gymnasium.spaces.box.Box'>") == "Box"


def test_read_space_parses_numpy_reprs() -> None:
    box = gym.spaces.Box(
        low=np.array([[-1.5, -np.inf], [0.0, 1e-3]], np.float32), high=np.float32(7.25), dtype=np.float32
    )
    parsed = read_space(_space_entry(box), "observation_space")
    assert isinstance(parsed, gym.spaces.Box)
    assert parsed.shape == (2, 2)
    np.testing.assert_array_equal(parsed.low, box.low)
    np.testing.assert_array_equal(parsed.high, box.high)
    assert read_space(_space_entry(gym.spaces.Discrete(4, start=1)), "action_space") == gym.spaces.Discrete(4, start=1)


def test_read_space_reads_image_bounds_that_numpy_cut_short() -> None:
    entry = _space_entry(IMAGES)  # str() of a 28,224-value array: "[[[0 0 0 ... 0 0 0] ...", low_repr None
    assert "..." in entry["low"] and "..." in entry["high"]
    assert read_space(entry, "observation_space") == IMAGES
    assert read_space({**entry, "low": "[[[7 7 7 ... 7 7 7]]]", "low_repr": "7"}, "x").low.min() == 7  # type: ignore[attr-defined]
    with pytest.raises(SB3FormatError, match="cannot read"):  # not 0 everywhere that was printed: not guessed
        read_space({**entry, "low": "[[[0 0 3 ... 0 0 0]]]"}, "observation_space")
    big = gym.spaces.Box(-1.0, 1.0, (3, 40, 40), np.float32)
    with pytest.raises(SB3FormatError, match="cannot read"):  # only image bounds are inferred
        read_space(_space_entry(big), "observation_space")


# ---------------------------------------------------------------------------------------------------------------------
# Real stable-baselines3 models (optional dependency)
# ---------------------------------------------------------------------------------------------------------------------


def test_real_sb3_models_load_and_act_identically(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    obs_np = np.random.default_rng(0).uniform(-1.0, 1.0, (32, 3)).astype(np.float32) * np.array([1, 1, 8], np.float32)
    obs = torch.as_tensor(obs_np)

    models = {
        "ppo": sb3.PPO("MlpPolicy", "Pendulum-v1", device="cpu", seed=0, n_steps=64),
        "ppo_relu": sb3.PPO(
            "MlpPolicy",
            "Pendulum-v1",
            device="cpu",
            seed=0,
            n_steps=64,
            policy_kwargs={"activation_fn": nn.ReLU, "net_arch": {"pi": [16], "vf": [8, 8]}, "log_std_init": -0.5},
        ),
        "a2c": sb3.A2C("MlpPolicy", "Pendulum-v1", device="cpu", seed=0),
        "sac": sb3.SAC(
            "MlpPolicy", "Pendulum-v1", device="cpu", seed=0, buffer_size=100, policy_kwargs={"net_arch": [32, 32]}
        ),
    }
    for name, model in models.items():
        with torch.no_grad():
            for p in model.policy.parameters():  # move away from the zero-bias init so the check can fail
                p.add_(0.1 * torch.randn_like(p))
        model.save(tmp_path / name)
        policy = load_sb3(tmp_path / f"{name}.zip")
        expected, _ = model.predict(obs_np, deterministic=True)
        np.testing.assert_allclose(policy.policy_fn()(obs, random.key(0)).numpy(), expected, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            if name == "sac":
                mean, log_std, _ = model.actor.get_action_dist_params(obs)
                ours = policy.distribution(obs)
                torch.testing.assert_close(ours.mean, mean)
                torch.testing.assert_close(ours.log_std, log_std)
                a = torch.tanh(torch.randn(32, 1))
                q_sb3 = model.critic(obs, a)
                q_ours = sac.critic_apply(policy.extras["critic"], obs, a)
                torch.testing.assert_close(q_ours[0], q_sb3[0].squeeze(-1))
                torch.testing.assert_close(q_ours[1], q_sb3[1].squeeze(-1))
            else:
                acts = torch.randn(32, 1)
                values, log_prob, entropy = model.policy.evaluate_actions(obs, acts)
                ours_v, ours_lp, ours_ent = actor_critic.evaluate_actions(policy.params, obs, acts, policy.activation)
                torch.testing.assert_close(ours_v, values.squeeze(-1))
                torch.testing.assert_close(ours_lp, log_prob)
                torch.testing.assert_close(ours_ent, entropy)


def test_real_sb3_discrete(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0, n_steps=64)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save(tmp_path / "ppo")
    policy = load_policy(tmp_path / "ppo.zip")
    obs = _obs(128)
    expected, _ = model.predict(obs.numpy(), deterministic=True)
    np.testing.assert_array_equal(policy.policy_fn()(obs, random.key(0)).numpy(), expected)
    acts = torch.randint(0, 2, (128,))
    with torch.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(obs, acts)
    torch.testing.assert_close(policy.distribution(obs).log_prob(acts), log_prob)


# ---------------------------------------------------------------------------------------------------------------------
# Real SB3 CnnPolicy and DQN models (optional: stable-baselines3, ale-py)
# ---------------------------------------------------------------------------------------------------------------------


def _pong() -> Any:
    """SB3's Atari setup for Pong: ``make_atari_env`` + ``VecFrameStack(4)``, (84, 84, 4) frames that SB3 transposes."""
    ale_py = pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    gym.register_envs(ale_py)
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    return VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=1, seed=0), 4)


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Random frames ``(n, 4, 84, 84)``, each channel's noise at its own brightness (so the CNN features vary)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, *IMAGES.shape)) * rng.random((n, 4, 1, 1))).astype(np.uint8)


def _center(head: nn.Linear, outputs: torch.Tensor) -> None:
    """Shift ``head``'s bias by minus the mean of its ``outputs`` over the test observations, so that the argmax
    is not the same action everywhere (at SB3's init one action wins on every random frame)."""
    with torch.no_grad():
        head.bias -= outputs.mean(0)


@pytest.mark.parametrize("algo", ["PPO", "A2C", "DQN"])
def test_real_sb3_cnn_policies_load_and_act_identically(tmp_path: Path, algo: str) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    small = {"PPO": {"n_steps": 16, "batch_size": 16}, "A2C": {}, "DQN": {"buffer_size": 100}}[algo]
    model = getattr(sb3, algo)("CnnPolicy", _pong(), device="cpu", seed=0, **small)
    obs = _images(200)
    obs_t = torch.as_tensor(obs)
    with torch.no_grad():
        if algo == "DQN":
            _center(model.q_net.q_net[-1], model.q_net(obs_t))
        else:
            _center(model.policy.action_net, model.policy.get_distribution(obs_t).distribution.logits)
    model.save(tmp_path / "model")
    policy = load_policy(tmp_path / "model.zip")

    assert policy.observation_space == IMAGES and policy.action_space == gym.spaces.Discrete(6)
    assert policy.config["deterministic"] and policy.config["source"]["algorithm"] == algo
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(policy.policy_fn()(obs_t, random.key(0)).numpy(), expected)
    assert len(np.unique(expected)) > 2, "the test frames should not all get one action"
    if algo == "DQN":
        assert policy.kind == "mlp" and policy.config["net_arch"] == [] and policy.activation == "relu"
        target = model.q_net_target.state_dict()
        assert torch.equal(
            policy.extras["q_net_target"]["cnn"]["conv2.weight"], target["features_extractor.cnn.4.weight"]
        )
        assert torch.equal(policy.extras["q_net_target"]["pi"]["layers.0.bias"], target["q_net.0.bias"])
    else:
        assert policy.kind == "actor_critic" and policy.config["net_arch"] == {"pi": [], "vf": []}
        with torch.no_grad():
            values = model.policy.predict_values(obs_t).squeeze(-1)
        torch.testing.assert_close(actor_critic.value(policy.params, obs_t, policy.activation), values)
    if algo == "PPO":  # the expert acts on our own Pong's observations as SB3 does
        from imitation_fn import envs

        env = envs.make("ALE/Pong-v5", n_envs=2)
        frames = env.reset(random.key(0)).obs
        env.close()
        np.testing.assert_array_equal(
            policy.policy_fn()(frames, random.key(0)).numpy(), model.predict(frames.numpy(), deterministic=True)[0]
        )


def test_real_sb3_dqn_mlp_policy_is_the_greedy_q_policy(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.DQN("MlpPolicy", "CartPole-v1", device="cpu", seed=0, buffer_size=100, policy_kwargs={"net_arch": [32]})
    obs = _obs(256)
    with torch.no_grad():
        for p in model.q_net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.exploration_rate = 0.05
    model.save(tmp_path / "dqn")
    policy = load_policy(tmp_path / "dqn.zip")
    assert policy.kind == "mlp" and policy.config["net_arch"] == [32] and policy.activation == "relu"
    assert policy.config["deterministic"] and policy.config["source"]["exploration_rate"] == 0.05
    expected, _ = model.predict(obs.numpy(), deterministic=True)
    np.testing.assert_array_equal(policy.policy_fn()(obs, random.key(0)).numpy(), expected)
    assert len(np.unique(expected)) == 2
    with torch.no_grad():  # stochastic acting samples softmax(Q)
        torch.testing.assert_close(policy.distribution(obs).probs, torch.softmax(model.q_net(obs), -1))
    assert set(policy.extras["q_net_target"]) == {"pi"}


def test_real_sb3_cnn_policy_with_separate_extractors_is_refused(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.PPO(
        "CnnPolicy", _pong(), device="cpu", n_steps=16, batch_size=16, policy_kwargs={"share_features_extractor": False}
    )
    model.save(tmp_path / "separate")
    with pytest.raises(SB3FormatError, match="share_features_extractor=False"):
        load_policy(tmp_path / "separate.zip")
    # Found from the tensors too, where policy_kwargs do not say it.
    with zipfile.ZipFile(tmp_path / "separate.zip") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    data = json.loads(entries["data"])
    data["policy_kwargs"] = {}
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "unsaid.zip", "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    with pytest.raises(SB3FormatError, match=r"vf_features_extractor\..* differs"):
        load_policy(tmp_path / "unsaid.zip")
