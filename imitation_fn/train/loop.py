"""The training loop: any algorithm, N seeds at once, with evaluation, checkpoints, resume and metrics.

    result = loop.train(specs.BC, bc.Config(), Task(env=env, demos=demos), seeds=range(8), budget=10_000)

``init`` is vmapped over the seeds' keys; every iteration is one batched step (the algorithm's
``collect`` then ``update``, or ``update`` on minibatches of the task's data for an offline algorithm),
so seed ``i`` trains exactly as it would alone. This module alone owns what happens around the steps:
the budget, the evaluation schedule, the run directory (config, metrics writers, atomic checkpoints
and resume: :mod:`imitation_fn.train.run`), the progress bar and the result. What differs between
algorithms is a small :class:`Spec`: how to count progress, how to batch a step, what to evaluate and
what to export.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict

import torch
from torch import Tensor

from imitation_fn.algorithms.protocol import Metrics, Task
from imitation_fn.core import compile as compile_lib
from imitation_fn.core import device as device_lib
from imitation_fn.core import random, tree
from imitation_fn.core.config import Config
from imitation_fn.core.errors import InputError
from imitation_fn.data.types import Transitions
from imitation_fn.envs.base import Env, require_supported
from imitation_fn.envs.gym import GymEnv
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.policies.io import LoadedPolicy, check_spaces
from imitation_fn.train import warm_start as warm_start_lib
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS, Run, crossed, open_run

Step = Callable[[Any, int], tuple[Any, Metrics]]
"""``(states stacked over seeds, progress before the step) -> (states, metrics)``."""
MakeStep = Callable[[ModuleType, Config, Task, Tensor, bool], Step]
"""``(algo, cfg, task, data_keys: (n_seeds, 2), compile) -> Step``."""
Evaluate = Callable[[ModuleType, Task, Any, Tensor], dict[str, Tensor]]
"""``(algo, task, states, keys: (n_seeds, 2)) -> metrics``; ``returns`` is ``(n_seeds, n_episodes)``."""
Export = Callable[[Path, Any, Sequence[int], Task], object]
"""``(out, states, seeds, task)``: write each seed's artifacts (policies, rewards) under ``out``."""


@dataclasses.dataclass(frozen=True)
class Result:
    """What :func:`train` returns, for every algorithm."""

    states: Any  # the algorithm's State with a leading (n_seeds,) axis
    seeds: list[int]
    steps: int  # progress every seed reached, in the spec's unit (env steps, gradient steps, iterations)
    evaluation: dict[str, Tensor]  # the last evaluation; "returns" is (n_seeds, n_episodes) when the spec has one

    @property
    def eval_returns(self) -> Tensor:
        return self.evaluation["returns"]


# --- Steps -----------------------------------------------------------------------------------------


def acting_step(algo: ModuleType, cfg: Config, task: Task, data_keys: Tensor, compile: bool) -> Step:
    """``vmap(collect)`` then ``vmap(update)``, the update compiled when asked (compile outside the transform)."""
    collect = torch.func.vmap(lambda s: algo.collect(s, task))
    update = torch.func.vmap(algo.update)
    update = compile_lib.or_eager(update) if compile else update

    def step(states: Any, done: int) -> tuple[Any, Metrics]:
        states, batch = collect(states)
        return update(states, batch)

    return step


def minibatches_per_epoch(cfg: Config, data: Transitions) -> int:
    """Full minibatches of ``cfg.batch_size`` rows in ``data`` (the last partial batch is dropped, as
    ``imitation``'s loader does); refuses data smaller than one minibatch."""
    batch_size = int(cfg.batch_size)  # type: ignore[attr-defined]
    if len(data) < batch_size:
        raise InputError(f"the dataset has {len(data)} transitions, fewer than batch_size={batch_size}")
    return len(data) // batch_size


def minibatch_step(algo: ModuleType, cfg: Config, task: Task, data_keys: Tensor, compile: bool) -> Step:
    """``vmap(update)`` on each seed's next minibatch of ``task.demos`` (offline algorithms).

    Seed ``i`` shuffles the data once per epoch with ``fold_in(data_key_i, epoch)`` and takes
    ``cfg.batch_size`` rows at a time, dropping the last partial batch (``imitation``'s loader), so its
    batches never depend on the other seeds. ``done`` (gradient steps taken) says where it is.
    """
    data = task.demos
    assert isinstance(data, Transitions), "minibatch_step: task.demos must be Transitions"
    batch_size = int(cfg.batch_size)  # type: ignore[attr-defined]
    per_epoch = minibatches_per_epoch(cfg, data)
    update = torch.func.vmap(algo.update)
    update = compile_lib.or_eager(update) if compile else update
    cached: dict[int, Tensor] = {}

    def step(states: Any, done: int) -> tuple[Any, Metrics]:
        epoch, j = divmod(done, per_epoch)
        if epoch not in cached:
            cached.clear()
            cached[epoch] = torch.func.vmap(lambda k: random.permutation(random.fold_in(k, epoch), len(data)))(
                data_keys
            )
        idx = cached[epoch][:, j * batch_size : (j + 1) * batch_size]  # (n_seeds, batch_size)
        return update(states, tree.index(data, idx))

    return step


# --- Evaluation ------------------------------------------------------------------------------------


def policy_returns(algo: ModuleType, task: Task, states: Any, keys: Tensor) -> dict[str, Tensor]:
    """Each seed's deterministic policy on ``task.eval_env``: ``returns`` ``(n_seeds, eval_env.n_envs)``.

    One vmapped evaluation on a torch env; a gymnasium env (``GymEnv``) steps on the host, seed by seed.
    """
    env = task.eval_env
    assert env is not None, "policy_returns: the task has no eval_env"
    return {"returns": evaluate_seeds(algo, env, states, keys)}


def evaluate_seeds(algo: ModuleType, env: Env, states: Any, keys: Tensor) -> Tensor:
    """``(n_seeds, env.n_envs)`` returns of each seed's ``algo.policy`` on ``env``, one key per seed."""
    with torch.no_grad():
        if isinstance(env, GymEnv):
            return torch.stack(
                [
                    evaluate_gym_policy(env, algo.policy(state), key, env.n_envs).returns
                    for state, key in zip(tree.unstack(states), keys, strict=True)
                ]
            )
        return torch.func.vmap(lambda s, k: evaluate_policy(env, algo.policy(s), k).returns)(states, keys)


def eval_keys_at(eval_keys: Tensor, step: int) -> Tensor:
    """The seeds' evaluation keys at ``step``: they depend on seed and step only (resumes evaluate alike)."""
    return torch.func.vmap(random.fold_in)(eval_keys, torch.full((eval_keys.shape[0],), step, device=eval_keys.device))


# --- The spec and the loop -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
    """An algorithm's part in the loop: its protocol module and what the loop cannot read from it.

    ``progress(states)`` is how far every seed is, in the unit the budget counts (the minimum over
    seeds); ``make_step`` batches one iteration; ``evaluate`` (None: no evaluation) and ``export``
    (None: nothing beside the checkpoint) run at evaluation points; ``finished(states)`` ends a run
    before its budget (e.g. every seed has converged); metrics are written every ``log_every`` units
    (None: every iteration) and at the end; ``bar`` names the metrics the progress bar shows.
    ``prepare(states, log_dir, resume)`` (None: the states as ``init`` made them) returns the states a
    run starts from, or loads its checkpoint into: for states that change shape as they train (DAgger's
    growing aggregate) it shapes them like the checkpoint, and it can read back files of the spec's own.
    ``warm_start(states, policy)`` (None: the algorithm has no policy to start from) puts a saved
    policy's parameters into every seed (:mod:`imitation_fn.train.warm_start`).
    """

    algo: ModuleType
    progress: Callable[[Any], int]
    make_step: MakeStep = acting_step
    evaluate: Evaluate | None = policy_returns
    export: Export | None = None
    finished: Callable[[Any], bool] | None = None
    log_every: int | None = None
    unit: str = "env steps"
    bar: tuple[str, ...] = ()
    prepare: Callable[[Any, Path | None, bool], Any] | None = None
    warm_start: warm_start_lib.WarmStart | None = None

    @property
    def name(self) -> str:
        return self.algo.__name__.rsplit(".", 1)[-1]


def check_seeds(seeds: Sequence[int], who: str) -> list[int]:
    """``seeds`` as a list of distinct ints; raises a clear error otherwise."""
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise InputError(f"{who}: seeds must be a non-empty list of distinct integers, got {seeds}")
    return seeds


def seed_keys(seeds: Sequence[int], device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """Per-seed ``(init, data, eval)`` keys, each ``(n_seeds, 2)`` on ``device``; seed i's keys depend on seed i
    only (and are the same on every device)."""
    keys = torch.stack([random.split(random.key(s, device), 3) for s in seeds])
    return keys[:, 0], keys[:, 1], keys[:, 2]


def init_states(
    spec: Spec, cfg: Config | Sequence[Config], task: Task, seeds: Sequence[int], device: torch.device | str = "cpu"
) -> Any:
    """``vmap(algo.init)`` over the seeds' init keys (on ``device``): the states stacked over seeds.

    With one config per seed (a sweep over fields that are 0-d tensors in the state, such as learning
    rates), each seed is initialised with its own and the states are stacked: the same states vmap
    would give, and one vmapped training from there on.
    """
    init_keys, _, _ = seed_keys(seeds, device)
    # ``init`` runs once, so it may create its constants the short way (torch's default device, set here to the
    # run's); the steps, which run millions of times, create theirs like their inputs.
    with torch.device(device):
        if isinstance(cfg, Config):
            return torch.func.vmap(lambda k: spec.algo.init(cfg, k, task))(init_keys)
        if len(cfg) != len(seeds):
            raise ValueError(f"{spec.name}: {len(cfg)} configs for {len(seeds)} seeds")
        try:
            return tree.stack([spec.algo.init(c, k, task) for c, k in zip(cfg, init_keys, strict=True)])
        except (ValueError, RuntimeError) as e:
            raise ValueError(
                f"{spec.name}: per-seed configs may differ only in fields that are 0-d tensors: {e}"
            ) from e


class RunOptions(TypedDict, total=False):
    """The keywords of :func:`train` that every algorithm's entry point hands on unchanged (defaults: ``train``'s)."""

    seeds: Sequence[int]
    eval_every: int | None
    log_dir: str | Path | None
    checkpoint_every: float
    log_formats: Sequence[str]
    resume: bool
    compile: bool
    progress: bool
    callback: Callable[[int, Any, Metrics, dict[str, Tensor] | None], None] | None
    init_policy: LoadedPolicy | None
    device: str | torch.device | None


def train(
    spec: Spec,
    cfg: Config | Sequence[Config],
    task: Task,
    *,
    budget: int,
    seeds: Sequence[int] = (0,),
    eval_every: int | None = None,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    compile: bool = False,
    progress: bool = True,
    env_id: str | None = None,
    on_open: Callable[[Run], None] | None = None,
    callback: Callable[[int, Any, Metrics, dict[str, Tensor] | None], None] | None = None,
    init_policy: LoadedPolicy | None = None,
    device: str | torch.device | None = "auto",
) -> Result:
    """Train ``spec.algo`` with ``cfg`` on ``task`` for every seed until each has reached ``budget``.

    ``cfg`` may be one config per seed (see :func:`init_states`); the first is the run's ``config.json``.

    ``eval_every`` counts the spec's unit; evaluation also runs at the end. ``log_dir``,
    ``checkpoint_every`` (seconds), ``log_formats`` and ``resume``: see :mod:`imitation_fn.train.run`
    (a resumed run gives the same result as an uninterrupted one). ``compile`` puts the batched step
    through ``torch.compile``. ``env_id`` is recorded in the checkpoint. ``on_open(run)`` runs once
    the run directory is open (to write files of the caller's own); ``callback(progress, states,
    metrics, evaluation or None)`` after every iteration. ``init_policy``: every seed starts from this
    policy's parameters (a resumed run continues from its checkpoint instead). ``device``: ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (cuda when a GPU is visible); the task's data, keys and states go
    there (:meth:`Task.to`), a host environment's tensors too, and a resumed checkpoint loads onto it.
    """
    name = spec.name
    seeds = check_seeds(seeds, name)
    if budget < 1:
        raise InputError(f"{name}: the budget must be >= 1 {spec.unit}, got {budget}")
    if eval_every is not None and eval_every < 1:
        raise InputError(f"{name}: eval_every must be >= 1, got {eval_every}")
    for env in (task.env, task.eval_env):
        if env is not None:
            require_supported(env, f"{name} on {env_id or env}")
    on = device_lib.resolve(device)
    task = task.to(on)
    if init_policy is not None:
        if spec.warm_start is None:
            raise InputError(f"{name} has no policy to start from a saved one")
        check_spaces(init_policy, task.observation_space, task.action_space, f"{name}'s environment")
    _, data_keys, eval_keys = seed_keys(seeds, on)
    states = init_states(spec, cfg, task, seeds, on)
    if init_policy is not None and spec.warm_start is not None:
        states = spec.warm_start(states, init_policy.to(on))
    if spec.prepare is not None:  # before a checkpoint loads into them
        states = spec.prepare(states, Path(log_dir) if log_dir is not None else None, resume)
    run_cfg = cfg if isinstance(cfg, Config) else cfg[0]
    run, states, _ = open_run(
        log_dir,
        resume,
        states,
        run_cfg,
        seeds,
        algorithm=name,
        env_id=env_id,
        budget=budget,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
    )
    if spec.export is not None:
        export = spec.export
        run.export = lambda out, states: export(out, states, seeds, task)
    if on_open is not None:
        on_open(run)
    step = spec.make_step(spec.algo, run_cfg, task, data_keys, compile)

    def finished(states: Any, done: int) -> bool:
        return done >= budget or (spec.finished is not None and spec.finished(states))

    def evaluate(states: Any, done: int) -> dict[str, Tensor]:
        if spec.evaluate is None:
            return {}
        evaluation = spec.evaluate(spec.algo, task, states, eval_keys_at(eval_keys, done))
        returns = evaluation["returns"]
        run.write_eval(done, {"return_mean": returns.mean(-1), **evaluation})
        bar.advance(done, {"return": returns})
        return evaluation

    evaluation: dict[str, Tensor] | None = None
    done = spec.progress(states)
    with ProgressBar(
        budget, f"{name}{f' on {env_id}' if env_id else ''} × {len(seeds)} seeds", enabled=progress
    ) as bar:
        bar.advance(done)
        if run.pending_eval:  # its checkpoint was saved, its evaluation not logged
            evaluation = evaluate(states, done)
        while not finished(states, done):
            before = done
            states, metrics = step(tree.contiguous(states), done)  # see tree.contiguous: exact resumes
            done = spec.progress(states)
            last = finished(states, done)
            if last or spec.log_every is None or crossed(before, done, spec.log_every):
                run.writer.write(done, "train", metrics)
                bar.advance(done, {k: metrics[k] for k in spec.bar if k in metrics})
            evaluating = spec.evaluate is not None and (last or crossed(before, done, eval_every))
            run.after_update(states, done, evaluating=evaluating, final=last)
            shown = evaluate(states, done) if evaluating else None
            evaluation = shown if shown is not None else evaluation
            if not evaluating:
                bar.advance(done)
            if callback is not None:
                callback(done, states, metrics, shown)
    if evaluation is None:  # resumed a run that had finished and logged its evaluation
        evaluation = (
            spec.evaluate(spec.algo, task, states, eval_keys_at(eval_keys, done)) if spec.evaluate is not None else {}
        )
    return Result(states=states, seeds=seeds, steps=done, evaluation=evaluation)


__all__ = [
    "Evaluate",
    "Export",
    "MakeStep",
    "Result",
    "RunOptions",
    "Spec",
    "Step",
    "acting_step",
    "check_seeds",
    "eval_keys_at",
    "evaluate_seeds",
    "init_states",
    "minibatch_step",
    "minibatches_per_epoch",
    "policy_returns",
    "seed_keys",
    "train",
]
