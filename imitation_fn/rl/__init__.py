"""Reinforcement learning in the ``(init, collect, update)`` form: the policy optimisers that GAIL, AIRL,
density-based reward learning and preference comparisons train inside their loops."""

from imitation_fn.rl import ppo

__all__ = ["ppo"]
