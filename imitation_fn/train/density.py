"""Density-based reward modelling through the training loop: the density reward fitted, then PPO on it.

    task = make_task(cfg, "seals/CartPole-v0", budget=50_000, n_eval_episodes=10, demos=demos)
    result = loop.train(SPEC, cfg, task, budget=50_000, seeds=range(8))
    result = train_policy(cfg, "seals/CartPole-v0", demos, seeds=range(8), total_timesteps=50_000)  # the same

Every step is one vmapped ``collect`` (PPO's rollout relabelled with the log-density of the
demonstrations) and one batched ``update``; the host checks each rollout (finite rewards, fixed horizon).
Evaluation reports the true return (``returns``) and the return under the density reward
(``imitation_returns``). The agent's PPO config is ``cfg.rl``, so the run's ``config.json`` holds it
and a resume must match it too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Unpack

import torch
from torch import Tensor

from imitation_fn import envs
from imitation_fn.algorithms import density
from imitation_fn.algorithms.density import Config, State
from imitation_fn.core import random, struct, tree
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.core.errors import InputError
from imitation_fn.data import rollout as rollout_lib
from imitation_fn.data.types import Trajectory, TrajectoryWithRew, Transitions
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task
from imitation_fn.rl import ppo, ppo_batched
from imitation_fn.train import loop, warm_start
from imitation_fn.train.driver import export_policies
from imitation_fn.train.rl import policy_for_saving

# --- Evaluation ------------------------------------------------------------------------------------


class EvalStats(struct.PyTreeNode):
    true_returns: Tensor  # (n_envs,) the environment's return of each env's first episode
    imitation_returns: Tensor  # (n_envs,) its return under the density reward
    lengths: Tensor  # (n_envs,) int64


def evaluate(state: State, env: Env, key: random.Key, deterministic: bool = True) -> EvalStats:
    """One episode in each of ``env``'s environments, scored by the true and the density reward. Pure (vmap it)."""
    horizon = env.max_episode_steps
    if horizon is None:
        raise ValueError("density.evaluate: the env has no max_episode_steps")
    batch, _ = rollout_lib.rollout(env, density.policy(state, deterministic), key, horizon)
    steps, _ = density.episode_steps(torch.zeros(env.n_envs, dtype=torch.int64, device=key.device), batch.dones)
    rews = density.reward(state)(
        batch.obs.flatten(0, 1),
        batch.acts.flatten(0, 1),
        batch.next_obs.flatten(0, 1),
        batch.dones.flatten(),
        steps.flatten(),
    ).reshape(batch.rews.shape)
    # The first episode of each env: steps up to and including its first done.
    running = torch.cumsum(batch.dones.to(torch.int64), 0) - batch.dones.to(torch.int64) == 0
    return EvalStats(
        true_returns=torch.where(running, batch.rews, 0.0).sum(0),
        imitation_returns=torch.where(running, rews, 0.0).sum(0),
        lengths=running.sum(0),
    )


def test_policy(
    state: State,
    env: Env,
    key: random.Key,
    n_trajectories: int = 10,
    true_reward: bool = True,
    deterministic: bool = False,
) -> dict[str, float]:
    """``imitation``'s ``test_policy``: ``rollout_stats`` of ``n_trajectories`` episodes of one seed's policy.

    ``true_reward=False`` scores them with the density reward instead of the environment's. Host side.
    """
    trajs = rollout_lib.generate_trajectories(
        env, density.policy(state, deterministic), key, min_episodes=n_trajectories
    )
    trajs = trajs[:n_trajectories]
    if not true_reward:
        reward = density.reward(state)
        with torch.no_grad():
            trajs = [
                TrajectoryWithRew(
                    obs=t.obs,
                    acts=t.acts,
                    terminal=t.terminal,
                    rews=reward(
                        t.obs[:-1], t.acts, t.obs[1:], torch.zeros(len(t), dtype=torch.bool), torch.arange(len(t))
                    ),
                )
                for t in trajs
            ]
    return rollout_lib.rollout_stats(trajs)


# --- The loop's spec -------------------------------------------------------------------------------


def env_steps(states: State) -> int:
    """Environment steps every seed has collected."""
    return int(states.rl.timesteps.min())


def make_step(algo: ModuleType, cfg: BaseConfig, task: Task, data_keys: Tensor, compile: bool) -> loop.Step:
    """``vmap(collect)``, the host's checks of the rollouts, then :func:`density.batched_update`."""
    assert isinstance(cfg, Config)
    assert task.env is not None and task.demos is not None
    demos = task.demos
    horizons = {len(t) for t in demos} if not isinstance(demos, Transitions) else set()
    if isinstance(task.env, GymEnv):  # the policy vmapped, the simulators on the host; then the reward vmapped
        collect_rl, label = ppo_batched.host_collect(task.env), torch.func.vmap(density.label)

        def collect(s: State) -> tuple[State, ppo.Rollout]:
            rl, rollouts = collect_rl(s.rl)
            return label(s.replace(rl=rl), rollouts)

    else:
        collect = torch.func.vmap(lambda s: density.collect(s, task))
    update = density.batched_update(compile)

    def step(states: State, done: int) -> tuple[State, loop.Metrics]:
        start_t = states.ep_t
        states, rollouts = collect(states)
        steps, _ = torch.func.vmap(density.episode_steps)(start_t, rollouts.dones)
        check_rollout(cfg, rollouts, steps, horizons)
        return update(states, rollouts)

    return step


def check_rollout(cfg: Config, rollouts: ppo.Rollout, steps: Tensor, horizons: set[int]) -> None:
    """Host-side value checks of a collected batch: finite rewards, fixed horizon (unless allowed)."""
    if not bool(torch.isfinite(rollouts.rews).all()):
        raise InputError(
            f"density: the {cfg.kernel} kernel gave a -inf reward: a visited point lies outside the support of "
            "every demonstration's kernel. Use the gaussian or exponential kernel or a larger bandwidth."
        )
    if cfg.allow_variable_horizon:
        return
    lengths = set((steps + 1)[rollouts.dones].tolist())
    density.check_fixed_horizon(sorted(lengths | horizons), False, "training episodes and demonstrations")


def evaluate_seeds(algo: ModuleType, task: Task, states: State, keys: Tensor) -> dict[str, Tensor]:
    """Each seed's deterministic policy, one episode per eval env: true and imitation returns ``(n_seeds, n)``."""
    env = task.eval_env
    assert env is not None, "density: the task has no eval_env"
    with torch.no_grad():
        if isinstance(env, GymEnv):  # stepped on the host: one seed after another
            stats = tree.stack([evaluate(s, env, k) for s, k in zip(tree.unstack(states), keys, strict=True)])
        else:
            stats = torch.func.vmap(lambda s, k: evaluate(s, env, k))(states, keys)
    return {"returns": stats.true_returns, "imitation_returns": stats.imitation_returns}


def export(out: Path, states: State, seeds: Sequence[int], task: Task) -> object:
    """Each seed's PPO policy as ``out/policies/seed_<s>/``."""
    assert task.env is not None
    return export_policies(out / "policies", states.rl, seeds, task.env, functools.partial(policy_for_saving, ppo))


SPEC = loop.Spec(
    algo=density,
    progress=env_steps,
    make_step=make_step,
    evaluate=evaluate_seeds,
    export=export,
    bar=("imitation_reward",),
    warm_start=warm_start.inside("rl", warm_start.into_ppo),
)


def make_task(
    cfg: Config, env_id: str, *, budget: int, n_eval_episodes: int, demos: Sequence[Trajectory] | Transitions
) -> Task:
    """The task of a density run: ``cfg.rl.n_envs`` training envs per seed, ``n_eval_episodes`` evaluation envs."""
    env, eval_env = envs.make(env_id, n_envs=cfg.rl.n_envs), envs.make(env_id, n_envs=n_eval_episodes)
    return Task(env=env, eval_env=eval_env, demos=demos, total=budget)


def train_policy(
    cfg: Config,
    env_id: str,
    demonstrations: Sequence[Trajectory] | Transitions,
    *,
    total_timesteps: int,
    n_eval_episodes: int = 10,
    **options: Unpack[loop.RunOptions],
) -> loop.Result:
    """Fit the density reward, then train PPO (``cfg.rl``) on it for every seed (one vmapped run).

    Evaluation (deterministic policy, one episode in each of ``n_eval_episodes`` envs) every ``eval_every``
    env steps and at the end: ``Result.evaluation`` holds ``returns`` (true) and ``imitation_returns``, each
    ``(n_seeds, n_eval_episodes)``. Unless ``cfg.allow_variable_horizon``, training episodes must all have
    the demonstrations' length. The rest: :func:`loop.train`.
    """
    task = make_task(cfg, env_id, budget=total_timesteps, n_eval_episodes=n_eval_episodes, demos=demonstrations)
    return loop.train(
        SPEC,
        cfg,
        task,
        budget=total_timesteps,
        env_id=env_id,
        **options,
    )


__all__ = [
    "SPEC",
    "EvalStats",
    "check_rollout",
    "env_steps",
    "evaluate",
    "evaluate_seeds",
    "export",
    "make_step",
    "make_task",
    "test_policy",
    "train_policy",
]
