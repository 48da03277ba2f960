"""Experience data: trajectory types, pure rollouts, episode utilities and ``imitation``-compatible files.

Used as in ``imitation``::

    from imitation_fn.data import rollout, serialize

    batch, timestep = rollout.rollout(env, policy_fn, key, n_steps=128)  # pure, vmappable
    trajs = rollout.generate_trajectories(env, policy_fn, key, min_episodes=50)
    serialize.save("demos/cartpole", trajs)

The function ``rollout.rollout`` is deliberately not re-exported here: ``imitation_fn.data.rollout``
stays the module.
"""

from imitation_fn.data import buffer, convert, gym_rollout, hub, infos, rollout, serialize, types, utils
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
from imitation_fn.data.types import EpisodesWithInfos, Trajectory, TrajectoryWithRew, Transitions
from imitation_fn.data.utils import TransitionsWithRew

__all__ = [
    "EpisodesWithInfos",
    "PolicyFn",
    "Rollout",
    "Trajectory",
    "TrajectoryWithRew",
    "Transitions",
    "TransitionsWithRew",
    "buffer",
    "convert",
    "flatten_rollout",
    "flatten_trajectories",
    "generate_trajectories",
    "gym_rollout",
    "hub",
    "infos",
    "make_sample_until",
    "rollout",
    "rollout_stats",
    "serialize",
    "to_trajectories",
    "types",
    "utils",
]
