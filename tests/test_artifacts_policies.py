"""Saved policies on bad input: damaged files, hand-edited policy.json, a policy used on the wrong environment."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from imitation_fn import envs, policies
from imitation_fn.core import random, serialization
from imitation_fn.core.errors import InputError
from imitation_fn.nn import normalize
from imitation_fn.policies import actor_critic, check_spaces, load_policy, save_policy, zoo
from imitation_fn.policies.io import describe_space

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
DISCRETE = gym.spaces.Discrete(2)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    params = actor_critic.init(random.key(0), OBS, DISCRETE, {"pi": [8], "vf": [8]})
    norm = normalize.update(normalize.init((4,)), random.normal(random.key(1), (64, 4)))
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE), {"activation": "tanh"}, obs_norm=norm)
    return tmp_path / "p"


def _edit(policy_dir: Path, change: Any) -> None:
    path = policy_dir / "policy.json"
    desc = json.loads(path.read_text())
    change(desc)
    path.write_text(json.dumps(desc, indent=2))


def _header(params_path: Path) -> dict[str, Any]:
    with safetensors.safe_open(str(params_path), framework="pt") as f:
        return json.loads(f.metadata()["imitation_fn"])


# ---------------------------------------------------------------------------------------------------------------------
# Damaged files
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 10, 200, -4])
def test_a_truncated_policy_safetensors_is_an_input_error_naming_it(saved: Path, keep: int) -> None:
    path = saved / "policy.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) + keep])
    with pytest.raises(InputError, match=re.escape(str(path)) + " is truncated or not a safetensors file"):
        load_policy(saved)


def test_weights_not_written_by_save_policy_are_refused(saved: Path) -> None:
    serialization.save(saved / "policy.safetensors", {"w": torch.zeros(3)}, {"step": 1})  # e.g. a checkpoint
    with pytest.raises(InputError, match=r"policy.safetensors is not the weights file of a saved policy"):
        load_policy(saved)


# ---------------------------------------------------------------------------------------------------------------------
# policy.json: malformed, unknown values, edited after saving
# ---------------------------------------------------------------------------------------------------------------------


def test_an_unknown_activation_names_the_file_and_the_choices(saved: Path) -> None:
    _edit(saved, lambda d: d["config"].update(activation="swish"))
    with pytest.raises(InputError) as info:
        load_policy(saved)
    msg = str(info.value)
    assert msg.startswith(str(saved / "policy.json")) and "unknown activation 'swish'" in msg
    assert all(name in msg for name in ("tanh", "relu", "elu", "gelu", "silu", "leaky_relu"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(kind="dqn"), r"unknown policy kind 'dqn'; expected one of actor_critic, sac_actor, mlp"),
        (lambda d: d.pop("kind"), r"unknown policy kind None"),
        (lambda d: d["config"].pop("net_arch"), r"config.net_arch is missing"),
        (
            lambda d: d["config"].update(net_arch=[64, 64]),
            r"config.net_arch \[64, 64\] is not valid for an? actor_critic",
        ),
        (lambda d: d["config"]["net_arch"].update(pi=["8"]), r"config.net_arch .* is not valid"),
        (lambda d: d["config"].update(activation=3), r"unknown activation 3; expected one of tanh, relu"),
        (lambda d: d["config"].update(deterministic="yes"), r"config.deterministic is 'yes'; expected true or false"),
        (lambda d: d["config"].update(obs_norm_clip=-1), r"config.obs_norm_clip is -1"),
        (lambda d: d.update(config=[1]), r"config is \[1\]; expected a JSON object"),
        (lambda d: d.update(dtype="int7"), r"dtype is 'int7'; expected one of float32, float64"),
        (lambda d: d.update(obs_norm=3), r"obs_norm is 3"),
        (lambda d: d.update(observation_space={"type": "Box"}), r"observation_space is not a valid space \("),
        (lambda d: d.update(action_space={"type": "Tuple"}), r"action_space is not a valid space.*Discrete"),
        (lambda d: d.update(action_space={"type": "Discrete", "n": "two"}), r"action_space is not a valid space"),
        (lambda d: d.update(observation_space={"type": "Discrete", "n": 3}), r"unsupported observation space"),
        (lambda d: d.update(format="something.else"), r"is not an imitation_fn policy file \(format 'something.else'"),
        (lambda d: d.update(format_version=99), r"has format_version 99; .* reads up to 1: upgrade"),
    ],
)
def test_a_malformed_policy_json_names_the_file_and_the_problem(saved: Path, change: Any, expected: str) -> None:
    _edit(saved, change)
    with pytest.raises(InputError, match=re.escape(str(saved / "policy.json")) + ".*" + expected):
        load_policy(saved)


def test_policy_json_that_is_not_json(saved: Path) -> None:
    (saved / "policy.json").write_text('{"format": "imitation_fn.policy", "kind": ')
    with pytest.raises(InputError, match=r"policy.json is not valid JSON"):
        load_policy(saved)
    (saved / "policy.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"policy.json is not an imitation_fn policy file \(expected a JSON object\)"):
        load_policy(saved)


def test_an_activation_edited_after_saving_is_refused(saved: Path) -> None:
    _edit(saved, lambda d: d["config"].update(activation="relu"))
    expected = (
        re.escape(str(saved / "policy.json"))
        + r" was changed after its weights were saved \(activation: tanh → relu\); restore it or re-save the policy"
    )
    with pytest.raises(InputError, match=expected):
        load_policy(saved)


@pytest.mark.parametrize(
    ("change", "diff"),
    [
        (lambda d: d["config"].update(obs_norm_clip=5.0), r"obs_norm.clip: 10.0 → 5.0"),
        (lambda d: d.update(obs_norm=None), r"obs_norm: .*→ null"),
        (
            lambda d: d["observation_space"].update(low=[-1.0] * 4, high=[1.0] * 4),
            r'observation_space.high: \["inf", "inf", "inf", "inf"\] → \[1.0, 1.0, 1.0, 1.0\]',
        ),
        (lambda d: d.update(dtype="float64"), r"dtype: float32 → float64"),
    ],
)
def test_other_network_settings_edited_after_saving_are_refused(saved: Path, change: Any, diff: str) -> None:
    _edit(saved, change)
    with pytest.raises(InputError, match=r"was changed after its weights were saved \(.*" + diff):
        load_policy(saved)


def test_a_removed_activation_falls_back_to_the_default_and_is_refused(tmp_path: Path) -> None:
    params = actor_critic.init(random.key(0), OBS, DISCRETE, {"pi": [8], "vf": [8]})
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE), {"activation": "relu"})
    _edit(tmp_path / "p", lambda d: d["config"].pop("activation"))
    with pytest.raises(InputError, match=r"\(activation: relu → tanh\)"):
        load_policy(tmp_path / "p")


def test_free_settings_and_formatting_may_be_edited(saved: Path) -> None:
    before = load_policy(saved)
    # Acting defaults and provenance are not the network; equivalent spellings are the same network.
    _edit(saved, lambda d: d["config"].update(deterministic=False, clip_actions=False, note="trained on Tuesday"))
    _edit(saved, lambda d: d["config"].update(obs_norm_clip=10, obs_norm_eps=1e-8))
    _edit(saved, lambda d: d["observation_space"].update(low="-inf", high="inf"))  # scalar bounds: the same space
    path = saved / "policy.json"
    path.write_text(json.dumps(dict(reversed(list(json.loads(path.read_text()).items())))))  # key order, no indent
    after = load_policy(saved)
    assert after.config["deterministic"] is False and after.config["note"] == "trained on Tuesday"
    obs = random.normal(random.key(2), (16, 4))
    torch.testing.assert_close(after.act(obs, random.key(0), deterministic=True), before.act(obs, random.key(0)))


def test_the_header_records_the_fingerprint_of_what_it_checks(saved: Path) -> None:
    header = _header(saved / "policy.safetensors")
    assert header["fingerprint"] == serialization.fingerprint(header["network"])
    assert set(header["network"]) == {
        "kind",
        "observation_space",
        "action_space",
        "dtype",
        "net_arch",
        "activation",
        "obs_norm",
    }
    assert header["network"]["obs_norm"] == {"dtype": "float32", "clip": 10.0, "eps": 1e-8}


def test_save_policy_refuses_an_unknown_activation_before_writing(tmp_path: Path) -> None:
    params = actor_critic.init(random.key(0), OBS, DISCRETE, {"pi": [8], "vf": [8]})
    with pytest.raises(InputError, match=r"save_policy: unknown activation 'swish'"):
        save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE), {"activation": "swish"})
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Files saved before the fingerprint
# ---------------------------------------------------------------------------------------------------------------------


def test_shipped_experts_have_no_fingerprint_and_still_load() -> None:
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        path = zoo.expert_path(env_id)
        assert "fingerprint" not in _header(Path(path) / "policy.safetensors")  # saved before this check existed
        policy = load_policy(path)
        env = envs.make(env_id, n_envs=1)
        check_spaces(policy, env.observation_space, env.action_space, env_id)


def test_an_old_file_with_another_kind_in_its_header_is_refused(tmp_path: Path) -> None:
    shutil.copytree(zoo.expert_path("CartPole-v1"), tmp_path / "old")
    _edit(tmp_path / "old", lambda d: d.update(kind="mlp"))
    _edit(tmp_path / "old", lambda d: d["config"].update(net_arch=[64, 64]))
    with pytest.raises(InputError, match=r"was changed after its weights were saved \(kind: actor_critic → mlp\)"):
        load_policy(tmp_path / "old")


# ---------------------------------------------------------------------------------------------------------------------
# A policy used on another environment
# ---------------------------------------------------------------------------------------------------------------------


def test_a_cartpole_policy_on_pendulum_names_both_spaces() -> None:
    path = zoo.expert_path("CartPole-v1")
    policy = load_policy(path)
    assert policy.path == Path(path)
    env = envs.make("Pendulum-v1", n_envs=1)
    with pytest.raises(InputError) as info:
        check_spaces(policy, env.observation_space, env.action_space, "Pendulum-v1")
    assert str(info.value) == (
        f"policy {path} was trained on Box([-4.8, -inf, -0.419, -inf], [4.8, inf, 0.419, inf], (4,)) observations "
        "and Discrete(2) actions, but Pendulum-v1 has Box([-1, -1, -8], [1, 1, 8], (3,)) and Box(-2, 2, (1,))"
    )
    # Without the check it fails deep inside the network.
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        policy.policy_fn()(torch.zeros(1, 3), random.key(0))


def test_check_spaces_compares_what_acting_depends_on(saved: Path) -> None:
    policy = load_policy(saved)
    # Box observations by shape: other bounds and dtype are fine.
    check_spaces(policy, gym.spaces.Box(-1.0, 1.0, (4,), np.float64), gym.spaces.Discrete(2))
    # Discrete by n and start.
    with pytest.raises(InputError, match=r"but the environment has .* and Discrete\(3\)$"):
        check_spaces(policy, OBS, gym.spaces.Discrete(3))
    with pytest.raises(InputError, match=r"Discrete\(2, start=1\)"):
        check_spaces(policy, OBS, gym.spaces.Discrete(2, start=1))
    with pytest.raises(InputError, match=rf"^policy {re.escape(str(saved))} was trained on Box\(-inf, inf, \(4,\)\)"):
        check_spaces(policy, gym.spaces.Box(-1.0, 1.0, (2, 2)), DISCRETE)
    with pytest.raises(InputError, match=r"MultiDiscrete"):
        check_spaces(policy, OBS, gym.spaces.MultiDiscrete([2]))
    # A policy made in memory has no path.
    anonymous = policies.LoadedPolicy(policy.kind, policy.params, OBS, DISCRETE, policy.config, policy.obs_norm)
    with pytest.raises(InputError, match=r"^the policy was trained on"):
        check_spaces(anonymous, OBS, gym.spaces.Discrete(3), "CartPole-v1")
    assert describe_space(gym.spaces.Box(-2.0, 2.0, (1,))) == "Box(-2, 2, (1,))"
