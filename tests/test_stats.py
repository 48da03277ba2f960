"""Tests for imitation_fn.stats (permutation test, bootstrap, IQM, P(X > Y)) and imitation_fn.evaluation_gym."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imitation_fn import stats
from imitation_fn.core import random
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.envs.gym import GymEnv
from imitation_fn.evaluation_gym import evaluate_gym_policy

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=12)


def _mean_diff_np(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


# ------------------------------------------------------------------------------------------------
# imitation.testing.reward_improvement (its doctests)
# ------------------------------------------------------------------------------------------------


def test_is_significant_reward_improvement_matches_imitation_doctests() -> None:
    assert stats.is_significant_reward_improvement((5, 6, 7, 4, 4), (7, 5, 9, 9, 12))
    assert not stats.is_significant_reward_improvement((5, 6, 7, 4, 4), (7, 5, 9, 7, 4))
    assert stats.is_significant_reward_improvement((5, 6, 7, 4, 4), (7, 5, 9, 7, 4), p_value=0.3)
    # Direction matters: old better than new is never an improvement.
    assert not stats.is_significant_reward_improvement((7, 5, 9, 9, 12), (5, 6, 7, 4, 4))


def test_mean_reward_improved_by_matches_imitation_doctests() -> None:
    assert stats.mean_reward_improved_by([5, 8, 7], [8, 9, 10], 2)
    assert not stats.mean_reward_improved_by([5, 8, 7], [8, 9, 10], 5)
    assert stats.mean_reward_improved_by([0.0], [1.0], 1.0)  # ">=": an improvement of exactly the minimum counts


# ------------------------------------------------------------------------------------------------
# permutation_test
# ------------------------------------------------------------------------------------------------


def test_permutation_test_exact_by_hand() -> None:
    # x = [3], y = [1, 2]: the three splits put 3, 2 or 1 alone, mean differences 1.5, 0, -1.5.
    greater = stats.permutation_test([3.0], [1.0, 2.0])
    assert greater.exact and greater.n_resamples == 3
    assert greater.statistic == 1.5
    assert greater.pvalue == pytest.approx(1 / 3)
    assert stats.permutation_test([3.0], [1.0, 2.0], alternative="less").pvalue == pytest.approx(1.0)
    assert stats.permutation_test([3.0], [1.0, 2.0], alternative="two-sided").pvalue == pytest.approx(2 / 3)
    # The 2 largest of 5 values in x: only the observed split (of comb(5, 2) = 10) is as extreme.
    assert stats.permutation_test([4.0, 5.0], [1.0, 2.0, 3.0]).pvalue == pytest.approx(1 / 10)


def test_permutation_test_ties_count_as_extreme() -> None:
    # Every split gives a difference of 0 (up to rounding): p = 1 both ways.
    result = stats.permutation_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1])
    assert result.pvalue == 1.0
    assert stats.permutation_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1], alternative="less").pvalue == 1.0


def test_permutation_test_monte_carlo_is_deterministic_per_key() -> None:
    x, y = random.normal(random.key(1), (15,)), random.normal(random.key(2), (15,))
    a = stats.permutation_test(x, y, key=random.key(7))
    assert not a.exact and a.n_resamples == 9999
    assert stats.permutation_test(x, y, key=random.key(7)) == a
    b = stats.permutation_test(x, y, key=random.key(8))
    assert b.pvalue != a.pvalue and abs(b.pvalue - a.pvalue) < 0.03
    # Monte Carlo p-values are never 0: the observed split counts once.
    shifted = stats.permutation_test(x + 10, y, n_resamples=99)
    assert shifted.pvalue == pytest.approx(1 / 100)


def test_permutation_test_small_for_a_clear_shift() -> None:
    x = random.normal(random.key(3), (10,)) + 3.0
    y = random.normal(random.key(4), (10,))
    assert stats.permutation_test(x, y).pvalue < 1e-3
    assert stats.permutation_test(y, x).pvalue > 0.99


def test_permutation_test_roughly_uniform_under_the_null() -> None:
    pvalues = []
    for i in range(200):
        kx, ky, kt = random.split(random.key(i), 3)
        x, y = random.normal(kx, (8,), torch.float64), random.normal(ky, (8,), torch.float64)
        pvalues.append(stats.permutation_test(x, y, n_resamples=499, key=kt).pvalue)
    p = np.asarray(pvalues)
    assert 0.42 < p.mean() < 0.58
    assert 0.03 < (p < 0.1).mean() < 0.18
    assert 0.35 < (p < 0.5).mean() < 0.65


def test_permutation_test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alternative"):
        stats.permutation_test([1.0], [2.0], alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        stats.permutation_test([], [2.0])


@settings(max_examples=40, deadline=None)
@given(samples, samples, st.sampled_from(["greater", "less", "two-sided"]))
def test_permutation_pvalue_is_a_probability(x: list[float], y: list[float], alternative: Any) -> None:
    p = stats.permutation_test(x, y, alternative=alternative, n_resamples=200).pvalue
    assert 0.0 < p <= 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=1, max_size=5), st.lists(finite, min_size=1, max_size=5))
def test_exact_pvalues_of_both_sides_cover_every_split(x: list[float], y: list[float]) -> None:
    # Each split is at least or at most the observed statistic (ties: both), so p_greater + p_less >= 1.
    greater, less = stats.permutation_test(x, y), stats.permutation_test(x, y, alternative="less")
    assert greater.exact
    assert greater.pvalue + less.pvalue >= 1.0 - 1e-12
    assert stats.permutation_test(x, y, alternative="two-sided").pvalue == pytest.approx(
        stats.permutation_test(y, x, alternative="two-sided").pvalue
    )


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_permutation_test_matches_scipy(alternative: Any) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=5), rng.normal(size=6) + 0.5  # comb(11, 5) = 462 splits: exact in both
    ref = scipy_stats.permutation_test((x, y), _mean_diff_np, vectorized=True, alternative=alternative)
    ours = stats.permutation_test(x, y, alternative=alternative)
    assert ours.exact
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-12)
    assert ours.statistic == pytest.approx(ref.statistic)
    # Integer data with many ties (rewards): still equal.
    old, new = np.array([5, 6, 7, 4, 4, 5]), np.array([7, 5, 9, 7, 4])
    ref = scipy_stats.permutation_test((new, old), _mean_diff_np, vectorized=True, alternative=alternative)
    assert stats.permutation_test(new, old, alternative=alternative).pvalue == pytest.approx(ref.pvalue, abs=1e-12)
    # Monte Carlo (comb(24, 12) splits): equal up to sampling error.
    x, y = rng.normal(size=12), rng.normal(size=12) + 0.3
    ref = scipy_stats.permutation_test((x, y), _mean_diff_np, vectorized=True, alternative=alternative, rng=0)
    ours = stats.permutation_test(x, y, alternative=alternative)
    assert not ours.exact
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=0.03)


# ------------------------------------------------------------------------------------------------
# IQM, normalised return, probability of improvement
# ------------------------------------------------------------------------------------------------


def test_iqm_by_hand() -> None:
    assert float(stats.iqm(torch.arange(1.0, 9.0))) == 4.5  # mean(3, 4, 5, 6)
    assert float(stats.iqm(torch.tensor([100.0, 1.0, 3.0, 2.0]))) == 2.5  # drops 1 and 100
    assert float(stats.iqm(torch.tensor([1.0, 2.0, 9.0]))) == 4.0  # n < 4: nothing cut
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 0.0, 0.0, 10.0]])
    torch.testing.assert_close(stats.iqm(x, dim=1), torch.tensor([2.5, 5.0]))
    assert float(stats.iqm(x)) == 2.5  # over all 8: 0 0 [1 2 3 4] 10 10


def test_iqm_is_vmappable() -> None:
    x = random.normal(random.key(0), (5, 9))
    torch.testing.assert_close(torch.func.vmap(stats.iqm)(x), stats.iqm(x, dim=1))


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40))
def test_iqm_lies_between_min_and_max(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    m = float(stats.iqm(x))
    assert x.min() - 1e-9 <= m <= x.max() + 1e-9
    assert m == pytest.approx(float(stats.iqm(x.flip(0))), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40))
def test_iqm_matches_scipy_trim_mean(values: list[float]) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.asarray(values)
    assert float(stats.iqm(torch.tensor(x))) == pytest.approx(scipy_stats.trim_mean(x, 0.25), rel=1e-9, abs=1e-9)


def test_normalized_return() -> None:
    torch.testing.assert_close(
        stats.normalized_return(torch.tensor([9.0, 500.0, 254.5]), 9.0, 500.0), torch.tensor([0.0, 1.0, 0.5])
    )
    # Per-task references broadcast over runs; a negative range (Pendulum-like returns) works too.
    scores = torch.tensor([[-1200.0, 20.0], [-150.0, 40.0]])
    out = stats.normalized_return(scores, torch.tensor([-1200.0, 20.0]), torch.tensor([-150.0, 40.0]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="equals"):
        stats.normalized_return(torch.tensor([1.0]), 3.0, 3.0)


def test_probability_of_improvement_by_hand() -> None:
    # Pairs of (x, y): (1, 1) tie 1/2, (1, 0) win, (2, 1) win, (2, 0) win -> 3.5 / 4.
    assert float(stats.probability_of_improvement(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))) == 0.875
    # Two tasks: 1 on the first, 0 on the second -> mean 0.5.
    x, y = torch.tensor([[5.0, 0.0], [6.0, 1.0]]), torch.tensor([[1.0, 7.0], [2.0, 8.0], [3.0, 9.0]])
    assert float(stats.probability_of_improvement(x, y)) == 0.5
    with pytest.raises(ValueError, match="n_tasks"):
        stats.probability_of_improvement(torch.zeros(3, 2), torch.zeros(3, 3))


@settings(max_examples=40, deadline=None)
@given(samples, samples)
def test_probability_of_improvement_is_complementary(x: list[float], y: list[float]) -> None:
    tx, ty = torch.tensor(x), torch.tensor(y)
    p, q = float(stats.probability_of_improvement(tx, ty)), float(stats.probability_of_improvement(ty, tx))
    assert 0.0 <= p <= 1.0 and p + q == pytest.approx(1.0)


def test_probability_of_improvement_matches_mann_whitney() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, size=9).astype(float), rng.integers(0, 5, size=7).astype(float)  # many ties
    u = scipy_stats.mannwhitneyu(x, y).statistic
    assert float(stats.probability_of_improvement(torch.tensor(x), torch.tensor(y))) == pytest.approx(u / (9 * 7))


# ------------------------------------------------------------------------------------------------
# bootstrap_ci
# ------------------------------------------------------------------------------------------------


def test_bootstrap_ci_basics() -> None:
    x = random.normal(random.key(0), (40,), torch.float64) + 2.0
    ci = stats.bootstrap_ci(x, key=random.key(1))
    assert ci.estimate == pytest.approx(float(x.mean()))
    assert ci.low < ci.estimate < ci.high
    # Width ~ 2 * 1.96 * sd / sqrt(n) for the mean.
    assert 2 * 1.96 * float(x.std()) / math.sqrt(40) == pytest.approx(ci.high - ci.low, rel=0.15)
    assert stats.bootstrap_ci(x, key=random.key(1)) == ci  # deterministic per key
    narrower = stats.bootstrap_ci(x, confidence=0.5, key=random.key(1))
    assert ci.low < narrower.low < narrower.high < ci.high
    const = stats.bootstrap_ci(torch.full((7,), 3.0), "iqm", n_resamples=100)
    assert (const.low, const.estimate, const.high) == (3.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="unknown statistic"):
        stats.bootstrap_ci(x, "mode")  # type: ignore[arg-type]


def test_bootstrap_ci_is_stratified_over_tasks() -> None:
    # Task 0 always scores 0, task 1 always 1: resampling runs within each task keeps the mean at 0.5
    # (resampling rows of the flattened scores would not).
    scores = torch.stack([torch.zeros(6), torch.ones(6)], dim=1)
    ci = stats.bootstrap_ci(scores, "mean", n_resamples=500)
    assert ci.low == ci.high == ci.estimate == 0.5
    # Statistics see the resampled scores of every run and task: (..., n_runs * n_tasks).
    seen: list[tuple[int, ...]] = []

    def mean_recording_shape(s: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(s.shape))
        return s.mean(-1)

    stats.bootstrap_ci(scores, mean_recording_shape, n_resamples=10)
    assert seen == [(10, 12), (1, 12)]


@settings(max_examples=20, deadline=None)
@given(st.lists(finite, min_size=2, max_size=20), st.sampled_from(["mean", "iqm", "median"]))
def test_bootstrap_interval_within_data_range(values: list[float], statistic: Any) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    ci = stats.bootstrap_ci(x, statistic, n_resamples=200)
    lo, hi = float(x.min()) - 1e-9, float(x.max()) + 1e-9
    assert lo <= ci.low <= ci.high <= hi
    assert lo <= ci.estimate <= hi


def test_bootstrap_ci_matches_scipy_percentile() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(2).exponential(size=30)
    ref = scipy_stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20_000, rng=0).confidence_interval
    ours = stats.bootstrap_ci(x, "mean", n_resamples=20_000)
    assert ours.low == pytest.approx(ref.low, rel=0.03)
    assert ours.high == pytest.approx(ref.high, rel=0.03)


# ------------------------------------------------------------------------------------------------
# evaluate_gym_policy
# ------------------------------------------------------------------------------------------------


def test_evaluate_gym_policy_cartpole_expert_scores_500() -> None:
    with GymEnv("CartPole-v1", n_envs=2) as env:
        result = evaluate_gym_policy(env, cartpole_expert, random.key(0), n_episodes=3)
    assert result.returns.shape == (3,) and result.returns.dtype == torch.float32
    assert result.lengths.dtype == torch.int64
    assert result.returns.tolist() == [500.0] * 3
    assert result.lengths.tolist() == [500] * 3


class _FixedHorizonEnv(gym.Env[Any, Any]):
    """Episodes of exactly ``horizon`` steps with reward 1 per step."""

    def __init__(self, horizon: int) -> None:
        self.horizon, self.t = horizon, 0
        self.action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return np.full(1, self.t, np.float32), 1.0, self.t >= self.horizon, False, {}


def _horizons_factory(horizons: list[int]) -> Any:
    made = iter(horizons)  # GymEnv builds sub-environment 0 first, then 1, 2, ...

    def make_env() -> gym.Env[Any, Any]:
        return _FixedHorizonEnv(next(made))

    return make_env


def test_evaluate_gym_policy_balances_episodes_across_envs() -> None:
    # Sub-envs with 1-, 2- and 3-step episodes; 4 episodes -> (4 + i) // 3 = 1, 1, 2 from each, not the
    # first 4 to finish (which would be 1, 1, 2, 1: biased to short episodes).
    zeros = lambda obs, key: torch.zeros(obs.shape[0], dtype=torch.int64)  # noqa: E731
    with GymEnv(_horizons_factory([1, 2, 3]), n_envs=3) as env:
        result = evaluate_gym_policy(env, zeros, random.key(0), n_episodes=4)
    assert result.lengths.tolist() == [1, 2, 3, 3]
    assert result.returns.tolist() == [1.0, 2.0, 3.0, 3.0]


def test_evaluate_gym_policy_raw_rewards_ignore_user_wrappers() -> None:
    zeros = lambda obs, key: torch.zeros(obs.shape[0], dtype=torch.int64)  # noqa: E731
    scale = lambda e: gym.wrappers.TransformReward(e, lambda r: 10.0 * float(r))  # noqa: E731
    with GymEnv(_horizons_factory([2, 4]), n_envs=2, wrappers=[scale]) as env:
        wrapped = evaluate_gym_policy(env, zeros, random.key(0), n_episodes=2)
    with GymEnv(_horizons_factory([2, 4]), n_envs=2, wrappers=[scale]) as env:
        raw = evaluate_gym_policy(env, zeros, random.key(0), n_episodes=2, raw_rewards=True)
    assert wrapped.returns.tolist() == [20.0, 40.0]
    assert raw.returns.tolist() == [2.0, 4.0]
    with GymEnv(_horizons_factory([2]), n_envs=1, rollout_info=False) as env:
        with pytest.raises(ValueError, match="rollout_info"):
            evaluate_gym_policy(env, zeros, random.key(0), n_episodes=1, raw_rewards=True)
        with pytest.raises(RuntimeError, match="max_steps"):
            evaluate_gym_policy(env, zeros, random.key(0), n_episodes=3, max_steps=4)
