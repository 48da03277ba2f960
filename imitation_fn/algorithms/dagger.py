"""DAgger: behavioural cloning on a dataset that grows with the states the learner itself visits.

Each round the environment is driven, per step and per sub-environment, by the expert with
probability β(round) and by the learner otherwise; every visited observation is labelled with the
expert's action and added to the aggregate dataset, and BC trains on everything gathered so far
(``imitation``'s ``InteractiveTrajectoryCollector`` + ``DAggerTrainer``):

    task = Task(env=envs.make("CartPole-v1", n_envs=cfg.n_envs), expert=expert, total=20_000)
    state = dagger.init(cfg, key, task)             # task.total (env steps to collect) sizes the aggregate
    state, rollout = dagger.collect(state, task)    # a round's minimum steps, β-mixed driving, expert labels
    state, metrics = dagger.update(state, rollout)  # the rollout joins the aggregate, one BC step on it all
    for _ in range(n_updates - 1):
        state, metrics = dagger.learn(state)        # more BC steps on the aggregate
    state = dagger.next_round(state)                # β moves along its schedule

A round's length and its number of BC steps (``n_epochs`` epochs of the aggregate, or ``n_batches``)
depend on the data, so the host decides them: :mod:`imitation_fn.train.dagger` runs rounds as
``imitation``'s ``SimpleDAggerTrainer`` does. The aggregate is a fixed-capacity
:mod:`~imitation_fn.data.buffer` with a fill count, so every shape is static and ``vmap`` runs a
whole sweep of seeds (each with its own environments, aggregate and key) as one computation. The BC
math is :mod:`imitation_fn.algorithms.bc`'s, reused unchanged. ``collect`` is pure for torch
environments; called on one seed's state (with its live timestep) it also steps a host-side
``GymEnv``. Differences from ``imitation``, deliberate: episodes continue across rounds (no reset
and no discarded partial episode per round, so every environment step is labelled and kept), and
minibatches are drawn uniformly with replacement from the filled part of the aggregate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor

from imitation_fn.algorithms import bc
from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random, struct, tree
from imitation_fn.data import buffer as buffer_lib
from imitation_fn.data import rollout as rollout_lib
from imitation_fn.data.types import Transitions
from imitation_fn.envs.base import Env, PolicyFn, TimeStep
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task

Metrics = dict[str, Tensor]
BetaSchedule = Callable[[Tensor], Tensor]
"""``round (int64 0-d) -> β (float 0-d)``: the probability that the expert drives the env in that round."""
NO_TIMESTEP: Any = ()
"""A ``GymEnv``'s timestep is a handle to live simulators: the state holds this empty pytree instead
(stackable and saveable, unlike None) and the host keeps the live one beside it."""


# ---------------------------------------------------------------------------------------------------------------------
# β schedules: pure functions of the round
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LinearBetaSchedule:
    """β = clip((rampdown_rounds − round) / rampdown_rounds, 0, 1): 1 at round 0, 0 from ``rampdown_rounds`` on."""

    rampdown_rounds: int

    def __post_init__(self) -> None:
        if not isinstance(self.rampdown_rounds, int) or self.rampdown_rounds < 1:
            raise ValueError(
                f"LinearBetaSchedule: rampdown_rounds must be a positive int, got {self.rampdown_rounds!r}"
            )

    def __call__(self, round_num: Tensor | int) -> Tensor:
        r = round_num.to(torch.float32) if isinstance(round_num, Tensor) else torch.tensor(float(round_num))
        return torch.clamp((self.rampdown_rounds - r) / self.rampdown_rounds, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class ExponentialBetaSchedule:
    """β = decay_probability ** round."""

    decay_probability: float

    def __post_init__(self) -> None:
        if not 0.0 < self.decay_probability <= 1.0:
            raise ValueError(
                f"ExponentialBetaSchedule: decay_probability must be in (0, 1], got {self.decay_probability!r}"
            )

    def __call__(self, round_num: Tensor | int) -> Tensor:
        r = round_num.to(torch.float32) if isinstance(round_num, Tensor) else torch.tensor(float(round_num))
        return torch.pow(torch.tensor(self.decay_probability, dtype=torch.float32, device=r.device), r)


# ---------------------------------------------------------------------------------------------------------------------
# Config and state
# ---------------------------------------------------------------------------------------------------------------------


class Config(bc.Config):
    """DAgger hyperparameters: BC's (for the learner and its updates) plus the interaction schedule.

    Defaults are ``imitation``'s (``SimpleDAggerTrainer``): a linear β ramp-down over 15 rounds, rounds
    of at least 500 steps and 3 finished episodes, 4 BC epochs per round.
    """

    n_envs: PositiveInt = 8
    """Parallel environments per seed (``imitation``'s scripts use 8 vectorised envs)."""
    beta_schedule: Literal["linear", "exponential"] = "linear"
    """``linear``: :class:`LinearBetaSchedule` (``rampdown_rounds``);
    ``exponential``: :class:`ExponentialBetaSchedule` (``decay_probability``)."""
    rampdown_rounds: PositiveInt = 15
    """Rounds over which the linear schedule anneals β from 1 to 0 (``imitation``'s default schedule)."""
    decay_probability: float = Field(default=0.5, gt=0.0, le=1.0)
    """Decay factor of the exponential schedule (``imitation`` has no default; 0.5 halves β each round)."""
    rollout_round_min_timesteps: PositiveInt = 500
    """Environment steps a round collects at least (and at least ``batch_size``), over all ``n_envs``."""
    rollout_round_min_episodes: NonNegativeInt = 3
    """Episodes that must end in a round (0: rounds need not hold whole episodes)."""
    n_epochs: PositiveInt = 4
    """BC epochs over the whole aggregate per round (``DAggerTrainer.DEFAULT_N_EPOCHS``): a round takes
    ``n_epochs * size // batch_size`` minibatch steps."""
    n_batches: PositiveInt | None = None
    """BC minibatch steps per round instead of ``n_epochs`` epochs (``bc_train_kwargs``' ``n_batches``)."""

    def schedule(self) -> BetaSchedule:
        """The β schedule this config names."""
        if self.beta_schedule == "linear":
            return LinearBetaSchedule(self.rampdown_rounds)
        return ExponentialBetaSchedule(self.decay_probability)

    @property
    def round_steps(self) -> int:
        """Steps of each env in a round's first chunk: ``max(rollout_round_min_timesteps, batch_size)`` in all."""
        return math.ceil(max(self.rollout_round_min_timesteps, self.batch_size) / self.n_envs)

    def bc_steps(self, sizes: Tensor) -> Tensor:
        """BC minibatch steps of a round on aggregates of ``sizes`` transitions (any shape)."""
        if self.n_batches is not None:
            return torch.full_like(sizes, self.n_batches)
        return self.n_epochs * sizes // self.batch_size


class State(struct.PyTreeNode):
    """One seed's learner, aggregate dataset, environments and key (batched under vmap)."""

    bc: bc.State  # the learner and its optimiser
    data: buffer_lib.ReplayBuffer  # the aggregate: Transitions with expert actions, with a fill count
    timestep: TimeStep | Any  # where the next collect continues (NO_TIMESTEP for a GymEnv: see there)
    key: random.Key
    round: Tensor  # int64 (): rounds completed; β = beta_schedule(round)
    timesteps: Tensor  # int64 (): environment steps collected
    beta_schedule: BetaSchedule = struct.field(static=True)
    n_envs: int = struct.field(static=True)
    batch_size: int = struct.field(static=True)  # BC minibatch size
    round_steps: int = struct.field(static=True)  # steps of each env that :func:`collect` takes


class Rollout(rollout_lib.Rollout):
    """What ``collect`` returns: ``acts`` are the expert's labels (what the aggregate stores).

    ``rews``/``terminated``/``truncated``/``next_obs`` are those of the actions actually executed.
    """

    executed: Tensor  # (n_steps, n_envs, *act_shape): the actions the env received
    expert_driven: Tensor  # (n_steps, n_envs) bool: the executed action was the expert's


def _act_example(action_space: gym.Space[Any]) -> Tensor:
    if isinstance(action_space, gym.spaces.Discrete):
        return torch.zeros((), dtype=torch.int64)
    if isinstance(action_space, gym.spaces.Box):
        return torch.zeros(action_space.shape, dtype=torch.float32)
    raise TypeError(f"dagger: unsupported action space {action_space!r} (expected Discrete or Box)")


def _demos(task: Task) -> Transitions | None:
    """``task.demos`` (``imitation``'s ``expert_trajs``) as transitions; None when there are none."""
    demos = task.demos
    if demos is None or len(demos) == 0:
        return None
    return demos if isinstance(demos, Transitions) else rollout_lib.flatten_trajectories(demos)


def capacity(cfg: Config, total: int, n_demos: int = 0) -> int:
    """Aggregate slots for ``n_demos`` demonstrations and a run of ``total`` env steps (plus the round that
    crosses it). A round that needs more (extra chunks for its episodes) grows it on the host."""
    return max(1, n_demos + total + cfg.round_steps * cfg.n_envs)


def init(cfg: Config, key: random.Key, task: Task, beta_schedule: BetaSchedule | None = None) -> State:
    """A fresh state: BC learner from ``key``, ``task.env`` reset, an empty aggregate sized by :func:`capacity`.

    ``task.total`` is the run's environment steps; ``task.demos`` (optional expert trajectories or
    transitions, ``imitation``'s ``expert_trajs``) start the aggregate. ``beta_schedule`` (any
    ``round -> β`` callable) replaces the one ``cfg`` names. A ``GymEnv`` is not reset here (it cannot
    run inside vmap): the state gets :data:`NO_TIMESTEP` and the host keeps the live timestep.
    """
    task.require("env", "total", who="dagger.init")
    env, total = task.env, task.total
    assert env is not None and total is not None
    if env.n_envs != cfg.n_envs:
        raise ValueError(f"dagger.init: the env has n_envs={env.n_envs} but cfg.n_envs={cfg.n_envs}")
    k_bc, k_reset, k_state = random.split(key, 3)
    if isinstance(env, GymEnv):
        timestep: Any = NO_TIMESTEP
        obs_space = env.observation_space
        obs = torch.from_numpy(np.zeros(obs_space.shape or (), dtype=obs_space.dtype))
    else:
        timestep = env.reset(k_reset)
        obs = timestep.obs[0]
    act = _act_example(env.action_space)
    example = Transitions(obs=obs, acts=act, next_obs=obs, dones=torch.zeros((), dtype=torch.bool))
    demos = _demos(task)
    data = buffer_lib.init(capacity(cfg, total, len(demos) if demos is not None else 0), example)
    if demos is not None:
        data = buffer_lib.add(data, _cast_like(demos, example))
    return State(
        bc=bc.init(cfg, k_bc, Task(env=env)),
        data=data,
        timestep=timestep,
        key=k_state,
        round=torch.zeros((), dtype=torch.int64),
        timesteps=torch.zeros((), dtype=torch.int64),
        beta_schedule=beta_schedule if beta_schedule is not None else cfg.schedule(),
        n_envs=cfg.n_envs,
        batch_size=cfg.batch_size,
        round_steps=cfg.round_steps,
    )


def _cast_like(batch: Transitions, like: Transitions) -> Transitions:
    """``batch`` with ``like``'s dtypes (an expert may return float labels for int64 ones, or float64 obs)."""
    return Transitions(
        obs=batch.obs.to(like.obs.dtype),
        acts=batch.acts.to(like.acts.dtype),
        next_obs=batch.next_obs.to(like.next_obs.dtype),
        dones=batch.dones.to(torch.bool),
    )


def beta(state: State) -> Tensor:
    """β of the current round: the probability that the expert's action is executed at a step."""
    return torch.as_tensor(state.beta_schedule(state.round), dtype=torch.float32, device=state.round.device)


# ---------------------------------------------------------------------------------------------------------------------
# collect / update
# ---------------------------------------------------------------------------------------------------------------------


def collect(state: State, task: Task, key: random.Key | None = None) -> tuple[State, Rollout]:
    """:func:`collect_env`: a round's first ``state.round_steps`` steps of ``task.env``, labelled by ``task.expert``."""
    task.require("env", "expert", who="dagger.collect")
    assert task.env is not None and task.expert is not None
    return collect_env(state, task.env, task.expert, state.round_steps, key)


def collect_env(
    state: State, env: Env, expert: PolicyFn, n_steps: int, key: random.Key | None = None
) -> tuple[State, Rollout]:
    """``n_steps`` steps in each of ``env``'s envs, mixing expert and learner; every step is labelled.

    At each step and in each env, the expert's action is executed with probability β(round) and a
    sample of the learner's (stochastic) policy otherwise; the expert's action at the visited
    observation is the label either way (``imitation``'s ``InteractiveTrajectoryCollector``).
    Continues from ``state.timestep``; :func:`store` (or :func:`update`) adds the rollout to the
    aggregate. Randomness comes from ``key``, or from ``state.key`` (which then advances). Pure for
    torch envs: vmap it over states; :func:`batched_collect` does that with the step optionally compiled.
    """
    _check_collect(state, env, n_steps)
    state, step_keys = collect_keys(state, n_steps, key)
    timestep, p_expert, label_dtype = state.timestep, beta(state), state.data.storage.acts.dtype
    steps = []
    for t in range(n_steps):
        timestep, out = collect_step(state.bc, p_expert, timestep, step_keys[t], env, expert, label_dtype)
        steps.append(out)
    return finish_collect(state, timestep, tree.stack(steps))


def _check_collect(state: State, env: Env, n_steps: int) -> None:
    if state.timestep is None or isinstance(state.timestep, tuple):
        raise ValueError("dagger.collect: the state has no timestep; put env.reset(key) there first (a GymEnv's)")
    if env.n_envs != state.n_envs:
        raise ValueError(f"dagger.collect: the env has n_envs={env.n_envs} but the state was built for {state.n_envs}")
    if n_steps < 1:
        raise ValueError(f"dagger.collect: n_steps must be >= 1, got {n_steps}")


def collect_keys(state: State, n_steps: int, key: random.Key | None = None) -> tuple[State, Tensor]:
    """``(state, keys: (n_steps, 4, 2))``: per step, the mixing, expert, learner and env keys (4 draws in all)."""
    if key is None:
        keys = random.split(state.key)
        state, key = state.replace(key=keys[0]), keys[1]
    return state, torch.stack([random.split(k, n_steps) for k in random.split(key, 4)], dim=1)


def collect_step(
    learner_state: bc.State,
    p_expert: Tensor,
    timestep: TimeStep,
    keys: Tensor,
    env: Env,
    expert: PolicyFn,
    label_dtype: torch.dtype,
) -> tuple[TimeStep, Rollout]:
    """One step of every env: label with the expert, execute the expert's action w.p. ``p_expert`` (β)
    else a sample of the learner's; ``keys: (4, 2)`` (mixing, expert, learner, env).

    Returns the next timestep and the step as a :class:`Rollout` without the time axis. Pure. It takes
    only what a step needs (not the aggregate), so a compiled step guards on little.
    """
    mix_key, expert_key, learner_key, env_key = keys[0], keys[1], keys[2], keys[3]
    obs = timestep.obs
    label = expert(obs, expert_key).to(label_dtype)
    use_expert = random.bernoulli(mix_key, p_expert, (obs.shape[0],))
    learner = bc.policy(learner_state, deterministic=False)  # imitation's robot acts: policy.predict, stochastic
    mask = use_expert.reshape(-1, *([1] * (label.ndim - 1)))
    action = torch.where(mask, label, learner(obs, learner_key).to(label_dtype))
    nxt = env.step(timestep.env_state, action, env_key)
    out = Rollout(
        obs=obs,
        acts=label,
        rews=nxt.reward.to(torch.float32),
        terminated=nxt.terminated,
        truncated=nxt.truncated,
        next_obs=nxt.final_obs,
        executed=action,
        expert_driven=use_expert,
    )
    return nxt, out


def finish_collect(state: State, timestep: TimeStep, rollout: Rollout) -> tuple[State, Rollout]:
    """Continue from ``timestep``, with the ``(n_steps, n_envs, ...)`` ``rollout``'s steps counted."""
    n_steps = rollout.rews.shape[0]
    return state.replace(timestep=timestep, timesteps=state.timesteps + n_steps * state.n_envs), rollout


def store(state: State, rollout: Rollout) -> State:
    """The labelled ``rollout`` (``(n_steps, n_envs, ...)``, step-major) added to the aggregate."""
    new = _cast_like(rollout_lib.flatten_rollout(rollout), state.data.storage)
    return state.replace(data=buffer_lib.add(state.data, new))


@functools.cache  # one compiled step per (env, expert), whatever n_steps
def _batched_step(
    env: Env, expert: PolicyFn, label_dtype: torch.dtype, compile: bool
) -> Callable[..., tuple[TimeStep, Rollout]]:
    vstep = torch.func.vmap(functools.partial(collect_step, env=env, expert=expert, label_dtype=label_dtype))
    if not compile:
        return vstep

    # A function of its own: torch.compile caches per code object, and every bare vmap shares one.
    def batched_collect_step(
        learner: bc.State, p: Tensor, timestep: TimeStep, keys: Tensor
    ) -> tuple[TimeStep, Rollout]:
        return vstep(learner, p, timestep, keys)

    return compile_lib.or_eager(batched_collect_step)


def batched_collect(
    env: Env, expert: PolicyFn, n_steps: int, compile: bool = False
) -> Callable[[State], tuple[State, Rollout]]:
    """:func:`collect_env` over a stack of states (leading seed axis): equal to ``vmap(collect_env)``.

    With ``compile=True`` only the vmapped :func:`collect_step` goes through ``torch.compile``
    (compiling the unrolled loop would take minutes; the step compiles in seconds).
    """
    vkeys = torch.func.vmap(functools.partial(collect_keys, n_steps=n_steps))
    vfinish = torch.func.vmap(finish_collect)
    vbeta = torch.func.vmap(beta)

    def run(states: State) -> tuple[State, Rollout]:
        _check_collect(states, env, n_steps)
        step = _batched_step(env, expert, states.data.storage.acts.dtype, compile)
        states, step_keys = vkeys(states)
        timestep: Any = states.timestep
        p_expert = vbeta(states)
        steps = []
        for t in range(n_steps):
            timestep, out = step(states.bc, p_expert, timestep, step_keys[:, t])
            steps.append(out)
        return vfinish(states, timestep, tree.map(lambda *xs: torch.stack(xs, dim=1), *steps))

    return run


def update(state: State, batch: Rollout) -> tuple[State, Metrics]:
    """``batch`` (what :func:`collect` returned) joins the aggregate, then one BC step (:func:`learn`) on it all."""
    return learn(store(state, batch))


def learn(state: State, key: random.Key | None = None) -> tuple[State, Metrics]:
    """One BC gradient step (:func:`bc.update`) on ``batch_size`` transitions drawn from the aggregate.

    Draws uniformly with replacement from the filled part only. Randomness comes from ``key``, or
    from ``state.key`` (which then advances). Pure. The aggregate must not be empty (check
    ``state.data.size`` on the host): an empty one yields the zero slot.
    """
    if key is None:
        keys = random.split(state.key)
        state, key = state.replace(key=keys[0]), keys[1]
    batch = buffer_lib.sample(state.data, key, state.batch_size)
    learner, metrics = bc.update(state.bc, batch)
    metrics["beta"] = beta(state)
    metrics["data_size"] = state.data.size.to(torch.float32)
    return state.replace(bc=learner), metrics


def next_round(state: State) -> State:
    """Advance the round counter (β moves along its schedule)."""
    return state.replace(round=state.round + 1)


def train_round(
    state: State, env: Env, expert: PolicyFn, n_steps: int, n_updates: int
) -> tuple[State, Rollout, Metrics]:
    """A whole round, pure: :func:`collect_env` ``n_steps`` into the aggregate, ``n_updates`` × :func:`learn`,
    :func:`next_round`. ``n_updates`` must be >= 1 (the metrics are the last update's)."""
    if n_updates < 1:
        raise ValueError(f"dagger.train_round: n_updates must be >= 1, got {n_updates}")
    state, rollout = collect_env(state, env, expert, n_steps)
    state = store(state, rollout)
    metrics: Metrics = {}
    for _ in range(n_updates):
        state, metrics = learn(state)
    return next_round(state), rollout, metrics


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The learner as ``(obs, key) -> actions``; the mode of π by default."""
    return bc.policy(state.bc, deterministic=deterministic)


__all__ = [
    "NO_TIMESTEP",
    "BetaSchedule",
    "Config",
    "ExponentialBetaSchedule",
    "LinearBetaSchedule",
    "Metrics",
    "Rollout",
    "State",
    "batched_collect",
    "beta",
    "capacity",
    "collect",
    "collect_env",
    "collect_keys",
    "collect_step",
    "finish_collect",
    "init",
    "learn",
    "next_round",
    "policy",
    "store",
    "train_round",
    "update",
]
