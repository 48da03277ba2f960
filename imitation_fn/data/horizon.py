"""``imitation``'s variable-horizon guard: episodes of different lengths leak the reward through when
they end, so adversarial training refuses them unless ``allow_variable_horizon``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from imitation_fn.core.checks import in_transform
from imitation_fn.data.types import Trajectory, Transitions

VARIABLE_HORIZON_URL = "https://imitation.readthedocs.io/en/latest/guide/variable_horizon.html"


def variable_horizon_error(detail: str) -> ValueError:
    return ValueError(
        f"Episodes of different length detected: {detail}. Variable horizon environments are discouraged: "
        "the termination condition leaks information about the reward (an agent can learn from *when* an "
        "episode ends, whatever the learned reward), which confounds training and evaluation. Use a "
        "fixed-horizon environment (e.g. seals/CartPole-v0 instead of CartPole-v1), or, if you are SURE, pass "
        f"allow_variable_horizon=True. See {VARIABLE_HORIZON_URL}"
    )


def check_fixed_horizon(terminated: Tensor, allow_variable_horizon: bool) -> None:
    """Raise unless no episode ``terminated`` early (any shape, bool). A no-op inside transforms or when allowed.

    In a torch env every episode that does not terminate is cut at ``max_episode_steps``, so early
    termination is exactly what makes horizons differ.
    """
    if allow_variable_horizon or in_transform(terminated):
        return
    if bool(terminated.any()):
        n = int(terminated.sum())
        raise variable_horizon_error(f"{n} generator episode(s) terminated before the time limit")


def check_demo_horizon(demos: Sequence[Trajectory] | Transitions, allow_variable_horizon: bool) -> None:
    """Raise unless all expert trajectories have one length (Transitions: none ends in a terminal state)."""
    if allow_variable_horizon:
        return
    if isinstance(demos, Transitions):
        if bool(demos.dones.any()):
            raise variable_horizon_error(f"{int(demos.dones.sum())} expert transition(s) end an episode (dones)")
        return
    lengths = sorted({len(t) for t in demos})
    if len(lengths) > 1:
        raise variable_horizon_error(f"expert trajectories have lengths {lengths[:10]}")


__all__ = ["VARIABLE_HORIZON_URL", "check_demo_horizon", "check_fixed_horizon", "variable_horizon_error"]
