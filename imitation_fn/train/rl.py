"""RL (PPO, SAC) through :mod:`imitation_fn.train.loop`: N seeds at once on a torch environment.

    result = train_rl(ppo, ppo.Config(), "CartPole-v1", seeds=range(8), total_timesteps=100_000)

Every iteration is one vmapped ``collect`` and one vmapped ``update`` over the stacked seeds
(:func:`ppo_batched.batched_collect` / :func:`ppo_batched.batched_update` and SAC's, whose pieces go through
``torch.compile`` when asked); each seed's environments live in its own state, so seed ``i`` trains
exactly as it would alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Unpack

from imitation_fn import envs
from imitation_fn.core.config import Config
from imitation_fn.envs.base import Env
from imitation_fn.envs.task import Task
from imitation_fn.rewards import RewardFn
from imitation_fn.rl import ppo, ppo_batched, sac, sac_batched
from imitation_fn.train import loop, warm_start
from imitation_fn.train.driver import export_policies


def env_steps(states: Any) -> int:
    """Environment steps every seed has collected (equal across seeds: every seed steps the same env sizes)."""
    return int(states.timesteps.min())


def ppo_step(algo: ModuleType, cfg: Config, task: Task, data_keys: Any, compile: bool) -> loop.Step:
    """PPO's rollout and update over stacked seeds, each piece compiled when asked."""
    assert task.env is not None
    collect, update = (
        ppo_batched.batched_collect(task.env, compile, task.reward_fn),
        ppo_batched.batched_update(compile),
    )

    def step(states: Any, done: int) -> tuple[Any, loop.Metrics]:
        return update(*collect(states))

    return step


def sac_step(algo: ModuleType, cfg: Config, task: Task, data_keys: Any, compile: bool) -> loop.Step:
    """SAC's collection and update over stacked seeds, each piece compiled when asked."""
    assert task.env is not None
    reward_fn = task.reward_fn
    collect = sac_batched.batched_collect(task.env, compile, None if reward_fn is None else lambda _, *x: reward_fn(*x))
    update = sac_batched.batched_update(compile)

    def step(states: Any, done: int) -> tuple[Any, loop.Metrics]:
        states, batch = collect(states)
        # Before learning_starts (rl-zoo: 10,000 steps) the update would compute gradient steps only to mask them.
        return update(states, batch) if sac_batched.learning(states) else sac_batched.store_only(states, batch)

    return step


def export_rl_policies(out: Path, states: Any, seeds: Sequence[int], task: Task) -> object:
    assert task.env is not None
    name = "sac" if isinstance(states, sac.State) else "ppo"
    return export_policies(out / "policies", states, seeds, task.env, functools.partial(policy_for_saving, name))


PPO_SPEC = loop.Spec(
    algo=ppo, progress=env_steps, make_step=ppo_step, export=export_rl_policies, warm_start=warm_start.into_ppo
)
# One SAC iteration is train_freq steps of every env: metrics every 1,000 env steps, not every iteration.
SAC_SPEC = loop.Spec(
    algo=sac,
    progress=env_steps,
    make_step=sac_step,
    export=export_rl_policies,
    log_every=1000,
    warm_start=warm_start.into_sac,
)
SPECS = {"ppo": PPO_SPEC, "sac": SAC_SPEC}


def make_task(
    cfg: Config, env_id: str, *, budget: int, n_eval_episodes: int, reward_fn: RewardFn | None = None
) -> Task:
    """The task of an RL run: ``cfg.n_envs`` training envs per seed, ``n_eval_episodes`` evaluation envs."""
    env = envs.make(env_id, n_envs=int(cfg.n_envs))  # type: ignore[attr-defined]
    eval_env = envs.make(env_id, n_envs=n_eval_episodes)
    return Task(env=env, eval_env=eval_env, reward_fn=reward_fn, total=budget)


def train_rl(
    algo: ModuleType,
    cfg: Config,
    env_id: str,
    *,
    total_timesteps: int,
    n_eval_episodes: int = 10,
    reward_fn: RewardFn | None = None,
    **options: Unpack[loop.RunOptions],
) -> loop.Result:
    """Train ``algo`` (:mod:`ppo` or :mod:`sac`) on ``env_id`` for every seed up to ``total_timesteps`` env steps.

    ``eval_every`` counts environment steps; evaluation always runs at the end (``n_eval_episodes``
    episodes per seed, deterministic policy). ``reward_fn`` replaces the environment's reward in
    training (a learned reward, e.g. ``rewards.load_reward``); evaluation still reports the
    environment's return. The rest: :func:`loop.train`. ``Result.steps`` is each seed's env steps.
    """
    spec = SPECS[algo.__name__.rsplit(".", 1)[-1]]
    task = make_task(cfg, env_id, budget=total_timesteps, n_eval_episodes=n_eval_episodes, reward_fn=reward_fn)
    return loop.train(
        spec,
        cfg,
        task,
        budget=total_timesteps,
        env_id=env_id,
        **options,
    )


def policy_for_saving(algo: ModuleType | str, state: Any) -> tuple[str, Any, dict[str, Any], Any]:
    """``(kind, params, config, obs_norm)`` of one seed's acting policy, for :func:`policies.save_policy`."""
    name = algo if isinstance(algo, str) else algo.__name__.rsplit(".", 1)[-1]
    if name == "ppo":
        return (
            "actor_critic",
            state.params,
            {"activation": state.activation},
            (state.obs_norm if state.normalize_obs else None),
        )
    if name == "sac":
        return "sac_actor", state.actor, {"activation": state.activation}, None
    raise ValueError(f"no policy export for algorithm {name!r}")


def save_policies(algo: ModuleType, result: loop.Result, env: Env, out: str | Path) -> list[Path]:
    """Save every seed's policy as ``out/seed_<s>/`` (safetensors + JSON); returns the directories."""
    return export_policies(Path(out), result.states, result.seeds, env, functools.partial(policy_for_saving, algo))


__all__ = ["PPO_SPEC", "SAC_SPEC", "SPECS", "env_steps", "make_task", "policy_for_saving", "save_policies", "train_rl"]
