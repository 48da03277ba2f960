"""Per-step infos: kept from the env, saved as imitation saves them, loaded back, carried through convert.

``InfoEnv`` below is a user's environment whose infos hold numbers, strings, a nested dict, numpy
values and one object JSON cannot hold; commands reach it as ``test_data_infos:InfoEnv-v0``.
"""

from __future__ import annotations

import math
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn.core import random
from imitation_fn.core.errors import InputError
from imitation_fn.data import gym_rollout, infos, serialize
from imitation_fn.data.convert import convert, save_npz
from imitation_fn.data.types import EpisodesWithInfos, TrajectoryWithRew
from imitation_fn.envs.gym import GymEnv
from imitation_fn.policies import mlp, save_policy

HORIZON = 3


class Opaque:
    """A value JSON cannot hold (an env handing out a handle, a callback, ...)."""


class InfoEnv(gym.Env[np.ndarray, int]):
    """Episodes of ``HORIZON`` steps whose infos hold one of each kind of value."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        info = {
            "t": self.t,
            "name": f"step-{self.t}",
            "nested": {"x": 0.5 * self.t, "tags": ["a", "b"]},
            "np_scalar": np.float32(self.t / 4),
            "np_array": np.arange(self.t, self.t + 2),
            "handle": Opaque(),
        }
        return np.full(2, self.t / 4, np.float32), 1.0, self.t >= HORIZON, False, info


gym.register("InfoEnv-v0", entry_point=InfoEnv)
ENV = f"{__name__}:InfoEnv-v0"


def expected_info(t: int) -> dict[str, Any]:
    """What step ``t``'s info is on disk: numpy values as Python numbers and lists, the handle dropped."""
    return {
        "t": t,
        "name": f"step-{t}",
        "nested": {"x": 0.5 * t, "tags": ["a", "b"]},
        "np_scalar": t / 4,
        "np_array": [t, t + 1],
    }


def zero_policy(obs: torch.Tensor, key: Any) -> torch.Tensor:
    return torch.zeros(obs.shape[0], dtype=torch.long)


def info_episodes(n: int = 3) -> EpisodesWithInfos[TrajectoryWithRew]:
    return gym_rollout.collect_episodes(GymEnv("InfoEnv-v0", n_envs=2), zero_policy, random.key(0), min_episodes=n)


def assert_expected_infos(episodes: EpisodesWithInfos[Any]) -> None:
    assert episodes.infos and all(
        ep_infos == [expected_info(t) for t in range(1, HORIZON + 1)] for ep_infos in episodes.infos
    )


# ---------------------------------------------------------------------------------------------------------------------
# Rollouts → save → load, Python API
# ---------------------------------------------------------------------------------------------------------------------


def test_rollout_infos_are_saved_and_load_back(tmp_path: Path) -> None:
    episodes = info_episodes()
    assert isinstance(episodes.infos[0][0]["handle"], Opaque)  # the env's own infos, untouched in memory
    with pytest.warns(
        UserWarning, match=r"dropped per-step info values that JSON cannot hold.*\['handle'\] \(Opaque\)"
    ):
        serialize.save(tmp_path / "demos", episodes.trajectories, infos=episodes.infos)

    loaded = serialize.load_with_infos(tmp_path / "demos")
    assert_expected_infos(loaded)
    assert type(loaded.infos[0][0]["t"]) is int and type(loaded.infos[0][0]["np_scalar"]) is float
    # load() is unchanged: trajectories only, the same ones.
    plain = serialize.load(tmp_path / "demos")
    assert isinstance(plain, list) and all(isinstance(t, TrajectoryWithRew) for t in plain)
    for a, b in zip(plain, loaded.trajectories, strict=True):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.rews, b.rews)
    # imitation's column layout: per episode, one JSON (= jsonpickle of a plain dict) string per step.
    row = datasets.load_from_disk(str(tmp_path / "demos"))[0]["infos"]
    assert len(row) == HORIZON and row[0].startswith('{"t": 1, "name": "step-1"')


def test_without_infos_every_step_is_an_empty_dict(tmp_path: Path) -> None:
    trajs = info_episodes().trajectories
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        serialize.save(tmp_path / "demos", trajs)
        loaded = serialize.load_with_infos(tmp_path / "demos")
    assert loaded.infos == [[{}] * len(t) for t in trajs]
    assert datasets.load_from_disk(str(tmp_path / "demos"))[0]["infos"] == ["{}"] * HORIZON


def test_infos_must_match_the_trajectories(tmp_path: Path) -> None:
    episodes = info_episodes()
    with pytest.raises(InputError, match="got infos for 2 trajectories, expected"):
        serialize.save(tmp_path / "a", episodes.trajectories, infos=episodes.infos[:2])
    with pytest.raises(InputError, match="trajectory 0 has 3 steps but 2 infos"):
        serialize.save(tmp_path / "b", episodes.trajectories, infos=[i[:2] for i in episodes.infos])
    with pytest.raises(InputError, match="step 0: info is a list, expected a dict"):
        serialize.save(tmp_path / "c", episodes.trajectories, infos=[[[]] * 3 for _ in episodes.infos])
    with pytest.raises(InputError, match="trajectory 0 has 3 steps but 1 infos"):
        EpisodesWithInfos(episodes.trajectories, [[{}]] * len(episodes.trajectories))
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------------
# What JSON keeps, converts and drops
# ---------------------------------------------------------------------------------------------------------------------


def test_encode_keeps_json_converts_numpy_and_tensors_and_drops_the_rest() -> None:
    info = {
        "none": None,
        "flag": np.bool_(True),
        "big": 2**40,
        "nan": float("nan"),
        "inf": -math.inf,
        "tuple": (1, "a"),
        "tensor": torch.tensor([[1.0, 2.0]]),
        "scalar_tensor": torch.tensor(3),
        "strings": np.array(["x", "y"]),
        "bytes": b"raw",
        "set": {1, 2},
        "complex": np.complex64(1j),
        "list_with_object": [1, Opaque()],
        "nested": {"ok": 1, 7: "int key", "py/object": "os.system"},
    }
    with pytest.warns(UserWarning) as record:
        (row,) = infos.encode([[info]], [1], "here")
    message = str(record[0].message)
    assert len(record) == 1 and message.startswith("here: dropped")
    for dropped in (
        "['bytes'] (bytes)",
        "['set'] (set)",
        "['complex'] (complex64)",
        "['list_with_object'][1] (Opaque)",
    ):
        assert dropped in message
    assert "['nested'][7] (key is int)" in message and "['nested']['py/object'] (key starts with py/)" in message
    (back,) = infos.decode([row], [1], "there")[0]
    assert math.isnan(back.pop("nan"))
    assert back == {
        "none": None,
        "flag": True,
        "big": 2**40,
        "inf": -math.inf,
        "tuple": [1, "a"],
        "tensor": [[1.0, 2.0]],
        "scalar_tensor": 3,
        "strings": ["x", "y"],
        "nested": {"ok": 1},
    }


def test_cycles_and_deep_nesting_are_dropped_not_recursed_forever() -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    deep: dict[str, Any] = {"leaf": 0}
    for _ in range(100):
        deep = {"d": deep}
    with pytest.warns(UserWarning, match=r"\['self'\] \(a cycle\).*nested too deep"):
        row = infos.encode([[loop, deep]], [2], "here")[0]
    assert infos.decode([row], [2], "there")[0][0] == {"a": 1}


def test_decode_refuses_what_is_not_imitations_infos_column() -> None:
    with pytest.raises(InputError, match=r"trajectory 0: infos is a list of 1, expected 2 JSON strings"):
        infos.decode([["{}"]], [2], "d")
    with pytest.raises(InputError, match="trajectory 0 step 1: info is not JSON"):
        infos.decode([["{}", "{nope"]], [2], "d")
    with pytest.raises(InputError, match="trajectory 0 step 0: info is '\\[1\\]', expected a JSON object"):
        infos.decode([["[1]"]], [1], "d")


# ---------------------------------------------------------------------------------------------------------------------
# Files imitation wrote
# ---------------------------------------------------------------------------------------------------------------------

# Exactly what jsonpickle 4.1 (imitation's encoder) writes for an info dict holding a tuple, a numpy array
# and a numpy scalar (the last as imitation's RolloutInfoWrapper leaves its "rollout" record), and a plain one.
JSONPICKLED_ARRAY = (
    '{"py/reduce": [{"py/function": "numpy._core.multiarray._reconstruct"}, {"py/tuple": [{"py/type": '
    '"numpy.ndarray"}, {"py/tuple": [0]}, {"py/b64": "Yg=="}]}, {"py/tuple": [1, {"py/tuple": [2]}, '
    '{"py/reduce": [{"py/type": "numpy.dtype"}, {"py/tuple": ["f8", false, true]}, {"py/tuple": [3, "<", null, '
    'null, null, -1, -1, 0]}]}, false, {"py/b64": "AAAAAAAAAAAAAAAAAAAAAA=="}]}]}'
)
JSONPICKLED_SCALAR = (
    '{"py/reduce": [{"py/function": "numpy._core.multiarray.scalar"}, {"py/tuple": [{"py/reduce": [{"py/type": '
    '"numpy.dtype"}, {"py/tuple": ["f4", false, true]}, {"py/tuple": [3, "<", null, null, null, -1, -1, 0]}]}, '
    '{"py/b64": "AADAPw=="}]}]}'
)
IMITATION_INFOS = [
    '{"TimeLimit.truncated": false, "pos": {"py/tuple": [1, 2]}}',
    '{"TimeLimit.truncated": true, "episode": {"r": 2.0, "l": 2}, '
    f'"rollout": {{"obs": {JSONPICKLED_ARRAY}, "rews": {JSONPICKLED_ARRAY}}}, "speed": {JSONPICKLED_SCALAR}}}',
]


def test_an_imitation_written_dataset_loads_with_its_infos(tmp_path: Path) -> None:
    # imitation's trajectories_to_dict: obs, acts, infos (jsonpickle strings), terminal, rews.
    datasets.Dataset.from_dict(
        {
            "obs": [np.zeros((3, 2), np.float32)],
            "acts": [np.array([0, 1])],
            "infos": [IMITATION_INFOS],
            "terminal": [False],
            "rews": [np.ones(2, np.float32)],
        }
    ).save_to_disk(str(tmp_path / "theirs"))
    with pytest.warns(UserWarning, match="only jsonpickle can rebuild") as record:
        loaded = serialize.load_with_infos(tmp_path / "theirs")
    message = str(record[0].message)
    assert "['rollout']['obs'] (py/reduce)" in message and "['speed'] (py/reduce)" in message
    assert loaded.infos == [
        [
            {"TimeLimit.truncated": False, "pos": [1, 2]},
            {"TimeLimit.truncated": True, "episode": {"r": 2.0, "l": 2}, "rollout": {}},
        ]
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # load() does not read the infos at all
        assert len(serialize.load(tmp_path / "theirs")) == 1


def imitation_npz(path: Path, pickled_infos: list[dict[str, Any]]) -> None:
    """imitation <= 0.3's types.save for one trajectory of two steps: infos pickled in an object array."""
    array = np.empty(2, dtype=object)
    array[:] = pickled_infos
    np.savez_compressed(
        path,
        obs=np.zeros((3, 2), np.float32),
        acts=np.array([0, 1]),
        infos=array,
        terminal=np.array([True]),
        indices=np.cumsum([]),
        rews=np.ones(2, np.float32),
    )


def test_imitation_npz_infos_are_never_unpickled(tmp_path: Path) -> None:
    imitation_npz(tmp_path / "empty.npz", [{}, {}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all-empty pickled infos: nothing is lost, nothing to say
        assert serialize.load_with_infos(tmp_path / "empty.npz").infos == [[{}, {}]]
    imitation_npz(tmp_path / "full.npz", [{"a": 1}, {}])
    with pytest.warns(UserWarning, match="infos are pickled .* and are not read"):
        assert serialize.load_with_infos(tmp_path / "full.npz").infos == [[{}, {}]]


def test_pickle_opcodes_tell_empty_dicts_without_unpickling() -> None:
    import pickle

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert infos.pickled_dicts_are_empty(pickle.dumps([{}, {}, []], protocol=protocol)), protocol
        assert not infos.pickled_dicts_are_empty(pickle.dumps([{}, {"a": 1}], protocol=protocol)), protocol
    assert not infos.pickled_dicts_are_empty(b"\x80\x04not a pickle")


# ---------------------------------------------------------------------------------------------------------------------
# convert keeps them both ways
# ---------------------------------------------------------------------------------------------------------------------


def test_convert_dir_to_npz_to_dir_keeps_the_infos(tmp_path: Path) -> None:
    episodes = info_episodes()
    with pytest.warns(UserWarning, match="handle"):
        serialize.save(tmp_path / "demos", episodes.trajectories, infos=episodes.infos)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what is on disk is already JSON: nothing more is dropped
        convert(tmp_path / "demos", tmp_path / "demos.npz")
        assert_expected_infos(serialize.load_with_infos(tmp_path / "demos.npz"))
        convert(tmp_path / "demos.npz", tmp_path / "again")
        assert_expected_infos(serialize.load_with_infos(tmp_path / "again"))
    # imitation's npz reader unpickles `infos`: plain dicts, the same ones.
    with np.load(tmp_path / "demos.npz", allow_pickle=True) as data:
        assert list(data["infos"][:HORIZON]) == [expected_info(t) for t in range(1, HORIZON + 1)]
        assert data["infos_json"].dtype.kind == "U"


def test_save_npz_writes_only_plain_dicts(tmp_path: Path) -> None:
    episodes = info_episodes(2)
    with pytest.warns(UserWarning, match=r"save_npz: dropped .*\['handle'\] \(Opaque\)"):
        save_npz(tmp_path / "d.npz", episodes.trajectories, infos=episodes.infos)
    assert_expected_infos(serialize.load_with_infos(tmp_path / "d.npz"))


# ---------------------------------------------------------------------------------------------------------------------
# The rollouts command
# ---------------------------------------------------------------------------------------------------------------------


def test_rollouts_command_keeps_the_envs_infos(tmp_path: Path) -> None:
    spaces = (InfoEnv.observation_space, InfoEnv.action_space)
    save_policy(tmp_path / "policy", "mlp", mlp.init(random.key(0), *spaces, net_arch=(8,)), spaces)
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).parent)}
    for args in (
        ["rollouts", "--policy", "policy", "--env", ENV, "--episodes", "3", "--out", "demos"],
        ["convert", "demos", "demos.npz"],
        ["convert", "demos.npz", "back"],
    ):
        proc = subprocess.run(["imitation-fn", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    for saved in ("demos", "demos.npz", "back"):
        loaded = serialize.load_with_infos(tmp_path / saved)
        assert len(loaded.trajectories) == 3
        assert_expected_infos(loaded)
