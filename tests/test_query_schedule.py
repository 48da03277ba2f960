"""The query schedule (imitation_fn.data.query_schedule): comparisons per round, as imitation computes them."""

import numpy as np
import pytest

from imitation_fn.data import query_schedule
from imitation_fn.data.query_schedule import QUERY_SCHEDULES, comparison_schedule


def test_query_schedule_matches_imitation_and_sums_to_total() -> None:
    # imitation's tutorial: 200 comparisons, 5 iterations, hyperbolic -> "Query schedule: [20, 51, 41, 34, 29, 25]".
    assert comparison_schedule(200, 5, 0.1, "hyperbolic") == [20, 51, 41, 34, 29, 25]
    for name in QUERY_SCHEDULES:
        for total, iters, frac in [(1000, 60, 0.1), (7, 3, 0.0), (500, 10, 0.25), (3, 9, 0.5)]:
            s = comparison_schedule(total, iters, frac, name)
            assert len(s) == iters + 1 and sum(s) == total and min(s) >= 0
    assert comparison_schedule(100, 4, 0.0, "constant") == [0, 25, 25, 25, 25]
    w = np.array([1 / (1 + t**2) for t in np.linspace(0, 1, 4)])
    np.testing.assert_allclose(comparison_schedule(1000, 4, 0.0, "inverse_quadratic")[1:], w / w.sum() * 1000, atol=1)
    with pytest.raises(ValueError, match="unknown query_schedule"):
        comparison_schedule(10, 2, 0.1, "cubic")


def test_oric_preserves_the_sum_and_rounds_to_nearest() -> None:
    x = np.array([0.4, 1.6, 2.5, 0.5])
    r = query_schedule.oric(x)
    assert r.sum() == 5 and np.all(np.abs(r - x) < 1)
