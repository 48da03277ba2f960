"""Saved policies (safetensors + JSON) and the parameter-free policies: random, zero, exploration wrapper."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import safetensors.torch
import torch
import torch.utils._pytree as pytree
from torch.func import vmap

from imitation_fn.core import random
from imitation_fn.core.errors import InputError
from imitation_fn.core.serialization import to_flat_dict
from imitation_fn.nn import normalize
from imitation_fn.policies import actor_critic, mlp, sac
from imitation_fn.policies.io import LoadedPolicy, infer_net_arch, load_policy, param_shapes, save_policy
from imitation_fn.policies.simple import ExplorationState, exploration_act, exploration_init, random_policy, zero_policy

OBS = gym.spaces.Box(
    low=np.array([-4.8, -np.inf, -0.41887903, -np.inf], np.float32),
    high=np.array([4.8, np.inf, 0.41887903, np.inf], np.float32),
)
DISCRETE = gym.spaces.Discrete(3)
BOX = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([2.0, 0.5], np.float32))


def _obs(n: int = 32, seed: int = 0) -> torch.Tensor:
    return random.normal(random.key(seed), (n, 4))


def _policies() -> dict[str, tuple[Any, ...]]:
    key = random.key(0)
    return {
        "actor_critic_discrete": ("actor_critic", actor_critic.init(key, OBS, DISCRETE), DISCRETE, {}),
        "actor_critic_box": ("actor_critic", actor_critic.init(key, OBS, BOX, {"pi": [16], "vf": [8, 8]}), BOX, {}),
        "actor_critic_shared": (
            "actor_critic",
            actor_critic.init(key, OBS, DISCRETE, [16, 16], shared=True),
            DISCRETE,
            {},
        ),
        "sac_actor": ("sac_actor", sac.actor_init(key, OBS, BOX, [32, 32]), BOX, {}),
        "mlp_relu": ("mlp", mlp.init(key, OBS, BOX, [8]), BOX, {"activation": "relu"}),
    }


@pytest.mark.parametrize("name", list(_policies()))
def test_round_trip_acts_identically(tmp_path: Path, name: str) -> None:
    kind, params, act_space, config = _policies()[name]
    save_policy(tmp_path / name, kind, params, (OBS, act_space), config)
    loaded = load_policy(tmp_path / name)

    assert loaded.kind == kind
    assert loaded.action_space == act_space
    np.testing.assert_array_equal(loaded.observation_space.low, OBS.low)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.observation_space.high, OBS.high)  # type: ignore[attr-defined]
    torch.testing.assert_close(to_flat_dict(loaded.params), to_flat_dict(params), rtol=0, atol=0)
    obs = _obs()
    original = LoadedPolicy(
        kind, params, OBS, act_space, {**config, "activation": config.get("activation", loaded.activation)}
    )
    for deterministic in (True, False):
        torch.testing.assert_close(
            loaded.act(obs, random.key(3), deterministic=deterministic),
            original.act(obs, random.key(3), deterministic=deterministic),
        )


def test_actions_follow_each_kinds_act_function(tmp_path: Path) -> None:
    policies = _policies()
    obs = _obs()
    _, params, _, _ = policies["actor_critic_box"]
    save_policy(tmp_path / "ac", "actor_critic", params, (OBS, BOX))
    expected = actor_critic.act(params, obs, random.key(1), deterministic=False)
    torch.testing.assert_close(
        load_policy(tmp_path / "ac").policy_fn(deterministic=False)(obs, random.key(1)),
        torch.clamp(expected, torch.tensor([-1.0, 0.0]), torch.tensor([2.0, 0.5])),
    )
    _, params, _, _ = policies["sac_actor"]
    save_policy(tmp_path / "sac", "sac_actor", params, (OBS, BOX))
    torch.testing.assert_close(
        load_policy(tmp_path / "sac").policy_fn()(obs, random.key(1)),
        sac.act(params, obs, random.key(1), deterministic=True, low=BOX.low, high=BOX.high),
    )
    _, params, _, config = policies["mlp_relu"]
    save_policy(tmp_path / "bc", "mlp", params, (OBS, BOX), config)
    assert json.loads((tmp_path / "bc" / "policy.json").read_text())["config"]["activation"] == "relu"
    got = load_policy(tmp_path / "bc").policy_fn()(obs, random.key(1))
    torch.testing.assert_close(
        got,
        mlp.act(params, obs, random.key(1), deterministic=True, activation="relu").clamp(
            torch.tensor([-1.0, 0.0]), torch.tensor([2.0, 0.5])
        ),
    )
    with pytest.raises(AssertionError):  # the activation matters: tanh gives other actions
        torch.testing.assert_close(got, mlp.act(params, obs, random.key(1), deterministic=True, activation="tanh"))


def test_json_describes_the_policy(tmp_path: Path) -> None:
    _, params, _, _ = _policies()["actor_critic_box"]
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, BOX), {"note": "hello"})
    desc = json.loads((tmp_path / "p" / "policy.json").read_text())
    assert desc["kind"] == "actor_critic"
    assert desc["config"] == {
        "note": "hello",
        "net_arch": {"pi": [16], "vf": [8, 8]},
        "activation": "tanh",
        "deterministic": True,
    }
    assert desc["observation_space"]["low"][1] == "-inf"
    assert desc["action_space"] == {
        "type": "Box",
        "shape": [2],
        "dtype": "float32",
        "low": [-1.0, 0.0],
        "high": [2.0, 0.5],
    }
    assert desc["obs_norm"] is None
    names = set(safetensors.torch.load_file(tmp_path / "p" / "policy.safetensors"))
    assert "['params']['pi']['layers.0.weight']" in names and "['params']['log_std']" in names


def test_file_pair_and_deterministic_default(tmp_path: Path) -> None:
    _, params, _, _ = _policies()["actor_critic_discrete"]
    save_policy(tmp_path / "expert.safetensors", "actor_critic", params, (OBS, DISCRETE), {"deterministic": False})
    assert (tmp_path / "expert.json").is_file()
    loaded = load_policy(tmp_path / "expert.json")
    obs = _obs(256)
    sampled = [loaded.policy_fn()(obs, random.key(i)) for i in range(2)]
    assert not torch.equal(sampled[0], sampled[1])  # the saved default: stochastic
    torch.testing.assert_close(
        loaded.policy_fn(deterministic=True)(obs, random.key(0)), loaded.policy_fn(True)(obs, random.key(1))
    )


def test_obs_norm_is_saved_and_applied(tmp_path: Path) -> None:
    _, params, _, _ = _policies()["actor_critic_discrete"]
    norm = normalize.update(normalize.init((4,)), 3.0 + 5.0 * _obs(500, seed=7))
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE), {"obs_norm_clip": 5.0}, obs_norm=norm)
    loaded = load_policy(tmp_path / "p")
    assert loaded.obs_norm is not None
    torch.testing.assert_close(loaded.obs_norm.mean, norm.mean)
    obs = 3.0 + 5.0 * _obs(64)
    expected = actor_critic.act(params, normalize.normalize(norm, obs, clip=5.0), random.key(0), deterministic=True)
    torch.testing.assert_close(loaded.policy_fn()(obs, random.key(0)), expected)
    with pytest.raises(ValueError, match="obs_norm has shape"):
        save_policy(tmp_path / "q", "actor_critic", params, (OBS, DISCRETE), obs_norm=normalize.init((3,)))


def _drop_fingerprint(params_path: Path) -> None:
    """Rewrite a policy.safetensors with the header saved before fingerprints existed."""
    tensors = safetensors.torch.load_file(params_path)
    with safetensors.safe_open(str(params_path), framework="pt") as f:
        header = json.loads(f.metadata()["imitation_fn"])
    old = {"format": header["format"], "kind": header["kind"]}
    safetensors.torch.save_file(tensors, params_path, metadata={"imitation_fn": json.dumps(old)})


def test_load_refuses_a_json_edited_after_saving(tmp_path: Path) -> None:
    _, params, _, _ = _policies()["actor_critic_discrete"]
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE))
    desc_path = tmp_path / "p" / "policy.json"
    desc = json.loads(desc_path.read_text())
    desc["config"]["net_arch"]["pi"] = [32, 64]
    desc_path.write_text(json.dumps(desc))
    with pytest.raises(
        InputError,
        match=r"policy.json was changed after its weights were saved \(net_arch.pi: \[64, 64\] → \[32, 64\]\); restore",
    ):
        load_policy(tmp_path / "p")


def test_load_refuses_tensors_that_do_not_match_the_json(tmp_path: Path) -> None:
    # Files saved before fingerprints: the shapes the JSON implies are still checked, tensor by tensor.
    _, params, _, _ = _policies()["actor_critic_discrete"]
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE))
    _drop_fingerprint(tmp_path / "p" / "policy.safetensors")
    load_policy(tmp_path / "p")
    desc_path = tmp_path / "p" / "policy.json"
    desc = json.loads(desc_path.read_text())
    desc["config"]["net_arch"]["pi"] = [32, 64]
    desc_path.write_text(json.dumps(desc))
    with pytest.raises(
        InputError, match=r"\['params'\]\['pi'\]\['layers.0.weight'\] has shape \(64, 4\).*expected \(32, 4\)"
    ):
        load_policy(tmp_path / "p")

    desc["config"]["net_arch"]["pi"] = [64, 64]
    desc["action_space"] = {"type": "Discrete", "n": 5, "start": 0}
    desc_path.write_text(json.dumps(desc))
    with pytest.raises(
        InputError, match=r"\['params'\]\['pi'\]\['layers.2.weight'\] has shape \(3, 64\).*expected \(5, 64\)"
    ):
        load_policy(tmp_path / "p")

    desc["action_space"] = {"type": "Box", "shape": [3], "dtype": "float32", "low": [-1] * 3, "high": [1] * 3}
    desc_path.write_text(json.dumps(desc))
    with pytest.raises(InputError, match=r"missing \[\"\['params'\]\['log_std'\]\"\]"):
        load_policy(tmp_path / "p")


def test_save_refuses_params_that_do_not_fit(tmp_path: Path) -> None:
    _, params, _, _ = _policies()["actor_critic_discrete"]
    with pytest.raises(ValueError, match=r"\['pi'\]\['layers.0.weight'\] has shape \(64, 4\).*expected \(64, 3\)"):
        save_policy(tmp_path / "p", "actor_critic", params, (gym.spaces.Box(-1, 1, (3,)), DISCRETE))
    with pytest.raises(ValueError, match="does not match the params"):
        save_policy(tmp_path / "p", "actor_critic", params, (OBS, DISCRETE), {"net_arch": {"pi": [32], "vf": [32]}})
    with pytest.raises(ValueError, match="unknown policy kind"):
        save_policy(tmp_path / "p", "dqn", params, (OBS, DISCRETE))  # type: ignore[arg-type]
    assert not (tmp_path / "p").exists()


def test_no_pickle_on_save_or_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pickle used")

    for name in ("load", "loads", "dump", "dumps", "Unpickler", "Pickler"):
        monkeypatch.setattr(pickle, name, refuse)
    _, params, _, _ = _policies()["sac_actor"]
    save_policy(tmp_path / "p", "sac_actor", params, (OBS, BOX))
    load_policy(tmp_path / "p").policy_fn()(_obs(), random.key(0))


def test_param_shapes_match_the_init_functions() -> None:
    for kind, params, act_space, _ in _policies().values():
        shapes = param_shapes(kind, OBS, act_space, infer_net_arch(kind, params))
        leaves, _ = pytree.tree_flatten_with_path(shapes, is_leaf=lambda s: isinstance(s, tuple))
        assert {pytree.keystr(p): s for p, s in leaves} == {k: tuple(v.shape) for k, v in to_flat_dict(params).items()}


def test_policy_fn_vmaps_over_keys(tmp_path: Path) -> None:
    _, params, _, _ = _policies()["actor_critic_box"]
    save_policy(tmp_path / "p", "actor_critic", params, (OBS, BOX), {"deterministic": False})
    fn = load_policy(tmp_path / "p").policy_fn()
    obs, keys = _obs(), random.split(random.key(0), 4)
    torch.testing.assert_close(vmap(lambda k: fn(obs, k))(keys), torch.stack([fn(obs, k) for k in keys]))


# ---------------------------------------------------------------------------------------------------------------------
# Random and zero policies
# ---------------------------------------------------------------------------------------------------------------------


def test_random_policy_box_is_uniform_in_the_bounds() -> None:
    space = gym.spaces.Box(
        np.array([-1.0, 2.0, -np.inf, 0.0, -np.inf], np.float32), np.array([3.0, 2.5, 1.0, np.inf, np.inf], np.float32)
    )
    fn = random_policy(space)
    a = fn(torch.zeros(20_000, 4), random.key(0))
    assert a.shape == (20_000, 5) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert (a[:, :2] >= torch.tensor([-1.0, 2.0])).all() and (a[:, :2] < torch.tensor([3.0, 2.5])).all()
    torch.testing.assert_close(a[:, :2].mean(0), torch.tensor([1.0, 2.25]), atol=0.03, rtol=0)
    torch.testing.assert_close(a[:, :2].var(0), torch.tensor([16 / 12, 0.25 / 12]), atol=0.03, rtol=0.02)
    assert (a[:, 2] <= 1.0).all() and (a[:, 3] >= 0.0).all()  # half-bounded: exponential from the bound
    torch.testing.assert_close(a[:, 2:4].mean(0), torch.tensor([0.0, 1.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(a[:, 4].std(), torch.tensor(1.0), atol=0.05, rtol=0)
    torch.testing.assert_close(fn(torch.zeros(8, 4), random.key(5)), fn(torch.zeros(8, 4), random.key(5)))
    assert not torch.equal(fn(torch.zeros(8, 4), random.key(5)), fn(torch.zeros(8, 4), random.key(6)))


def test_random_policy_discrete_is_uniform() -> None:
    fn = random_policy(gym.spaces.Discrete(4, start=2))
    a = fn(torch.zeros(40_000, 3), random.key(1))
    assert a.shape == (40_000,) and a.dtype == torch.int64
    counts = torch.bincount(a - 2, minlength=4).double()
    assert a.min() == 2 and a.max() == 5
    # Chi-square with 3 degrees of freedom: 16.3 is its 99.9% quantile.
    assert (((counts - 10_000) ** 2) / 10_000).sum() < 16.3
    md = random_policy(gym.spaces.MultiDiscrete([2, 5]))(torch.zeros(1000, 3), random.key(2))
    assert md.shape == (1000, 2) and md[:, 0].max() == 1 and md[:, 1].max() == 4 and md.min() == 0
    mb = random_policy(gym.spaces.MultiBinary(3))(torch.zeros(1000, 3), random.key(3))
    assert mb.shape == (1000, 3) and 0.4 < mb.float().mean() < 0.6


def test_random_policy_vmaps_over_keys() -> None:
    fn, obs, keys = random_policy(BOX), torch.zeros(16, 4), random.split(random.key(0), 5)
    torch.testing.assert_close(vmap(lambda k: fn(obs, k))(keys), torch.stack([fn(obs, k) for k in keys]))


def test_zero_policy() -> None:
    obs = torch.zeros(7, 4)
    assert torch.equal(zero_policy(BOX)(obs, random.key(0)), torch.zeros(7, 2))
    assert torch.equal(zero_policy(gym.spaces.Discrete(3))(obs, random.key(0)), torch.zeros(7, dtype=torch.int64))
    assert torch.equal(zero_policy(gym.spaces.Discrete(3, start=-1))(obs, random.key(0)), torch.full((7,), -1))


# ---------------------------------------------------------------------------------------------------------------------
# Exploration wrapper
# ---------------------------------------------------------------------------------------------------------------------

# The "expert" always picks 0, the "random" policy always 1: the action reveals the mode of each env.
EXPERT = zero_policy(gym.spaces.Discrete(2))


def _ones(obs: torch.Tensor, key: random.Key) -> torch.Tensor:
    return torch.ones(obs.shape[0], dtype=torch.int64)


def _modes(random_prob: float, switch_prob: float, n_envs: int = 4000, steps: int = 40, seed: int = 0) -> torch.Tensor:
    """``(steps, n_envs)`` bool: whether each env acted randomly at each step."""
    key = random.key(seed)
    state = exploration_init(random.fold_in(key, -1), n_envs, random_prob)
    obs, out = torch.zeros(n_envs, 1), []
    for t in range(steps):
        state, action = exploration_act(state, EXPERT, _ones, obs, random.fold_in(key, t), random_prob, switch_prob)
        out.append(action == 1)
    return torch.stack(out)


def test_exploration_extremes() -> None:
    assert not _modes(0.0, 0.5, n_envs=100).any()
    assert _modes(1.0, 0.5, n_envs=100).all()


def test_exploration_without_switching_keeps_each_envs_mode() -> None:
    modes = _modes(0.3, 0.0)
    assert (modes == modes[0]).all()
    assert abs(modes[0].float().mean().item() - 0.3) < 0.03  # drawn once per env, at init


def test_exploration_switch_every_step_is_independent() -> None:
    modes = _modes(0.3, 1.0).float()
    assert abs(modes.mean().item() - 0.3) < 0.01
    # P(random at t+1 | random at t) = random_prob when the mode is redrawn every step.
    cond = (modes[1:] * modes[:-1]).sum() / modes[:-1].sum()
    assert abs(cond.item() - 0.3) < 0.015


@pytest.mark.parametrize(("random_prob", "switch_prob"), [(0.3, 0.2), (0.5, 0.05)])
def test_exploration_statistics(random_prob: float, switch_prob: float) -> None:
    modes = _modes(random_prob, switch_prob).float()
    # Stationary: a fraction random_prob of steps are random, at every step.
    assert abs(modes.mean().item() - random_prob) < 0.015
    assert (modes.mean(1) - random_prob).abs().max() < 0.04
    # The mode changes when a switch happens (prob switch_prob) and the redraw lands on the other mode.
    change_rate = (modes[1:] != modes[:-1]).float().mean().item()
    expected = switch_prob * 2 * random_prob * (1 - random_prob)
    assert abs(change_rate - expected) < 0.15 * expected + 0.002


def test_exploration_box_actions_and_vmap_over_seeds() -> None:
    rand = random_policy(BOX)
    expert = zero_policy(BOX)
    obs = torch.zeros(64, 4)

    def step(key: random.Key, random_prob: torch.Tensor) -> tuple[ExplorationState, torch.Tensor]:
        k_init, k_act = random.split(key)
        state = exploration_init(k_init, 64, random_prob)
        return exploration_act(state, expert, rand, obs, k_act, random_prob, torch.tensor(0.5))

    keys, probs = random.split(random.key(0), 3), torch.tensor([0.0, 0.5, 1.0])
    batched_state, batched = vmap(step)(keys, probs)
    for i in range(3):
        state, action = step(keys[i], probs[i])
        torch.testing.assert_close(batched[i], action)
        torch.testing.assert_close(batched_state.is_random[i], state.is_random)
    assert batched.shape == (3, 64, 2)
    assert (batched[0] == 0).all() and (batched[2] != 0).all()  # random_prob 0: expert; 1: random
    random_rows = batched[1][(batched[1] != 0).any(-1)]
    assert (random_rows >= torch.tensor([-1.0, 0.0])).all() and (random_rows <= torch.tensor([2.0, 0.5])).all()
