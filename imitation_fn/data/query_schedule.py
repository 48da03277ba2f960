"""How many comparisons each round of preference comparisons gathers (``imitation``'s ``query_schedule``).

    counts = query_schedule.comparison_schedule(200, 5, 0.1, "hyperbolic")    # [20, 51, 41, 34, 29, 25]

The initial round gets ``initial_comparison_frac`` of the total; the rest is spread over the
``num_iterations`` rounds in proportion to a schedule's weights at ``linspace(0, 1, num_iterations)``,
rounded to integers that keep the sum (:func:`oric`). Host-side and static: shapes depend on the counts.
"""

from __future__ import annotations

from collections.abc import Callable

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


__all__ = ["QUERY_SCHEDULES", "comparison_schedule", "oric"]
