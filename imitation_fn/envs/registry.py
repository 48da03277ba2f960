"""Environments by id: ``make("CartPole-v1", n_envs=8)`` builds a pure torch :class:`~imitation_fn.envs.base.Env`.

Ids follow gymnasium's (and seals') names, so configs and datasets written for ``imitation`` keep
working. New environments join with :func:`register`.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from imitation_fn.envs import atari, seals_mujoco
from imitation_fn.envs.acrobot import Acrobot
from imitation_fn.envs.base import Env
from imitation_fn.envs.cartpole import CartPole, FixedHorizonCartPole
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.mountain_car import FixedHorizonMountainCar, MountainCar, MountainCarContinuous
from imitation_fn.envs.pendulum import Pendulum
from imitation_fn.envs.tabular import CliffWorld, RandomMDP

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


def make(env_id: str, n_envs: int = 1, **kwargs: Any) -> Env:
    """A batch of ``n_envs`` environments ``env_id``; ``kwargs`` go to the environment's constructor.

    The pure torch version where one is registered; otherwise any gymnasium id (``"Hopper-v5"``, or
    ``"module:Id"`` such as ``"ale_py:ALE/Pong-v5"``: gymnasium imports ``module`` first) through
    :class:`~imitation_fn.envs.gym.GymEnv`, which steps on the host and is not vmappable. ``"module:Id"`` of
    an ``Id`` this package provides (``"seals:seals/CartPole-v0"``) is ours.
    """
    env_id = _ours(env_id)
    if env_id not in _REGISTRY and atari.is_atari(env_id):  # SB3's Atari preprocessing
        try:
            return atari.make(env_id, n_envs, **kwargs)
        except gym.error.DependencyNotInstalled as e:
            raise ValueError(f"{env_id!r} needs the atari extra: pip install 'imitation-fn[atari]' ({e})") from e
    if env_id not in _REGISTRY and _is_gymnasium_id(env_id):
        try:
            return GymEnv(env_id, n_envs, **kwargs)
        except (ImportError, gym.error.Error) as e:  # "module:Id" whose module does not import or register Id
            raise ValueError(f"cannot make the gymnasium environment {env_id!r}: {e}") from e
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown torch environment id {env_id!r}.{hint} Known ids: {', '.join(registered_ids())}. "
            "It is not a gymnasium id either (for a third-party env, use 'module:Id' or import its package first)."
        )
    return _REGISTRY[env_id](n_envs=n_envs, **kwargs)


def _ours(env_id: str) -> str:
    """``"module:Id"`` for an ``Id`` this package provides is that ``Id``, whether or not ``module`` is installed:
    ``imitation``'s configs name seals' tasks as ``"seals:seals/CartPole-v0"``."""
    module, _, name = env_id.rpartition(":")
    provided = name in _REGISTRY or name in {seals_mujoco.env_id(n) for n in seals_mujoco.SEALS_MUJOCO}
    return name if module and provided else env_id


def _is_gymnasium_id(env_id: str) -> bool:
    """Registered with gymnasium, or ``"module:Id"`` (gymnasium.make imports the module first)."""
    return ":" in env_id or env_id in gym.registry


register("CartPole-v1", CartPole)
register("Pendulum-v1", Pendulum)
register("MountainCar-v0", MountainCar)
register("MountainCarContinuous-v0", MountainCarContinuous)
register("Acrobot-v1", Acrobot)
register("seals/CartPole-v0", FixedHorizonCartPole)
register("seals/MountainCar-v0", FixedHorizonMountainCar)
# seals' tabular tasks: CliffWorld{W}x{H}[XY] at its three registered sizes, and its random MDP.
for _w, _h, _horizon in [(7, 4, 9), (15, 6, 18), (100, 20, 110)]:
    for _xy in (False, True):
        register(
            f"seals/CliffWorld{_w}x{_h}{'XY' if _xy else ''}-v0",
            functools.partial(CliffWorld, width=_w, height=_h, horizon=_horizon, use_xy_obs=_xy),
        )
register("CliffWorld", CliffWorld)  # seals/CliffWorld7x4-v0's defaults; make("CliffWorld", n, width=..., ...)
register("seals/Random-v0", RandomMDP)
register("RandomMDP", RandomMDP)

seals_mujoco.register()  # seals/HalfCheetah-v1, ...: gymnasium ids, made as host environments (GymEnv)

__all__ = ["EnvFactory", "make", "register", "registered_ids"]
