"""Statistics for comparing runs: permutation tests, bootstrap intervals, IQM, normalised return.

The tests and intervals follow the semantics their users know:

- :func:`permutation_test` is ``scipy.stats.permutation_test`` for two independent samples (exact
  over all arrangements when there are at most ``n_resamples`` of them, Monte Carlo otherwise), and
  :func:`is_significant_reward_improvement` / :func:`mean_reward_improved_by` are
  ``imitation.testing.reward_improvement``'s.
- :func:`iqm`, :func:`bootstrap_ci` (stratified percentile bootstrap) and
  :func:`probability_of_improvement` are rliable's (Agarwal et al., 2021), for score matrices
  ``(n_runs, n_tasks)``: runs are seeds, tasks are environments (or anything resampled separately).

Randomness comes from explicit keys (``imitation_fn.core.random``), so every p-value and interval is
reproducible; ``key=None`` means ``random.key(0)``. :func:`iqm`, :func:`normalized_return` and
:func:`probability_of_improvement` are pure tensor functions (vmappable); the tests and intervals are
host-side and return Python numbers.

    >>> is_significant_reward_improvement([5, 6, 7, 4, 4], [7, 5, 9, 9, 12])
    True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.core.random import Key

ArrayLike = Tensor | np.ndarray | Sequence[float]
Alternative = Literal["greater", "less", "two-sided"]
TwoSampleStatistic = Callable[[Tensor, Tensor], Tensor]
"""``(x (..., n_x), y (..., n_y)) -> (...)``: a statistic of two samples, reducing the last axis."""
Statistic = Callable[[Tensor], Tensor]
"""``(samples (..., n)) -> (...)``: a statistic of one sample, reducing the last axis."""

_CHUNK_ELEMENTS = 1 << 22  # resamples are drawn in blocks of about this many entries to bound memory


def _as_float64(x: ArrayLike, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).detach().to("cpu", torch.float64)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty")
    return t


def _default_key(key: Key | None) -> Key:
    return random.key(0) if key is None else key


# --------------------------------------------------------------------------------------------
# Permutation test (scipy.stats.permutation_test, independent samples)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PermutationTestResult:
    """The observed statistic, its p-value, and whether the null distribution was enumerated exactly."""

    statistic: float
    pvalue: float
    exact: bool
    n_resamples: int  # arrangements in the null distribution (all of them when ``exact``)


def mean_difference(x: Tensor, y: Tensor) -> Tensor:
    """``mean(x) - mean(y)`` over the last axis: the default statistic of :func:`permutation_test`."""
    return x.mean(-1) - y.mean(-1)


def permutation_test(
    x: ArrayLike,
    y: ArrayLike,
    *,
    statistic: TwoSampleStatistic = mean_difference,
    alternative: Alternative = "greater",
    n_resamples: int = 9999,
    key: Key | None = None,
) -> PermutationTestResult:
    """Two-sample permutation test of "``x`` and ``y`` come from the same distribution".

    ``x: (n_x,)``, ``y: (n_y,)``. Under the null every split of the pooled ``n_x + n_y`` values into
    groups of sizes ``n_x`` and ``n_y`` is equally likely. ``alternative="greater"``: the p-value is the
    probability of a statistic at least as large as the observed one (evidence that ``x`` is larger);
    ``"less"`` the mirror; ``"two-sided"`` twice the smaller of the two, at most 1.

    As ``scipy.stats.permutation_test``: when there are at most ``n_resamples`` splits
    (``comb(n_x + n_y, n_x)``) all are enumerated and the p-value is exact; otherwise ``n_resamples``
    random splits are drawn from ``key`` and ``p = (count + 1) / (n_resamples + 1)``. Statistics within
    a relative ``100 * eps`` of the observed one count as ties (as large as it), so rounding in the
    statistic does not change exact p-values.
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"permutation_test: alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    if n_resamples < 1:
        raise ValueError(f"permutation_test: n_resamples must be >= 1, got {n_resamples}")
    xs, ys = _as_float64(x, "permutation_test: x").flatten(), _as_float64(y, "permutation_test: y").flatten()
    n_x, n = xs.numel(), xs.numel() + ys.numel()
    pooled = torch.cat([xs, ys])
    observed = statistic(xs, ys)

    n_arrangements = math.comb(n, n_x)
    exact = n_arrangements <= n_resamples
    if exact:
        null = statistic(*_split(pooled, _all_splits(n, n_x), n_x))
    else:
        k = _default_key(key)
        chunk = max(1, _CHUNK_ELEMENTS // n)
        parts = []
        for i, start in enumerate(range(0, n_resamples, chunk)):
            bits = random.randbits63(random.fold_in(k, i), (min(chunk, n_resamples - start), n))
            perms = torch.argsort(bits, dim=-1, stable=True)  # uniform random permutations, one per row
            parts.append(statistic(*_split(pooled, perms, n_x)))
        null = torch.cat(parts)

    # scipy's tie tolerance: a relative 100 eps, so that exact ties are not lost to rounding.
    gamma = (observed * (100 * torch.finfo(torch.float64).eps)).abs()
    adjustment = 0 if exact else 1  # the observed split counts once more in a Monte Carlo null
    n_null = null.numel()

    def p_greater() -> float:
        return (int((null >= observed - gamma).sum()) + adjustment) / (n_null + adjustment)

    def p_less() -> float:
        return (int((null <= observed + gamma).sum()) + adjustment) / (n_null + adjustment)

    if alternative == "greater":
        pvalue = p_greater()
    elif alternative == "less":
        pvalue = p_less()
    else:
        pvalue = min(1.0, 2 * min(p_greater(), p_less()))
    return PermutationTestResult(float(observed), pvalue, exact, n_null)


def _all_splits(n: int, n_x: int) -> Tensor:
    """Every split of ``range(n)`` into a first group of ``n_x``: ``(comb(n, n_x), n)`` index rows."""
    # itertools, not torch.combinations: the latter materialises an n**n_x grid before masking it.
    first = torch.tensor(list(itertools.combinations(range(n), n_x)), dtype=torch.int64).reshape(-1, n_x)
    in_first = torch.zeros(first.shape[0], n, dtype=torch.bool).scatter(1, first, True)
    return torch.argsort((~in_first).to(torch.int8), dim=-1, stable=True)  # chosen indices first, then the rest


def _split(pooled: Tensor, order: Tensor, n_x: int) -> tuple[Tensor, Tensor]:
    arranged = pooled[order]
    return arranged[..., :n_x], arranged[..., n_x:]


def is_significant_reward_improvement(
    old_rewards: ArrayLike,
    new_rewards: ArrayLike,
    p_value: float = 0.05,
    *,
    n_resamples: int = 9999,
    key: Key | None = None,
) -> bool:
    """Whether ``new_rewards`` are significantly better than ``old_rewards`` (``imitation``'s function).

    A one-sided permutation test on the difference of means (:func:`permutation_test`, as
    ``scipy.stats.permutation_test`` with its defaults): ``True`` when the probability that the old
    rewards are just as good is below ``p_value``.

    >>> is_significant_reward_improvement((5, 6, 7, 4, 4), (7, 5, 9, 7, 4))
    False
    """
    result = permutation_test(new_rewards, old_rewards, alternative="greater", n_resamples=n_resamples, key=key)
    return result.pvalue < p_value


def mean_reward_improved_by(old_rewards: ArrayLike, new_rewards: ArrayLike, min_improvement: float) -> bool:
    """Whether ``mean(new_rewards) - mean(old_rewards) >= min_improvement`` (``imitation``'s function).

    >>> mean_reward_improved_by([5, 8, 7], [8, 9, 10], 2)
    True
    """
    old, new = _as_float64(old_rewards, "old_rewards"), _as_float64(new_rewards, "new_rewards")
    return bool(new.mean() - old.mean() >= min_improvement)


# --------------------------------------------------------------------------------------------
# Aggregates over runs (rliable)
# --------------------------------------------------------------------------------------------


def iqm(x: Tensor, dim: int | None = None) -> Tensor:
    """Interquartile mean: the mean of the middle 50% of ``x`` (over all entries, or along ``dim``).

    ``scipy.stats.trim_mean(x, 0.25)`` as rliable uses it: sort, drop ``floor(n / 4)`` values from each
    end, average the rest (so for ``n < 4`` it is the plain mean). Pure: the cut depends only on shapes.
    """
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if dim is None:
        x, dim = x.flatten(), 0
    n = x.shape[dim]
    if n == 0:
        raise ValueError("iqm: x has no entries along the reduced axis")
    cut = n // 4  # int(0.25 * n), exact for integers
    return x.sort(dim=dim).values.narrow(dim, cut, n - 2 * cut).mean(dim)


def normalized_return(returns: Tensor | float, random_return: Tensor | float, expert_return: Tensor | float) -> Tensor:
    """``(returns - random_return) / (expert_return - random_return)``: 0 for a random policy, 1 for the expert.

    Broadcasts, so per-task reference returns ``(n_tasks,)`` normalise scores ``(n_runs, n_tasks)``.
    """
    numbers = isinstance(random_return, int | float) and isinstance(expert_return, int | float)
    if numbers and expert_return == random_return:
        raise ValueError(f"normalized_return: expert_return equals random_return ({expert_return}); cannot normalise")
    r = torch.as_tensor(returns)
    r = r if r.is_floating_point() else r.to(torch.get_default_dtype())
    return (r - random_return) / (torch.as_tensor(expert_return) - random_return)


def probability_of_improvement(x: Tensor, y: Tensor) -> Tensor:
    """rliable's P(X > Y): the chance that a run of ``x`` beats a run of ``y`` on a task, ties counting 1/2.

    ``x: (n_x,)`` or ``(n_x, n_tasks)``, ``y: (n_y,)`` or ``(n_y, n_tasks)``. Per task the Mann–Whitney
    ``U / (n_x n_y)`` over all pairs of runs, then the mean over tasks. Returns a 0-d tensor.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    x, y = (x.unsqueeze(-1) if x.ndim == 1 else x), (y.unsqueeze(-1) if y.ndim == 1 else y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"probability_of_improvement: x {tuple(x.shape)} and y {tuple(y.shape)} must be (n_runs,) or "
            "(n_runs, n_tasks) with the same n_tasks"
        )
    a, b = x.unsqueeze(1), y.unsqueeze(0)  # (n_x, 1, n_tasks), (1, n_y, n_tasks)
    wins = (a > b).to(torch.float64) + 0.5 * (a == b).to(torch.float64)
    return wins.mean(dim=(0, 1)).mean()


# --------------------------------------------------------------------------------------------
# Bootstrap confidence intervals (rliable's stratified percentile bootstrap)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float


_STATISTICS: dict[str, Statistic] = {
    "mean": lambda s: s.mean(-1),
    "iqm": lambda s: iqm(s, dim=-1),
    "median": lambda s: s.median(-1).values if s.shape[-1] % 2 else s.quantile(0.5, dim=-1),
}


def bootstrap_ci(
    x: ArrayLike,
    statistic: Literal["mean", "iqm", "median"] | Statistic = "mean",
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    key: Key | None = None,
) -> Interval:
    """Percentile-bootstrap confidence interval of an aggregate of scores ``x: (n_runs,)`` or ``(n_runs, n_tasks)``.

    rliable's ``StratifiedBootstrap``: each resample draws ``n_runs`` runs with replacement separately
    for every task (the tasks are strata, so each keeps its weight), and the statistic — ``"mean"``,
    ``"iqm"``, ``"median"`` or a callable reducing the last axis of ``(..., n)`` — is taken over all
    ``n_runs * n_tasks`` resampled scores. The interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled statistic; the estimate is the statistic of ``x``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_ci: confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"bootstrap_ci: n_resamples must be >= 1, got {n_resamples}")
    if isinstance(statistic, str):
        if statistic not in _STATISTICS:
            raise ValueError(f"bootstrap_ci: unknown statistic {statistic!r}; use one of {sorted(_STATISTICS)}")
        stat_fn = _STATISTICS[statistic]
    else:
        stat_fn = statistic
    scores = _as_float64(x, "bootstrap_ci: x")
    if scores.ndim == 1:
        scores = scores.unsqueeze(-1)
    if scores.ndim != 2:
        raise ValueError(f"bootstrap_ci: x must be (n_runs,) or (n_runs, n_tasks), got shape {tuple(scores.shape)}")
    n_runs, n_tasks = scores.shape
    tasks = torch.arange(n_tasks)
    k = _default_key(key)
    chunk = max(1, _CHUNK_ELEMENTS // scores.numel())
    stats = []
    for i, start in enumerate(range(0, n_resamples, chunk)):
        rows = random.randint(random.fold_in(k, i), (min(chunk, n_resamples - start), n_runs, n_tasks), 0, n_runs)
        stats.append(stat_fn(scores[rows, tasks].flatten(1)))  # scores[rows[r, i, t], t]
    dist = torch.cat(stats)
    alpha = (1 - confidence) / 2
    low, high = torch.quantile(dist, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return Interval(float(stat_fn(scores.flatten().unsqueeze(0))[0]), float(low), float(high))


__all__ = [
    "Alternative",
    "ArrayLike",
    "Interval",
    "PermutationTestResult",
    "Statistic",
    "TwoSampleStatistic",
    "bootstrap_ci",
    "iqm",
    "is_significant_reward_improvement",
    "mean_difference",
    "mean_reward_improved_by",
    "normalized_return",
    "permutation_test",
    "probability_of_improvement",
]
