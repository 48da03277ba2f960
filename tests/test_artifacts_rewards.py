"""Saved rewards on bad input, the JSON ↔ weights fingerprint, and std_added from a saved ensemble."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import safetensors
import safetensors.torch
import torch
from preference_setup import SHORT, SMALL

from imitation_fn import envs, rewards
from imitation_fn.core import random, serialization, tree
from imitation_fn.core.errors import InputError
from imitation_fn.rewards import normalize
from imitation_fn.train import preference_comparisons as tpc

OBS = gym.spaces.Box(-1.0, 1.0, (4,))
DISCRETE = gym.spaces.Discrete(3)
N = 9


def _transitions(key: torch.Tensor) -> tuple[torch.Tensor, ...]:
    k = random.split(key, 3)
    acts = random.randint(k[1], (N,), 0, 3)
    return random.normal(k[0], (N, 4)), acts, random.normal(k[2], (N, 4)), torch.arange(N) % 4 == 3


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    net = rewards.BasicRewardNet(OBS, DISCRETE, hid_sizes=(8,))
    norm = normalize.update(normalize.init(), random.normal(random.key(1), (32,)))
    rewards.save(tmp_path / "r", net, net.init(random.key(0)), norm, metadata={"algorithm": "airl"})
    return tmp_path / "r"


def _edit(reward_dir: Path, change: Any) -> None:
    path = reward_dir / "reward.json"
    desc = json.loads(path.read_text())
    change(desc)
    path.write_text(json.dumps(desc, indent=2))


# ---------------------------------------------------------------------------------------------------------------------
# Damaged and malformed files
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 12, 300, -1])
def test_a_truncated_reward_safetensors_is_an_input_error_naming_it(saved: Path, keep: int) -> None:
    path = saved / "reward.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) + keep])
    with pytest.raises(InputError, match=re.escape(str(path)) + " is truncated or not a safetensors file"):
        rewards.load_reward("normalized", saved)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["net"].update(activation="swish"), r"net: invalid BasicRewardNet description: unknown activation"),
        (lambda d: d["net"].update(type="Transformer"), r"net: unknown reward net type 'Transformer'; expected one of"),
        (lambda d: d.pop("net"), r"net: not a reward net description"),
        (lambda d: d.update(dtype="int7"), r"dtype is 'int7'; expected one of float32"),
        (lambda d: d.update(normalized="yes"), r"normalized is 'yes'; expected true or false"),
        (lambda d: d.update(metadata=[1]), r"metadata is \[1\]; expected a JSON object"),
        (
            lambda d: d.update(format="imitation_fn.policy"),
            r" is not a saved reward net \(format 'imitation_fn.policy'",
        ),
        (lambda d: d.update(format_version=7), r" has format_version 7"),
    ],
)
def test_a_malformed_reward_json_names_the_file(saved: Path, change: Any, expected: str) -> None:
    _edit(saved, change)
    with pytest.raises(InputError, match=re.escape(str(saved / "reward.json")) + "(: )?" + expected):
        rewards.load(saved)


def test_reward_json_that_is_not_json(saved: Path) -> None:
    (saved / "reward.json").write_text('{"format": ')
    with pytest.raises(InputError, match=re.escape(str(saved / "reward.json")) + " is not valid JSON"):
        rewards.load(saved)


# ---------------------------------------------------------------------------------------------------------------------
# The fingerprint tie
# ---------------------------------------------------------------------------------------------------------------------


def test_a_reward_json_edited_after_saving_is_refused(saved: Path) -> None:
    _edit(saved, lambda d: d["net"].update(activation="tanh"))
    expected = (
        re.escape(str(saved / "reward.json"))
        + r" was changed after its weights were saved \(net.activation: relu → tanh\); restore it or re-save the reward"
    )
    with pytest.raises(InputError, match=expected):
        rewards.load(saved)


def test_editing_the_normalisation_flag_or_dtype_is_refused(saved: Path) -> None:
    _edit(saved, lambda d: d.update(normalized=False))
    with pytest.raises(InputError, match=r"\(normalized: true → false\)"):
        rewards.load(saved)


def test_metadata_and_formatting_may_be_edited(saved: Path) -> None:
    _edit(saved, lambda d: d.update(metadata={"algorithm": "airl", "note": "best seed"}))
    path = saved / "reward.json"
    path.write_text(json.dumps(dict(reversed(list(json.loads(path.read_text()).items())))))
    assert rewards.load(saved).metadata["note"] == "best seed"


def test_the_header_records_the_fingerprint(saved: Path) -> None:
    with safetensors.safe_open(str(saved / "reward.safetensors"), framework="pt") as f:
        header = json.loads(f.metadata()["imitation_fn"])
    tied = {k: header[k] for k in ("net", "dtype", "normalized")}
    assert header["fingerprint"] == serialization.fingerprint(tied)
    assert tied == {k: json.loads((saved / "reward.json").read_text())[k] for k in tied}


def _as_saved_before_fingerprints(reward_dir: Path) -> None:
    params_path = reward_dir / "reward.safetensors"
    tensors = safetensors.torch.load_file(params_path)
    with safetensors.safe_open(str(params_path), framework="pt") as f:
        header = json.loads(f.metadata()["imitation_fn"])
    old = {"format": header["format"], "net": header["net"]}
    safetensors.torch.save_file(tensors, params_path, metadata={"imitation_fn": json.dumps(old)})


def test_files_saved_before_the_fingerprint_still_load_and_are_checked_by_their_spec(saved: Path) -> None:
    data = _transitions(random.key(3))
    want = rewards.load_reward("unnormalized", saved)(*data)
    _as_saved_before_fingerprints(saved)
    torch.testing.assert_close(rewards.load_reward("unnormalized", saved)(*data), want)
    _edit(saved, lambda d: d["net"].update(activation="tanh"))
    with pytest.raises(InputError, match=r"changed after its weights were saved \(net.activation: relu → tanh\)"):
        rewards.load(saved)


# ---------------------------------------------------------------------------------------------------------------------
# std_added from a plain ensemble
# ---------------------------------------------------------------------------------------------------------------------


def test_std_added_loads_a_plain_saved_ensemble(tmp_path: Path) -> None:
    ens = rewards.RewardEnsemble(rewards.BasicRewardNet(OBS, DISCRETE, hid_sizes=(8,)), 4)
    params = ens.init(random.key(0))
    norm = normalize.update(normalize.init(), random.normal(random.key(1), (32,)) * 2 + 1)
    rewards.save(tmp_path / "ens", ens, params, norm)
    data = _transitions(random.key(2))
    mean, var = ens.moments(params, *data)
    env = envs.make("CartPole-v1", n_envs=1)  # checked against the saved spaces: a mismatch is named
    with pytest.raises(InputError, match=r"action_space Discrete\(3\), but the environment has Discrete\(2\)"):
        rewards.load_reward("std_added", tmp_path / "ens", env)
    fake_env = type("Env", (), {"observation_space": OBS, "action_space": DISCRETE})()
    conservative = rewards.load_reward("std_added", tmp_path / "ens", fake_env, alpha=-1.0)
    torch.testing.assert_close(conservative(*data), mean - var.sqrt())
    # Without alpha: imitation's AddSTDRewardWrapper default, 0.0 — the mean.
    torch.testing.assert_close(rewards.load_reward("RewardNet_std_added", tmp_path / "ens")(*data), mean)
    torch.testing.assert_close(rewards.load_reward("unnormalized", tmp_path / "ens")(*data), mean)
    torch.testing.assert_close(
        rewards.load_reward("normalized", tmp_path / "ens")(*data), (mean - norm.mean) / torch.sqrt(norm.var + 1e-5)
    )
    with pytest.raises(TypeError, match="alpha applies"):
        rewards.load_reward("unnormalized", tmp_path / "ens", alpha=-1.0)


def test_std_added_refuses_a_single_net_naming_the_file(saved: Path) -> None:
    with pytest.raises(
        InputError,
        match=rf"needs an AddSTDRewardWrapper or a RewardEnsemble, the reward at {re.escape(str(saved))} is a Basic",
    ):
        rewards.load_reward("std_added", saved)


def test_preference_comparisons_ensemble_reward_loads_as_std_added(tmp_path: Path) -> None:
    cfg = SMALL.model_copy(update={"ensemble_size": 2})
    result = tpc.train(cfg, SHORT, seeds=[0], n_eval_episodes=1, progress=False)
    [seed_dir] = tpc.save_artifacts(result, SHORT, tmp_path / "out")
    env = envs.make(SHORT, n_envs=1)
    reward_fn = rewards.load_reward("std_added", seed_dir / "reward", env, alpha=-1.0)
    state = tree.unstack(result.states)[0]
    assert isinstance(state.net, rewards.RewardEnsemble)
    obs = random.normal(random.key(0), (N, 3))
    data = (obs, random.normal(random.key(1), (N, 1)), obs + 0.1, torch.zeros(N, dtype=torch.bool))
    mean, var = state.net.moments(state.reward_params, *data)
    torch.testing.assert_close(reward_fn(*data), mean - var.sqrt())
