"""Policies as pure functions of parameters."""

from imitation_fn.policies.mlp import PolicyFn, act, distribution, init

__all__ = ["PolicyFn", "act", "distribution", "init"]
