"""Environments by id: ``make("CartPole-v1", n_envs=8)`` builds a pure torch :class:`~imitation_fn.envs.base.Env`.

Ids follow gymnasium's (and seals') names, so configs and datasets written for ``imitation`` keep
working. New environments join with :func:`register`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from imitation_fn.envs.base import Env
from imitation_fn.envs.cartpole import CartPole, FixedHorizonCartPole

EnvFactory = Callable[..., Env]  # called as factory(n_envs=n_envs, **kwargs)

_REGISTRY: dict[str, EnvFactory] = {}


def register(env_id: str, factory: EnvFactory, *, overwrite: bool = False) -> None:
    """Make ``make(env_id, n_envs, **kwargs)`` call ``factory(n_envs=n_envs, **kwargs)``."""
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"Environment id {env_id!r} is already registered; pass overwrite=True to replace it.")
    _REGISTRY[env_id] = factory


def registered_ids() -> list[str]:
    """All known environment ids, sorted."""
    return sorted(_REGISTRY)


def make(env_id: str, n_envs: int = 1, **kwargs: object) -> Env:
    """A batch of ``n_envs`` torch environments ``env_id``; ``kwargs`` go to the environment's constructor."""
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown torch environment id {env_id!r}.{hint} Known ids: {', '.join(registered_ids())}. "
            "Other gymnasium environments run host-side through gymnasium's vector API."
        )
    return _REGISTRY[env_id](n_envs=n_envs, **kwargs)


register("CartPole-v1", CartPole)
register("seals/CartPole-v0", FixedHorizonCartPole)

__all__ = ["EnvFactory", "make", "register", "registered_ids"]
