"""The MCE IRL driver: one reward net per seed, vmapped, until every seed has converged.

    result = train(mce_irl.Config(), mdp, expert_occupancy, seeds=range(16), log_dir="runs/mce")

Each iteration is one call of :func:`mce_irl.batched_update` (eager or compiled) on all seeds; a seed
that has converged is left unchanged. With ``log_dir`` the run directory holds the config, the metrics
every ``cfg.log_interval`` iterations and a checkpoint (see :mod:`imitation_fn.train.run`), and
``resume`` continues it bit for bit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from imitation_fn.algorithms import mce_irl
from imitation_fn.algorithms.mce_irl import Config, Demonstrations, Metrics, State
from imitation_fn.core import random, struct
from imitation_fn.envs.tabular import TabularMDP
from imitation_fn.rl import tabular
from imitation_fn.train.driver import check_seeds
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS, open_run

logger = logging.getLogger(__name__)


class TrainResult(struct.PyTreeNode):
    """What :func:`train` returns. Every tensor has a leading seed axis."""

    state: State
    occupancy: Tensor  # (n_seeds, S): D of each seed's final reward (imitation's MCEIRL.train return)
    iterations: Tensor  # (n_seeds,) int64: optimiser steps taken
    converged: Tensor  # (n_seeds,) bool: a stopping criterion held before max_iter
    metrics: Metrics  # each (n_seeds,): of the last iteration (empty when a resumed run had nothing left)
    n_iter: int = struct.field(static=True)  # iterations the loop ran in all (vmapped update calls)
    seconds: float = struct.field(static=True)  # wall time of this call's loop (compilation included)


def train(
    cfg: Config,
    mdp: TabularMDP,
    demonstrations: Demonstrations,
    *,
    seeds: Iterable[int] = (0,),
    compile: bool = False,
    sparse: bool | None = None,
    log_fn: Callable[[int, Metrics], None] | None = None,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    env_id: str | None = None,
) -> TrainResult:
    """Train one reward net per seed, vmapped, until every seed has converged or ``cfg.max_iter`` iterations.

    ``demonstrations``: anything :func:`mce_irl.demo_occupancy` takes. ``sparse``: plan through
    :func:`tabular.sparse_transitions` (computed here, host-side) instead of the dense matrix; the default
    None does so when every ``(s, a)`` row has at most ``S / 4`` successors, where it pays. Every
    ``cfg.log_interval`` iterations the metrics (each ``(n_seeds,)``) go to ``log_fn(iteration, metrics)``,
    or to this module's ``logging`` logger, and to ``metrics.jsonl`` with ``log_dir``.
    """
    seeds = check_seeds(list(seeds), "mce_irl.train")
    mdp.validate()
    demo_om = mce_irl.demo_occupancy(mdp, demonstrations, cfg.discount)
    transitions = tabular.sparse_transitions(mdp) if sparse is not False else None
    if sparse is None and transitions is not None and 4 * transitions.probs.shape[-1] > mdp.n_states:
        transitions = None
    keys = torch.stack([random.key(s) for s in seeds])
    state = torch.func.vmap(lambda k: mce_irl.init(cfg, k, mdp))(keys)
    run, state, start = open_run(
        log_dir,
        resume,
        state,
        cfg,
        seeds,
        algorithm="mce_irl",
        env_id=env_id,
        budget=cfg.max_iter,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
    )
    step_fn = mce_irl.batched_update(compile)
    metrics: Metrics = {}
    n_iter = start
    t0 = time.perf_counter()
    for it in range(start, cfg.max_iter):
        if bool(state.converged.all()):
            break
        n_iter = it + 1
        state, metrics = step_fn(state, mdp, demo_om, transitions)
        if cfg.log_interval is not None and it % cfg.log_interval == 0:
            run.writer.write(n_iter, "train", metrics)
            if log_fn is not None:
                log_fn(it, metrics)
            else:
                logger.info(
                    "iteration %d: linf_delta %s, grad_norm %s, weight_norm %s",
                    it,
                    *(_fmt(metrics[k]) for k in ("linf_delta", "grad_norm", "weight_norm")),
                )
        run.after_update(state, n_iter, evaluating=False)
    seconds = time.perf_counter() - t0
    run.save(state, n_iter)
    d = torch.func.vmap(lambda s: mce_irl.occupancy(s, mdp)[1])(state)
    return TrainResult(state, d, state.step, state.converged, metrics, n_iter, seconds)


def _fmt(x: Tensor) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in x.tolist()) + "]"


__all__ = ["TrainResult", "train"]
