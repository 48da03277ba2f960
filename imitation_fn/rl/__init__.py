"""Reinforcement learning in the ``(init, collect, update)`` form: the policy optimisers that GAIL, AIRL,
density-based reward learning and preference comparisons train inside their loops.

Every algorithm here runs as ``state, metrics = algo.update(*algo.collect(state, env))``."""

from imitation_fn.rl import ppo, sac

__all__ = ["ppo", "sac"]
