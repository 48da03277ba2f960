"""Tabular MDPs: CliffWorld against a transcription of seals, random MDPs, and the pure batched env."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn.core import random
from imitation_fn.data.rollout import rollout, to_trajectories
from imitation_fn.envs.tabular import CliffWorld, RandomMDP, TabularEnv, TabularMDP, cliff_world, random_mdp


def seals_cliff_world(width, height, use_xy_obs, rew_default=-1, rew_goal=10, rew_cliff=-10, fail_p=0.3):
    """seals' ``CliffWorldEnv.__init__`` (seals/diagnostics/cliff_world.py), transcribed: seals is not a dependency."""
    succ_p = 1 - fail_p
    n_states = width * height
    O_mat = np.zeros((n_states, 2 if use_xy_obs else n_states), dtype=np.float32)
    R_vec = np.zeros((n_states,))
    T_mat = np.zeros((n_states, 4, n_states))

    def to_id_clamp(row, col):
        row = min(max(row, 0), height - 1)
        col = min(max(col, 0), width - 1)
        return row * width + col

    for row in range(height):
        for col in range(width):
            state_id = to_id_clamp(row, col)
            if row > 0:  # noqa: SIM114 - kept as seals writes it
                r = rew_default
            elif col == 0:
                r = rew_default
            elif col == width - 1:
                r = rew_goal
            else:
                r = rew_cliff
            R_vec[state_id] = r
            if use_xy_obs:
                O_mat[state_id, :] = [float(col) / (width - 1), float(row) / (height - 1)]
            else:
                O_mat[state_id, state_id] = 1
            for drow in [-1, 1]:
                for dcol in [-1, 1]:
                    action_id = (drow + 1) + (dcol + 1) // 2
                    target_state = to_id_clamp(row + drow, col + dcol)
                    fail_state = to_id_clamp(row + drow - 1, col + dcol)
                    T_mat[state_id, action_id, fail_state] += fail_p
                    T_mat[state_id, action_id, target_state] += succ_p
    init = np.zeros(n_states)
    init[0] = 1.0  # BaseTabularModelPOMDP: initial_state_dist=None starts in state 0
    return T_mat, R_vec, O_mat, init


def chi2_quantile(q: float, dof: int) -> float:
    """Wilson–Hilferty approximation to the chi-square quantile (accurate to ~1% for dof >= 1 in the tail)."""
    z = math.sqrt(2) * torch.special.erfinv(torch.tensor(2 * q - 1, dtype=torch.float64)).item()
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def chi2_stat(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic over the support of ``probs``; asserts nothing fell outside it."""
    support = probs > 0
    assert int(counts[~support].sum()) == 0, "a zero-probability state was drawn"
    expected = probs[support] * counts.sum()
    return float(((counts[support] - expected) ** 2 / expected).sum()), int(support.sum()) - 1


def small_random(key=0, **kw):
    args = dict(n_states=8, n_actions=3, branch_factor=4, horizon=6, random_obs=True, obs_dim=3) | kw
    return random_mdp(random.key(key), **args)


# --------------------------------------------------------------------------------------------
# CliffWorld
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "use_xy_obs", "kw"),
    [
        (7, 4, False, {}),
        (7, 4, True, {}),
        (3, 2, False, {}),
        (15, 6, True, {}),
        (5, 3, False, {"fail_p": 0.1, "rew_goal": 3, "rew_cliff": -7, "rew_default": -0.5}),
    ],
)
def test_cliff_world_matches_seals(width, height, use_xy_obs, kw):
    T, R, obs, p0 = seals_cliff_world(width, height, use_xy_obs, **kw)
    mdp = cliff_world(width=width, height=height, horizon=11, use_xy_obs=use_xy_obs, dtype=torch.float64, **kw)
    mdp.validate()
    np.testing.assert_array_equal(mdp.transition_matrix.numpy(), T)  # bit-identical in float64
    np.testing.assert_array_equal(mdp.reward_matrix.numpy(), R)
    np.testing.assert_array_equal(mdp.observation_matrix.numpy(), obs)
    np.testing.assert_array_equal(mdp.initial_state_dist.numpy(), p0)
    assert mdp.observation_matrix.dtype == torch.float32 and mdp.horizon == 11
    assert (mdp.n_states, mdp.n_actions, mdp.obs_dim) == (width * height, 4, 2 if use_xy_obs else width * height)
    f32 = cliff_world(width=width, height=height, horizon=11, use_xy_obs=use_xy_obs, **kw)
    assert f32.transition_matrix.dtype == torch.float32
    torch.testing.assert_close(f32.transition_matrix, torch.from_numpy(T).float())


def test_cliff_world_known_cells():
    mdp = cliff_world()  # seals/CliffWorld7x4-v0: width 7, height 4, horizon 9
    T, R = mdp.transition_matrix, mdp.reward_matrix.view(4, 7)
    assert mdp.horizon == 9 and mdp.n_states == 28
    assert R[0, 0] == -1 and R[0, 6] == 10 and (R[0, 1:6] == -10).all() and (R[1:] == -1).all()
    # From the start (0, 0), action 3 moves down-right to (1, 1) = 8; the wind blows 30% back to (0, 1) = 1.
    assert T[0, 3, 8] == pytest.approx(0.7) and T[0, 3, 1] == pytest.approx(0.3)
    # Up-left from the start runs into both walls: stay put with certainty.
    assert T[0, 0, 0] == 1
    # Bottom-right corner (3, 6) = 27: down-right is clamped to itself, and the wind only undoes the "down".
    assert T[27, 3, 27] == 1
    # Up-right from there: the wall clamps the column, to (2, 6) = 20 (70%) or blown on to (1, 6) = 13 (30%).
    assert T[27, 1, 20] == pytest.approx(0.7) and T[27, 1, 13] == pytest.approx(0.3)
    # Row 1, moving up-right from (1, 2) = 9: target (0, 3) = 3; the wind clamps at row 0, so it is all one cell.
    assert T[9, 1, 3] == 1
    assert (T > 0).sum(-1).max() == 2
    xy = cliff_world(use_xy_obs=True).observation_matrix
    torch.testing.assert_close(xy[9], torch.tensor([2 / 6, 1 / 3]))


def test_cliff_world_env_and_errors():
    env = CliffWorld(n_envs=4, width=5, height=3, horizon=7, use_xy_obs=True)
    assert (env.width, env.height, env.max_episode_steps) == (5, 3, 7)
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    assert env.action_space == gym.spaces.Discrete(4)
    ts = env.reset(random.key(0))
    assert (ts.env_state.state == 0).all()  # seals always starts in state 0
    with pytest.raises(ValueError, match="width >= 3"):
        cliff_world(width=2, height=4)


# --------------------------------------------------------------------------------------------
# Random MDPs
# --------------------------------------------------------------------------------------------


def test_random_mdp_structure():
    n_states, n_actions, bf = 40, 5, 4
    mdp = random_mdp(
        random.key(3), n_states=n_states, n_actions=n_actions, branch_factor=bf, horizon=7, random_obs=True, obs_dim=6
    )
    mdp.validate()
    torch.testing.assert_close(mdp.transition_matrix.sum(-1), torch.ones(n_states, n_actions))
    successors = (mdp.transition_matrix > 0).sum(-1)
    assert successors.min() >= 1 and successors.max() <= bf
    # The number of successors is uniform on {1, ..., bf} (seals): 200 rows, ~50 each.
    counts = torch.bincount(successors.flatten(), minlength=bf + 1)[1:]
    assert (counts > 25).all() and (counts < 80).all(), counts
    assert int((mdp.initial_state_dist > 0).sum()) == bf  # exactly bf starting states
    assert mdp.observation_matrix.shape == (n_states, 6) and mdp.observation_matrix.dtype == torch.float32
    assert 1.6 < float(mdp.observation_matrix.std()) < 2.4  # N(0, 2²) features
    # The reward is linear in the features: it lies in the column space of the observation matrix.
    w = torch.linalg.lstsq(mdp.observation_matrix.double(), mdp.reward_matrix.double().unsqueeze(-1)).solution
    torch.testing.assert_close((mdp.observation_matrix.double() @ w).squeeze(-1), mdp.reward_matrix.double())
    assert mdp.reward_matrix.shape == (n_states,) and mdp.horizon == 7


def test_random_mdp_options_and_errors():
    one_hot = small_random(random_obs=False, obs_dim=None)
    torch.testing.assert_close(one_hot.observation_matrix, torch.eye(8))
    assert small_random(obs_dim=None).obs_dim == 8  # seals: obs_dim defaults to n_states
    single = small_random(branch_factor=1)
    assert ((single.transition_matrix > 0).sum(-1) == 1).all() and (single.initial_state_dist.max() == 1)
    with pytest.raises(ValueError, match="obs_dim must be None"):
        small_random(random_obs=False, obs_dim=3)
    with pytest.raises(ValueError, match="branch_factor"):
        small_random(branch_factor=9)
    assert not torch.equal(small_random(0).transition_matrix, small_random(1).transition_matrix)
    torch.testing.assert_close(small_random(5).transition_matrix, small_random(5).transition_matrix, rtol=0, atol=0)


def test_random_mdp_vmap_over_keys_equals_loop():
    keys = random.split(random.key(7), 5)

    def make(k):
        return random_mdp(k, n_states=8, n_actions=3, branch_factor=3, horizon=6, random_obs=True, obs_dim=4)

    batched = torch.func.vmap(make)(keys)
    assert batched.transition_matrix.shape == (5, 8, 3, 8) and batched.horizon == 6
    for i in range(5):
        single = make(keys[i])
        for name in ("transition_matrix", "reward_matrix", "initial_state_dist", "observation_matrix"):
            assert torch.equal(getattr(batched, name)[i], getattr(single, name)), name


def test_random_mdp_env_defaults_are_seals_random_v0():
    env = RandomMDP(n_envs=3)
    m = env.mdp
    assert (m.n_states, m.n_actions, m.obs_dim, m.horizon) == (16, 3, 5, 20)
    assert ((m.transition_matrix > 0).sum(-1) <= 2).all()
    assert torch.equal(m.transition_matrix, RandomMDP(generator_seed=42).mdp.transition_matrix)
    assert not torch.equal(m.transition_matrix, RandomMDP(generator_seed=0).mdp.transition_matrix)
    assert env.observation_space.shape == (5,)


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------


def test_step_frequencies_match_transition_probabilities():
    mdp = small_random(11)
    n_states, n_actions, per_pair = mdp.n_states, mdp.n_actions, 2000
    n = n_states * n_actions * per_pair
    env = TabularEnv(mdp, n_envs=n, expose_state=True)
    state = torch.arange(n_states).repeat_interleave(n_actions * per_pair)
    action = torch.arange(n_actions).repeat_interleave(per_pair).repeat(n_states)
    ts = env.reset(random.key(0))
    ts = env.step(ts.env_state.replace(state=state), action, random.key(1))
    next_state = ts.final_obs  # expose_state: the observation is the state index
    counts = torch.zeros(n_states, n_actions, n_states)
    counts.index_put_((state, action, next_state), torch.ones(n), accumulate=True)
    n_tests = n_states * n_actions + 1
    for s in range(n_states):
        for a in range(n_actions):
            stat, dof = chi2_stat(counts[s, a], mdp.transition_matrix[s, a])
            if dof > 0:
                assert stat < chi2_quantile(1 - 1e-3 / n_tests, dof), (s, a, stat, dof)
    # The reset distribution is initial_state_dist.
    starts = torch.bincount(env.initial_states(random.key(2)), minlength=n_states).double()
    stat, dof = chi2_stat(starts, mdp.initial_state_dist.double())
    assert stat < chi2_quantile(1 - 1e-3 / n_tests, dof)


def test_fixed_horizon_and_auto_reset():
    mdp = cliff_world(width=4, height=3, horizon=5)
    env = TabularEnv(mdp, n_envs=6)
    ts = env.reset(random.key(0))
    assert not ts.done.any() and (ts.reward == 0).all()
    keys = random.split(random.key(1), 3 * mdp.horizon)
    for i in range(3 * mdp.horizon):
        prev = ts.env_state
        action = random.randint(random.fold_in(keys[i], 1), (6,), 0, 4)
        ts = env.step(prev, action, keys[i])
        end = (i + 1) % mdp.horizon == 0
        assert (ts.truncated == end).all() and not ts.terminated.any()
        assert (ts.env_state.t == (0 if end else (i + 1) % mdp.horizon)).all()
        if end:  # auto-reset to state 0; final_obs holds the state the last step reached
            assert (ts.env_state.state == 0).all()
            torch.testing.assert_close(ts.obs, mdp.observation_matrix[torch.zeros(6, dtype=torch.int64)])
        else:
            torch.testing.assert_close(ts.final_obs, ts.obs)
        # Pure: the same inputs give the same step.
        again = env.step(prev, action, keys[i])
        assert torch.equal(again.env_state.state, ts.env_state.state) and torch.equal(again.final_obs, ts.final_obs)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_reward_lookup(rank):
    base = small_random(4)
    shape = base.transition_matrix.shape[:rank]
    reward = random.normal(random.key(9), shape)
    mdp = TabularMDP.create(base.transition_matrix, reward, base.horizon, base.initial_state_dist)
    env = TabularEnv(mdp, n_envs=64, expose_state=True)
    ts = env.reset(random.key(0))
    for i in range(10):
        s = ts.env_state.state
        a = random.randint(random.key(100 + i), (64,), 0, mdp.n_actions)
        ts = env.step(ts.env_state, a, random.key(i))
        s_next = ts.final_obs
        expected = reward[(s, a, s_next)[:rank]]
        assert torch.equal(ts.reward, expected) and ts.reward.dtype == torch.float32


def test_observations():
    mdp = small_random(2)
    env = TabularEnv(mdp, n_envs=32)
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    assert env.state_space == gym.spaces.Discrete(8) and env.max_episode_steps == 6
    ts = env.reset(random.key(0))
    for i in range(8):
        assert torch.equal(ts.obs, mdp.observation_matrix[ts.env_state.state]) and ts.obs.dtype == torch.float32
        ts = env.step(ts.env_state, torch.zeros(32, dtype=torch.int64), random.key(i))
    exposed = TabularEnv(mdp, n_envs=32, expose_state=True)
    assert exposed.observation_space == gym.spaces.Discrete(8)
    ts2 = exposed.reset(random.key(0))
    assert torch.equal(ts2.obs, ts2.env_state.state) and ts2.obs.dtype == torch.int64
    default = TabularMDP.create(mdp.transition_matrix, mdp.reward_matrix, 3)
    torch.testing.assert_close(default.observation_matrix, torch.eye(8))
    assert default.initial_state_dist.tolist() == [1.0] + [0.0] * 7


def test_vmap_over_mdps_and_keys_equals_loop():
    keys = random.split(random.key(5), 4)
    mdps = torch.func.vmap(lambda k: small_random_from_key(k))(keys)

    def run(mdp, key):
        env = TabularEnv(mdp, n_envs=3)
        batch, _ = rollout(env, lambda obs, k: random.randint(k, (3,), 0, 3), key, n_steps=8)
        return batch

    batched = torch.func.vmap(run)(mdps, keys)
    for i in range(4):
        single = run(small_random_from_key(keys[i]), keys[i])
        for name in ("obs", "acts", "rews", "truncated", "next_obs"):
            assert torch.equal(getattr(batched, name)[i], getattr(single, name)), name


def small_random_from_key(k):
    return random_mdp(k, n_states=8, n_actions=3, branch_factor=4, horizon=6, random_obs=True, obs_dim=3)


def test_rollout_episodes_have_the_horizon():
    env = CliffWorld(n_envs=2)
    batch, _ = rollout(env, lambda obs, k: random.randint(k, (2,), 0, 4), random.key(0), n_steps=20)
    trajs = to_trajectories(batch)
    assert len(trajs) == 4 and all(len(t) == 9 and not t.terminal for t in trajs)
    assert all(torch.equal(t.obs[0], env.mdp.observation_matrix[0]) for t in trajs)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def test_validate_errors_name_the_field():
    good = small_random(0)
    good.validate()
    T = good.transition_matrix
    cases = [
        (good.replace(transition_matrix=T[:, :, :5]), "transition_matrix must have shape"),
        (good.replace(transition_matrix=T * 1.1), r"transition_matrix must sum to 1.*\(state, action\)"),
        (good.replace(transition_matrix=T.index_fill(2, torch.tensor([0]), -0.1)), "transition_matrix has negative"),
        (good.replace(reward_matrix=torch.zeros(8, 2)), "reward_matrix must have shape"),
        (good.replace(reward_matrix=torch.full((8,), math.nan)), "reward_matrix contains NaN"),
        (good.replace(initial_state_dist=torch.ones(8)), "initial_state_dist must sum to 1"),
        (good.replace(initial_state_dist=torch.ones(7) / 7), "initial_state_dist must have shape"),
        (good.replace(observation_matrix=torch.zeros(7, 3)), "observation_matrix must have shape"),
        (good.replace(horizon=0), "horizon must be a positive int"),
        (good.replace(transition_matrix=T.to(torch.int64)), "transition_matrix must be a floating-point"),
    ]
    for mdp, message in cases:
        with pytest.raises(ValueError, match=message):
            mdp.validate()
    # The location of the worst row is reported.
    bad = T.clone()
    bad[5, 2, 0] += 0.5
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        good.replace(transition_matrix=bad).validate()
    # Shape errors are caught when an env is built, too (statically, so also inside vmap).
    with pytest.raises(ValueError, match="reward_matrix"):
        TabularEnv(good.replace(reward_matrix=torch.zeros(3)))
