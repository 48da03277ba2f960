"""Hyperparameter search with Ray Tune: each trial is one config trained over all the spec's seeds (vmapped).

    spec = TuneSpec(algorithm="bc", grid={"lr": [1e-3, 1e-2]}, random={"l2_weight": {"loguniform": [1e-6, 1e-2]}},
                    n_samples=4, seeds=4, train={"n_batches": 500}, scheduler="asha")
    result = run_tune(spec, "tune/bc")        # an in-process local Ray, or run_tune(..., address="ray://head:10001")
    result.best["config"], result.best["score"]

A tune file is a sweep file (:class:`~imitation_fn.train.sweep.SweepSpec`: algorithm, env, config, ``grid``,
``random``, seeds, train budget, demos) plus the search's ``scheduler`` (``fifo``, or ``asha`` to stop poor
trials early), its ``metric`` and ``n_samples`` (Tune's ``num_samples``: the grid is repeated that many times,
each time with fresh draws of the ``random`` fields). ``grid`` becomes ``tune.grid_search`` and each
``random`` distribution ``tune.uniform`` / ``loguniform`` / ``choice``, drawn from ``sample_seed``. Every
trial trains the same seeds, so trials are compared on equal terms (the sweep's ``seed_stride`` is unused).

A trial trains its config with :func:`loop.train` for every seed at once, into the run directory
``OUT/trials/<trial>/`` (read by ``analyze`` like any run; on a cluster of several machines ``OUT`` must be
a directory they all share), and reports after each evaluation the mean over
seeds of each seed's mean return (``return_mean``), their interquartile mean (``return_iqm``) and the
``progress`` in the budget's unit, which is ASHA's time axis. Unless the file sets ``train.eval_every``, a
trial evaluates ten times over its budget, so ASHA has points to decide at. A trial stopped early keeps a
valid run directory: Tune stops it while it waits in ``report``, after its checkpoint and evaluation rows
were written. ``OUT/best.json`` names the best trial: the highest last score among trials trained to the
end of their budget (or ASHA's ``max_t``), with its full config and run directory; Ray's own records are
in ``OUT/ray/``.

Ray is imported only when a search runs, so the command line starts without it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import Tensor

from imitation_fn import stats
from imitation_fn.core import device as device_lib
from imitation_fn.core import serialization
from imitation_fn.core.config import Config, read_mapping
from imitation_fn.train import loop, sweep
from imitation_fn.train.run import Run

SPEC = "tune.json"
BEST = "best.json"
PARAMS = "params.json"
"""In each trial's run directory: its searched values, which ``analyze`` labels the trial by."""
TRIALS = "trials"
RAY_DIR = "ray"
EVALUATIONS = 10
"""Evaluations per trial when the file sets no ``train.eval_every``: the points where ASHA can stop a trial."""
METRICS = ("return_mean", "return_iqm")
NEEDS_RAY = "tune needs Ray: pip install 'imitation-fn[ray]'"


class Asha(Config):
    """ASHA's options, in the budget's unit (``progress``): rungs at ``grace_period · reduction_factor^k``."""

    grace_period: PositiveInt | None = None
    """Progress every trial reaches before it can be stopped (default: its first evaluation)."""
    reduction_factor: float = Field(default=4.0, gt=1)
    """Only the best 1/reduction_factor of the trials at a rung go on."""
    max_t: PositiveInt | None = None
    """Progress at which every trial stops (default: the budget of the file's config)."""


class TuneSpec(sweep.SweepSpec):
    """A search, as written in a YAML/JSON file: the sweep keys (``chunk_size`` excepted) plus these."""

    scheduler: Literal["fifo", "asha"] = "fifo"
    """``fifo``: every trial trains its whole budget; ``asha``: poor trials stop at ASHA's rungs."""
    asha: Asha | None = None
    """ASHA's options (with ``scheduler: asha``)."""
    metric: Literal["return_mean", "return_iqm"] = "return_mean"
    """What the search maximises: the mean over seeds of each seed's mean evaluation return, or their IQM."""
    gpus_per_trial: float = Field(0.25, gt=0, le=1)
    """With a CUDA ``device``: the share of a GPU each trial asks Ray for (a few vmapped seeds of small networks
    leave most of a GPU idle, so several trials share one)."""

    @model_validator(mode="after")
    def _check_tune(self) -> TuneSpec:
        if self.chunk_size is not None:
            raise ValueError("chunk_size: a trial trains all its seeds in one vmapped run; remove chunk_size")
        if self.asha is not None and self.scheduler != "asha":
            raise ValueError("asha options need scheduler: asha")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> TuneSpec:
        """Read a ``.yaml``/``.yml`` or ``.json`` tune file; raises ``InputError`` or pydantic's ``ValidationError``."""
        return cls.model_validate(read_mapping(path))  # an unreadable file: an InputError naming it

    def as_sweep(self) -> sweep.SweepSpec:
        """The sweep part of the spec (what the sweep's algorithm context is built from)."""
        return sweep.SweepSpec.model_validate(self.model_dump(include=set(sweep.SweepSpec.model_fields)))

    @property
    def n_trials(self) -> int:
        """Trials the search runs: the grid's size × ``n_samples``."""
        return math.prod(len(v) for v in self.grid.values()) * self.n_samples


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A config's budget and evaluation interval, in ``unit``."""

    budget: int
    eval_every: int
    unit: str


def make_config(spec: TuneSpec, params: dict[str, Any]) -> Config:
    """The algorithm's config of a trial: the file's ``config`` with the trial's searched values."""
    cfg: Config = sweep.context(spec.as_sweep()).algo.Config(**{**spec.config, **params})
    return cfg


def schedule(spec: TuneSpec, cfg: Config) -> Schedule:
    """How long ``cfg`` trains and how often it is evaluated (``train.eval_every``, or :data:`EVALUATIONS` times)."""
    ctx = sweep.context(spec.as_sweep())
    budget = ctx.budget(cfg)
    every = spec.train.get("eval_every") or max(1, budget // EVALUATIONS)
    return Schedule(budget, int(every), ctx.spec.unit)


def check(spec: TuneSpec) -> Schedule:
    """Refuse a spec that cannot run, before Ray starts; returns the schedule of the file's own config.

    Checks the ``train`` keys and every grid value and distribution bound (or choice) through the
    algorithm's ``Config``, and loads the demonstrations.
    """
    keys = sweep.ALGORITHMS[spec.algorithm].train_keys
    unknown = set(spec.train) - set(keys)
    if unknown:
        raise ValueError(f"tune: unknown train keys {sorted(unknown)} for {spec.algorithm}; use {keys}")
    for name, values in spec.grid.items():
        for v in values:
            make_config(spec, {name: v})
    for name, d in spec.random.items():
        for v in d.uniform or d.loguniform or d.choice or ():
            make_config(spec, {name: v})
    return schedule(spec, make_config(spec, {}))


def scores(returns: Tensor) -> dict[str, float]:
    """``return_mean`` and ``return_iqm`` over seeds of each seed's mean return; ``returns`` is ``(n_seeds, n)``."""
    per_seed = returns.double().mean(-1)
    return {"return_mean": float(per_seed.mean()), "return_iqm": float(stats.iqm(per_seed))}


def trial_name(algorithm: str, trial: Any) -> str:
    """``bc_3dba1_00000``: a trial's name, its Ray directory's and its run directory's (``OUT/trials/<name>``)."""
    return f"{algorithm}_{trial.trial_id}"


# --- A trial (runs in a Ray worker) -----------------------------------------------------------------


def _trial(params: dict[str, Any], spec_json: str, out: str) -> None:
    """Train one config over the spec's seeds into ``out/trials/<trial>``, reporting after each evaluation."""
    from ray import tune as ray_tune

    torch.set_num_threads(1)  # one CPU per trial; small networks run best single-threaded
    spec = TuneSpec.model_validate_json(spec_json)
    ctx = sweep.context(spec.as_sweep())
    cfg = make_config(spec, params)
    plan = schedule(spec, cfg)
    max_t = spec.asha.max_t if spec.asha is not None else None
    end = min(plan.budget, max_t) if max_t is not None else plan.budget

    def report(progress: int, states: Any, metrics: Any, evaluation: dict[str, Tensor] | None) -> None:
        if evaluation is None:
            return
        converged = ctx.spec.finished is not None and ctx.spec.finished(states)
        # "complete": trained to its end (its budget, ASHA's max_t, or convergence); best.json is chosen among these.
        ray_tune.report(
            {**scores(evaluation["returns"]), "progress": progress, "complete": progress >= end or converged}
        )

    loop_spec = ctx.spec
    if spec.train.get("log_every") is not None:
        loop_spec = dataclasses.replace(loop_spec, log_every=int(spec.train["log_every"]))
    loop.train(
        loop_spec,
        cfg,
        ctx.task(cfg),
        budget=plan.budget,
        seeds=spec.seed_list,
        eval_every=plan.eval_every,
        log_dir=Path(out) / TRIALS / ray_tune.get_context().get_trial_name(),
        checkpoint_every=spec.checkpoint_every,
        compile=bool(spec.train.get("compile", False)),
        progress=False,
        env_id=spec.env,
        on_open=functools.partial(_write_params, params),
        callback=report,
        device=spec.device,
    )


def _write_params(params: dict[str, Any], run: Run) -> None:
    if run.out is not None:
        serialization.write_text_atomic(run.out / PARAMS, json.dumps(params))


# --- The search --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Trial:
    """One trial of a finished search: its searched values, run directory and last report."""

    name: str
    params: dict[str, Any]
    run_dir: Path
    progress: int | None  # None: it never reported (it failed before its first evaluation)
    scores: dict[str, float]
    complete: bool  # trained to the end of its budget (or ASHA's max_t), not stopped early
    error: str | None


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """Every trial of a search and ``best``, the contents of ``best.json`` (None when no trial reported)."""

    trials: list[Trial]
    best: dict[str, Any] | None
    out: Path


def resources(spec: TuneSpec) -> dict[str, float]:
    """What each trial asks Ray for: one CPU, and a share of a GPU when the spec trains on CUDA."""
    if device_lib.resolve(spec.device).type == "cuda":
        return {"cpu": 1, "gpu": spec.gpus_per_trial}
    return {"cpu": 1}


def import_ray() -> Any:
    """The ``ray`` module with Tune, or an ``ImportError`` that says how to install it."""
    try:
        import ray
        import ray.tune  # its own packages (the [tune] extra) may be missing where ray is not
    except ImportError as e:
        raise ImportError(f"{NEEDS_RAY} ({e})") from e
    return ray


def param_space(spec: TuneSpec) -> dict[str, Any]:
    """Tune's search space: ``grid`` fields as ``grid_search``, ``random`` ones as Tune distributions."""
    from ray import tune as ray_tune

    space: dict[str, Any] = {name: ray_tune.grid_search(values) for name, values in spec.grid.items()}
    for name, d in spec.random.items():
        if d.uniform is not None:
            space[name] = ray_tune.uniform(*d.uniform)
        elif d.loguniform is not None:
            space[name] = ray_tune.loguniform(*d.loguniform)
        else:
            assert d.choice is not None  # a Distribution is exactly one of the three
            space[name] = ray_tune.choice(d.choice)
    return space


def run_tune(
    spec: TuneSpec,
    out: str | Path,
    *,
    num_samples: int | None = None,
    max_concurrent: int | None = None,
    address: str | None = None,
    verbose: int = 1,
) -> TuneResult:
    """Search ``spec`` with Ray Tune into ``out`` and write ``out/best.json``.

    ``num_samples`` overrides the spec's ``n_samples``; ``max_concurrent`` caps the trials running at
    once (default: one per CPU of the cluster). Uses a running Ray instance, or connects to ``address``,
    or starts a local one in this process with this machine's CPUs (shut down at the end). ``verbose``
    is Ray's progress output (0: none).
    """
    out = Path(out).resolve()  # Ray workers run in their own working directory
    if (out / SPEC).exists():
        raise FileExistsError(f"tune: {out} already holds a search; choose another output directory")
    if num_samples is not None:
        spec = spec.model_copy(update={"n_samples": num_samples})
    if spec.demos != "zoo" and Path(spec.demos).exists():
        spec = spec.model_copy(update={"demos": str(Path(spec.demos).resolve())})
    first = check(spec)
    ray = import_ray()
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    scheduler: Any = FIFOScheduler()
    if spec.scheduler == "asha":
        asha = spec.asha or Asha()
        max_t, grace_period = asha.max_t or first.budget, asha.grace_period or first.eval_every
        # Resolved once here, so every trial knows the max_t at which ASHA stops it.
        spec = spec.model_copy(
            update={"asha": Asha(**{**asha.model_dump(), "max_t": max_t, "grace_period": grace_period})}
        )
        scheduler = ASHAScheduler(
            time_attr="progress", max_t=max_t, grace_period=grace_period, reduction_factor=asha.reduction_factor
        )
    out.mkdir(parents=True, exist_ok=True)
    serialization.write_text_atomic(out / SPEC, spec.model_dump_json(indent=2))
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        name = functools.partial(trial_name, spec.algorithm)
        tuner = ray_tune.Tuner(
            ray_tune.with_resources(
                ray_tune.with_parameters(_trial, spec_json=spec.model_dump_json(), out=str(out)), resources(spec)
            ),
            param_space=param_space(spec),
            tune_config=ray_tune.TuneConfig(
                metric=spec.metric,
                mode="max",
                scheduler=scheduler,
                search_alg=BasicVariantGenerator(random_state=spec.sample_seed, max_concurrent=max_concurrent or 0),
                num_samples=spec.n_samples,
                trial_name_creator=name,
                trial_dirname_creator=name,
            ),
            run_config=ray_tune.RunConfig(storage_path=str(out), name=RAY_DIR, verbose=verbose),
        )
        grid = tuner.fit()
        trials = [_trial_record(grid[i], out) for i in range(len(grid))]
    finally:
        if started:
            ray.shutdown()
    best = _best(spec, trials)
    if best is not None:
        serialization.write_text_atomic(out / BEST, json.dumps(best, indent=2))
    return TuneResult(trials, best, out)


def _trial_record(result: Any, out: Path) -> Trial:
    name = Path(result.path).name
    m = result.metrics or {}
    return Trial(
        name=name,
        params=dict(result.config or {}),
        run_dir=out / TRIALS / name,
        progress=int(m["progress"]) if "progress" in m else None,
        scores={k: float(m[k]) for k in METRICS if k in m},
        complete=bool(m.get("complete", False)),
        error=str(result.error) if result.error is not None else None,
    )


def _best(spec: TuneSpec, trials: list[Trial]) -> dict[str, Any] | None:
    """``best.json``: the trial with the highest last score among complete ones (among all, if none is)."""
    scored = [t for t in trials if spec.metric in t.scores]
    pool = [t for t in scored if t.complete] or scored
    if not pool:
        return None
    t = max(pool, key=lambda t: t.scores[spec.metric])
    return {
        "metric": spec.metric,
        "score": t.scores[spec.metric],
        "params": t.params,
        "config": json.loads(make_config(spec, t.params).to_json()),
        "run_dir": str(t.run_dir),
        "trial": t.name,
        "progress": t.progress,
        "scores": t.scores,
    }


__all__ = [
    "BEST",
    "EVALUATIONS",
    "METRICS",
    "NEEDS_RAY",
    "SPEC",
    "TRIALS",
    "Asha",
    "Schedule",
    "Trial",
    "TuneResult",
    "TuneSpec",
    "check",
    "import_ray",
    "make_config",
    "param_space",
    "run_tune",
    "schedule",
    "scores",
    "trial_name",
]
