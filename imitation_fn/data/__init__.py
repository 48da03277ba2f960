"""Experience data: trajectory types, pure rollouts, episode utilities and ``imitation``-compatible files.

Used as in ``imitation``::

    from imitation_fn.data import rollout, serialize

    batch, timestep = rollout.rollout(env, policy_fn, key, n_steps=128)  # pure, vmappable
    trajs = rollout.generate_trajectories(env, policy_fn, key, min_episodes=50)
    serialize.save("demos/cartpole", trajs)

The function ``rollout.rollout`` is deliberately not re-exported here: ``imitation_fn.data.rollout``
stays the module.
"""

from imitation_fn.data import rollout, serialize, types
from imitation_fn.data.rollout import (
    PolicyFn,
    Rollout,
    flatten_rollout,
    flatten_trajectories,
    generate_trajectories,
    make_sample_until,
    rollout_stats,
    to_trajectories,
)
from imitation_fn.data.types import Trajectory, TrajectoryWithRew, Transitions

__all__ = [
    "PolicyFn",
    "Rollout",
    "Trajectory",
    "TrajectoryWithRew",
    "Transitions",
    "flatten_rollout",
    "flatten_trajectories",
    "generate_trajectories",
    "make_sample_until",
    "rollout",
    "rollout_stats",
    "serialize",
    "to_trajectories",
    "types",
]
