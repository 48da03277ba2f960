"""The density driver: fit the density reward, then PPO on it for N seeds at once.

    result = train_policy(density.Config(), ppo_cfg, "seals/CartPole-v0", demos, seeds=range(8), total_timesteps=50_000)

Every step is one vmapped ``collect`` (PPO's rollout relabelled with the log-density of the
demonstrations) and one vmapped ``update``; the host checks each batch (finite rewards, fixed horizon).
Evaluation reports the true and the imitation return. The run directory (:mod:`imitation_fn.train.run`)
also holds ``ppo_config.json``, the agent's config, which a resume must match as well.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from imitation_fn import envs
from imitation_fn.algorithms import density
from imitation_fn.algorithms.density import Config, EvalStats, Metrics, State
from imitation_fn.core import random, serialization, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.rl import ppo
from imitation_fn.train.driver import TrainResult, check_seeds, export_policies, seed_keys
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.rl import policy_for_saving
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS, crossed, open_run

PPO_CONFIG = "ppo_config.json"


@dataclasses.dataclass(frozen=True)
class DensityResult(TrainResult):
    """``TrainResult`` (``steps``: env steps per seed; ``eval_returns``: true returns) plus imitation returns."""

    imitation_returns: Tensor  # (n_seeds, n_eval_episodes) returns under the density reward


@functools.cache
def _batched_step(env: Env, compile: bool) -> Callable[[State], tuple[State, ppo.Rollout, Metrics]]:
    vcollect = torch.func.vmap(lambda s: density.collect(s, env))
    vupdate = density.batched_update(compile)

    def step(states: State) -> tuple[State, ppo.Rollout, Metrics]:
        states, rollouts = vcollect(states)
        states, metrics = vupdate(states, rollouts)
        return states, rollouts, metrics

    return step


def _ppo_config_file(out: Path, rl_cfg: ppo.Config, resume: bool) -> None:
    """Write the agent's config beside the run's; a resume must give the same one."""
    path = out / PPO_CONFIG
    if resume and path.exists():
        try:
            same = json.loads(path.read_text()) == json.loads(rl_cfg.to_json())
        except json.JSONDecodeError as e:
            raise InputError(f"{path} is not valid JSON: {e}") from e
        if not same:
            raise InputError(f"--resume: {path} differs from the PPO config given; resume with the same flags")
    serialization.write_text_atomic(path, rl_cfg.to_json())


def train_policy(
    cfg: Config,
    rl_cfg: ppo.Config,
    env_id: str,
    demonstrations: Sequence[Trajectory] | Transitions,
    *,
    seeds: Sequence[int] = (0,),
    total_timesteps: int,
    n_eval_episodes: int = 10,
    eval_every: int | None = None,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    compile: bool = False,
    progress: bool = True,
) -> DensityResult:
    """Fit the density reward, then train PPO on it for every seed (one vmapped run) for ``total_timesteps``.

    Evaluation (deterministic policy, one episode per env of a ``n_eval_episodes`` env) reports the true
    and the imitation return, every ``eval_every`` env steps and at the end. Unless
    ``cfg.allow_variable_horizon``, training episodes must all have the demonstrations' length.
    ``log_dir``, ``checkpoint_every`` (seconds), ``resume``, ``log_formats``: see :mod:`imitation_fn.train.run`.
    """
    seeds = check_seeds(seeds, "density.train_policy")
    env, eval_env = envs.make(env_id, n_envs=rl_cfg.n_envs), envs.make(env_id, n_envs=n_eval_episodes)
    if isinstance(env, GymEnv):
        raise InputError(f"density.train_policy: {env_id} has no torch version; vmapped seeds need one")
    model = density.fit(cfg, density.demo_points(cfg, demonstrations, env.observation_space, env.action_space))
    horizons = {len(t) for t in demonstrations} if not isinstance(demonstrations, Transitions) else set()
    init_keys, _, eval_keys = seed_keys(seeds)
    states = torch.func.vmap(lambda k: density.init(rl_cfg, k, env, model, total_timesteps))(init_keys)
    step = _batched_step(env, compile)
    run, states, done = open_run(
        log_dir,
        resume,
        states,
        cfg,
        seeds,
        algorithm="density",
        env_id=env_id,
        budget=total_timesteps,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
    )
    if run.out is not None:
        _ppo_config_file(run.out, rl_cfg, resume)
    run.export = lambda out, states: export_policies(
        out / "policies", states.rl, seeds, env, functools.partial(policy_for_saving, ppo)
    )

    def evaluate(states: State, t: int) -> EvalStats:
        keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((len(seeds),), t))
        with torch.no_grad():
            stats = torch.func.vmap(lambda s, k: density.evaluate(s, eval_env, k))(states, keys)
        run.write_eval(t, {"return_mean": stats.true_returns.mean(-1), "returns": stats.true_returns})
        bar.advance(t, {"return": stats.true_returns, "imitation": stats.imitation_returns})
        return stats

    stats = None
    with ProgressBar(total_timesteps, f"density on {env_id} × {len(seeds)} seeds", enabled=progress) as bar:
        bar.advance(done)
        if run.pending_eval:
            stats = evaluate(states, done)
        while done < total_timesteps:
            before = done
            start_t = states.ep_t
            states, rollouts, metrics = step(tree.contiguous(states))  # see tree.contiguous: exact resumes
            steps, _ = torch.func.vmap(density.episode_steps)(start_t, rollouts.dones)
            _check_rollout(cfg, rollouts, steps, horizons)
            done = int(states.rl.timesteps.min())
            run.writer.write(done, "train", metrics)
            evaluating = done >= total_timesteps or crossed(before, done, eval_every)
            run.after_update(states, done, evaluating=evaluating)
            if evaluating:
                stats = evaluate(states, done)
            else:
                bar.advance(done)
    if stats is None:  # resumed a finished run whose evaluation was logged
        keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((len(seeds),), done))
        with torch.no_grad():
            stats = torch.func.vmap(lambda s, k: density.evaluate(s, eval_env, k))(states, keys)
    return DensityResult(
        states=states,
        seeds=seeds,
        steps=done,
        eval_returns=stats.true_returns,
        imitation_returns=stats.imitation_returns,
    )


def _check_rollout(cfg: Config, rollouts: ppo.Rollout, steps: Tensor, horizons: set[int]) -> None:
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


__all__ = ["PPO_CONFIG", "DensityResult", "train_policy"]
