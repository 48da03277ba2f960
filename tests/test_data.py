"""Tests for imitation_fn.data: pure rollouts, episode cutting, sampling, stats and imitation-compatible files."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import Field, ValidationError
from torch import Tensor

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import checks, random, struct, tree
from imitation_fn.core.config import Config, read_mapping
from imitation_fn.core.errors import InputError
from imitation_fn.data import rollout, serialize
from imitation_fn.data.convert import convert
from imitation_fn.data.types import Trajectory, TrajectoryWithRew
from imitation_fn.envs.base import Env, TimeStep
from imitation_fn.envs.experts import cartpole_expert

# ------------------------------------------------------------------------------------------------
# A toy env whose episode boundaries are known in advance
# ------------------------------------------------------------------------------------------------


class CounterState(struct.PyTreeNode):
    t: Tensor  # (n_envs,) int64: steps taken in the current episode
    noise: Tensor  # (n_envs,) float32: drawn at reset, so the stream depends on the key


class CounterEnv(Env):
    """Sub-env ``i`` terminates after ``2 + i`` steps; a time limit truncates at ``limit`` steps.

    obs = (t, noise, i); reward = the action. With n_envs=4, limit=4: episodes last 2, 3, 4, 4 steps,
    env 2 is terminated *and* truncated at 4 (terminal), env 3 only truncated (not terminal).
    """

    def __init__(self, n_envs: int = 4, limit: int = 4) -> None:
        self.n_envs = n_envs
        self.max_episode_steps = self.limit = limit
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.horizons = torch.arange(n_envs) + 2

    def _obs(self, state: CounterState) -> Tensor:
        ids = torch.arange(self.n_envs, dtype=torch.float32)
        return torch.stack([state.t.to(torch.float32), state.noise, ids], dim=-1)

    def reset(self, key: Tensor) -> TimeStep:
        state = CounterState(t=torch.zeros(self.n_envs, dtype=torch.int64), noise=random.uniform(key, (self.n_envs,)))
        obs = self._obs(state)
        no = torch.zeros(self.n_envs, dtype=torch.bool)
        return TimeStep(state, obs, torch.zeros(self.n_envs), no, no, obs)

    def step(self, env_state: Any, action: Tensor, key: Tensor) -> TimeStep:
        reached = CounterState(t=env_state.t + 1, noise=env_state.noise)
        terminated = reached.t >= self.horizons
        truncated = reached.t >= self.limit
        done = terminated | truncated
        fresh = self.reset(key).env_state
        state = CounterState(
            t=torch.where(done, fresh.t, reached.t), noise=torch.where(done, fresh.noise, reached.noise)
        )
        return TimeStep(state, self._obs(state), action.to(torch.float32), terminated, truncated, self._obs(reached))


def random_policy(obs: Tensor, key: Tensor) -> Tensor:
    return random.randint(key, obs.shape[:1], 0, 3)


def assert_counts_up(traj: Trajectory) -> None:
    """Every toy episode's obs[:, 0] is 0, 1, ..., T, and its env's horizon fixes T."""
    torch.testing.assert_close(traj.obs[:, 0], torch.arange(len(traj) + 1, dtype=torch.float32))
    env_id = int(traj.obs[0, 2])
    assert len(traj) == min(2 + env_id, 4)
    assert traj.terminal == (2 + env_id <= 4)
    assert bool((traj.obs[:, 1] == traj.obs[0, 1]).all()), "an episode keeps its reset noise"


# ------------------------------------------------------------------------------------------------
# rollout (pure)
# ------------------------------------------------------------------------------------------------


def test_rollout_shapes_and_auto_reset_bookkeeping() -> None:
    env = CounterEnv()
    batch, last = rollout.rollout(env, random_policy, random.key(0), n_steps=10)
    checks.assert_shape(batch.obs, (10, 4, 3), "obs")
    checks.assert_shape(batch.next_obs, (10, 4, 3), "next_obs")
    checks.assert_shape(batch.acts, (10, 4), "acts")
    for name in ("rews", "terminated", "truncated"):
        checks.assert_shape(getattr(batch, name), (10, 4), name)
    torch.testing.assert_close(batch.rews, batch.acts.to(torch.float32))

    # next_obs is the pre-reset observation: the counter reaches the horizon there ...
    dones = batch.dones
    assert torch.equal(batch.next_obs[..., 0], batch.obs[..., 0] + 1)
    # ... while obs of the following step restarts at 0; elsewhere next_obs[t] == obs[t + 1].
    assert bool((batch.obs[1:, :, 0][dones[:-1]] == 0).all())
    assert torch.equal(batch.next_obs[:-1][~dones[:-1]], batch.obs[1:][~dones[:-1]])
    expected_done_steps = {0: [1, 3, 5, 7, 9], 1: [2, 5, 8], 2: [3, 7], 3: [3, 7]}
    for e, steps in expected_done_steps.items():
        assert torch.nonzero(dones[:, e]).flatten().tolist() == steps
    assert not bool(batch.terminated[:, 3].any()) and bool(batch.truncated[:, 3].any())
    assert bool((batch.terminated[:, 2] == batch.truncated[:, 2]).all())  # horizon == time limit
    # The returned TimeStep is the one after the last step: env 0 just finished and was reset.
    assert torch.equal(last.final_obs, batch.next_obs[-1])
    assert last.obs[0, 0] == 0 and torch.equal(last.obs[1:], batch.next_obs[-1, 1:])


def test_rollout_resumes_from_timestep() -> None:
    env = CounterEnv()
    _, ts = rollout.rollout(env, random_policy, random.key(1), n_steps=3)
    second, _ = rollout.rollout(env, random_policy, random.key(2), n_steps=4, timestep=ts)
    assert torch.equal(second.obs[0], ts.obs)
    # Env 3 (4-step episodes) is mid-episode at the seam: its counter continues from 3.
    assert second.obs[0, 3, 0] == 3 and second.terminated.shape == (4, 4)


def test_rollout_vmap_over_keys_equals_loop() -> None:
    env = CounterEnv()
    keys = random.split(random.key(7), 3)
    batched, last = torch.func.vmap(lambda k: rollout.rollout(env, random_policy, k, 6))(keys)
    for i in range(3):
        alone, last_alone = rollout.rollout(env, random_policy, keys[i], 6)
        checks.assert_trees_allclose(tree.index(batched, i), alone, rtol=0, atol=0, name=f"seed {i}")
        checks.assert_trees_allclose(tree.index(last, i), last_alone, rtol=0, atol=0, name=f"last {i}")
    assert not torch.equal(batched.acts[0], batched.acts[1]), "different keys must give different streams"
    with pytest.raises(ValueError, match="take one seed first"):
        rollout.to_trajectories(batched)
    assert len(rollout.to_trajectories(tree.index(batched, 2))) == 7


def test_rollout_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        rollout.rollout(CounterEnv(), random_policy, random.key(0), 0)


def test_flatten_rollout_marks_only_terminations_done() -> None:
    batch, _ = rollout.rollout(CounterEnv(), random_policy, random.key(0), n_steps=8)
    trans = rollout.flatten_rollout(batch)
    assert len(trans) == 32
    assert torch.equal(trans.next_obs.reshape(8, 4, 3), batch.next_obs)
    assert torch.equal(trans.dones.reshape(8, 4), batch.terminated)


# ------------------------------------------------------------------------------------------------
# Host-side episodes
# ------------------------------------------------------------------------------------------------


def test_to_trajectories_cuts_complete_episodes_and_drops_partial_tails() -> None:
    batch, _ = rollout.rollout(CounterEnv(), random_policy, random.key(3), n_steps=10)
    trajs = rollout.to_trajectories(batch)
    # Done steps per env: 0 -> 1,3,5,7,9 ; 1 -> 2,5,8 ; 2 -> 3,7 ; 3 -> 3,7 (tails of envs 1-3 dropped).
    assert [int(t.obs[0, 2]) for t in trajs] == [0, 1, 0, 2, 3, 0, 1, 0, 2, 3, 1, 0]
    for traj in trajs:
        assert isinstance(traj, TrajectoryWithRew)
        assert traj.obs.shape == (len(traj) + 1, 3) and traj.rews.shape == (len(traj),)
        assert_counts_up(traj)
    # Contents line up with the rollout: env 1's second episode is steps 3..5.
    second = trajs[6]
    torch.testing.assert_close(second.acts, batch.acts[3:6, 1])
    torch.testing.assert_close(second.obs[:-1], batch.obs[3:6, 1])
    torch.testing.assert_close(second.obs[-1], batch.next_obs[5, 1])


def test_make_sample_until_validates_like_imitation() -> None:
    with pytest.raises(ValueError, match="At least one of min_timesteps and min_episodes"):
        rollout.make_sample_until()
    with pytest.raises(ValueError, match="min_episodes=0 if provided must be positive"):
        rollout.make_sample_until(min_episodes=0)
    with pytest.raises(ValueError, match="min_timesteps=-1 if provided must be positive"):
        rollout.make_sample_until(min_timesteps=-1)
    traj = Trajectory(obs=torch.zeros(4, 1), acts=torch.zeros(3), terminal=True)
    until = rollout.make_sample_until(min_timesteps=5, min_episodes=2)
    assert not until([traj]) and not until([traj] * 1) and until([traj] * 2)
    assert not rollout.make_sample_until(min_timesteps=7)([traj, traj])


def test_generate_trajectories_requires_a_condition() -> None:
    with pytest.raises(ValueError, match="At least one of min_timesteps and min_episodes"):
        rollout.generate_trajectories(CounterEnv(), random_policy, random.key(0))


def test_generate_trajectories_finishes_running_episodes_like_imitation() -> None:
    # Episodes end at step 1 (env 0), 2 (env 1), 3 (envs 0, 2, 3): the goal of 3 is reached at
    # step 3, which stops envs 0, 2, 3; env 1 still runs its episode to the end (step 5), so six
    # episodes come back, as imitation's unbiased sampler returns.
    trajs = rollout.generate_trajectories(CounterEnv(), random_policy, random.key(0), min_episodes=3)
    assert sorted(len(t) for t in trajs) == [2, 2, 3, 3, 4, 4]
    for traj in trajs:
        assert_counts_up(traj)


@pytest.mark.parametrize("chunk_steps", [1, 3, 50])
def test_generate_trajectories_stitches_episodes_across_chunks(chunk_steps: int) -> None:
    trajs = rollout.generate_trajectories(
        CounterEnv(), random_policy, random.key(5), min_episodes=9, min_timesteps=20, chunk_steps=chunk_steps
    )
    assert len(trajs) >= 9 and sum(len(t) for t in trajs) >= 20
    for traj in trajs:
        assert_counts_up(traj)
        torch.testing.assert_close(traj.rews, traj.acts.to(torch.float32))


def test_generate_trajectories_min_timesteps_only_and_determinism() -> None:
    env = CounterEnv()
    a = rollout.generate_trajectories(env, random_policy, random.key(11), min_timesteps=30)
    b = rollout.generate_trajectories(env, random_policy, random.key(11), min_timesteps=30)
    c = rollout.generate_trajectories(env, random_policy, random.key(12), min_timesteps=30)
    assert sum(len(t) for t in a) >= 30
    assert len(a) == len(b) and all(tree.allclose(x, y) for x, y in zip(a, b, strict=True))
    assert not all(tree.allclose(x, y) for x, y in zip(a, c, strict=False))


def test_generate_trajectories_on_cartpole_expert() -> None:
    env = envs.make("CartPole-v1", n_envs=2)
    trajs = rollout.generate_trajectories(env, cartpole_expert, random.key(0), min_episodes=2)
    assert len(trajs) >= 2
    for traj in trajs:  # the expert always survives to the 500-step time limit
        assert len(traj) == 500 and not traj.terminal and traj.obs.shape == (501, 4)
        assert float(traj.rews.sum()) == 500.0


def test_flatten_trajectories_matches_imitation() -> None:
    t1 = TrajectoryWithRew(
        obs=torch.arange(4.0)[:, None], acts=torch.tensor([0, 1, 0]), terminal=True, rews=torch.ones(3)
    )
    t2 = Trajectory(obs=torch.arange(10.0, 13.0)[:, None], acts=torch.tensor([1, 1]), terminal=False)
    trans = rollout.flatten_trajectories([t1, t2])
    assert len(trans) == 5
    assert trans.obs.flatten().tolist() == [0, 1, 2, 10, 11]
    assert trans.next_obs.flatten().tolist() == [1, 2, 3, 11, 12]
    assert trans.acts.tolist() == [0, 1, 0, 1, 1]
    assert trans.dones.tolist() == [False, False, True, False, False]
    with pytest.raises(ValueError, match="empty"):
        rollout.flatten_trajectories([])


def test_rollout_stats_on_known_example() -> None:
    def traj(rews: list[float]) -> TrajectoryWithRew:
        n = len(rews)
        return TrajectoryWithRew(obs=torch.zeros(n + 1, 1), acts=torch.zeros(n), terminal=True, rews=torch.tensor(rews))

    stats = rollout.rollout_stats([traj([1.0, 1.0]), traj([2.0, 2.0, 2.0])])
    assert stats == {
        "n_traj": 2,
        "return_min": 2.0,
        "return_mean": 4.0,
        "return_std": 2.0,  # population std, as numpy.std in imitation
        "return_max": 6.0,
        "len_min": 2.0,
        "len_mean": 2.5,
        "len_std": 0.5,
        "len_max": 3.0,
    }
    with pytest.raises(ValueError, match="empty"):
        rollout.rollout_stats([])


# ------------------------------------------------------------------------------------------------
# Files
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


def assert_same_trajs(got: list[Trajectory], want: list[Trajectory]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w) and g.terminal == w.terminal
        for name in ("obs", "acts", "rews"):
            if hasattr(w, name):
                x, y = getattr(g, name), getattr(w, name)
                assert x.dtype == y.dtype, name
                assert torch.equal(x, y), name


@pytest.mark.parametrize("with_rews", [True, False])
def test_save_load_round_trip(tmp_path: Path, with_rews: bool) -> None:
    trajs = make_trajs(with_rews)
    serialize.save(tmp_path / "demos", trajs)
    assert_same_trajs(serialize.load(tmp_path / "demos"), trajs)


def test_saved_columns_match_imitation_layout(tmp_path: Path) -> None:
    trajs = make_trajs()
    serialize.save(tmp_path / "demos", trajs)
    ds = datasets.load_from_disk(str(tmp_path / "demos"))
    assert ds.column_names == ["obs", "acts", "infos", "terminal", "rews"]
    assert ds.features == imitation_style_dataset(trajs).features
    assert [json.loads(s) for s in ds[0]["infos"]] == [{}, {}, {}]  # jsonpickle.decode("{}") == {}
    assert ds["terminal"] == [True, False, True]


PEER_PYTHON = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_imitation" / ".peer-venv" / "bin" / "python"


def test_saved_feature_types_are_spelled_for_datasets_2(tmp_path: Path) -> None:
    """imitation pins datasets 2.x, which knows ``Sequence`` but not datasets 4's ``List``: the directory we
    write names only types both read, in dataset_info.json and in the Arrow file's own schema metadata."""
    serialize.save(tmp_path / "demos", make_trajs())
    info = (tmp_path / "demos" / "dataset_info.json").read_text()
    arrow = next((tmp_path / "demos").glob("*.arrow"))
    with pa.memory_map(str(arrow)) as source:
        metadata = pa.ipc.open_stream(source).schema.metadata[b"huggingface"].decode()
    for text in (info, metadata):
        assert '"List"' not in text and '"Sequence"' in text
    features = datasets.load_from_disk(str(tmp_path / "demos")).features
    assert features == imitation_style_dataset(make_trajs()).features  # datasets >= 4 reads it as before


@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="no peer venv (python benchmarks/vs_imitation/run.py builds it)")
def test_imitation_itself_loads_what_we_save(tmp_path: Path) -> None:
    trajs = make_trajs()
    serialize.save(tmp_path / "demos", trajs)
    script = (
        "import sys; from imitation.data import serialize; t = serialize.load(sys.argv[1]); "
        "print(len(t), [len(x.acts) for x in t])"
    )
    out = subprocess.run([str(PEER_PYTHON), "-c", script, str(tmp_path / "demos")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == f"{len(trajs)} {[len(t) for t in trajs]}"


def imitation_style_dataset(trajs: list[Trajectory]) -> datasets.Dataset:
    """The dataset imitation.data.huggingface_utils.trajectories_to_dataset builds (numpy per episode)."""
    columns: dict[str, Any] = dict(
        obs=[t.obs.numpy() for t in trajs],
        acts=[t.acts.numpy() for t in trajs],
        infos=[["{}"] * len(t) for t in trajs],  # jsonpickle.encode({}) for infos=None
        terminal=[t.terminal for t in trajs],
    )
    if all(isinstance(t, TrajectoryWithRew) for t in trajs):
        columns["rews"] = [t.rews.numpy() for t in trajs]  # type: ignore[attr-defined]
    return datasets.Dataset.from_dict(columns)


def test_loads_dataset_written_in_imitations_layout(tmp_path: Path) -> None:
    trajs = make_trajs()
    ds = imitation_style_dataset(trajs)
    ds = ds.cast_column("infos", datasets.Sequence(datasets.Value("string")))
    ds.save_to_disk(str(tmp_path / "theirs"))
    assert_same_trajs(serialize.load(tmp_path / "theirs"), trajs)
    with_infos = ds.map(lambda row: {"infos": ['{"TimeLimit.truncated": false}'] * len(row["acts"])})
    assert_same_trajs(serialize.from_dataset(with_infos), trajs)


def test_loads_imitations_npz_format(tmp_path: Path) -> None:
    trajs = make_trajs()
    # Exactly imitation<=0.3's types.save: concatenated fields, split indices, pickled infos.
    np.savez_compressed(
        tmp_path / "old.npz",
        obs=np.concatenate([t.obs.numpy() for t in trajs]),
        acts=np.concatenate([t.acts.numpy() for t in trajs]),
        infos=np.concatenate([np.full(len(t), {}) for t in trajs]),
        terminal=np.array([t.terminal for t in trajs]),
        indices=np.cumsum([len(t) for t in trajs[:-1]]),
        rews=np.concatenate([t.rews.numpy() for t in trajs]),  # type: ignore[attr-defined]
    )
    assert_same_trajs(serialize.load(tmp_path / "old.npz"), trajs)
    one = trajs[:1]  # one trajectory: np.cumsum([]) gives an empty float array of indices
    np.savez_compressed(
        tmp_path / "one.npz",
        obs=one[0].obs.numpy(),
        acts=one[0].acts.numpy(),
        terminal=np.array([True]),
        indices=np.cumsum([]),
    )
    loaded = serialize.load(tmp_path / "one.npz")
    assert len(loaded) == 1 and type(loaded[0]) is Trajectory and torch.equal(loaded[0].obs, one[0].obs)


def test_load_with_rewards(tmp_path: Path) -> None:
    serialize.save(tmp_path / "a", make_trajs(with_rews=False))
    with pytest.raises(ValueError, match="trajectory 0 has none"):
        serialize.load_with_rewards(tmp_path / "a")
    serialize.save(tmp_path / "b", make_trajs())
    assert len(serialize.load_with_rewards(tmp_path / "b")) == 3


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty sequence"):
        serialize.save(tmp_path / "x", [])
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serialize.load(tmp_path / "missing")
    mixed = [*make_trajs(True)[:1], *make_trajs(False)[:1]]
    with pytest.raises(ValueError, match="Some trajectories have rewards but not all"):
        serialize.save(tmp_path / "x", mixed)

    datasets.Dataset.from_dict({"obs": [[[0.0], [1.0]]], "infos": [["{}"]]}).save_to_disk(str(tmp_path / "cols"))
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['acts', 'terminal'\]"):
        serialize.load(tmp_path / "cols")

    bad = make_trajs()
    bad[2] = bad[2].replace(obs=bad[2].obs.clone().index_put_((torch.tensor([1]),), torch.tensor(float("nan"))))
    with pytest.raises(ValueError, match="trajectory 2: obs contains NaN"):
        serialize.save(tmp_path / "x", bad)
    imitation_style_dataset(bad).save_to_disk(str(tmp_path / "nan"))
    with pytest.raises(ValueError, match="trajectory 2: obs contains NaN"):
        serialize.load(tmp_path / "nan")

    (tmp_path / "plain.txt").write_text("not trajectories")
    with pytest.raises(ValueError, match=r"neither a datasets directory nor an \.npz"):
        serialize.load(tmp_path / "plain.txt")
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match="not a Hugging Face datasets directory"):
        serialize.load(tmp_path / "notes")


def test_save_never_loses_existing_data(tmp_path: Path) -> None:
    path = tmp_path / "demos"
    first = make_trajs()
    serialize.save(path, first)
    bad = [first[0].replace(obs=torch.full_like(first[0].obs, float("nan")))]
    with pytest.raises(ValueError, match="NaN"):
        serialize.save(path, bad)
    assert_same_trajs(serialize.load(path), first)

    second = make_trajs(with_rews=False)
    serialize.save(path, second)  # a saved dataset is replaced atomically
    assert_same_trajs(serialize.load(path), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos"], "no temporary directories left behind"

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        serialize.save(tmp_path / "mine", first)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_generated_trajectories_round_trip(tmp_path: Path) -> None:
    trajs = rollout.generate_trajectories(CounterEnv(), random_policy, random.key(0), min_episodes=5)
    serialize.save(tmp_path / "gen", trajs)
    loaded = serialize.load_with_rewards(tmp_path / "gen")
    assert_same_trajs(list(loaded), list(trajs))
    assert rollout.rollout_stats(loaded) == rollout.rollout_stats(trajs)


# ------------------------------------------------------------------------------------------------
# Bad input: every loader returns data or raises InputError naming the file
# ------------------------------------------------------------------------------------------------


def test_trajectory_refuses_inconsistent_lengths() -> None:
    with pytest.raises(InputError, match=r"^Trajectory: obs has 3 rows, expected len\(acts\) \+ 1 = 4$"):
        Trajectory(obs=torch.zeros(3, 1), acts=torch.zeros(3), terminal=True)
    with pytest.raises(InputError, match=r"^TrajectoryWithRew: rews has 2 rows, expected len\(acts\) = 3$"):
        TrajectoryWithRew(obs=torch.zeros(4, 1), acts=torch.zeros(3), terminal=True, rews=torch.zeros(2))
    with pytest.raises(InputError, match="acts is a scalar"):
        Trajectory(obs=torch.zeros(2, 1), acts=torch.tensor(0), terminal=True)
    good = TrajectoryWithRew(obs=torch.zeros(4, 1), acts=torch.zeros(3), terminal=True, rews=torch.zeros(3))
    with pytest.raises(InputError, match="obs has 3 rows"):
        good.replace(obs=good.obs[:3])  # .replace goes through the constructor
    assert len(Trajectory(obs=torch.zeros(1, 2), acts=torch.zeros(0), terminal=False)) == 0


def test_trajectory_check_leaves_pytree_transforms_alone() -> None:
    # tree.stack / vmap / tree.map rebuild trajectories from batched or placeholder leaves without __init__.
    trajs = [TrajectoryWithRew(obs=torch.randn(4, 2), acts=torch.zeros(3), terminal=True, rews=torch.randn(3))] * 2
    stacked = tree.stack(trajs)
    assert stacked.obs.shape == (2, 4, 2) and tree.unstack(stacked)[1].rews.shape == (3,)
    sums = torch.vmap(lambda t: t.replace(rews=t.rews * 2).rews.sum())(stacked)  # per-episode inside vmap
    torch.testing.assert_close(sums, 2 * stacked.rews.sum(-1))
    assert tree.map(lambda x: x[:1], trajs[0]).obs.shape == (1, 2)
    assert trajs[0].replace(obs=()).obs == ()  # a placeholder leaf is not data


def npz(path: Path, **overrides: Any) -> Path:
    """imitation's .npz of make_trajs() (3 episodes of 3, 1, 5 steps), with some arrays replaced or removed."""
    trajs = make_trajs()
    arrays: dict[str, Any] = dict(
        obs=np.concatenate([t.obs.numpy() for t in trajs]),
        acts=np.concatenate([t.acts.numpy() for t in trajs]),
        terminal=np.array([t.terminal for t in trajs]),
        indices=np.cumsum([len(t) for t in trajs[:-1]]),
        rews=np.concatenate([t.rews.numpy() for t in trajs]),  # type: ignore[attr-defined]
    )
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(acts=np.zeros(8, np.int64)), r"obs has 12 rows, expected len\(acts\) \+ number of trajectories"),
        (dict(obs=np.zeros((13, 2, 3), np.float32)), "obs has 13 rows"),
        (dict(rews=np.zeros(8, np.float32)), r"rews has 8 rows, expected len\(acts\) = 9"),
        (dict(terminal=np.array([True, False])), r"indices has shape \(2,\), expected \(1,\)"),
        (dict(indices=np.array([4, 3])), "non-decreasing split points"),
        (dict(indices=np.array([3, 10])), r"split points in \[0, len\(acts\) = 9\]"),
        (dict(indices=np.array([3.5, 4.0])), "expected integer split points"),
        (dict(obs=np.array(["a"] * 12)), "obs has dtype <U1, expected numbers or booleans"),
        (dict(acts=np.zeros(9, np.complex64)), "acts has dtype complex64"),
        (dict(obs=np.float32(1.0)), "obs is a scalar"),
        (dict(rews=np.zeros((9, 2), np.float32)), r"rews has shape \(3, 2\), expected \(len\(acts\),\)"),
        (dict(terminal=np.array([1.0, 0.0, 1.0])), "terminal is 1.0"),
        (dict(terminal=np.array([], bool), indices=np.array([], np.int64)), "holds no trajectories"),
        (dict(acts=None), r"missing required array\(s\) \['acts'\]"),
        (dict(obs=np.full((12, 2, 3), np.inf, np.float32)), "trajectory 0: obs contains inf"),
    ],
)
def test_npz_loader_refuses_bad_arrays(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    path = npz(tmp_path / "demos.npz", **overrides)
    with pytest.raises(InputError, match=message) as e:
        serialize.load(path)
    assert str(e.value).startswith(str(path))


def test_npz_loader_reads_big_endian_and_never_unpickles(tmp_path: Path) -> None:
    trajs = make_trajs()
    swapped = np.concatenate([t.obs.numpy() for t in trajs]).astype(">f4")
    assert_same_trajs(serialize.load(npz(tmp_path / "be.npz", obs=swapped)), trajs)

    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (pytest.fail, ("unpickled",))

    obj = np.empty(12, dtype=object)
    obj[:] = [Boom()] * 12
    with pytest.raises(InputError, match="cannot read its obs array"):
        serialize.load(npz(tmp_path / "obj.npz", obs=obj))
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(InputError, match="pickle format is not supported"):
        serialize.load(tmp_path / "pickle.npz")


def test_truncated_npz_is_refused(tmp_path: Path) -> None:
    path = npz(tmp_path / "demos.npz")
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError, match=re.escape(str(path))):
            serialize.load(path)


def test_missing_path_is_an_input_error_and_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as e:
        serialize.load(tmp_path / "missing")
    assert isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["dataset_info.json", "state.json"])
@pytest.mark.parametrize("text", ["{", "[]", "\x00\x01"])
def test_broken_metadata_json_is_named(tmp_path: Path, name: str, text: str) -> None:
    serialize.save(tmp_path / "demos", make_trajs())
    (tmp_path / "demos" / name).write_text(text)
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "demos" / name))):
        serialize.load(tmp_path / "demos")


def test_datasets_errors_become_input_errors(tmp_path: Path) -> None:
    serialize.save(tmp_path / "demos", make_trajs())
    info = tmp_path / "demos" / "dataset_info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "features": {"obs": {"_type": "NoSuchFeature"}}}))
    unreadable = re.escape(f"{tmp_path / 'demos'} is not a readable Hugging Face datasets directory")
    with pytest.raises(InputError, match=unreadable):
        serialize.load(tmp_path / "demos")

    state = tmp_path / "demos" / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "_data_files": [{"filename": "../elsewhere"}]}))
    with pytest.raises(InputError, match="is not a file name"):
        serialize.load(tmp_path / "demos")


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (dict(obs=[["a", "b"]], acts=[[0]], terminal=[True]), "trajectory 0: obs has dtype object"),
        (dict(obs=[[[0.0], [1.0, 2.0]]], acts=[[0]], terminal=[True]), "obs has dtype object"),
        (dict(obs=[[0.0, 1.0]], acts=[[0]], terminal=["yes"]), "trajectory 0: terminal is 'yes'"),
        (dict(obs=[[0.0, 1.0, 2.0]], acts=[[0]], terminal=[True]), r"obs has 3 rows, expected len\(acts\) \+ 1 = 2"),
        (dict(obs=[[0.0, 1.0]], acts=[[0]], terminal=[True], rews=[[1.0, 2.0]]), "rews has 2 rows"),
        (dict(obs=[[0.0, float("nan")]], acts=[[0]], terminal=[True]), "trajectory 0: obs contains NaN"),
        (dict(obs=[[[0.0], [1.0]], [[0.0, 1.0], [1.0, 2.0]]], acts=[[0], [0]], terminal=[True, False]), "item shape"),
        (dict(obs=[], acts=[], terminal=[]), "holds no trajectories"),
    ],
)
def test_dataset_loader_refuses_bad_columns(tmp_path: Path, columns: dict[str, list[Any]], message: str) -> None:
    datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "demos"))
    with pytest.raises(InputError, match=message) as e:
        serialize.load(tmp_path / "demos")
    assert str(e.value).startswith(str(tmp_path / "demos"))


def test_convert_errors_are_input_errors(tmp_path: Path) -> None:
    serialize.save(tmp_path / "demos", make_trajs())
    with pytest.raises(InputError, match="same path"):
        convert(tmp_path / "demos", tmp_path / "demos")
    (tmp_path / "taken.npz").write_bytes(b"")
    with pytest.raises(InputError, match="already exists") as e:
        convert(tmp_path / "demos", tmp_path / "taken.npz")
    assert isinstance(e.value, FileExistsError)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=re.escape(f"cannot write {tmp_path / 'file' / 'out.npz'}")):
        convert(tmp_path / "demos", tmp_path / "file" / "out.npz")
    with pytest.raises(InputError, match="does not exist"):
        convert(tmp_path / "missing", tmp_path / "out.npz")


class LrConfig(Config):
    lr: float = Field(1e-3, gt=0)
    n_epochs: int = 1


def test_config_load_names_the_file_and_each_invalid_field(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    with pytest.raises(InputError, match=f"^{re.escape(str(path))} does not exist$"):
        LrConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match=f"^{re.escape(str(path))} is not valid JSON"):
        LrConfig.load(path)
    path.write_text('{"lr": 0, "n_epochs": "many"}')
    with pytest.raises(InputError) as e:
        LrConfig.load(path)
    assert str(e.value) == (
        f"{path}: invalid {__name__.rsplit('.', 1)[-1]}.LrConfig: lr: Input should be greater than 0; "
        "n_epochs: Input should be a valid integer, unable to parse string as an integer"
    )
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        LrConfig.load(path)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_configs_refuse_non_finite_floats(tmp_path: Path, value: float) -> None:
    with pytest.raises(ValidationError, match="lr\n  Input should be a finite number"):
        LrConfig(lr=value)
    with pytest.raises(ValidationError, match="finite number"):
        bc.Config(ent_weight=value)
    (tmp_path / "c.json").write_text(json.dumps({"lr": value}))  # Python writes NaN / Infinity
    with pytest.raises(InputError, match="lr: Input should be a finite number"):
        LrConfig.load(tmp_path / "c.json")


def test_read_mapping_reads_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"lr": 0.1, "net_arch": [8, 8]}')
    (tmp_path / "c.yaml").write_text("lr: 0.1\nnet_arch: [8, 8]  # a comment\n")
    (tmp_path / "c.yml").write_text("\ufefflr: 0.1\nnet_arch:\n  - 8\n  - 8\n")
    for name in ("c.json", "c.yaml", "c.yml"):
        assert read_mapping(tmp_path / name) == {"lr": 0.1, "net_arch": [8, 8]}, name


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.yaml", "lr: 0.1\nnet_arch: [8, 8\nn: 1\n", r"is not valid YAML \(line 3 column 2: expected ',' or ']'"),
        ("c.yaml", "- 1\n- 2\n", "must hold a mapping of field names to values, got a list"),
        ("c.yaml", "# nothing\n", r"got nothing \(the file is empty\)"),
        ("c.yaml", "1: 2\n", "field names must be strings, got 1"),
        ("c.yaml", "a: \x00\n", "is not valid YAML"),
        ("c.json", '{"lr": 0.1,}', r"is not valid JSON \(line 1 column 12: Expecting property name"),
        ("c.json", '"lr"', "got a str"),
        ("c.json", b"\x89PNG\r\n\x1a\n\x00", r"is not UTF-8 text \(byte 0 is b'\\x89'\)"),
        ("c.json", "[" * 100_000, "nested too deeply"),
    ],
)
def test_read_mapping_refuses_bad_files(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=message) as e:
        read_mapping(path)
    assert str(e.value).startswith(str(path))


def test_read_mapping_refuses_missing_paths_and_directories(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(str(tmp_path / 'x.yaml'))} does not exist$"):
        read_mapping(tmp_path / "x.yaml")
    with pytest.raises(InputError, match="is a directory"):
        read_mapping(tmp_path)
