"""Policies as pure functions of parameters, their files, and SB3 experts loaded without pickle."""

from imitation_fn.envs.base import PolicyFn
from imitation_fn.policies import actor_critic, tabular
from imitation_fn.policies.io import LoadedPolicy, check_spaces, load_policy, save_policy
from imitation_fn.policies.mlp import act, distribution, init
from imitation_fn.policies.sb3_export import export_sb3
from imitation_fn.policies.simple import exploration_act, exploration_init, random_policy, zero_policy
from imitation_fn.policies.tabular import TabularPolicy

__all__ = [
    "LoadedPolicy",
    "PolicyFn",
    "TabularPolicy",
    "act",
    "actor_critic",
    "check_spaces",
    "distribution",
    "exploration_act",
    "exploration_init",
    "export_sb3",
    "init",
    "load_policy",
    "random_policy",
    "save_policy",
    "tabular",
    "zero_policy",
]
