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
from imitation_fn.envs.host import HostEnvs
from imitation_fn.envs.task import Task
from imitation_fn.policies import sac as sac_policy
from imitation_fn.policies import simple
from imitation_fn.rl import ppo, ppo_batched, sac, sac_batched

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
    ``n_envs`` replaced is the same environment batched differently; a gymnasium env holds its copies, so it gets
    a new vector env of ``n_envs`` (``GymEnv.resized``).
    """
    if env.n_envs == n_envs:
        return env
    if isinstance(env, GymEnv):
        return env.resized(n_envs)
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


def _explorers(frac: float, n: int, device: torch.device) -> Tensor:
    return torch.arange(n, device=device) >= n - round(frac * n)


def pool_begin(env: Env, key: random.Key, explore: Exploration) -> PoolStep:
    """Reset ``env`` and draw the exploration modes (only the last ``round(explore.frac * n_envs)`` explore)."""
    return PoolStep(timestep=env.reset(pool_reset_key(key)), is_random=pool_modes(key, env.n_envs, explore))


def pool_reset_key(key: random.Key) -> random.Key:
    """The key :func:`pool_begin` resets the env with."""
    return random.split(key, 3)[0]


def pool_modes(key: random.Key, n_envs: int, explore: Exploration) -> Tensor:
    """``(n_envs,)`` bool: the sub-environments that start in the exploration's random mode."""
    is_random = simple.exploration_init(random.split(key, 3)[1], n_envs, explore.random_prob).is_random
    return is_random & _explorers(explore.frac, n_envs, is_random.device)


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
    k_act, k_env = random.split(key)
    is_random, action = pool_act(agent, agent_name, carry, k_act, explore, random_fn)
    nxt = env.step(carry.timestep.env_state, action, k_env)
    return pool_next(carry, nxt, action, is_random, explore)


def pool_act(
    agent: Any, agent_name: str, carry: PoolStep, key: random.Key, explore: Exploration, random_fn: PolicyFn
) -> tuple[Tensor, Tensor]:
    """``(is_random, actions)``: the exploration wrapper's modes after this step and the actions it takes. Pure."""
    ex, action = simple.exploration_act(
        simple.ExplorationState(carry.is_random),
        AGENTS[agent_name].policy(agent, deterministic=False),
        random_fn,
        carry.timestep.obs,
        key,
        explore.random_prob,
        explore.switch_prob,
    )
    return ex.is_random, action


def pool_next(
    carry: PoolStep, nxt: TimeStep, action: Tensor, is_random: Tensor, explore: Exploration
) -> tuple[PoolStep, tuple[Tensor, ...]]:
    """The carry after the step to ``nxt`` and its record ``(obs, acts, next_obs, rews, terminated, done)``."""
    record = (carry.timestep.obs, action, nxt.final_obs, nxt.reward, nxt.terminated, nxt.done)
    return PoolStep(
        timestep=nxt, is_random=is_random & _explorers(explore.frac, is_random.shape[0], is_random.device)
    ), record


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
        weight=torch.ones(n, device=ends.device),
    )
    # Episode lengths at terminations, for the host's fixed-horizon check (imitation's _check_fixed_horizon).
    t_idx = torch.arange(n_steps, device=ends.device).expand(n, n_steps)
    prev_end = torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1]], 1)
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
    per-step function (policy, exploration, env step; vmapped over seeds) goes through ``torch.compile``. A host env
    (gymnasium's) gets :func:`host_sample_pool`.
    """
    if isinstance(env, GymEnv):
        return host_sample_pool(agent_name, env, explore)
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


def host_sample_pool(
    agent_name: str, env: GymEnv, explore: Exploration
) -> Callable[[Any, Tensor, int], tuple[Pool, Metrics]]:
    """:func:`batched_sample_pool` on a host env: the agents vmapped, the seeds' copies of ``env`` stepped on the host.

    Seed ``i``'s copies are reset from its key as :func:`pool_begin` resets a torch env, so its pool never
    depends on the other seeds.
    """
    random_fn, host_envs = _random_fn(env), dict[int, HostEnvs]()  # one HostEnvs per number of seeds
    act = torch.func.vmap(lambda a, c, k: pool_act(a, agent_name, c, k, explore, random_fn))
    after = torch.func.vmap(lambda c, nxt, action, is_random: pool_next(c, nxt, action, is_random, explore))

    def run(agents: Any, keys: Tensor, n_steps: int) -> tuple[Pool, Metrics]:
        n_seeds = keys.shape[0]
        if n_seeds not in host_envs:
            host_envs[n_seeds] = HostEnvs(env, n_seeds)
        envs = host_envs[n_seeds]
        timestep = envs.reset(torch.func.vmap(pool_reset_key)(keys))
        modes = torch.func.vmap(lambda k: pool_modes(k, env.n_envs, explore))(keys)
        carry = PoolStep(timestep=timestep.replace(env_state=()), is_random=modes)
        step_keys = torch.func.vmap(lambda k: pool_keys(k, n_steps))(keys)
        records = []
        for t in range(n_steps):
            k_act, _ = torch.func.vmap(random.split)(step_keys[:, t]).unbind(1)
            is_random, action = act(agents, carry, k_act)
            nxt = envs.step(action).replace(env_state=())
            carry, record = after(carry, nxt, action, is_random)
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
    if isinstance(env, GymEnv):
        train_step = host_train_step(agent_name, env, reward)
    elif agent_name != "sac":

        def run_vmapped(agents: Any, reward_params: Any, n_calls: int) -> tuple[Any, Metrics]:
            one = lambda a, p: train_agent(a, agent_name, env, functools.partial(reward, p), n_calls)  # noqa: E731
            return torch.func.vmap(one)(agents, reward_params)

        return run_vmapped
    else:
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


def host_train_step(
    agent_name: str, env: GymEnv, reward: sac.ParamRewardFn
) -> Callable[[Any, Any], tuple[Any, Metrics]]:
    """``step(agents, reward_params) -> (agents, metrics)``: one collect on a host env (the agents vmapped, the
    simulators on the host) and one update, each seed on its own reward."""
    update: Callable[..., tuple[Any, Metrics]]
    if agent_name == "sac":
        collect_sac, update = sac_batched.host_collect(env, reward), sac_batched.batched_update()
        return lambda agents, params: update(*collect_sac(agents, None, params))
    collect_ppo, update = ppo_batched.host_collect(env), ppo_batched.batched_update()
    relabel = torch.func.vmap(lambda a, r, p: ppo.relabel(a, r, functools.partial(reward, p)))

    def step(agents: Any, params: Any) -> tuple[Any, Metrics]:
        agents, rollouts = collect_ppo(agents)
        return update(agents, relabel(agents, rollouts, params))

    return step


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
    "host_sample_pool",
    "host_train_step",
    "init_agent",
    "pool_act",
    "pool_begin",
    "pool_end",
    "pool_keys",
    "pool_modes",
    "pool_next",
    "pool_reset_key",
    "pool_step",
    "relabel_replay",
    "sample_pool",
    "steps_per_call",
    "train_agent",
]
