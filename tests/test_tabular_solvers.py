"""The tabular solvers (:mod:`imitation_fn.rl.tabular`): finite-horizon soft value iteration and occupancy
measures against a numpy transcription of ``imitation``'s, ``imitation``'s own test criteria (random MDPs, the
hand-built MDP), exact expected returns, the sparse transition lists, vmap and grad."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch
from torch.func import vmap

from imitation_fn.core import random, tree
from imitation_fn.envs.tabular import TabularEnv, TabularMDP, cliff_world, random_mdp
from imitation_fn.policies.tabular import TabularPolicy, rollout
from imitation_fn.rl import tabular

DISCOUNTS = [0.0, 0.5, 0.9, 0.99, 1.0]


def reasonable_mdp() -> TabularMDP:
    """``imitation``'s ``ReasonablePOMDP``: from state 0, actions 0 and 2 are equally good, action 1 (to the
    very bad state 3) is clearly worse; states 3 and 4 have action-independent dynamics."""
    obs = torch.tensor(
        [
            [3, -5, -1, -1, -4, 5, 3, 0],
            [4, -4, 2, 2, -4, -1, -2, -2],
            [3, -1, 5, -1, 0, 2, -5, 2],
            [-5, -1, 4, 1, 4, 1, 5, 3],
            [2, -5, 1, -5, 1, 4, 4, -3],
        ],
        dtype=torch.float32,
    )
    from_1_or_2 = [[0, 0, 0, 0.05, 0.95], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]
    transition = torch.tensor(
        [
            [[0, 0.9, 0.1, 0, 0], [0, 0, 0, 1, 0], [0, 0.1, 0.9, 0, 0]],
            from_1_or_2,
            from_1_or_2,
            [[0, 0, 0, 0, 1]] * 3,
            [[1, 0, 0, 0, 0]] * 3,
        ],
        dtype=torch.float64,
    )
    reward = torch.tensor([1.0, 2.0, 2.0, -20.0, 3.0], dtype=torch.float64)
    initial = torch.tensor([0.5, 0.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    return TabularMDP.create(transition, reward, 20, initial_state_dist=initial, observation_matrix=obs)


def numpy_reference(mdp: TabularMDP, discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``imitation``'s ``mce_partition_fh`` and ``mce_occupancy_measures``, loop for loop, in numpy float64."""
    horizon, n_states, n_actions = mdp.horizon, mdp.n_states, mdp.n_actions
    t_mat = mdp.transition_matrix.double().numpy()
    reward = mdp.reward_matrix.double().numpy()
    v = np.full((horizon, n_states), -np.inf)
    q = np.zeros((horizon, n_states, n_actions))
    q[horizon - 1] = reward[:, None]
    v[horizon - 1] = scipy.special.logsumexp(q[horizon - 1], axis=1)
    for t in reversed(range(horizon - 1)):
        q[t] = reward[:, None] + discount * (t_mat @ v[t + 1])
        v[t] = scipy.special.logsumexp(q[t], axis=1)
    pi = np.exp(q - v[:, :, None])
    d = np.zeros((horizon + 1, n_states))
    d[0] = mdp.initial_state_dist.double().numpy()
    for t in range(horizon):
        for a in range(n_actions):
            d[t + 1] += (d[t] * pi[t, :, a]) @ t_mat[:, a, :]
    return v, q, pi, (discount ** np.arange(horizon + 1)) @ d


@pytest.mark.parametrize("discount", DISCOUNTS)
def test_solvers_on_random_mdps(discount: float) -> None:
    """``imitation``'s ``test_random_mdp`` sizes and ``test_policy_om_random_mdp`` criteria, plus seals' Random-v0."""
    mdps = []
    for i in range(3):
        n_states, n_actions, branch_factor, horizon = 4 * (i + 3), i + 2, i + 1, 5 * (i + 1)
        if branch_factor == 1:
            n_actions = min(n_states, max(n_actions, 4))
        random_obs = i % 2 == 0
        mdps.append(
            random_mdp(
                random.key(i),
                n_states=n_states,
                n_actions=n_actions,
                branch_factor=branch_factor,
                horizon=horizon,
                random_obs=random_obs,
                obs_dim=(i * 3 + 4) ** 2 + i if random_obs else None,
                dtype=torch.float64,
            )
        )
    mdps.append(random_mdp(random.key(42), n_states=16, n_actions=3, branch_factor=2, horizon=20, random_obs=True))
    for mdp in mdps:
        v, q, pi = tabular.mce_partition_fh(mdp, discount=discount)
        h, s, a = mdp.horizon, mdp.n_states, mdp.n_actions
        assert v.shape == (h, s) and q.shape == (h, s, a) and pi.shape == (h, s, a)
        assert all(bool(torch.isfinite(x).all()) for x in (v, q, pi))
        assert bool((pi >= 0).all())
        torch.testing.assert_close(pi.sum(-1), torch.ones(h, s, dtype=pi.dtype))
        d_t, d = tabular.mce_occupancy_measures(mdp, pi=pi, discount=discount)
        assert d_t.shape == (h + 1, s) and bool(torch.isfinite(d).all()) and bool((d > 0).any())
        expected = h + 1 if discount == 1.0 else (1 - discount ** (h + 1)) / (1 - discount)
        assert math.isclose(float(d.sum()), expected, rel_tol=1e-5)
        torch.testing.assert_close(d_t[0], mdp.initial_state_dist)


@pytest.mark.parametrize("discount", [0.0, 0.9, 1.0])
def test_solvers_match_imitation_numpy(discount: float) -> None:
    for mdp in (reasonable_mdp(), cliff_world(horizon=15, dtype=torch.float64)):
        v_ref, q_ref, pi_ref, d_ref = numpy_reference(mdp, discount)
        v, q, pi = tabular.mce_partition_fh(mdp, discount=discount)
        _, d = tabular.mce_occupancy_measures(mdp, pi=pi, discount=discount)
        for ours, ref in ((v, v_ref), (q, q_ref), (pi, pi_ref), (d, d_ref)):
            np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("discount", DISCOUNTS)
def test_reasonable_mdp_policy(discount: float) -> None:
    """``imitation``'s ``test_policy_om_reasonable_pomdp``."""
    mdp = reasonable_mdp()
    v, q, pi = tabular.mce_partition_fh(mdp, discount=discount)
    d_t, d = tabular.mce_occupancy_measures(mdp, pi=pi, discount=discount)
    assert all(bool(torch.isfinite(x).all()) for x in (v, q, pi, d_t, d))
    # Actions 0 and 2 (to the symmetric states 1 and 2) are equally likely ...
    torch.testing.assert_close(pi[:19, 0, 0], pi[:19, 0, 2])
    # ... and the bad action 1 (to state 3) has less than half their probability.
    if discount > 0:
        assert bool((pi[:19, 0, 0] > 2 * pi[:19, 0, 1]).all())
    # States 3 and 4 have action-independent dynamics: uniform policies.
    torch.testing.assert_close(pi[:5, 3:5], torch.full_like(pi[:5, 3:5], 1 / 3))
    torch.testing.assert_close(pi[:19, 1], pi[:19, 2])
    if discount > 0:
        assert bool((pi[:19, 1, 2] > pi[:19, 1, 0]).all())
        assert bool((pi[:19, 1, 0] > pi[:19, 1, 1]).all())
    torch.testing.assert_close(d_t[0], mdp.initial_state_dist)


def test_solvers_vmap_over_mdps_and_rewards() -> None:
    keys = random.split(random.key(3), 4)
    mdps = vmap(
        lambda k: random_mdp(k, n_states=6, n_actions=3, branch_factor=2, horizon=7, random_obs=True, obs_dim=3)
    )(keys)
    batched = vmap(lambda m: tabular.mce_occupancy_measures(m, discount=0.9))(mdps)
    for i in range(4):
        single = tabular.mce_occupancy_measures(tree.index(mdps, i), discount=0.9)
        torch.testing.assert_close(batched[0][i], single[0])
        torch.testing.assert_close(batched[1][i], single[1])
    mdp = tree.index(mdps, 0)
    rewards = random.normal(random.key(4), (5, 6))
    pis = vmap(lambda r: tabular.mce_partition_fh(mdp, reward=r, discount=0.5)[2])(rewards)
    torch.testing.assert_close(pis[2], tabular.mce_partition_fh(mdp, reward=rewards[2], discount=0.5)[2])


def test_occupancy_is_the_gradient_of_the_log_partition() -> None:
    """The solvers are differentiable: ∇_r Σ_s p0(s) V_0(s) = Σ_{t<H} D_t (the soft-optimal policy's visits)."""
    mdp = reasonable_mdp()
    r = random.normal(random.key(0), (5,), torch.float64)

    def log_partition(r: torch.Tensor) -> torch.Tensor:
        v, _, _ = tabular.mce_partition_fh(mdp, reward=r)
        return mdp.initial_state_dist @ v[0]

    d_t, _ = tabular.mce_occupancy_measures(mdp, reward=r)
    torch.testing.assert_close(torch.func.grad(log_partition)(r), d_t[:-1].sum(0))


def test_expected_return_matches_sampled_returns() -> None:
    mdp = cliff_world(horizon=12, dtype=torch.float64)
    _, _, pi = tabular.mce_partition_fh(mdp)
    exact = float(tabular.expected_return(mdp, pi))
    batch, _ = rollout(TabularEnv(mdp, n_envs=4000), TabularPolicy(pi), random.key(0), mdp.horizon)
    returns = batch.rews.sum(0).double()
    assert abs(float(returns.mean()) - exact) < 4 * float(returns.std()) / math.sqrt(4000)


def test_solver_errors() -> None:
    mdp = reasonable_mdp()
    with pytest.raises(ValueError, match=r"discount must be in \[0, 1\]"):
        tabular.mce_partition_fh(mdp, discount=1.5)
    with pytest.raises(AssertionError, match="pi has shape"):
        tabular.mce_occupancy_measures(mdp, pi=torch.ones(3, 5, 3) / 3)


def _sparse_test_mdps() -> list[TabularMDP]:
    """CliffWorld (K = 2 of 28 states) and seals-style random MDPs (K ≤ branch_factor), float64."""
    mdps = [cliff_world(width=7, height=4, horizon=12, use_xy_obs=True, dtype=torch.float64), reasonable_mdp()]
    for i, (n_states, n_actions, branch_factor) in enumerate([(12, 3, 2), (9, 2, 4), (6, 4, 1)]):
        mdps.append(
            random_mdp(
                random.key(10 + i),
                n_states=n_states,
                n_actions=n_actions,
                branch_factor=branch_factor,
                horizon=8,
                random_obs=True,
                obs_dim=3,
                dtype=torch.float64,
            )
        )
    return mdps


def test_sparse_transitions_layout() -> None:
    mdp = cliff_world(width=7, height=4, horizon=5, dtype=torch.float64)
    sp = tabular.sparse_transitions(mdp)
    s, a = mdp.n_states, mdp.n_actions
    assert sp.next_states.shape == sp.probs.shape == (s * a, 2) and sp.next_states.dtype == torch.int64
    assert sp.prev_rows.shape == sp.prev_probs.shape == (s, 8) and sp.prev_rows.dtype == torch.int64
    assert sp.probs.dtype == torch.float64
    # Padding is index 0 with probability 0; non-zeros come first, in increasing next-state order.
    pad = sp.probs == 0
    assert (
        bool(pad.any())
        and bool((sp.next_states[pad] == 0).all())
        and bool((sp.prev_rows[sp.prev_probs == 0] == 0).all())
    )
    assert bool((sp.next_states[:, 1] > sp.next_states[:, 0])[~pad[:, 1]].all())
    # Both lists rebuild the dense matrix exactly.
    rows = torch.arange(s * a).unsqueeze(-1).expand_as(sp.next_states)
    dense = torch.zeros(s * a, s, dtype=torch.float64).index_put((rows, sp.next_states), sp.probs, accumulate=True)
    torch.testing.assert_close(dense.view(s, a, s), mdp.transition_matrix, rtol=0, atol=0)
    cols = torch.arange(s).unsqueeze(-1).expand_as(sp.prev_rows)
    dense_t = torch.zeros(s, s * a, dtype=torch.float64).index_put((cols, sp.prev_rows), sp.prev_probs, accumulate=True)
    torch.testing.assert_close(dense_t.mT.reshape(s, a, s), mdp.transition_matrix, rtol=0, atol=0)
    # Random MDPs: at most branch_factor successors; a batch of MDPs gives a batch of lists.
    mdps = vmap(lambda k: random_mdp(k, n_states=10, n_actions=3, branch_factor=3, horizon=4, random_obs=False))(
        random.split(random.key(0), 4)
    )
    batch = tabular.sparse_transitions(mdps)
    assert batch.next_states.shape[:2] == (4, 30) and batch.next_states.shape[2] <= 3
    for i in range(4):
        one = tabular.sparse_transitions(tree.index(mdps, i))
        k = one.probs.shape[-1]
        torch.testing.assert_close(batch.probs[i, :, :k], one.probs)
        assert bool((batch.probs[i, :, k:] == 0).all())


@pytest.mark.parametrize("discount", [0.0, 0.9, 1.0])
def test_sparse_solvers_match_dense(discount: float) -> None:
    """Same V, Q, π, D_t and D to 1e-12 in float64, with the default and with a learned-style (S,) reward."""
    for mdp in _sparse_test_mdps():
        sp = tabular.sparse_transitions(mdp)
        for reward in (None, random.normal(random.key(1), (mdp.n_states,), torch.float64)):
            dense = tabular.mce_partition_fh(mdp, reward=reward, discount=discount)
            sparse = tabular.mce_partition_fh(mdp, reward=reward, discount=discount, transitions=sp)
            for x, y in zip(dense, sparse, strict=True):
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
            dense_om = tabular.mce_occupancy_measures(mdp, pi=dense[2], discount=discount)
            sparse_om = tabular.mce_occupancy_measures(mdp, pi=dense[2], discount=discount, transitions=sp)
            for x, y in zip(dense_om, sparse_om, strict=True):
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)


def test_sparse_solvers_vmap_and_grad() -> None:
    """Under vmap over rewards (indices shared) and over MDPs with their lists (both batched), and under grad."""
    mdp = cliff_world(width=7, height=4, horizon=15, use_xy_obs=True, dtype=torch.float64)
    sp = tabular.sparse_transitions(mdp)
    rewards = random.normal(random.key(2), (6, mdp.n_states), torch.float64)
    dense = vmap(lambda r: tabular.mce_occupancy_measures(mdp, reward=r, discount=0.9))(rewards)
    sparse = vmap(lambda r: tabular.mce_occupancy_measures(mdp, reward=r, discount=0.9, transitions=sp))(rewards)
    for x, y in zip(dense, sparse, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)

    mdps = vmap(
        lambda k: random_mdp(
            k, n_states=8, n_actions=3, branch_factor=2, horizon=6, random_obs=False, dtype=torch.float64
        )
    )(random.split(random.key(3), 4))
    sps = tabular.sparse_transitions(mdps)
    batched = vmap(lambda m, t: tabular.mce_occupancy_measures(m, discount=0.5, transitions=t))(mdps, sps)
    for i in range(4):
        _, d = tabular.mce_occupancy_measures(tree.index(mdps, i), discount=0.5)
        torch.testing.assert_close(batched[1][i], d, rtol=1e-12, atol=1e-12)

    def log_partition(r: torch.Tensor, transitions: tabular.SparseTransitions | None) -> torch.Tensor:
        v, _, _ = tabular.mce_partition_fh(mdp, reward=r, transitions=transitions)
        return mdp.initial_state_dist @ v[0]

    torch.testing.assert_close(
        torch.func.grad(log_partition)(rewards[0], sp), torch.func.grad(log_partition)(rewards[0], None)
    )


def test_sparse_transitions_errors() -> None:
    mdp = reasonable_mdp()
    other = tabular.sparse_transitions(cliff_world(horizon=4, dtype=torch.float64))
    with pytest.raises(ValueError, match="transitions must be sparse_transitions"):
        tabular.mce_partition_fh(mdp, transitions=other)
    with pytest.raises(ValueError, match="transitions must be sparse_transitions"):
        tabular.mce_occupancy_measures(mdp, pi=torch.full((20, 5, 3), 1 / 3, dtype=torch.float64), transitions=other)
