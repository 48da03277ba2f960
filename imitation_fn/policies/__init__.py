"""Policies as pure functions of parameters."""

from imitation_fn.envs.base import PolicyFn
from imitation_fn.policies.mlp import act, distribution, init

__all__ = ["PolicyFn", "act", "distribution", "init"]
