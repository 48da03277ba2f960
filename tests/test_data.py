"""Tests for imitation_fn.data: pure rollouts, episode cutting, sampling, stats and imitation-compatible files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

from imitation_fn.core import checks, random, struct, tree
from imitation_fn.data import rollout, serialize
from imitation_fn.data.types import Trajectory, TrajectoryWithRew
from imitation_fn.envs.base import Env, TimeStep

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
    envs = pytest.importorskip("imitation_fn.envs")
    experts = pytest.importorskip("imitation_fn.envs.experts")
    env = envs.make("CartPole-v1", n_envs=2)
    trajs = rollout.generate_trajectories(env, experts.cartpole_expert, random.key(0), min_episodes=2)
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
