"""``imitation``'s ``AgentTrainer`` as pure functions: a PPO or SAC agent that samples trajectories and trains on a
learned reward (preference comparisons' agent).

    agent = init_agent("sac", sac.Config(), key, env, total_timesteps)
    pool_env = env_copies(env, n)                                                              # n streams of env
    pool, metrics = sample_pool(agent, "sac", env, n_steps, key, Exploration(0.5, 0.5, 0.5))  # fragment source
    agent, metrics = train_agent(agent, "sac", env, reward_fn, n_calls)                       # on the learned reward
    agent = relabel_replay(agent, reward_fn)                                                  # SAC: fresh rewards

Sampling runs every sub-environment ``n_steps`` from reset; the last ``round(frac * n_envs)`` act through the
exploration wrapper (:func:`imitation_fn.policies.simple.exploration_act`), the rest with the agent's stochastic
policy; the steps are stacked into a :class:`~imitation_fn.data.fragments.Pool`. Each is pure for torch envs:
``vmap`` it over seeds. :func:`batched_sample_pool` and :func:`batched_train_agent` are the same over a stack of
agents (leading seed axis), their steps optionally compiled. The agent is named (``"ppo"``, ``"sac"``: a key of
:data:`AGENTS`); ``{}`` stands for no agent (fragments from a fixed dataset).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import gymnasium as gym
import torch
from torch import Tensor

from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random, struct
from imitation_fn.data.fragments import Pool
from imitation_fn.envs.base import Env, PolicyFn, RewardFn, TimeStep
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task
from imitation_fn.policies import sac as sac_policy
from imitation_fn.policies import simple
from imitation_fn.rl import ppo, sac, sac_batched

Metrics = dict[str, Tensor]
AGENTS: dict[str, ModuleType] = {"ppo": ppo, "sac": sac}


class Exploration(NamedTuple):
    """``imitation``'s exploration wrapper settings (static: the same for every seed)."""

    frac: float  # share of the sub-environments that explore (the last ones)
    random_prob: float  # probability that a (re-)draw picks the random policy
    switch_prob: float  # probability of re-drawing the acting policy at each step


def init_agent(agent_name: str, cfg: Any, key: random.Key, env: Env, total_timesteps: int) -> Any:
    """A fresh agent on ``env`` (PPO's learning-rate schedule spans ``total_timesteps``)."""
    return AGENTS[agent_name].init(cfg, key, Task(env=env, total=total_timesteps))


@functools.cache  # one object per size: compiled samplers guard on the env
def env_copies(env: Env, n_envs: int) -> Env:
    """``env`` with ``n_envs`` sub-environments (a round samples its trajectories in as many as it needs).

    A torch env sizes its batch from ``n_envs`` when it resets and steps row by row, so a shallow copy with
    ``n_envs`` replaced is the same environment batched differently (a gymnasium env is not: it holds its copies).
    """
    if isinstance(env, GymEnv):
        raise NotImplementedError(f"env_copies: {env} steps on the host; sampling trajectories needs a torch env")
    if env.n_envs == n_envs:
        return env
    out = copy.copy(env)
    out.n_envs = n_envs
    return out


def steps_per_call(agent_name: str, cfg: Any) -> int:
    """Env steps one agent ``collect`` takes (all sub-environments)."""
    return int(cfg.n_envs * (cfg.n_steps if agent_name == "ppo" else cfg.train_freq))


def has_agent(agent: Any) -> bool:
    """False for ``{}``, the empty pytree that stands for no agent (vmap outputs must be tensors or containers)."""
    return not (isinstance(agent, dict) and not agent)


# ---------------------------------------------------------------------------------------------------------------------
# Sampling trajectories
# ---------------------------------------------------------------------------------------------------------------------


class PoolStep(struct.PyTreeNode):
    """What :func:`pool_step` carries from one step to the next: the env's TimeStep and the exploration modes."""

    timestep: TimeStep
    is_random: Tensor  # (n_envs,) bool


def _explorers(frac: float, n: int) -> Tensor:
    return torch.arange(n) >= n - round(frac * n)


def pool_begin(env: Env, key: random.Key, explore: Exploration) -> PoolStep:
    """Reset ``env`` and draw the exploration modes (only the last ``round(explore.frac * n_envs)`` explore)."""
    k_reset, k_mode, _ = random.split(key, 3)
    is_random = simple.exploration_init(k_mode, env.n_envs, explore.random_prob).is_random
    return PoolStep(timestep=env.reset(k_reset), is_random=is_random & _explorers(explore.frac, env.n_envs))


def pool_keys(key: random.Key, n_steps: int) -> Tensor:
    """The per-step keys of :func:`sample_pool`, ``(n_steps, 2)``."""
    return random.split(random.split(key, 3)[2], n_steps)


def pool_step(
    agent: Any,
    agent_name: str,
    env: Env,
    carry: PoolStep,
    key: random.Key,
    explore: Exploration,
    random_fn: PolicyFn,
) -> tuple[PoolStep, tuple[Tensor, ...]]:
    """One step of every sub-env with the agent's stochastic policy through the exploration wrapper. Pure.

    Returns the next carry and ``(obs, acts, next_obs, rews, terminated, done)``; the unit
    :func:`batched_sample_pool` compiles. ``random_fn`` is the exploration's random policy, built by the caller:
    reading the action space inside traced code would break the graph.
    """
    ts = carry.timestep
    k_act, k_env = random.split(key)
    ex, action = simple.exploration_act(
        simple.ExplorationState(carry.is_random),
        AGENTS[agent_name].policy(agent, deterministic=False),
        random_fn,
        ts.obs,
        k_act,
        explore.random_prob,
        explore.switch_prob,
    )
    nxt = env.step(ts.env_state, action, k_env)
    record = (ts.obs, action, nxt.final_obs, nxt.reward, nxt.terminated, nxt.done)
    return PoolStep(timestep=nxt, is_random=ex.is_random & _explorers(explore.frac, env.n_envs)), record


def pool_end(
    env: Env, obs: Tensor, acts: Tensor, next_obs: Tensor, rews: Tensor, terminated: Tensor, ends: Tensor
) -> tuple[Pool, Metrics]:
    """The :class:`Pool` of the stacked step records (each ``(n_envs, n_steps, ...)``), and its metrics."""
    n, n_steps = ends.shape
    acts = acts.to(torch.int64 if isinstance(env.action_space, gym.spaces.Discrete) else torch.float32)
    pool = Pool(
        obs=obs.to(torch.float32),
        acts=acts,
        next_obs=next_obs.to(torch.float32),
        rews=rews.to(torch.float32),
        terminal=terminated,
        ends=ends,
        valid=torch.ones_like(ends),
        weight=torch.ones(n),
    )
    # Episode lengths at terminations, for the host's fixed-horizon check (imitation's _check_fixed_horizon).
    t_idx = torch.arange(n_steps).expand(n, n_steps)
    prev_end = torch.cat([torch.zeros(n, 1, dtype=torch.bool), ends[:, :-1]], 1)
    start = torch.cummax(torch.where(prev_end, t_idx, torch.zeros_like(t_idx)), 1).values
    length = (t_idx - start + 1).to(torch.float32)
    inf = torch.full_like(length, math.inf)
    ret = rews.sum(1)
    metrics = {
        "terminal_len_min": torch.where(terminated, length, inf).amin(),
        "terminal_len_max": torch.where(terminated, length, -inf).amax(),
        "sample_return_mean": ret.mean(),
    }
    return pool, metrics


def sample_pool(
    agent: Any, agent_name: str, env: Env, n_steps: int, key: random.Key, explore: Exploration
) -> tuple[Pool, Metrics]:
    """Run the agent in ``env`` (``env.n_envs`` streams of ``n_steps`` from reset, some exploring). Pure."""
    carry, keys, records = pool_begin(env, key, explore), pool_keys(key, n_steps), []
    random_fn = simple.random_policy(env.action_space)
    for t in range(n_steps):
        carry, record = pool_step(agent, agent_name, env, carry, keys[t], explore, random_fn)
        records.append(record)
    return pool_end(env, *(torch.stack(xs, 1) for xs in zip(*records, strict=True)))


@functools.cache
def _random_fn(env: Env) -> PolicyFn:
    # One function object per env: the compiled step guards on it, so a new one each run would recompile.
    return simple.random_policy(env.action_space)


# The vmapped step of a sweep's sampler (its own function: torch.compile caches compiled code per code object).
def _batched_pool_step(
    agent_name: str,
    env: Env,
    explore: Exploration,
    random_fn: PolicyFn,
    agents: Any,
    carry: PoolStep,
    keys: Tensor,
) -> tuple[PoolStep, tuple[Tensor, ...]]:
    return torch.func.vmap(lambda a, c, k: pool_step(a, agent_name, env, c, k, explore, random_fn))(agents, carry, keys)


def _acting(agent: Any) -> Any:
    """The agent without what acting never reads (replay buffer, critics, optimisers): fewer compiled-call guards."""
    if isinstance(agent, sac.State):
        return agent.replace(buffer=(), critic=(), target_critic=(), actor_opt=(), critic_opt=(), alpha_opt=())
    return agent


def batched_sample_pool(
    agent_name: str, env: Env, explore: Exploration, compile: bool = False
) -> Callable[[Any, Tensor, int], tuple[Pool, Metrics]]:
    """:func:`sample_pool` over a stack of agents: ``run(agents, keys, n_steps) -> (pools, metrics)``, stacked.

    Equal to ``vmap(lambda a, k: sample_pool(a, agent_name, env, n_steps, k, explore))``. With ``compile=True`` the
    per-step function (policy, exploration, env step; vmapped over seeds) goes through ``torch.compile``.
    """
    fn = compile_lib.compiled(_batched_pool_step) if compile else _batched_pool_step
    step = functools.partial(fn, agent_name, env, explore, _random_fn(env))

    def run(agents: Any, keys: Tensor, n_steps: int) -> tuple[Pool, Metrics]:
        carry = torch.func.vmap(lambda k: pool_begin(env, k, explore))(keys)
        step_keys = torch.func.vmap(lambda k: pool_keys(k, n_steps))(keys)
        acting = compile_lib.standard_layout(_acting(agents)) if compile else agents
        records = []
        for t in range(n_steps):
            # Every call's inputs with the same strides, whether eager (the first) or compiled code made them.
            carry, key_t = (
                compile_lib.standard_layout((carry, step_keys[:, t])) if compile else (carry, step_keys[:, t])
            )
            carry, record = step(acting, carry, key_t)
            records.append(record)
        stacked = (torch.stack(xs, 2) for xs in zip(*records, strict=True))  # (n_seeds, n_envs, n_steps, ...)
        return torch.func.vmap(functools.partial(pool_end, env))(*stacked)

    return run


# ---------------------------------------------------------------------------------------------------------------------
# Training on the learned reward
# ---------------------------------------------------------------------------------------------------------------------


def train_agent(agent: Any, agent_name: str, env: Env, reward_fn: RewardFn, n_calls: int) -> tuple[Any, Metrics]:
    """``n_calls`` agent ``collect`` + ``update`` steps on ``reward_fn``; metrics ``agent/…`` averaged. Pure."""
    if n_calls == 0 or not has_agent(agent):
        return agent, {}
    algo, task = AGENTS[agent_name], Task(env=env, reward_fn=reward_fn)
    history = []
    for _ in range(n_calls):
        agent, batch = algo.collect(agent, task)
        agent, metrics = algo.update(agent, batch)
        history.append(metrics)
    out = {f"agent/{k}": torch.stack([m[k].to(torch.float32) for m in history]).mean() for k in history[0]}
    return agent, out


def batched_train_agent(
    agent_name: str, env: Env, reward: sac.ParamRewardFn, compile: bool = False
) -> Callable[[Any, Any, int], tuple[Any, Metrics]]:
    """:func:`train_agent` over a stack of agents: ``run(agents, reward_params, n_calls) -> (agents, metrics)``.

    Equal to ``vmap(lambda a, p: train_agent(a, agent_name, env, partial(reward, p), n_calls))``. For SAC it runs
    ``sac_batched.batched_train_step`` (``compile=True``: collect and update as one compiled function, each seed's
    ``reward_params`` passed in as tensors, so one compilation serves every retrained reward); PPO's sweep path
    takes a fixed reward, so PPO runs the vmapped eager loop. Build it once per run.
    """
    if agent_name != "sac":

        def run_vmapped(agents: Any, reward_params: Any, n_calls: int) -> tuple[Any, Metrics]:
            one = lambda a, p: train_agent(a, agent_name, env, functools.partial(reward, p), n_calls)  # noqa: E731
            return torch.func.vmap(one)(agents, reward_params)

        return run_vmapped
    train_step = sac_batched.batched_train_step(env, compile, reward)

    def run(agents: Any, reward_params: Any, n_calls: int) -> tuple[Any, Metrics]:
        if n_calls == 0:
            return agents, {}
        history = []
        for _ in range(n_calls):
            agents, metrics = train_step(agents, reward_params)
            history.append(metrics)
        return agents, {
            f"agent/{k}": torch.stack([m[k].to(torch.float32) for m in history]).mean(0) for k in history[0]
        }

    return run


def relabel_replay(agent: sac.State, reward_fn: RewardFn) -> sac.State:
    """SAC: recompute every stored reward with ``reward_fn`` (slots past ``size`` are never read). Pure."""
    items = agent.buffer.storage
    acts = sac_policy.rescale(items.acts, agent.action_low, agent.action_high)
    rews = reward_fn(items.obs, acts, items.next_obs, items.dones > 0.5)
    return agent.replace(buffer=agent.buffer.replace(storage=items.replace(rews=rews)))


__all__ = [
    "AGENTS",
    "Exploration",
    "PoolStep",
    "batched_sample_pool",
    "batched_train_agent",
    "env_copies",
    "has_agent",
    "init_agent",
    "pool_begin",
    "pool_end",
    "pool_keys",
    "pool_step",
    "relabel_replay",
    "sample_pool",
    "steps_per_call",
    "train_agent",
]
