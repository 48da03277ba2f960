"""What the preference-comparison tests share: a short Pendulum, a seconds-long config, random fragments."""

from __future__ import annotations

import torch

from imitation_fn import envs
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import random
from imitation_fn.data.preferences import Fragments
from imitation_fn.envs.pendulum import Pendulum

SHORT = "test/Pendulum20-v0"  # 20-step episodes: a round takes seconds
envs.register(SHORT, lambda n_envs=1: Pendulum(n_envs, max_episode_steps=20), overwrite=True)

SMALL = pc.Config(
    total_timesteps=64,
    total_comparisons=12,
    num_iterations=1,
    fragment_length=10,
    initial_epoch_multiplier=2,
    warning_threshold=0,
    exploration_frac=0.5,
    agent="sac",
    agent_config={"n_envs": 2, "net_arch": [16, 16], "learning_starts": 16, "buffer_size": 256, "batch_size": 32},
)


def random_fragments(key: torch.Tensor, n_pairs: int = 8, length: int = 5) -> Fragments:
    """Pairs of fragments of a 3-d observation, 1-d action task with random rewards."""
    k1, k2, k3 = random.split(key, 3)
    obs = random.normal(k1, (n_pairs, 2, length, 3))
    return Fragments(
        obs=obs,
        acts=random.normal(k2, (n_pairs, 2, length, 1)),
        next_obs=obs + 0.1,
        dones=torch.zeros(n_pairs, 2, length, dtype=torch.bool),
        rews=random.normal(k3, (n_pairs, 2, length)),
    )
