"""How many comparisons each round of preference comparisons gathers (``imitation``'s ``query_schedule``).

    counts = query_schedule.comparison_schedule(200, 5, 0.1, "hyperbolic")    # [20, 51, 41, 34, 29, 25]
    rounds = query_schedule.plan(cfg, steps_per_call=64, horizon=200)         # every round's static sizes

The initial round gets ``initial_comparison_frac`` of the total; the rest is spread over the
``num_iterations`` rounds in proportion to a schedule's weights at ``linspace(0, 1, num_iterations)``,
rounded to integers that keep the sum (:func:`oric`). :func:`plan` adds what else a round's shapes
depend on: the dataset's size, the trajectories to sample and the agent's share of its steps.
Host-side and static: shapes depend on the counts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

QUERY_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda t: 1.0,
    "hyperbolic": lambda t: 1.0 / (1.0 + t),
    "inverse_quadratic": lambda t: 1.0 / (1.0 + t**2),
}


def oric(x: np.ndarray) -> np.ndarray:
    """``imitation.util.oric``: round to integers preserving the (integer) sum, largest remainders first."""
    rounded = np.floor(x)
    shortfall = x - rounded
    total = int(np.round(shortfall.sum()))
    rounded[np.argsort(-shortfall, kind="stable")[:total]] += 1
    return rounded.astype(int)


def comparison_schedule(
    total_comparisons: int,
    num_iterations: int,
    initial_comparison_frac: float = 0.1,
    query_schedule: str | Callable[[float], float] = "hyperbolic",
) -> list[int]:
    """Comparisons per round: ``[initial, *shares]`` (``num_iterations + 1`` entries) summing to the total."""
    fn = QUERY_SCHEDULES.get(query_schedule) if isinstance(query_schedule, str) else query_schedule
    if fn is None:
        raise ValueError(f"unknown query_schedule {query_schedule!r}; expected one of {sorted(QUERY_SCHEDULES)}")
    initial = int(total_comparisons * initial_comparison_frac)
    weights = np.array([fn(float(t)) for t in np.linspace(0, 1, num_iterations)], dtype=np.float64)
    shares = oric(weights / weights.sum() * (total_comparisons - initial))
    return [initial, *shares.tolist()]


class ScheduleConfig(Protocol):
    """What :func:`plan` reads (see ``preference_comparisons.Config`` for each one's meaning)."""

    @property
    def total_timesteps(self) -> int: ...
    @property
    def total_comparisons(self) -> int: ...
    @property
    def num_iterations(self) -> int: ...
    @property
    def initial_comparison_frac(self) -> float: ...
    @property
    def query_schedule(self) -> str: ...
    @property
    def initial_epoch_multiplier(self) -> float: ...
    @property
    def comparison_queue_size(self) -> int | None: ...
    @property
    def fragment_length(self) -> int: ...
    @property
    def transition_oversampling(self) -> float: ...
    @property
    def fragmenter(self) -> str: ...  # "random" or "active"
    @property
    def fragment_sample_factor(self) -> float: ...


@dataclasses.dataclass(frozen=True)
class Round:
    """What one round does: static numbers, the same for every seed (shapes depend on them)."""

    index: int
    num_pairs: int  # comparisons gathered this round
    dataset_size: int  # comparisons held after this round's push
    epoch_multiplier: float
    agent_calls: int  # agent collect + update calls after the reward is trained
    pool_envs: int  # sub-environments of the trajectory sample (agent source)
    pool_steps: int  # steps each of them runs


def plan(cfg: ScheduleConfig, steps_per_call: int, horizon: int | None = None) -> list[Round]:
    """The rounds: comparisons from :func:`comparison_schedule`, agent steps split exactly over the rounds.

    ``imitation`` trains the agent ``total_timesteps // num_iterations`` after each of its ``num_iterations
    + 1`` rounds (one round more than asked); here ``total_timesteps`` is split over those rounds, the
    remainder going to the last, in calls of ``steps_per_call`` env steps. ``horizon``: steps per sampled
    trajectory (the env's time limit).
    """
    counts = comparison_schedule(
        cfg.total_comparisons, cfg.num_iterations, cfg.initial_comparison_frac, cfg.query_schedule
    )
    n_rounds = len(counts)
    base, extra = divmod(cfg.total_timesteps, n_rounds)
    capacity = cfg.comparison_queue_size or cfg.total_comparisons
    horizon = horizon or max(cfg.fragment_length, 200)
    rounds, pushed, calls_done = [], 0, 0
    for i, n in enumerate(counts):
        pushed += n
        target = base * (i + 1) + (extra if i == n_rounds - 1 else 0)
        calls = -(-target // steps_per_call) - calls_done
        calls_done += calls
        steps = math.ceil(cfg.transition_oversampling * 2 * n * cfg.fragment_length)
        if cfg.fragmenter == "active":
            steps = math.ceil(steps * cfg.fragment_sample_factor)
        rounds.append(
            Round(
                index=i,
                num_pairs=n,
                dataset_size=min(pushed, capacity),
                epoch_multiplier=cfg.initial_epoch_multiplier if i == 0 else 1.0,
                agent_calls=calls,
                pool_envs=max(1, -(-steps // horizon)),
                pool_steps=horizon,
            )
        )
    return rounds


__all__ = ["QUERY_SCHEDULES", "Round", "ScheduleConfig", "comparison_schedule", "oric", "plan"]
