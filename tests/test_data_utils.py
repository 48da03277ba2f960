"""Tests for imitation_fn.data.utils and .convert: discounted sums, flattening, fragments, space checks, conversion."""

from __future__ import annotations

import io
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imitation_fn import envs
from imitation_fn.core import random, tree
from imitation_fn.data import rollout, serialize, utils
from imitation_fn.data.convert import convert, save_npz
from imitation_fn.data.types import Trajectory, TrajectoryWithRew, Transitions


def traj(ident: int, n: int, terminal: bool = True, rews: bool = True) -> Trajectory:
    """Episode ``ident`` of ``n`` steps; obs row t is ``(ident, t)`` so every piece is traceable."""
    obs = torch.stack([torch.full((n + 1,), float(ident)), torch.arange(n + 1, dtype=torch.float32)], dim=-1)
    acts = (torch.arange(n) + ident) % 3
    if rews:
        return TrajectoryWithRew(
            obs=obs, acts=acts, terminal=terminal, rews=torch.arange(n, dtype=torch.float32) + ident
        )
    return Trajectory(obs=obs, acts=acts, terminal=terminal)


def assert_same_trajs(got: list[Trajectory], want: list[Trajectory]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w) and g.terminal == w.terminal
        for name in ("obs", "acts", "rews"):
            if hasattr(w, name):
                x, y = getattr(g, name), getattr(w, name)
                assert x.dtype == y.dtype and torch.equal(x, y), name


# ------------------------------------------------------------------------------------------------
# discounted_sum
# ------------------------------------------------------------------------------------------------


def loop_discounted_sum(rews: list[float], gamma: float) -> float:
    total, discount = 0.0, 1.0
    for r in rews:
        total += discount * r
        discount *= gamma
    return total


@settings(max_examples=60, deadline=None)
@given(
    rews=st.lists(st.floats(-10, 10, allow_nan=False), max_size=30),
    gamma=st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)),
)
def test_discounted_sum_matches_a_loop(rews: list[float], gamma: float) -> None:
    got = utils.discounted_sum(torch.tensor(rews, dtype=torch.float64), gamma)
    assert got.shape == ()
    assert float(got) == pytest.approx(loop_discounted_sum(rews, gamma), rel=1e-9, abs=1e-9)


def test_discounted_sum_edge_gammas_and_batch_axes() -> None:
    rews = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert utils.discounted_sum(rews, 0.0).tolist() == [1.0, 4.0]  # only the first step: 0 ** 0 == 1
    assert utils.discounted_sum(rews, 1.0).tolist() == [6.0, 15.0]
    torch.testing.assert_close(utils.discounted_sum(rews, 0.5), torch.tensor([1 + 1 + 0.75, 4 + 2.5 + 1.5]))
    # imitation's own code sums over axis 0 of a 2-D array: rews.T here reproduces its numbers.
    np.testing.assert_allclose(
        np.polynomial.polynomial.polyval(0.9, rews.T.numpy()), utils.discounted_sum(rews, 0.9).numpy(), rtol=1e-6
    )
    assert utils.discounted_sum(torch.zeros(4, 0), 0.9).tolist() == [0.0] * 4
    assert utils.discounted_sum(torch.tensor([1, 2, 3]), 0.5).dtype == torch.float32  # integer rewards promote


def test_discounted_sum_vmaps_over_a_gamma_sweep() -> None:
    gammas = torch.tensor([0.0, 0.5, 0.99, 1.0], dtype=torch.float64)
    rews = torch.linspace(-1, 2, 7, dtype=torch.float64)
    swept = torch.func.vmap(lambda g: utils.discounted_sum(rews, g))(gammas)
    for i, g in enumerate(gammas.tolist()):
        assert float(swept[i]) == pytest.approx(loop_discounted_sum(rews.tolist(), g), rel=1e-12)
    per_row = utils.discounted_sum(torch.ones(4, 3, dtype=torch.float64), gammas)  # gamma per batch row
    assert per_row.tolist() == pytest.approx([1.0, 1.75, 1 + 0.99 + 0.99**2, 3.0])


# ------------------------------------------------------------------------------------------------
# Flattening and concatenation
# ------------------------------------------------------------------------------------------------


def test_flatten_trajectories_with_rew() -> None:
    trans = utils.flatten_trajectories_with_rew([traj(0, 3), traj(5, 2, terminal=False)])  # type: ignore[list-item]
    assert isinstance(trans, utils.TransitionsWithRew) and isinstance(trans, Transitions) and len(trans) == 5
    assert trans.rews.tolist() == [0.0, 1.0, 2.0, 5.0, 6.0]
    assert trans.obs[:, 1].tolist() == [0, 1, 2, 0, 1] and trans.next_obs[:, 1].tolist() == [1, 2, 3, 1, 2]
    assert trans.dones.tolist() == [False, False, True, False, False]
    with pytest.raises(ValueError, match="trajectory 1 has no rewards"):
        utils.flatten_trajectories_with_rew([traj(0, 3), traj(1, 2, rews=False)])  # type: ignore[list-item]


def test_concatenate_trajectory_lists() -> None:
    a, b = [traj(0, 2), traj(1, 3)], [traj(2, 1)]
    joined = utils.concatenate([a, [], b])
    assert [int(t.obs[0, 0]) for t in joined] == [0, 1, 2] and utils.concatenate([]) == []
    with pytest.raises(ValueError, match="trajectory 2 differs in having rewards"):
        utils.concatenate([a, [traj(3, 2, rews=False)]])
    wide = traj(4, 2).replace(obs=torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"trajectory 1 obs has item shape \(5,\).*trajectory 0 has \(2,\)"):
        utils.concatenate([[traj(0, 2)], [wide]])
    with pytest.raises(ValueError, match=r"trajectory 1 acts .* dtype torch\.int32"):
        utils.concatenate([[traj(0, 2)], [traj(1, 2).replace(acts=torch.zeros(2, dtype=torch.int32))]])


def test_concatenate_batches() -> None:
    one = utils.flatten_trajectories_with_rew([traj(0, 2)])  # type: ignore[list-item]
    two = utils.flatten_trajectories_with_rew([traj(1, 3)])  # type: ignore[list-item]
    both = utils.concatenate_batches([one, two])
    assert isinstance(both, utils.TransitionsWithRew) and len(both) == 5
    assert tree.allclose(both, utils.flatten_trajectories_with_rew([traj(0, 2), traj(1, 3)]))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty"):
        utils.concatenate_batches([])


# ------------------------------------------------------------------------------------------------
# Fragments
# ------------------------------------------------------------------------------------------------


def assert_is_fragment_of(frag: Trajectory, source: Trajectory, length: int) -> int:
    """``frag`` is ``length`` consecutive steps of ``source``; returns its start."""
    assert len(frag) == length and frag.obs.shape == (length + 1, 2)
    start = int(frag.obs[0, 1])
    assert torch.equal(frag.obs, source.obs[start : start + length + 1])
    assert torch.equal(frag.acts, source.acts[start : start + length])
    assert torch.equal(frag.rews, source.rews[start : start + length])  # type: ignore[attr-defined]
    assert frag.terminal == (source.terminal and start + length == len(source))
    return start


def test_split_into_fragments() -> None:
    episode = traj(0, 7)
    frags = utils.split_into_fragments(episode, 3)
    assert [assert_is_fragment_of(f, episode, 3) for f in frags] == [0, 3]  # tail of 1 step dropped
    assert not any(f.terminal for f in frags)  # the terminal last step is in the dropped tail
    frags = utils.split_into_fragments(episode, 3, stride=2)
    assert [assert_is_fragment_of(f, episode, 3) for f in frags] == [0, 2, 4]
    assert [f.terminal for f in frags] == [False, False, True]  # ends exactly where the terminal episode ends
    truncated = traj(1, 6, terminal=False)
    assert not any(f.terminal for f in utils.split_into_fragments([truncated], 3))
    assert all(isinstance(f, TrajectoryWithRew) for f in frags)
    plain = utils.split_into_fragments(traj(2, 4, rews=False), 2)
    assert [type(f) for f in plain] == [Trajectory, Trajectory]


def test_fragments_skip_short_episodes_with_a_warning_and_fail_when_none_fit() -> None:
    with pytest.warns(UserWarning, match="discarded 1 out of 2 trajectories .* fragment length of 4"):
        frags = utils.split_into_fragments([traj(0, 3), traj(1, 5)], 4)
    assert [int(f.obs[0, 0]) for f in frags] == [1]
    with pytest.raises(
        ValueError, match=r"no trajectories are long enough .* length of 10 \(trajectory lengths: \[3, 5\]\)"
    ):
        utils.split_into_fragments([traj(0, 3), traj(1, 5)], 10)
    with pytest.raises(ValueError, match="fragment_length must be >= 1"):
        utils.split_into_fragments([traj(0, 3)], 0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        utils.split_into_fragments([traj(0, 3)], 2, stride=0)
    with pytest.raises(ValueError, match="no trajectories are long enough"):
        utils.sample_fragments(random.key(0), [traj(0, 3)], 4, 2)


def test_sample_fragments_like_random_fragmenter() -> None:
    sources = [traj(0, 4), traj(1, 12, terminal=False), traj(2, 2)]  # the last is too short for length 3
    with pytest.warns(UserWarning) as record:
        frags = utils.sample_fragments(random.key(0), sources, 3, 3000, warning_threshold=0)
    messages = [str(w.message) for w in record]
    assert any("discarded 1 out of 3" in m for m in messages)
    assert any("fewer transitions available" in m and "(16 available, 9000 needed)" in m for m in messages)
    for frag in frags[:200]:
        assert_is_fragment_of(frag, sources[int(frag.obs[0, 0])], 3)
    which = torch.tensor([int(f.obs[0, 0]) for f in frags])
    assert set(which.tolist()) == {0, 1}
    assert 0.25 - 0.05 < float((which == 0).float().mean()) < 0.25 + 0.05  # chosen in proportion to length
    starts = torch.tensor([int(f.obs[0, 1]) for f in frags])[which == 1]
    assert set(starts.tolist()) == set(range(10))  # every possible start of the long episode is used
    assert sum(f.terminal for f in frags) > 0 and all(int(f.obs[0, 0]) == 0 for f in frags if f.terminal)
    with pytest.warns(UserWarning, match="fewer transitions"):
        again = utils.sample_fragments(random.key(0), sources[:2], 3, 3000, warning_threshold=0)
    assert all(tree.allclose(a, b) for a, b in zip(frags, again, strict=True))  # deterministic in the key


def test_sample_fragments_warns_about_repeats() -> None:
    with pytest.warns(UserWarning, match="fewer transitions available than needed"):
        utils.sample_fragments(random.key(0), [traj(0, 5)], 2, 4)
    with pytest.warns(UserWarning, match="less than warning_threshold=10 times"):
        utils.sample_fragments(random.key(0), [traj(0, 50)], 2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        utils.sample_fragments(random.key(0), [traj(0, 50)], 2, 4, warning_threshold=0)


# ------------------------------------------------------------------------------------------------
# check_spaces
# ------------------------------------------------------------------------------------------------

BOX2 = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)


def test_check_spaces_accepts_matching_data() -> None:
    trajs = [traj(0, 3), traj(1, 4)]
    utils.check_spaces(trajs, BOX2, gym.spaces.Discrete(3))
    utils.check_spaces(utils.flatten_trajectories_with_rew(trajs), BOX2, gym.spaces.Discrete(3))  # type: ignore[arg-type]
    as_f64 = [t.replace(obs=t.obs.double()) for t in trajs]  # same kind: castable, accepted unless strict
    utils.check_spaces(as_f64, BOX2, gym.spaces.Discrete(3))
    multi = [Trajectory(obs=torch.zeros(3, 2), acts=torch.tensor([[0, 3], [1, 2]]), terminal=False)]
    utils.check_spaces(multi, BOX2, gym.spaces.MultiDiscrete([2, 4]))
    binary = [Trajectory(obs=torch.zeros(2, 2), acts=torch.tensor([[True, False, True]]), terminal=False)]
    utils.check_spaces(binary, BOX2, gym.spaces.MultiBinary(3))


def test_check_spaces_names_the_field_and_the_mismatch() -> None:
    trajs = [traj(0, 3), traj(1, 4)]
    with pytest.raises(ValueError, match=r"trajectory 0 obs has shape \(4, 2\), expected \(n, \*\(4,\)\).*"):
        utils.check_spaces(trajs, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match=r"trajectory 0 acts has shape \(3,\).*action_space Box.*expected \(1,\)"):
        utils.check_spaces(trajs, BOX2, gym.spaces.Box(-1, 1, (1,)))
    with pytest.raises(ValueError, match=r"trajectory 0 acts has dtype torch\.int64, expected a float dtype"):
        utils.check_spaces(trajs, BOX2, gym.spaces.Box(-1, 1, ()))
    with pytest.raises(ValueError, match=r"trajectory 1 obs has dtype torch\.float64, expected dtype torch\.float32"):
        utils.check_spaces(
            [trajs[0], trajs[1].replace(obs=trajs[1].obs.double())], BOX2, gym.spaces.Discrete(3), strict_dtype=True
        )
    with pytest.raises(ValueError, match=r"trajectory 0 acts has value 2 outside action_space Discrete\(2\)"):
        utils.check_spaces(trajs, BOX2, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match=r"acts has value 0 outside action_space Discrete\(3, start=1\)"):
        utils.check_spaces(trajs, BOX2, gym.spaces.Discrete(3, start=1))
    with pytest.raises(ValueError, match=r"transitions next_obs has shape \(7, 3\)"):
        trans = utils.flatten_trajectories_with_rew(trajs)  # type: ignore[arg-type]
        utils.check_spaces(trans.replace(next_obs=torch.zeros(7, 3)), BOX2, gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="unsupported space Dict"):
        utils.check_spaces(trajs, gym.spaces.Dict({"a": BOX2}), gym.spaces.Discrete(3))


def test_check_spaces_on_a_real_environment_dataset() -> None:
    env = envs.make("CartPole-v1", n_envs=1)
    trajs = rollout.generate_trajectories(
        env, lambda o, k: random.randint(k, o.shape[:1], 0, 2), random.key(0), min_episodes=2
    )
    utils.check_spaces(trajs, env.observation_space, env.action_space, strict_dtype=True)
    pendulum = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"obs has shape \(\d+, 4\), expected \(n, \*\(3,\)\)"):
        utils.check_spaces(trajs, pendulum.observation_space, pendulum.action_space)


# ------------------------------------------------------------------------------------------------
# convert
# ------------------------------------------------------------------------------------------------


def make_trajs(with_rews: bool = True) -> list[Trajectory]:
    gen = torch.Generator().manual_seed(0)  # test data only
    out: list[Trajectory] = []
    for i, n in enumerate([3, 1, 5]):
        obs = torch.randn(n + 1, 2, 3, generator=gen)
        acts = torch.randint(0, 4, (n,), generator=gen)
        if with_rews:
            out.append(TrajectoryWithRew(obs=obs, acts=acts, terminal=i != 1, rews=torch.randn(n, generator=gen)))
        else:
            out.append(Trajectory(obs=obs, acts=acts, terminal=i != 1))
    return out


def imitation_npz(path: Path, trajs: list[Trajectory]) -> None:
    """Exactly imitation<=0.3's types.save: concatenated fields, cumulative split indices, pickled infos."""
    arrays: dict[str, Any] = dict(
        obs=np.concatenate([t.obs.numpy() for t in trajs]),
        acts=np.concatenate([t.acts.numpy() for t in trajs]),
        infos=np.concatenate([np.full(len(t), {}) for t in trajs]),
        terminal=np.array([t.terminal for t in trajs]),
        indices=np.cumsum([len(t) for t in trajs[:-1]]),
    )
    if all(isinstance(t, TrajectoryWithRew) for t in trajs):
        arrays["rews"] = np.concatenate([t.rews.numpy() for t in trajs])  # type: ignore[attr-defined]
    np.savez_compressed(path, **arrays)


def imitation_load_npz(path: Path) -> list[dict[str, Any]]:
    """imitation 1.0's serialize.load branch for .npz files (it unpickles infos)."""
    data = np.load(path, allow_pickle=True)
    num_trajs = len(data["indices"])
    fields = [
        np.split(data["obs"], data["indices"] + np.arange(num_trajs) + 1),
        np.split(data["acts"], data["indices"]),
        np.split(data["infos"], data["indices"]),
        data["terminal"],
    ]
    names = ["obs", "acts", "infos", "terminal"]
    if "rews" in data:
        fields.append(np.split(data["rews"], data["indices"]))
        names.append("rews")
    return [dict(zip(names, values, strict=True)) for values in zip(*fields, strict=True)]


@pytest.mark.parametrize("with_rews", [True, False])
def test_convert_npz_to_datasets_and_back(tmp_path: Path, with_rews: bool) -> None:
    trajs = make_trajs(with_rews)
    imitation_npz(tmp_path / "old.npz", trajs)
    assert convert(tmp_path / "old.npz", tmp_path / "new") == tmp_path / "new"
    assert_same_trajs(serialize.load(tmp_path / "new"), trajs)
    assert datasets.load_from_disk(str(tmp_path / "new")).column_names[:4] == ["obs", "acts", "infos", "terminal"]

    convert(tmp_path / "new", tmp_path / "again.npz")
    with (
        np.load(tmp_path / "old.npz", allow_pickle=True) as want,
        np.load(tmp_path / "again.npz", allow_pickle=True) as got,
    ):
        assert sorted(got.files) == sorted([*want.files, "infos_json"])  # the infos, readable without unpickling
        for name in want.files:
            assert got[name].dtype == want[name].dtype or name == "indices", name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert got["indices"].dtype == np.int64
    # imitation's own loader reads what we wrote, infos included.
    rows = imitation_load_npz(tmp_path / "again.npz")
    assert [len(r["acts"]) for r in rows] == [3, 1, 5]
    assert all(list(r["infos"]) == [{}] * len(r["acts"]) for r in rows)
    np.testing.assert_array_equal(rows[2]["obs"], trajs[2].obs.numpy())


def test_convert_datasets_to_npz_and_back(tmp_path: Path) -> None:
    trajs = make_trajs()
    serialize.save(tmp_path / "demos", trajs)
    convert(tmp_path / "demos", tmp_path / "out" / "demos.npz")  # parent directories are created
    assert_same_trajs(serialize.load(tmp_path / "out" / "demos.npz"), trajs)
    convert(tmp_path / "out" / "demos.npz", tmp_path / "back")
    assert_same_trajs(serialize.load(tmp_path / "back"), trajs)
    assert sorted(os.listdir(tmp_path / "out")) == ["demos.npz"], "no temporary files left behind"


def test_convert_one_trajectory_and_npz_to_npz(tmp_path: Path) -> None:
    one = make_trajs()[:1]
    imitation_npz(tmp_path / "one.npz", one)  # np.cumsum([]) -> an empty float array of indices
    convert(tmp_path / "one.npz", tmp_path / "copy.npz")
    assert_same_trajs(serialize.load(tmp_path / "copy.npz"), one)
    assert len(imitation_load_npz(tmp_path / "copy.npz")) == 1


def test_convert_refuses_overwrites_and_carries_infos(tmp_path: Path) -> None:
    trajs = make_trajs()
    serialize.save(tmp_path / "a", trajs)
    save_npz(tmp_path / "b.npz", trajs)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        convert(tmp_path / "a", tmp_path / "b.npz")
    convert(tmp_path / "a", tmp_path / "b.npz", overwrite=True)
    with pytest.raises(ValueError, match="same path"):
        convert(tmp_path / "a", tmp_path / "a", overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert(tmp_path / "missing", tmp_path / "c.npz")
    with pytest.raises(ValueError, match="empty sequence"):
        save_npz(tmp_path / "d.npz", [])
    assert not (tmp_path / "c.npz").exists() and not (tmp_path / "d.npz").exists()

    ds = serialize.to_dataset(trajs)
    ds = ds.map(lambda row: {"infos": ['{"TimeLimit.truncated": false}'] * len(row["acts"])})
    ds.save_to_disk(str(tmp_path / "with_infos"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(tmp_path / "with_infos", tmp_path / "e.npz")
        convert(tmp_path / "a", tmp_path / "f.npz")
    assert serialize.load_with_infos(tmp_path / "e.npz").infos[0] == [{"TimeLimit.truncated": False}] * 3


# ------------------------------------------------------------------------------------------------
# Half-written dataset directories are never loaded
# ------------------------------------------------------------------------------------------------


def saved(tmp_path: Path, name: str, n_trajs: int = 3) -> Path:
    trajs = make_trajs() if n_trajs == 3 else [traj(i, 1) for i in range(n_trajs)]
    serialize.save(tmp_path / "good", trajs)
    shutil.copytree(tmp_path / "good", tmp_path / name)
    return tmp_path / name


def arrow_shard(path: Path) -> Path:
    (shard,) = path.glob("*.arrow")
    return shard


@pytest.mark.parametrize("missing", ["state.json", "dataset_info.json"])
def test_load_refuses_a_directory_missing_its_metadata(tmp_path: Path, missing: str) -> None:
    path = saved(tmp_path, "partial")
    (path / missing).unlink()
    with pytest.raises(ValueError, match="not a Hugging Face datasets directory"):
        serialize.load(path)


def test_load_refuses_a_directory_missing_its_data(tmp_path: Path) -> None:
    path = saved(tmp_path, "partial")
    arrow_shard(path).unlink()
    with pytest.raises(ValueError, match=str(path)):
        serialize.load(path)


def test_load_refuses_a_truncated_data_file(tmp_path: Path) -> None:
    path = saved(tmp_path, "partial")
    shard = arrow_shard(path)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):  # pyarrow.ArrowInvalid is a ValueError
        serialize.load(path)


def test_an_interrupted_save_leaves_nothing_loadable(tmp_path: Path) -> None:
    # save() writes into a hidden sibling and renames it into place; a crash mid-write leaves only
    # the sibling, which holds data files but not yet state.json / dataset_info.json (written last).
    good = saved(tmp_path, "complete")
    leftover = tmp_path / ".demos.tmp-0123456789abcdef"
    leftover.mkdir()
    shutil.copy(arrow_shard(good), leftover)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serialize.load(tmp_path / "demos")
    with pytest.raises(ValueError, match="not a Hugging Face datasets directory"):
        serialize.load(leftover)


def test_load_refuses_a_data_file_cut_between_record_batches(tmp_path: Path) -> None:
    path = saved(tmp_path, "partial", n_trajs=1100)  # datasets writes 1000 rows per record batch
    shard = arrow_shard(path)
    data = shard.read_bytes()
    stream, ends = io.BytesIO(data), []
    reader = pa.ipc.MessageReader.open_stream(stream)
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        ends.append((message.type, stream.tell()))
    assert [kind for kind, _ in ends] == ["schema", "record batch", "record batch"]
    shard.write_bytes(data[: ends[1][1]])  # keep the schema and the first 1000 rows only
    with pytest.raises(ValueError, match="incomplete"):
        serialize.load(path)
