"""The RL driver: trains a ``(init, collect, update)`` algorithm (PPO, SAC) for N seeds at once.

    result = train_rl(ppo, ppo.Config(), "CartPole-v1", seeds=range(8), total_timesteps=100_000)

On a torch environment every step of the loop is one vmapped ``collect`` and one vmapped ``update``
over the stacked seeds; each seed's environments live in its own state, so seed ``i`` trains exactly
as it would alone. A gymnasium environment (``GymEnv``) cannot be vmapped: each seed then gets its
own ``GymEnv`` and the seeds run one after another. Evaluation, JSONL metrics, checkpoints, resume
and the progress bar work as in :mod:`imitation_fn.train.driver`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from imitation_fn import envs
from imitation_fn.core import tree
from imitation_fn.core.config import Config
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.rewards import RewardFn
from imitation_fn.train.driver import TrainResult, check_seeds, evaluate_at, export_policies, seed_keys
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS, crossed, open_run

Step = Callable[[Any], tuple[Any, dict[str, Tensor]]]


def make_init(algo: ModuleType, cfg: Config, env: Env, total_timesteps: int) -> Callable[[Tensor], Any]:
    """``key -> State`` for one seed (vmap it over keys)."""
    kwargs = (
        {"total_timesteps": total_timesteps} if "total_timesteps" in inspect.signature(algo.init).parameters else {}
    )
    return functools.partial(algo.init, cfg, env=env, **kwargs)


@functools.cache
def batched_train_step(algo: ModuleType, env: Env, compile: bool, reward_fn: RewardFn | None = None) -> Step:
    """collect + update for stacked seeds: vmapped, and compiled when asked (the pieces the algorithm names).

    ``reward_fn`` (e.g. ``rewards.load_reward(...)``) replaces the environment's rewards in training.
    """
    collect: Callable[[Any], tuple[Any, Any]]
    if hasattr(algo, "batched_collect"):  # the algorithm knows how to compile its rollout
        collect = algo.batched_collect(env, compile, reward_fn)
    else:
        collect = torch.func.vmap(lambda s: algo.collect(s, env, reward_fn=reward_fn))
    if hasattr(algo, "batched_update"):  # the algorithm knows which piece is worth compiling
        update = algo.batched_update(compile)
    else:
        update = torch.func.vmap(algo.update)
        update = torch.compile(update) if compile else update

    def step(states: Any) -> tuple[Any, dict[str, Tensor]]:
        states, batch = collect(states)
        return update(states, batch)

    return step


def train_rl(
    algo: ModuleType,
    cfg: Config,
    env_id: str,
    *,
    seeds: Sequence[int] = (0,),
    total_timesteps: int,
    eval_every: int | None = None,
    n_eval_episodes: int = 10,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    compile: bool = False,
    progress: bool = True,
    reward_fn: RewardFn | None = None,
) -> TrainResult:
    """Train ``algo`` on ``env_id`` for every seed until each has collected ``total_timesteps`` env steps.

    ``eval_every`` counts environment steps; evaluation always runs at the end (``n_eval_episodes``
    episodes per seed, deterministic policy). ``log_dir``, ``checkpoint_every`` (seconds) and ``resume``:
    see :mod:`imitation_fn.train.run`. ``TrainResult.steps`` is the number
    of environment steps each seed took. ``reward_fn`` replaces the environment's reward in training
    (a learned reward, e.g. ``rewards.load_reward``); evaluation still reports the environment's return.
    """
    seeds = check_seeds(seeds, "train_rl")
    n_envs = int(cfg.n_envs)  # type: ignore[attr-defined]
    env = envs.make(env_id, n_envs=n_envs)
    eval_env = envs.make(env_id, n_envs=n_eval_episodes)
    if isinstance(env, GymEnv) or isinstance(eval_env, GymEnv):
        raise NotImplementedError(
            f"train_rl: {env_id} has no torch version; vmapped seeds need one. Use the algorithm's collect/update "
            "directly on a GymEnv, one seed at a time."
        )
    init_keys, _, eval_keys = seed_keys(seeds)
    states = torch.func.vmap(make_init(algo, cfg, env, total_timesteps))(init_keys)
    step = batched_train_step(algo, env, compile, reward_fn)
    name = algo.__name__.rsplit(".", 1)[-1]
    run, states, _ = open_run(
        log_dir,
        resume,
        states,
        cfg,
        seeds,
        algorithm=name,
        env_id=env_id,
        budget=total_timesteps,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
    )
    run.export = lambda out, states: export_policies(
        out / "policies", states, seeds, eval_env, functools.partial(policy_for_saving, algo)
    )

    def evaluate(states: Any, t: int) -> Tensor:
        returns = evaluate_at(algo, eval_env, states, eval_keys, t)
        run.write_eval(t, {"return_mean": returns.mean(-1), "returns": returns})
        bar.advance(t, {"return": returns})
        return returns

    def timesteps(states: Any) -> int:
        return int(states.timesteps.min())  # equal across seeds: every seed steps the same env sizes

    eval_returns: Tensor | None = None
    done = timesteps(states)
    with ProgressBar(total_timesteps, f"{name} on {env_id} × {len(seeds)} seeds", enabled=progress) as bar:
        bar.advance(done)
        if run.pending_eval:
            eval_returns = evaluate(states, done)
        while done < total_timesteps:
            before = done
            states, metrics = step(tree.contiguous(states))  # see tree.contiguous: exact resumes
            done = timesteps(states)
            run.writer.write(done, "train", metrics)
            evaluating = done >= total_timesteps or crossed(before, done, eval_every)
            run.after_update(states, done, evaluating=evaluating)
            if evaluating:
                eval_returns = evaluate(states, done)
            else:
                bar.advance(done)
    if eval_returns is None:  # resumed a finished run whose evaluation was logged
        eval_returns = evaluate_at(algo, eval_env, states, eval_keys, done)
    return TrainResult(states=states, seeds=seeds, steps=done, eval_returns=eval_returns)


def policy_for_saving(algo: ModuleType, state: Any) -> tuple[str, Any, dict[str, Any], Any]:
    """``(kind, params, config, obs_norm)`` of one seed's acting policy, for :func:`policies.save_policy`."""
    name = algo.__name__.rsplit(".", 1)[-1]
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


def save_policies(algo: ModuleType, result: TrainResult, env: Env, out: str | Path) -> list[Path]:
    """Save every seed's policy as ``out/seed_<s>/`` (safetensors + JSON); returns the directories."""
    return export_policies(Path(out), result.states, result.seeds, env, functools.partial(policy_for_saving, algo))


__all__ = ["batched_train_step", "make_init", "policy_for_saving", "save_policies", "train_rl"]
