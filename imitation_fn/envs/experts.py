"""Scripted experts: fixed controllers that solve an environment, for demonstrations and tests.

An expert is a policy in the rollout convention ``policy_fn(obs, key) -> action``. Deterministic
experts take the key only to fit that signature, so it is optional:
``cartpole_expert(obs)`` and ``cartpole_expert(obs, key)`` return the same actions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imitation_fn.core.random import Key
from imitation_fn.envs.base import PolicyFn

# Gains on (x, x_dot, theta, theta_dot): a PD controller on the pole angle plus a weaker PD on the cart
# position, with the signs an LQR design of the linearised cart-pole gives. Pushing right (action 1)
# when the weighted sum is positive keeps the pole and cart far inside the termination thresholds.
CARTPOLE_GAINS = (0.1, 0.2, 1.0, 0.3)


def cartpole_expert(obs: Tensor, key: Key | None = None) -> Tensor:
    """Bang-bang linear controller for CartPole: ``obs: (..., 4)`` -> actions ``(...,)`` int64 in {0, 1}.

    Scores 500 (the maximum) on every CartPole-v1 episode. ``key`` is unused: the policy is deterministic.
    """
    del key
    gains = torch.tensor(CARTPOLE_GAINS, dtype=obs.dtype, device=obs.device)
    return (obs @ gains > 0).to(torch.int64)


_EXPERTS: dict[str, PolicyFn] = {
    "CartPole-v1": cartpole_expert,
    "seals/CartPole-v0": cartpole_expert,  # same dynamics; the expert never leaves the "ok" region
}


def expert_for(env_id: str) -> PolicyFn:
    """The scripted expert ``policy_fn(obs, key) -> action`` for ``env_id``; ``KeyError`` if there is none."""
    if env_id not in _EXPERTS:
        raise KeyError(f"No scripted expert for {env_id!r}. Scripted experts exist for: {', '.join(sorted(_EXPERTS))}.")
    return _EXPERTS[env_id]


__all__ = ["CARTPOLE_GAINS", "PolicyFn", "cartpole_expert", "expert_for"]
