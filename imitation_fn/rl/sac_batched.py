"""SAC over a stack of states (a leading seed axis): ``vmap`` of :mod:`sac`'s collect and update, each
optionally through ``torch.compile`` (one gradient step per compiled call: small networks are
overhead-bound eagerly).

    collect, update = sac_batched.batched_collect(env, compile=True), sac_batched.batched_update(compile=True)
    states, metrics = update(*collect(states))     # equal to vmap(sac.update)(*vmap(sac.collect_env)(...))

:func:`batched_train_step` is both as one compiled function (less to compile, for small ``train_freq``
and ``gradient_steps``). The math is :mod:`sac`'s; this module only batches and compiles it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random
from imitation_fn.data import buffer as replay
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.host import HostEnvs, running
from imitation_fn.rl.sac import (
    Item,
    Metrics,
    ParamRewardFn,
    State,
    act,
    collect_end,
    collect_env,
    collect_key,
    gradient_step,
    transition,
    update,
    update_end,
)


# The vmapped pieces of a sweep, each its own function: torch.compile caches compiled code per code object.
def _batched_collect(
    env: Env,
    reward_fn: ParamRewardFn | None,
    states: State,
    keys: random.Key | None,
    reward_params: Any,
) -> tuple[State, Item]:
    def one(s: State, k: random.Key | None, p: Any) -> tuple[State, Item]:
        return collect_env(s, env, k, None if reward_fn is None else functools.partial(reward_fn, p))

    in_dims = (0, None if keys is None else 0, None if reward_params is None else 0)
    return torch.func.vmap(one, in_dims=in_dims)(states, keys, reward_params)


def _batched_train_step(
    env: Env, reward_fn: ParamRewardFn | None, states: State, reward_params: Any
) -> tuple[State, Metrics]:
    def one(s: State, p: Any) -> tuple[State, Metrics]:
        return update(*collect_env(s, env, None, None if reward_fn is None else functools.partial(reward_fn, p)))

    return torch.func.vmap(one, in_dims=(0, None if reward_params is None else 0))(states, reward_params)


def _batched_store(states: State, batch: Item) -> State:
    """``vmap(store)``, written into the stacked replay storage in place (see :func:`replay.add_donated`)."""
    return states.replace(buffer=replay.add_donated(states.buffer, batch))


def _batched_gradient_step(states: State, keys: random.Key, g: Tensor) -> tuple[State, Metrics]:
    return torch.func.vmap(gradient_step, in_dims=(0, 0, None))(states, keys, g)


def _batched_update_end(states: State, new: State, history: list[Metrics]) -> tuple[State, Metrics]:
    return torch.func.vmap(update_end)(states, new, history)


def batched_collect(
    env: Env, compile: bool = False, reward_fn: ParamRewardFn | None = None
) -> Callable[..., tuple[State, Item]]:
    """``collect`` over a stack of states (leading seed axis): ``run(states, keys=None, reward_params=None)``.

    Equal to ``vmap(lambda s, k, p: collect(s, env, k, partial(reward_fn, p)))``: ``reward_fn`` takes
    each seed's reward parameters first (``reward_params``, leaves with a leading seed axis), so a
    learned reward that changes between calls needs no recompilation. With ``compile=True`` the whole
    vmapped ``collect`` (``train_freq`` steps unrolled: keep it small) goes through ``torch.compile``.
    A host env (gymnasium's) gets :func:`host_collect`.
    """
    if isinstance(env, GymEnv):
        return host_collect(env, reward_fn)
    fn = compile_lib.compiled(_batched_collect) if compile else _batched_collect

    def run(states: State, keys: random.Key | None = None, reward_params: Any = None) -> tuple[State, Item]:
        if compile:
            states, keys, reward_params = compile_lib.standard_layout((states, keys, reward_params))
        return fn(env, reward_fn, states, keys, reward_params)

    return run


def host_collect(env: GymEnv, reward_fn: ParamRewardFn | None = None) -> Callable[..., tuple[State, Item]]:
    """:func:`batched_collect` on a host env: the actor vmapped over seeds, the simulators stepped on the host.

    The seeds' sub-environments are one :class:`HostEnvs`, made and started at the first call
    (:func:`envs.host.running`); the states' ``timestep`` stays ``None``. The transitions are those
    ``vmap(collect_env)`` gives on a torch env.
    """
    envs: HostEnvs | None = None
    batched_act = torch.func.vmap(act)

    def run(states: State, keys: random.Key | None = None, reward_params: Any = None) -> tuple[State, Item]:
        nonlocal envs
        envs, _ = running(envs, env, states.key)
        timestep = envs.timestep
        assert timestep is not None
        states, keys = torch.func.vmap(collect_key, in_dims=(0, None if keys is None else 0))(states, keys)

        def store(obs: Any, action: Any, env_action: Any, nxt: Any, params: Any) -> Item:
            return transition(
                obs, action, env_action, nxt, None if reward_fn is None else functools.partial(reward_fn, params)
            )

        record = torch.func.vmap(store, in_dims=(0, 0, 0, 0, None if reward_params is None else 0))
        collected = []
        for i in range(states.train_freq):
            k = torch.func.vmap(random.split, in_dims=(0, None))(
                torch.func.vmap(random.fold_in, in_dims=(0, None))(keys, i), 3
            )
            action, env_action = batched_act(states, timestep.obs, states.timesteps + i * envs.n_envs, k[:, 0], k[:, 1])
            nxt = envs.step(env_action)
            collected.append(record(timestep.obs, action, env_action, nxt.replace(env_state=()), reward_params))
            timestep = nxt
        return torch.func.vmap(lambda s, c: collect_end(s, None, c))(states, collected)

    return run


def batched_train_step(
    env: Env, compile: bool = False, reward_fn: ParamRewardFn | None = None
) -> Callable[[State, Any], tuple[State, Metrics]]:
    """``run(states, reward_params=None) -> (states, metrics)``: ``update(*collect(...))`` over a stack of states.

    Equal to ``batched_update()(*batched_collect(env, reward_fn=reward_fn)(states, None, reward_params))``. With
    ``compile=True`` the pair is ONE compiled function (``train_freq`` steps and ``gradient_steps`` steps
    unrolled: for small ones): compiling costs mostly per graph and per input, so one graph compiles faster
    than the three pieces of :func:`batched_collect` and :func:`batched_update`.
    """
    fn = compile_lib.compiled(_batched_train_step) if compile else _batched_train_step

    def run(states: State, reward_params: Any = None) -> tuple[State, Metrics]:
        if compile:
            states, reward_params = compile_lib.standard_layout((states, reward_params))
        return fn(env, reward_fn, states, reward_params)

    return run


def learning(states: State) -> bool:
    """Whether any seed's ``update`` would apply its gradient steps (``timesteps > learning_starts``); host-side."""
    return bool((states.timesteps > states.learning_starts).any())


def store_only(states: State, batch: Item) -> tuple[State, Metrics]:
    """What ``batched_update`` gives while no seed is :func:`learning`, without computing the gradient steps it
    would mask: the batch stored (in place, as there), the keys advanced; metrics only ``n_updates``."""
    states = _batched_store(states, batch)
    keys = torch.func.vmap(lambda k: random.split(k)[0])(states.key)
    return states.replace(key=keys), {"n_updates": states.n_updates}


def batched_update(compile: bool = False) -> Callable[..., tuple[State, Metrics]]:
    """``update`` over a stack of states (leading seed axis): ``run(states, batch) -> (states, metrics)``.

    Equal to ``vmap(update)``, except that it consumes the states passed in: the new transitions are written into
    their replay storage in place (a copy would cost ``O(buffer_size)`` per call). With ``compile=True`` one
    vmapped gradient step and the final masking go
    through ``torch.compile`` and a Python loop runs the ``gradient_steps``: the step index is a tensor, so
    one compiled step serves them all, and compile time does not grow with ``gradient_steps``.
    """
    step = compile_lib.compiled(_batched_gradient_step) if compile else _batched_gradient_step
    end = compile_lib.compiled(_batched_update_end) if compile else _batched_update_end
    indices: dict[int, Tensor] = {}

    def run(states: State, batch: Item) -> tuple[State, Metrics]:
        states = _batched_store(states, batch)
        if compile:
            states = compile_lib.standard_layout(states)
        new, history = states, []
        for g in range(states.gradient_steps):
            new, metrics = step(new, states.key, indices.setdefault(g, torch.tensor(g, device=states.key.device)))
            history.append(metrics)
        return end(states, new, history)

    return run


__all__ = ["batched_collect", "batched_train_step", "batched_update", "host_collect", "learning", "store_only"]
