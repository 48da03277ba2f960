"""MCE IRL through the training loop: one reward net per seed, vmapped, until every seed has converged.

    task = make_task(cfg, "CliffWorld", budget=cfg.max_iter, n_eval_episodes=10)   # or make_task(..., mdp=mdp)
    result = loop.train(SPEC, cfg, task, budget=cfg.max_iter, seeds=range(16), log_dir="runs/mce")
    result = train(cfg, mdp, expert_occupancy, seeds=range(16), log_dir="runs/mce")  # the same, as one call

Each iteration is one call of :func:`mce_irl.batched_update` (eager or compiled) on all seeds, with the same
batch (the demonstrations' occupancy measure and the MDP) every time; a seed that has converged is left
unchanged, and the run ends once every seed has converged or after ``cfg.max_iter`` iterations. The
evaluation (at the end, and every ``eval_every`` iterations) reports each seed's sampled returns
(``returns``), the exact expected return of its policy (``expected_return``) and the L∞ distance of its
occupancy from the demonstrations' (``linf``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from imitation_fn.algorithms import mce_irl
from imitation_fn.algorithms.mce_irl import Config, Demonstrations, Metrics, State
from imitation_fn.core import device as device_lib
from imitation_fn.core import random
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.tabular import TabularEnv, TabularMDP, cliff_world, random_mdp
from imitation_fn.envs.task import Task
from imitation_fn.policies import tabular
from imitation_fn.train import loop
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS

logger = logging.getLogger(__name__)

ENVS = ("CliffWorld", "RandomMDP")


def make_mdp(
    env_id: str,
    *,
    horizon: int | None = None,
    width: int = 7,
    height: int = 4,
    use_xy_obs: bool = False,
    n_states: int = 16,
    n_actions: int = 3,
    branch_factor: int = 2,
    obs_dim: int = 5,
    one_hot_obs: bool = False,
    generator_seed: int = 42,
) -> TabularMDP:
    """The tabular MDP ``env_id`` names (float64, as ``imitation`` plans in numpy float64).

    CliffWorld (``width × height``, horizon 9 by default) or RandomMDP (``n_states``, ``n_actions``,
    ``branch_factor``; random ``obs_dim`` features unless ``one_hot_obs``; built from ``generator_seed``;
    horizon 20 by default).
    """
    if env_id == "CliffWorld":
        return cliff_world(
            width=width,
            height=height,
            horizon=horizon if horizon is not None else 9,
            use_xy_obs=use_xy_obs,
            dtype=torch.float64,
        )
    if env_id == "RandomMDP":
        return random_mdp(
            random.key(generator_seed),
            n_states=n_states,
            n_actions=n_actions,
            branch_factor=branch_factor,
            horizon=horizon if horizon is not None else 20,
            random_obs=not one_hot_obs,
            obs_dim=None if one_hot_obs else obs_dim,
            dtype=torch.float64,
        )
    raise ValueError(f"mce_irl: unknown tabular env {env_id!r}; expected one of {', '.join(ENVS)}")


# --- The loop's spec -------------------------------------------------------------------------------


def iterations(states: State) -> int:
    """Iterations the run has taken: a seed that never converged stepped at every one (the last-converging
    seed at every one but its last, which took no step)."""
    return int(states.step.max()) + int(states.converged.all())


def converged(states: State) -> bool:
    return bool(states.converged.all())


def make_step(
    algo: ModuleType,
    cfg: BaseConfig,
    task: Task,
    data_keys: Tensor,
    compile: bool,
    *,
    sparse: bool | None = None,
    demos: Demonstrations | None = None,
) -> loop.Step:
    """:func:`mce_irl.batched_update` on the same batch (:func:`mce_irl.make_batch`) every iteration."""
    assert isinstance(cfg, Config)
    batch = mce_irl.make_batch(task, cfg.discount, sparse, demos)
    update = mce_irl.batched_update(compile)

    def step(states: State, done: int) -> tuple[State, Metrics]:
        return update(states, batch)

    return step


def evaluate(
    algo: ModuleType, task: Task, states: State, keys: Tensor, *, demos: Demonstrations | None = None
) -> dict[str, Tensor]:
    """Sampled returns ``(n_seeds, n_episodes)`` of each seed's policy in ``task.eval_env``, its exact expected
    return and the L∞ distance of its occupancy from the demonstrations' (``demos``, as in :func:`make_step`)."""
    mdp, env = task.mdp, task.eval_env
    assert mdp is not None and isinstance(env, TabularEnv), "mce_irl: the task needs an mdp and a TabularEnv eval_env"
    demo_om = mce_irl.make_batch(task, float(states.discount[0]), sparse=False, demos=demos).demo_om

    def one(state: State, key: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, _ = tabular.rollout(env, mce_irl.policy(state), key, mdp.horizon)
        _, occ = mce_irl.occupancy(state, mdp)
        return batch.rews.sum(0), mce_irl.expected_return(mdp, state.pi), (occ - demo_om).abs().amax()

    with torch.no_grad():
        returns, expected, linf = torch.func.vmap(one)(states, keys)
    return {"returns": returns, "expected_return": expected, "linf": linf}


SPEC = loop.Spec(
    algo=mce_irl,
    progress=iterations,
    make_step=make_step,
    evaluate=evaluate,
    finished=converged,
    log_every=Config().log_interval,
    unit="iterations",
    bar=("linf_delta",),
)


def spec(cfg: Config, *, sparse: bool | None = None, demos: Demonstrations | None = None) -> loop.Spec:
    """:data:`SPEC` with ``cfg.log_interval`` (None: only the last iteration is logged) and ``make_step``'s
    options."""
    return dataclasses.replace(
        SPEC,
        make_step=functools.partial(make_step, sparse=sparse, demos=demos),
        evaluate=functools.partial(evaluate, demos=demos),
        log_every=cfg.log_interval or cfg.max_iter,
    )


def make_task(
    cfg: Config,
    env_id: str,
    *,
    budget: int,
    n_eval_episodes: int,
    demos: Sequence[Trajectory] | Transitions | None = None,
    mdp: TabularMDP | None = None,
) -> Task:
    """The task of an MCE IRL run: ``mdp`` (default: :func:`make_mdp` of ``env_id``), the demonstrations
    (trajectories or transitions; None: the expert's exact occupancy measure) and ``n_eval_episodes``
    evaluation envs."""
    mdp = mdp if mdp is not None else make_mdp(env_id)
    del cfg  # the tasks of every config are alike
    return Task(mdp=mdp, demos=demos, eval_env=TabularEnv(mdp, n_envs=n_eval_episodes), total=budget)


def occupancies(states: State, mdp: TabularMDP) -> Tensor:
    """``(n_seeds, S)``: each seed's occupancy measure ``D`` (``imitation``'s ``MCEIRL.train`` return)."""
    return torch.func.vmap(lambda s: mce_irl.occupancy(s, mdp)[1])(states)


def train(
    cfg: Config,
    mdp: TabularMDP,
    demonstrations: Demonstrations | None = None,
    *,
    seeds: Iterable[int] = (0,),
    compile: bool = False,
    sparse: bool | None = None,
    log_fn: Callable[[int, Metrics], None] | None = None,
    n_eval_episodes: int = 10,
    eval_every: int | None = None,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    progress: bool = False,
    env_id: str | None = None,
    device: str | torch.device | None = "auto",
) -> loop.Result:
    """Train one reward net per seed, vmapped, until every seed has converged or ``cfg.max_iter`` iterations.

    ``demonstrations``: anything :func:`mce_irl.demo_occupancy` takes (None: the expert's exact occupancy).
    ``sparse``: see :func:`mce_irl.make_batch`. Every ``cfg.log_interval`` iterations and at the end the
    metrics (each ``(n_seeds,)``) go to ``log_fn(iteration, metrics)``, or to this module's ``logging``
    logger. ``Result.steps`` counts iterations; ``Result.states.step`` each seed's optimiser steps,
    ``Result.states.converged`` whether it converged; :func:`occupancies` gives their occupancy measures.
    The rest: :func:`loop.train`.
    """
    # An occupancy measure is no Task.demos (trajectories or transitions): it goes to the spec's batch instead.
    occupancy = demonstrations.to(device_lib.resolve(device)) if isinstance(demonstrations, Tensor) else None
    demos = None if isinstance(demonstrations, Tensor) else demonstrations
    task = make_task(cfg, env_id or "mdp", budget=cfg.max_iter, n_eval_episodes=n_eval_episodes, demos=demos, mdp=mdp)
    run_spec = spec(cfg, sparse=sparse, demos=occupancy)
    every = run_spec.log_every

    def log(done: int, states: State, metrics: Metrics, evaluation: Any) -> None:
        if not (done % (every or 1) == 0 or done >= cfg.max_iter or converged(states)):
            return
        if log_fn is not None:
            log_fn(done, metrics)
        elif cfg.log_interval is not None:
            logger.info(
                "iteration %d: linf_delta %s, grad_norm %s, weight_norm %s",
                done,
                *(_fmt(metrics[k]) for k in ("linf_delta", "grad_norm", "weight_norm")),
            )

    return loop.train(
        run_spec,
        cfg,
        task,
        budget=cfg.max_iter,
        seeds=list(seeds),
        eval_every=eval_every,
        log_dir=log_dir,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
        resume=resume,
        compile=compile,
        progress=progress,
        env_id=env_id,
        callback=log,
        device=device,
    )


def _fmt(x: Tensor) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in x.tolist()) + "]"


__all__ = [
    "ENVS",
    "SPEC",
    "converged",
    "evaluate",
    "iterations",
    "make_mdp",
    "make_step",
    "make_task",
    "occupancies",
    "spec",
    "train",
]
