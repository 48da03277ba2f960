"""PPO over a stack of states (a leading seed axis): ``vmap`` of :mod:`ppo`'s rollout and update, each
optionally one ``torch.compile``d call.

    collect, update = ppo_batched.batched_collect(env, compile=True), ppo_batched.batched_update(compile=True)
    states, metrics = update(*collect(states))          # equal to vmap(ppo.update)(*vmap(ppo.collect_env)(...))

Compiled, each is one call whose loop body is traced once (the rollout's steps and the update's
minibatch steps in a ``while_loop``): a call per step would pay guards, output rebuilding and wrapper
overhead each time. The math is :mod:`ppo`'s; this module only batches and compiles it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor
from torch._higher_order_ops.while_loop import while_loop

from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random, tree
from imitation_fn.envs.base import Env, RewardFn, TimeStep
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.host import HostEnvs, running
from imitation_fn.policies import actor_critic
from imitation_fn.rl.ppo import (
    Metrics,
    Progress,
    Rollout,
    State,
    StepFn,
    StepRecord,
    TrainBatch,
    _check_collect,
    _run,
    act,
    all_indices,
    collect_begin,
    collect_end,
    collect_env,
    collect_step,
    finish,
    minibatch_step,
    prepare,
    step_record,
)


class BatchedCollect(Protocol):
    """What :func:`batched_collect` returns."""

    def __call__(self, states: State, keys: random.Key | None = None) -> tuple[State, Rollout]: ...


def batched_collect(env: Env, compile: bool = False, reward_fn: RewardFn | None = None) -> BatchedCollect:
    """``collect`` over a stack of states (leading seed axis): ``run(states, keys=None) -> (states, rollouts)``.

    Equal to ``vmap(lambda s, k: collect_env(s, env, k, reward_fn))``. With ``compile=True`` the rollout (its
    randomness, then policy forward + env step, vmapped over seeds, in a ``while_loop``) is one compiled
    call; ``reward_fn`` runs uncompiled on its result. A host env (gymnasium's) gets :func:`host_collect`.
    """
    if isinstance(env, GymEnv):
        return host_collect(env, reward_fn)
    if not compile:

        def eager(states: State, keys: random.Key | None = None) -> tuple[State, Rollout]:
            if keys is None:
                return torch.func.vmap(lambda s: collect_env(s, env, None, reward_fn))(states)
            return torch.func.vmap(lambda s, k: collect_env(s, env, k, reward_fn))(states, keys)

        return eager
    # Scalar C++: the build the RL-engine timings (benchmarks/rl_sweep.py) were measured with.
    rollout = functools.partial(compile_lib.compiled(_batched_rollout, vectorize=False), env)

    def run(states: State, keys: random.Key | None = None) -> tuple[State, Rollout]:
        _check_collect(states, env)
        # The policy comes in as `acting` and the env as `timestep`: no tensor may be passed twice (compiled
        # code guards on aliasing), strides must be those it was traced with, and every leaf passed costs a
        # guard check per call (so not the optimiser state).
        acting, timestep = compile_lib.standard_layout((states.replace(timestep=(), opt_state=()), states.timestep))
        key, timestep, records = rollout(acting, timestep, keys)
        states = states.replace(key=key)
        if reward_fn is None:  # collect_end is then elementwise: the seed axis broadcasts, and vmap's overhead goes
            return collect_end(states, timestep, records)
        return torch.func.vmap(functools.partial(collect_end, reward_fn=reward_fn))(states, timestep, records)

    return run


OnRestart = Callable[[State, HostEnvs], object]
"""``on_restart(states, envs)``: runs after the host envs (re)start, e.g. to stagger their episodes."""


def host_collect(env: GymEnv, reward_fn: RewardFn | None = None, on_restart: OnRestart | None = None) -> BatchedCollect:
    """``collect`` over a stack of states on a host env: the policy vmapped over seeds, the simulators on the host.

    The seeds' sub-environments are one :class:`HostEnvs` (``n_seeds * env.n_envs`` copies), made and started at
    the first call (:func:`envs.host.running`); the states' ``timestep`` stays ``None``. Each step is one vmapped
    :func:`ppo.act`, then one host step of every copy; the rollouts are those ``vmap(collect_env)`` would give on
    torch envs.
    """
    envs: HostEnvs | None = None
    batched_act = torch.func.vmap(act)

    def run(states: State, keys: random.Key | None = None) -> tuple[State, Rollout]:
        nonlocal envs
        envs, restarted = running(envs, env, states.key)
        if restarted and on_restart is not None:
            on_restart(states, envs)
        timestep = envs.timestep
        assert timestep is not None
        states, noise, _ = torch.func.vmap(collect_begin, in_dims=(0, None if keys is None else 0))(states, keys)
        records = []
        for t in range(states.n_steps):
            action, log_prob, value = batched_act(states, timestep.obs, noise[:, t])
            nxt = envs.step(actor_critic.clip_action(action, states.action_bounds))
            records.append(
                step_record(timestep.replace(env_state=()), nxt.replace(env_state=()), action, log_prob, value)
            )
            timestep = nxt
        stacked = tree.map(lambda *xs: torch.stack(xs, 1), *records)  # (n_seeds, n_steps, n_envs, ...)
        return torch.func.vmap(lambda s, r: collect_end(s, None, r, reward_fn))(states, stacked)

    return run


# The vmapped pieces of a sweep, each its own function: torch.compile caches compiled code per code object
# (a bounded number of entries each), so sharing one ``vmap`` wrapper would make the pieces evict each other.
def _batched_rollout(
    env: Env, states: State, timestep: TimeStep, keys: random.Key | None
) -> tuple[Tensor, TimeStep, StepRecord]:
    """A rollout of stacked states: ``(states.key after it, the last timestep, records (n_seeds, n_steps, ...))``.

    ``vmap(collect)`` without ``collect_end``, its steps in a ``while_loop``: compiled, one call whose
    body is traced once, however long the rollout (a call per step would pay guards and wrappers each
    time). The loop carries the timestep and the records so far as a flat tuple of row-major tensors,
    none aliasing another (what ``while_loop`` accepts).
    """
    states, noise, env_keys = torch.func.vmap(collect_begin, in_dims=(0, None if keys is None else 0))(states, keys)
    noise, env_keys = noise.transpose(0, 1), env_keys.transpose(0, 1)  # step-major: (n_steps, n_seeds, ...)
    step = torch.func.vmap(lambda s, ts, n, k: collect_step(s, env, ts, n, k))

    def act(timestep: TimeStep, t: Tensor) -> tuple[TimeStep, StepRecord]:
        t = t.reshape(1)
        return step(states, timestep, noise.index_select(0, t)[0], env_keys.index_select(0, t)[0])

    def fresh(x: Tensor) -> Tensor:
        return x.clone(memory_format=torch.contiguous_format)

    zero = torch.zeros((), dtype=torch.int64)
    timestep, first = act(timestep, zero)  # the first step outside the loop: it gives the records' shapes
    ts_leaves, ts_spec = tree.flatten(timestep)
    first_leaves, rec_spec = tree.flatten(first)
    n_ts = len(ts_leaves)

    def more(t: Tensor, *carried: Tensor) -> Tensor:
        return t < states.n_steps

    def body(t: Tensor, *carried: Tensor) -> tuple[Tensor, ...]:
        timestep, record = act(tree.unflatten(list(carried[:n_ts]), ts_spec), t)
        written = [
            buf.index_copy(0, t.reshape(1), x[None]).contiguous()
            for buf, x in zip(carried[n_ts:], tree.leaves(record), strict=True)
        ]
        return (t + 1, *map(fresh, tree.leaves(timestep)), *written)

    buffers = [fresh(x[None].expand(states.n_steps, *x.shape)) for x in first_leaves]
    _, *carried = while_loop(more, body, (zero + 1, *map(fresh, ts_leaves), *buffers))
    timestep = tree.unflatten(carried[:n_ts], ts_spec)
    records = tree.unflatten([x.transpose(0, 1).contiguous() for x in carried[n_ts:]], rec_spec)
    return states.key, timestep, records


def _batched_prepare(states: State, rollouts: Rollout) -> tuple[State, TrainBatch, Progress]:
    return torch.func.vmap(prepare)(states, rollouts)


def _batched_indices(states: State, carry: Progress) -> Tensor:
    """:func:`all_indices` of each seed, step-major ``(n_steps, n_seeds, batch_size)``: each step's slice is one
    contiguous block (compiled code guards on strides)."""
    return torch.func.vmap(all_indices)(states, carry).transpose(0, 1).contiguous()


def _batched_step(states: State, carry: Progress, data: TrainBatch, idx: Tensor) -> tuple[State, Progress]:
    return torch.func.vmap(minibatch_step)(states, carry, data, idx)


def _batched_finish(states: State, carry: Progress, data: TrainBatch) -> tuple[State, Metrics]:
    return torch.func.vmap(finish)(states, carry, data)


def steps_in_while_loop(
    step_fn: StepFn, states: State, carry: Progress, data: TrainBatch, idx: Tensor
) -> tuple[State, Progress]:
    """:func:`steps_in_python` as one ``while_loop``: compiled, its body is traced once, however many steps.

    The loop carries a flat tuple of what the steps change (``while_loop`` neither flattens our dataclasses
    nor lets a carried tensor come back unchanged); the rest is read from the enclosing scope.
    """

    def changing(states: State, progress: Progress) -> list[Tensor]:
        return tree.leaves((states.params, states.opt_state, progress.replace(key=(), lr=())))

    _, spec = tree.flatten((states.params, states.opt_state, carry.replace(key=(), lr=())))

    def more(i: Tensor, *leaves: Tensor) -> Tensor:
        return i < idx.shape[0]

    def body(i: Tensor, *leaves: Tensor) -> tuple[Tensor, ...]:
        params, opt_state, progress = tree.unflatten(list(leaves), spec)
        stepped = step_fn(
            states.replace(params=params, opt_state=opt_state, key=()),  # its key is unused (and aliases carry's)
            progress.replace(key=carry.key, lr=carry.lr),
            data,
            idx.index_select(0, i.reshape(1))[0],
        )
        return (i + 1, *changing(*stepped))

    # Cloned on entry: carried tensors may not alias each other (prepare starts the sums from one zero).
    start = [x.clone() for x in changing(states, carry)]
    _, *leaves = while_loop(more, body, (torch.zeros((), dtype=torch.int64), *start))
    params, opt_state, progress = tree.unflatten(leaves, spec)
    return states.replace(params=params, opt_state=opt_state), progress.replace(key=carry.key, lr=carry.lr)


def _batched_update_all(states: State, rollouts: Rollout) -> tuple[State, Metrics]:
    """The update of stacked states with its steps in a ``while_loop``: what :func:`batched_update` compiles."""
    return _run(
        states,
        rollouts,
        _batched_prepare,
        _batched_step,
        _batched_finish,
        _batched_indices,
        repeat=steps_in_while_loop,
    )


def batched_update(compile: bool = False) -> Callable[[State, Rollout], tuple[State, Metrics]]:
    """``update`` over a stack of states (leading seed axis), optionally compiled.

    Equal to ``vmap(update)``. With ``compile=True`` a whole update (GAE, every epoch's shuffle, the
    minibatch steps in a ``while_loop``, the metrics) is one compiled call, vmapped over seeds.
    """
    if not compile:
        return functools.partial(
            _run,
            prepare_fn=_batched_prepare,
            step_fn=_batched_step,
            finish_fn=_batched_finish,
            indices_fn=_batched_indices,
        )
    update_all = compile_lib.compiled(_batched_update_all)

    def run(states: State, rollouts: Rollout) -> tuple[State, Metrics]:
        timestep = states.timestep  # not needed here: fewer leaves in and out of the call
        states, metrics = update_all(*compile_lib.standard_layout((states.replace(timestep=()), rollouts)))
        return states.replace(timestep=timestep), metrics

    return run


__all__ = ["BatchedCollect", "OnRestart", "batched_collect", "batched_update", "host_collect", "steps_in_while_loop"]
