"""Dict observations: flattened at the env boundary, saved in the dict layout, every command on a Dict env.

``DictPoint`` below is a user's environment with ``Dict({"position": Box((2,)), "velocity": Box((3,))})``
observations, registered with gymnasium by this module: commands reach it as ``test_dict_obs:DictPoint-v0``.
Its observation dicts list ``velocity`` first, as environments often do; the space (built from a plain
dict) sorts its keys, so every flattened vector starts with ``position``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn.core import random
from imitation_fn.core.errors import InputError
from imitation_fn.data import convert, gym_rollout, serialize
from imitation_fn.envs.base import require_supported
from imitation_fn.envs.gym import GymEnv
from imitation_fn.nn import normalize
from imitation_fn.policies import actor_critic, export_sb3, sac
from imitation_fn.policies.io import LoadedPolicy
from imitation_fn.policies.sb3_export import SB3ExportError, vecnormalize_path

HORIZON = 16


class DictPoint(gym.Env[Any, Any]):
    """A point on a line that should stay near 0, with Dict observations; reward ``-|x|``, fixed horizon.

    ``position = (x, -x)``, ``velocity = (v, 0, t / HORIZON)``. Actions: Discrete(3) (left, stay, right) or a
    Box step in [-1, 1].
    """

    def __init__(self, continuous: bool = False) -> None:
        self.observation_space = gym.spaces.Dict(
            {
                "velocity": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
                "position": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(3)
        self.continuous = continuous

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "velocity": np.array([self.v, 0.0, self.t / HORIZON], dtype=np.float32),
            "position": np.array([self.x, -self.x], dtype=np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.x, self.v, self.t = float(self.np_random.uniform(-1.0, 1.0)), 0.0, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        move = float(np.clip(action, -1.0, 1.0)[0]) if self.continuous else int(action) - 1
        self.v = 0.25 * move
        self.x, self.t = self.x + self.v, self.t + 1
        return self._obs(), -abs(self.x), False, False, {"t": self.t}


class SpaceEnv(gym.Env[Any, Any]):
    """Observations sampled from any ``space``: to see which spaces GymEnv and the policies take."""

    def __init__(self, space: gym.Space[Any]) -> None:
        self.observation_space, self.action_space = space, gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


gym.register("DictPoint-v0", entry_point=DictPoint, max_episode_steps=HORIZON)
gym.register("DictPointContinuous-v0", entry_point=DictPoint, max_episode_steps=HORIZON, kwargs={"continuous": True})
ENV = f"{__name__}:DictPoint-v0"
ENV_CONTINUOUS = f"{__name__}:DictPointContinuous-v0"
SPACE: gym.spaces.Dict = DictPoint().observation_space  # type: ignore[assignment]
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def _flatten(obs: dict[str, np.ndarray]) -> np.ndarray:
    return gym.spaces.flatten(SPACE, obs)


def _random_policy(obs: torch.Tensor, key: random.Key) -> torch.Tensor:
    return random.categorical(key, torch.zeros(obs.shape[0], 3))


def _episodes(n: int = 4) -> Any:
    return gym_rollout.collect_episodes(GymEnv(ENV, 2), _random_policy, random.key(0), min_episodes=n)


# ---------------------------------------------------------------------------------------------------------------------
# The env boundary
# ---------------------------------------------------------------------------------------------------------------------


def test_gym_env_flattens_as_gymnasium_and_sb3s_combined_extractor_do() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Dict of Boxes is the supported path: no warning
        env = GymEnv(ENV, 2)
    assert env.unflattened_observation_space == SPACE and list(SPACE.spaces) == ["position", "velocity"]
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.shape == (5,)
    require_supported(env, "test")
    ts = env.reset_seeds([3, 4])
    raw, _ = DictPoint().reset(seed=4)
    np.testing.assert_array_equal(ts.obs[1].numpy(), _flatten(raw))
    np.testing.assert_array_equal(ts.obs[1, :2].numpy(), raw["position"])  # the space's key order, not the dict's

    torch_layers = pytest.importorskip("stable_baselines3.common.torch_layers")
    extractor = torch_layers.CombinedExtractor(SPACE)  # what SB3's MultiInputPolicy feeds its MLPs
    assert extractor.features_dim == 5
    features = extractor({k: torch.as_tensor(v)[None] for k, v in raw.items()})
    torch.testing.assert_close(features, ts.obs[1:2], rtol=0, atol=0)


def test_which_dict_spaces_are_taken() -> None:
    flag = gym.spaces.Dict({"flag": gym.spaces.Discrete(3), "pos": BOX})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = GymEnv(lambda: SpaceEnv(flag), 1)
    require_supported(env, "test")  # Discrete entries one-hot, as SB3's CombinedExtractor does
    assert env.observation_space.shape == (5,)
    assert not serialize.has_dict_layout(flag)  # ... but datasets keep such observations flat

    camera = gym.spaces.Dict({"camera": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8), "pos": BOX})
    with pytest.warns(UserWarning, match=r"image entries \['camera'\]"):
        GymEnv(lambda: SpaceEnv(camera), 1)

    ragged = gym.spaces.Dict({"items": gym.spaces.Sequence(gym.spaces.Discrete(2)), "pos": BOX})
    with pytest.raises(InputError, match="no fixed-size vector form"):
        require_supported(GymEnv(lambda: SpaceEnv(ragged), 1), "--env ragged")


# ---------------------------------------------------------------------------------------------------------------------
# Datasets in the dict layout
# ---------------------------------------------------------------------------------------------------------------------


def test_dict_layout_round_trips_and_converts(tmp_path: Path) -> None:
    episodes = _episodes()
    trajs = episodes.trajectories
    serialize.save(tmp_path / "demos", trajs, infos=episodes.infos, observation_space=SPACE)

    stored = datasets.load_from_disk(str(tmp_path / "demos"))
    assert set(stored.column_names) == {"obs", "acts", "infos", "terminal", "rews"}
    assert list(stored.features["obs"]) == ["position", "velocity"]
    row = stored.with_format("numpy")[0]["obs"]
    assert row["position"].shape == (HORIZON + 1, 2) and row["velocity"].shape == (HORIZON + 1, 3)
    np.testing.assert_array_equal(row["position"], trajs[0].obs[:, :2].numpy())

    back = serialize.load_with_infos(tmp_path / "demos")
    for a, b in zip(back.trajectories, trajs, strict=True):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.acts, b.acts) and torch.equal(a.rews, b.rews)
    assert back.infos == episodes.infos and back.infos[0][-1]["t"] == HORIZON
    space = serialize.stored_observation_space(tmp_path / "demos")
    assert space is not None and {k: v.shape for k, v in space.spaces.items()} == {"position": (2,), "velocity": (3,)}

    convert.convert(tmp_path / "demos", tmp_path / "copy")  # a datasets directory keeps the layout
    assert list(datasets.load_from_disk(str(tmp_path / "copy")).features["obs"]) == ["position", "velocity"]
    convert.convert(tmp_path / "copy", tmp_path / "demos.npz")  # imitation's npz: flat
    for path in (tmp_path / "copy", tmp_path / "demos.npz"):
        assert all(torch.equal(a.obs, b.obs) for a, b in zip(serialize.load(path), trajs, strict=True))

    unsorted = gym.spaces.Dict(OrderedDict(velocity=SPACE["velocity"], position=SPACE["position"]))
    assert not serialize.has_dict_layout(unsorted)
    with pytest.raises(ValueError, match="sorted order"):
        serialize.save(tmp_path / "unsorted", trajs, observation_space=unsorted)
    with pytest.raises(ValueError, match=r"expected \(T \+ 1, 4\)"):
        serialize.save(tmp_path / "wrong", trajs, observation_space=gym.spaces.Dict({"a": BOX, "b": BOX}))


def _raw_episode(seed: int) -> tuple[list[dict[str, np.ndarray]], list[int], list[float]]:
    """One episode of the raw env: its observation dicts (velocity first), actions and rewards."""
    env, rng = DictPoint(), np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, acts, rews = [obs], [], []
    for _ in range(HORIZON):
        act = int(rng.integers(3))
        obs, rew, *_ = env.step(act)
        observations.append(obs)
        acts.append(act)
        rews.append(rew)
    return observations, acts, rews


def test_a_dataset_built_as_imitation_would_loads_flattened(tmp_path: Path) -> None:
    """Columns as imitation's ``trajectories_to_dict`` makes them, with each ``DictObs``'s arrays as ``obs``
    (stacked from the env's dicts, keys in their order) and jsonpickled empty infos."""
    raw = [_raw_episode(seed) for seed in (1, 2)]
    columns = {
        "obs": [{k: np.stack([o[k] for o in obs]) for k in obs[0]} for obs, _, _ in raw],
        "acts": [np.array(acts) for _, acts, _ in raw],
        "infos": [["{}"] * len(acts) for _, acts, _ in raw],
        "terminal": [False, False],
        "rews": [np.array(rews) for _, _, rews in raw],
    }
    dataset = datasets.Dataset.from_dict(columns)
    assert list(dataset.features["obs"]) == ["velocity", "position"]
    dataset.save_to_disk(str(tmp_path / "theirs"))

    expected = [np.stack([_flatten(o) for o in obs]) for obs, _, _ in raw]
    for loaded in (serialize.load(tmp_path / "theirs"), serialize.load(tmp_path / "theirs", observation_space=SPACE)):
        for traj, want in zip(loaded, expected, strict=True):
            assert traj.obs.dtype == torch.float32
            np.testing.assert_array_equal(traj.obs.numpy(), want)  # position first, whatever the stored order
    assert len(serialize.from_dataset(dataset)) == 2

    other = gym.spaces.Dict({"position": BOX, "speed": SPACE["velocity"]})
    with pytest.raises(InputError, match="keys"):
        serialize.load(tmp_path / "theirs", observation_space=other)
    wider = gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (3,)), "velocity": SPACE["velocity"]})
    with pytest.raises(InputError, match=r"'position' has per-step shape \(2,\), expected \(3,\)"):
        serialize.load(tmp_path / "theirs", observation_space=wider)


@pytest.mark.parametrize(
    ("entry", "match"),
    [({"x": [[1.0], [2.0]]}, "itself a dict"), ("text", "dtype"), ([[1.0], [2.0], [3.0]], "different numbers of rows")],
)
def test_dict_layouts_that_are_not_box_entries_are_refused(entry: Any, match: str) -> None:
    columns = {
        "obs": [{"pos": [[0.0, 0.0], [1.0, 1.0]], "other": entry}],
        "acts": [[0]],
        "infos": [["{}"]],
        "terminal": [True],
    }
    with pytest.raises(InputError, match=match):
        serialize.from_dataset(datasets.Dataset.from_dict(columns))


# ---------------------------------------------------------------------------------------------------------------------
# SB3 export as a MultiInputPolicy
# ---------------------------------------------------------------------------------------------------------------------

FLAT = GymEnv(ENV).observation_space
FLAT_CONTINUOUS = GymEnv(ENV_CONTINUOUS).observation_space


def _dict_obs(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"position": rng.uniform(-3, 3, (n, 2)).astype(np.float32), "velocity": rng.uniform(-1, 1, (n, 3))}


def test_export_sb3_writes_a_multi_input_policy_that_acts_as_ours(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    discrete, box = DictPoint().action_space, DictPoint(continuous=True).action_space
    params = actor_critic.init(random.key(1), FLAT, discrete, {"pi": [32], "vf": [16]})
    params["pi"]["layers.1.weight"] = params["pi"]["layers.1.weight"] * 100  # actions that differ between inputs
    norm = normalize.init((5,)).replace(mean=torch.linspace(-1, 1, 5), var=torch.linspace(0.5, 2, 5))
    ppo = LoadedPolicy("actor_critic", params, FLAT, discrete, {"activation": "tanh"}, obs_norm=norm)
    actor = sac.actor_init(random.key(2), FLAT_CONTINUOUS, box, [16, 16])
    sac_policy = LoadedPolicy("sac_actor", actor, FLAT_CONTINUOUS, box, {"activation": "relu"})

    obs = _dict_obs(200)
    flat = torch.as_tensor(np.stack([_flatten({k: v[i] for k, v in obs.items()}) for i in range(200)]))
    for policy, algo, policy_class in ((ppo, sb3.PPO, "MultiInputActorCriticPolicy"), (sac_policy, sb3.SAC, None)):
        path = export_sb3(policy, tmp_path / f"{policy.kind}.zip", observation_space=SPACE)
        model = algo.load(path)
        assert model.observation_space == SPACE
        assert type(model.policy).__name__ == (policy_class or "MultiInputPolicy")
        sb3_obs = obs
        if policy.obs_norm is not None:
            venv = VecNormalize.load(str(vecnormalize_path(path)), DummyVecEnv([DictPoint]))
            assert venv.norm_obs_keys == ["position", "velocity"]
            sb3_obs = venv.normalize_obs(obs)
        theirs, _ = model.predict(sb3_obs, deterministic=True)
        ours = policy.act(flat, random.key(0), deterministic=True).numpy()
        if policy.kind == "sac_actor":
            np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)
        else:
            np.testing.assert_array_equal(theirs, ours)
            assert len(np.unique(ours)) > 1

    with pytest.raises(SB3ExportError, match="flattens to"):
        export_sb3(ppo, tmp_path / "wrong.zip", observation_space=gym.spaces.Dict({"a": BOX}))
    with pytest.raises(SB3ExportError, match="only Box entries"):
        flag = gym.spaces.Dict({"flag": gym.spaces.Discrete(2), "pos": gym.spaces.Box(-1, 1, (3,))})
        export_sb3(ppo, tmp_path / "flag.zip", observation_space=flag)


# ---------------------------------------------------------------------------------------------------------------------
# Every command on the Dict env, as the installed console script
# ---------------------------------------------------------------------------------------------------------------------

TINY_EVAL = ["--n-eval-episodes", "2", "--no-progress"]
PPO_FLAGS = ["--n-envs", "2", "--n-steps", "16", "--batch-size", "16"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(["imitation-fn", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and proc.returncode == 0, f"$ imitation-fn {' '.join(args)}\n{output[-3000:]}"
    assert "GymEnv(" not in output, output  # the Dict env is flattened without a warning
    return proc


def test_every_command_runs_on_a_dict_env(tmp_path: Path) -> None:
    """train-rl (PPO, SAC), rollouts (in the dict layout), bc, dagger, gail, airl, density,
    preference-comparisons and eval on ``module:DictId``, each with a tiny budget."""
    ppo_run = ["--seeds", "2", "--total-steps", "256", *PPO_FLAGS, *TINY_EVAL]
    _cli(["train-rl", "--algo", "ppo", "--env", ENV, "--out", "ppo", *ppo_run], tmp_path)
    sac_run = ["--seeds", "2", "--total-steps", "64", "--learning-starts", "32", "--batch-size", "16"]
    _cli(["train-rl", "--algo", "sac", "--env", ENV_CONTINUOUS, "--out", "sac", *sac_run, *TINY_EVAL], tmp_path)
    expert = "ppo/policies/seed_0"
    out = _cli(["rollouts", "--policy", expert, "--env", ENV, "--episodes", "6", "--out", "demos"], tmp_path)
    assert "dict layout" in out.stdout
    assert list(datasets.load_from_disk(str(tmp_path / "demos")).features["obs"]) == ["position", "velocity"]
    bc_run = ["--seeds", "2", "--n-epochs", "1", "--batch-size", "16", *TINY_EVAL]
    _cli(["bc", "--env", ENV, "--demos", "demos", "--out", "bc", *bc_run], tmp_path)
    dagger_run = ["--seeds", "2", "--total-timesteps", "96", "--rollout-round-min-timesteps", "32"]
    dagger_run += ["--rollout-round-min-episodes", "1", "--n-batches", "4", "--batch-size", "16", *TINY_EVAL]
    _cli(["dagger", "--env", ENV, "--expert", expert, "--out", "dagger", *dagger_run], tmp_path)
    for algo in ("gail", "airl"):
        run = ["--seeds", "2", "--total-timesteps", "64", "--demo-batch-size", "16", *PPO_FLAGS, *TINY_EVAL]
        _cli([algo, "--env", ENV, "--demos", "demos", "--out", algo, *run], tmp_path)
        assert (tmp_path / algo / "rewards" / "seed_1").is_dir()
    density_run = ["--seeds", "2", "--total-timesteps", "64", *PPO_FLAGS, *TINY_EVAL]
    _cli(["density", "--env", ENV, "--demos", "demos", "--out", "density", *density_run], tmp_path)
    agent = '{"n_envs": 2, "n_steps": 16, "batch_size": 16}'
    pc_run = ["--seeds", "2", "--total-timesteps", "128", "--total-comparisons", "12", "--num-iterations", "2"]
    pc_run += ["--fragment-length", "4", "--agent", "ppo", "--agent-config", agent, *TINY_EVAL]
    _cli(["preference-comparisons", "--env", ENV, "--out", "pc", *pc_run], tmp_path)
    assert (tmp_path / "pc" / "seed_1" / "reward").exists()
    assert "mean return" in _cli(["eval", "--run", "bc", "--n-episodes", "2"], tmp_path).stdout
    sac_policy = ["--policy", "sac/policies/seed_1", "--env", ENV_CONTINUOUS]
    evaluated = _cli(["eval", *sac_policy, "--n-episodes", "2"], tmp_path)
    assert "mean return" in evaluated.stdout
    _cli(["convert", "demos", "demos.npz"], tmp_path)
    if importlib.util.find_spec("stable_baselines3") is not None:  # the run's policy as SB3's MultiInputPolicy
        _cli(["export-sb3", "--policy", "ppo", "--seed", "1", "--env", ENV, "--out", "ppo.zip"], tmp_path)
        from stable_baselines3 import PPO

        model = PPO.load(tmp_path / "ppo.zip")
        assert model.observation_space == SPACE and type(model.policy).__name__ == "MultiInputActorCriticPolicy"
