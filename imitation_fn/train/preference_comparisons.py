"""Preference comparisons through :mod:`imitation_fn.train.loop`: every round of N seeds as one vmapped step.

    result = train(cfg, "Pendulum-v1", seeds=range(8))               # synthetic labels, agent on a torch env
    result = train(cfg, "Pendulum-v1", gatherer=my_human_gatherer)     # labels from a front end (host-side)
    result = train(cfg, "seals/CartPole-v0", trajectories=demos)       # fragments from a fixed dataset, no agent
    task = make_task(cfg, "Pendulum-v1", budget=cfg.num_iterations + 1, n_eval_episodes=10)
    result = loop.train(SPEC, cfg, task, budget=cfg.num_iterations + 1, seeds=range(8))      # the same as train

Progress counts rounds (``num_iterations + 1`` in a run; ``eval_every`` counts rounds too): the rounds'
sizes differ (:func:`preference_comparisons.plan`), so the step looks its round up by the rounds done.
With synthetic labels a round's reward part (sample trajectories, fragment, label, push, train the
reward) is one ``vmap`` of ``collect_round`` and ``learn_reward``; a :data:`PreferenceGatherer` (a
human front end) splits it: vmapped ``fragments``, then the gatherer on each seed's fragments on the
host, then vmapped ``learn_reward``. The agent then trains on the new reward for all seeds at once
(:func:`agent_trainer.batched_train_agent`, SAC's steps optionally compiled). Host-side here: the
fragment-supply warnings, the fixed-horizon checks, and the exported reward, policy and dataset.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Unpack

import torch
from torch import Tensor

from imitation_fn import envs, rewards
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import tree
from imitation_fn.core.config import Config
from imitation_fn.data import preferences
from imitation_fn.data.preferences import Fragments
from imitation_fn.data.types import TrajectoryWithRew, Transitions
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task
from imitation_fn.policies.io import save_policy
from imitation_fn.rewards import preference_model
from imitation_fn.rl import agent_trainer
from imitation_fn.train import loop, warm_start
from imitation_fn.train.rl import policy_for_saving

ALGORITHM = "preference_comparisons"


PreferenceGatherer = Callable[[Fragments], Tensor]
"""What a human front end implements: label pairs of fragments (host-side, one seed at a time).

It gets ``Fragments`` with leaves ``(pairs, 2, L, ...)`` (obs, acts, next_obs, dones, the true rews when
known) and returns ``(pairs,)`` float probabilities that the first fragment is preferred (0, 1, 0.5 a tie).
"""


def check_horizon(metrics: dict[str, Tensor], allow_variable_horizon: bool) -> None:
    """``imitation``'s fixed-horizon check on a round's sampled episodes (their lengths at termination)."""
    lo, hi = metrics.get("terminal_len_min"), metrics.get("terminal_len_max")
    if allow_variable_horizon or lo is None or hi is None:
        return
    lo_v, hi_v = float(lo.min()), float(hi.max())
    if lo_v != float("inf") and lo_v != hi_v:
        raise ValueError(
            f"Episodes of different length detected: terminal episodes of {int(lo_v)} to {int(hi_v)} steps. "
            "Variable horizon environments are discouraged -- termination conditions leak information about "
            "reward. See https://imitation.readthedocs.io/en/latest/guide/variable_horizon.html for more "
            "information. If you are SURE you want to run imitation on a variable horizon task, then please "
            "pass in the flag: `allow_variable_horizon=True`."
        )


def _check_dataset(trajectories: Sequence[TrajectoryWithRew], cfg: pc.Config) -> None:
    horizons = {len(t) for t in trajectories if t.terminal}
    if len(horizons) > 1 and not cfg.allow_variable_horizon:
        check_horizon(
            {
                "terminal_len_min": torch.tensor(float(min(horizons))),
                "terminal_len_max": torch.tensor(float(max(horizons))),
            },
            False,
        )


@functools.cache  # one env per id and size: compiled steps guard on it, so runs in a process share them
def _env(env_id: str, n_envs: int) -> Env:
    return envs.make(env_id, n_envs=n_envs)


def make_task(
    cfg: pc.Config,
    env_id: str,
    *,
    budget: int,
    n_eval_episodes: int,
    demos: Sequence[TrajectoryWithRew] | None = None,
) -> Task:
    """The task of a run: the agent's env (``n_envs`` of the agent's config) and ``n_eval_episodes`` evaluation
    envs; with ``demos`` (trajectories with rewards), that fixed dataset and the env's spaces (no agent, no
    evaluation). ``budget``: the run's rounds, ``cfg.num_iterations + 1``."""
    if demos is not None:
        trajectories = list(demos)
        _check_dataset(trajectories, cfg)
        probe = _env(env_id, 1)
        return Task(demos=trajectories, spaces=(probe.observation_space, probe.action_space), total=budget)
    env = _env(env_id, int(cfg.agent_cfg().n_envs))
    return Task(env=env, total=budget, eval_env=_env(env_id, n_eval_episodes))


def rounds_done(states: Any) -> int:
    """Rounds every seed has completed (the loop's progress; all seeds run the same rounds)."""
    return int(states.round.min())


def _per_seed(fn: Callable[..., Any], n_seeds: int) -> Callable[..., Any]:
    """``vmap(fn)``; for one seed the same pure function unbatched (vmap over one only adds overhead)."""
    if n_seeds > 1:
        return torch.func.vmap(fn)
    return lambda *args: tree.stack([fn(*tree.index(args, 0))])


def make_step(
    algo: Any, cfg: Config, task: Task, data_keys: Tensor, compile: bool, gatherer: PreferenceGatherer | None = None
) -> loop.Step:
    """One round of stacked seeds: the reward part per seed (see the module docstring), then the agent batched.

    ``compile``: SAC's agent steps and, with synthetic labels, the trajectory sampling go through
    ``torch.compile``; the sampler then samples the same number of streams every round (a new size
    recompiles). Compiling takes seconds with torch's on-disk caches warm, a few minutes cold.
    """
    assert isinstance(cfg, pc.Config)
    demos = task.demos
    if isinstance(demos, Transitions):
        raise ValueError("preference comparisons cuts fragments from trajectories (with rewards), not Transitions")
    demo_lengths = None if demos is None else [len(t) for t in demos]
    rounds, n_seeds = pc.task_plan(cfg, task), int(data_keys.shape[0])
    env = task.env if task.demos is None else None
    train_agent: Callable[[Any, Any, int], tuple[Any, dict[str, Tensor]]] | None = None
    samplers: dict[int, Callable[[Any, Tensor, int], tuple[pc.Pool, dict[str, Tensor]]]] = {}  # by pool size
    if env is not None:
        net = preference_model.make_net(cfg, task.observation_space, task.action_space)
        reward = functools.partial(preference_model.agent_reward, net, cfg.normalize_reward)
        train_agent = agent_trainer.batched_train_agent(cfg.agent, env, reward, compile)
        explore = pc.exploration(cfg)
        if isinstance(env, GymEnv):  # the agents vmapped, the simulators on the host
            for n in {r.pool_envs for r in rounds}:
                samplers[n] = agent_trainer.batched_sample_pool(cfg.agent, agent_trainer.env_copies(env, n), explore)
        elif compile and gatherer is None:
            n_pool = max(r.pool_envs for r in rounds)
            rounds = [dataclasses.replace(r, pool_envs=n_pool) for r in rounds]
            pool_env = agent_trainer.env_copies(env, n_pool)
            samplers[n_pool] = agent_trainer.batched_sample_pool(cfg.agent, pool_env, explore, compile=True)

    def sample(states: Any, rnd: pc.Round) -> tuple[Any, pc.Pool, Tensor, dict[str, Tensor]]:
        """``pc.fragments``' trajectory sample for stacked seeds: ``(states, pools, fragment keys, metrics)``."""
        states, k_pool, k_frag = torch.func.vmap(pc.round_keys)(states)
        pools, m = samplers[rnd.pool_envs](states.agent, k_pool, rnd.pool_steps)
        states = states.replace(sample_steps=states.sample_steps + rnd.pool_envs * rnd.pool_steps)
        return states, pools, k_frag, m

    def reward_round(states: Any, rnd: pc.Round) -> tuple[Any, dict[str, Tensor]]:
        if samplers and gatherer is None:
            states, pools, k_frag, m = sample(states, rnd)

            def from_pool(s: Any, pool: pc.Pool, k: Tensor, m: dict[str, Tensor]) -> tuple[Any, dict[str, Tensor]]:
                frags, m_cut = pc.cut(s, pool, rnd, k)
                s, prefs, m_label = pc.label(s, frags)
                return pc.learn_reward(s, pc.Batch(frags, prefs, {**m, **m_cut, **m_label}, rnd))

            return _per_seed(from_pool, n_seeds)(states, pools, k_frag, m)
        if gatherer is None:
            return _per_seed(lambda s: pc.learn_reward(*pc.collect_round(s, task, rnd)), n_seeds)(states)
        if samplers:  # a human gatherer on a host env
            states, pools, k_frag, m_pool = sample(states, rnd)
            frags, m_cut = torch.func.vmap(lambda s, p, k: pc.cut(s, p, rnd, k))(states, pools, k_frag)
            m = {**m_pool, **m_cut}
        else:
            states, frags, m = torch.func.vmap(lambda s: pc.fragments(s, task, rnd))(states)
        prefs = torch.stack(
            [torch.as_tensor(gatherer(tree.index(frags, i)), dtype=torch.float32) for i in range(n_seeds)]
        )
        return torch.func.vmap(pc.learn_reward)(states, pc.Batch(frags, prefs, m, rnd))

    def step(states: Any, done: int) -> tuple[Any, dict[str, Tensor]]:
        rnd = rounds[done]
        if rnd.num_pairs > 0:
            lengths = demo_lengths if demo_lengths is not None else [rnd.pool_steps] * rnd.pool_envs
            pc.check_fragment_supply(lengths, cfg.fragment_length, rnd.num_pairs, cfg.warning_threshold)
        states, metrics = reward_round(states, rnd)
        if train_agent is not None:
            agents, m_agent = train_agent(states.agent, (states.reward_params, states.reward_norm), rnd.agent_calls)
            states, metrics = states.replace(agent=agents), {**metrics, **m_agent}
        check_horizon(metrics, cfg.allow_variable_horizon)
        return states, metrics

    return step


def export_artifacts(out: Path, states: Any, seeds: Sequence[int], task: Task, env_id: str | None = None) -> list[Path]:
    """Per seed: ``out/seed_<s>/{reward/, policy/, preferences.safetensors}``; returns the seed directories.

    ``env_id``, when given, goes into the reward's metadata (provenance)."""
    paths = []
    spaces = (task.observation_space, task.action_space)
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        d = Path(out) / f"seed_{seed}"
        metadata = {"algorithm": ALGORITHM, **({"env": env_id} if env_id else {}), "seed": seed}
        rewards.save(d / "reward", state.net, state.reward_params, state.reward_norm, metadata=metadata)
        preferences.save(d / "preferences.safetensors", state.dataset)
        if agent_trainer.has_agent(state.agent):
            kind, params, config, obs_norm = policy_for_saving(state.cfg.agent, state.agent)
            save_policy(d / "policy", kind, params, spaces, config, obs_norm)  # type: ignore[arg-type]
        paths.append(d)
    return paths


def spec(*, gatherer: PreferenceGatherer | None = None, env_id: str | None = None, evaluate: bool = True) -> loop.Spec:
    """The loop spec; ``gatherer`` labels instead of the synthetic gatherer, ``env_id`` goes into the exported
    rewards' metadata, ``evaluate=False`` for runs without an agent (a fixed dataset)."""
    return loop.Spec(
        algo=pc,
        progress=rounds_done,
        make_step=functools.partial(make_step, gatherer=gatherer),
        evaluate=loop.policy_returns if evaluate else None,
        export=functools.partial(export_artifacts, env_id=env_id),
        finished=lambda states: rounds_done(states) >= states.cfg.num_iterations + 1,
        unit="rounds",
        bar=("reward/accuracy",),
        warm_start=warm_start.inside("agent", warm_start.into_agent),
    )


SPEC = spec()


def train(
    cfg: pc.Config,
    env_id: str,
    *,
    trajectories: Sequence[TrajectoryWithRew] | None = None,
    gatherer: PreferenceGatherer | None = None,
    n_eval_episodes: int = 10,
    **options: Unpack[loop.RunOptions],
) -> loop.Result:
    """Every round of preference comparisons for every seed: :func:`make_task`, then :func:`loop.train`.

    ``eval_every`` counts rounds (evaluation always runs at the end when there is an agent: ``evaluation``
    holds ``returns``, ``(n_seeds, n_eval_episodes)``). ``log_dir``, ``checkpoint_every``, ``log_formats``,
    ``resume``, ``callback(round, states, metrics, evaluation or None)`` (each round's metrics, e.g.
    ``reward/accuracy``): see :func:`loop.train`. ``compile``: see :func:`make_step`.
    """
    budget = cfg.num_iterations + 1
    task = make_task(cfg, env_id, budget=budget, n_eval_episodes=n_eval_episodes, demos=trajectories)
    return loop.train(
        spec(gatherer=gatherer, env_id=env_id, evaluate=trajectories is None),
        cfg,
        task,
        budget=budget,
        env_id=env_id,
        **options,
    )


def save_artifacts(result: loop.Result, env_id: str, out: str | Path) -> list[Path]:
    """:func:`export_artifacts` of a result, on ``env_id``'s spaces."""
    probe = _env(env_id, 1)
    task = Task(spaces=(probe.observation_space, probe.action_space))
    return export_artifacts(Path(out), result.states, result.seeds, task, env_id)


__all__ = [
    "ALGORITHM",
    "SPEC",
    "PreferenceGatherer",
    "check_horizon",
    "export_artifacts",
    "make_step",
    "make_task",
    "rounds_done",
    "save_artifacts",
    "spec",
    "train",
]
