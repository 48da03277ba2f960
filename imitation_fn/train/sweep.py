"""Hyperparameter sweeps: vmapped first, distributed second.

    spec = SweepSpec(algorithm="bc", env="CartPole-v1", grid={"lr": [1e-3, 3e-3], "l2_weight": [0.0, 1e-4]},
                     seeds=8, train={"n_batches": 500})
    result = run_sweep(spec, "sweeps/bc")                 # one vmapped training of 4 points × 8 seeds
    result = run_sweep(spec, "sweeps/bc", use_ray=True)   # the same runs as Ray tasks, one chunk each

A sweep is a grid (or random search) over ``Config`` fields × seeds. Each field is classified by what
it does to the algorithm's ``State`` (:func:`classify_fields`): a *tensor* field only changes 0-d
leaves (learning rates, entropy/L2 weights: ``optim.inject_hyperparams`` puts lr in the state), so
runs that differ in it share one vmapped training; a *structural* field (network sizes, batch size,
anything static or read by the driver) splits the runs into separate vmapped groups. Each group is
cut into chunks of at most ``chunk_size`` runs (to fit memory); a chunk is one call of
:func:`loop.train` (each run initialised with its own config, then one vmapped training) and, with
Ray, one task. Chunks write to ``OUT/chunks/chunk_NNN/`` (the loop's run directory plus ``runs.json``
and, once finished, ``result.json``), so a killed sweep resumes by re-running only the chunks without
``result.json``, each from its last checkpoint.

Seeds: run ``(point j, seed s)`` trains with driver seed ``s + seed_stride · j``, so every run has
its own random stream and its result does not depend on which other runs share its chunk.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import json
import math
import os
import shutil
import socket
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator
from torch import Tensor

from imitation_fn.core import random, serialization, tree
from imitation_fn.core.config import Config
from imitation_fn.data.rollout import flatten_trajectories
from imitation_fn.envs.task import Task
from imitation_fn.train import loop
from imitation_fn.train.run import CHECKPOINT, CHECKPOINT_EVERY_SECONDS

SPEC = "sweep.json"
RUNS = "runs.json"
RESULT = "result.json"
CHUNKS = "chunks"


# --- The sweep description -----------------------------------------------------------------------


class Distribution(Config):
    """One random-search dimension: exactly one of ``uniform``, ``loguniform``, ``choice``."""

    uniform: tuple[float, float] | None = None
    """Uniform on ``[low, high]``."""
    loguniform: tuple[float, float] | None = None
    """Log-uniform on ``[low, high]`` (both > 0)."""
    choice: list[Any] | None = None
    """One of these values, uniformly."""

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [n for n in ("uniform", "loguniform", "choice") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of uniform, loguniform, choice (got {given or 'none'})")
        if self.loguniform is not None and min(self.loguniform) <= 0:
            raise ValueError(f"loguniform bounds must be > 0, got {self.loguniform}")
        return self

    def sample(self, key: Tensor) -> Any:
        u = float(random.uniform(key, (), dtype=torch.float64))
        if self.uniform is not None:
            return self.uniform[0] + u * (self.uniform[1] - self.uniform[0])
        if self.loguniform is not None:
            lo, hi = math.log(self.loguniform[0]), math.log(self.loguniform[1])
            return math.exp(lo + u * (hi - lo))
        assert self.choice is not None
        return self.choice[min(int(u * len(self.choice)), len(self.choice) - 1)]


class SweepSpec(Config):
    """A sweep, as written in a YAML/JSON file (every key below; only ``algorithm`` is required)."""

    algorithm: Literal["bc", "dagger", "gail", "airl", "density", "mce_irl", "preference_comparisons", "ppo", "sac"]
    """The algorithm (a key of :data:`ALGORITHMS`)."""
    env: str = "CartPole-v1"
    """Environment id (a torch environment: the runs are vmapped)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Config fields shared by every run (validated by the algorithm's ``Config``)."""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Grid search: every combination of these field values."""
    random: dict[str, Distribution] = Field(default_factory=dict)
    """Random search: ``n_samples`` points drawn from these distributions (crossed with ``grid``)."""
    n_samples: PositiveInt = 1
    """Points drawn for the random search."""
    sample_seed: int = 0
    """Seed of the random-search draws."""
    seeds: PositiveInt | list[int] = 8
    """Seeds per point: a count (0, 1, ...) or a list."""
    seed_stride: PositiveInt = 1000
    """Run ``(point j, seed s)`` uses driver seed ``s + seed_stride · j``; seeds must lie in ``[0, seed_stride)``."""
    chunk_size: PositiveInt | None = None
    """Runs per vmapped chunk (and per Ray task); None: one chunk per structural group."""
    train: dict[str, Any] = Field(default_factory=dict)
    """Driver budget and schedule, e.g. ``{"n_batches": 500, "eval_every": 100}`` (BC) or
    ``{"total_timesteps": 50000}`` (PPO/SAC); see the runner's ``train_keys``."""
    demos: str = "zoo"
    """BC, GAIL, AIRL, density: demonstrations directory, or ``"zoo"`` for the shipped expert's demos of ``env``."""
    n_demos: PositiveInt | None = None
    """BC, GAIL, AIRL, density: use only the first ``n_demos`` episodes."""
    n_eval_episodes: PositiveInt = 10
    """Evaluation episodes per run."""
    checkpoint_every: NonNegativeFloat = CHECKPOINT_EVERY_SECONDS
    """Checkpoint each chunk at least every this many seconds (and at each evaluation and the end), so a killed
    chunk resumes mid-way."""
    device: str = "auto"
    """Where each chunk (or Tune trial) trains: cpu, cuda, cuda:N or auto (cuda when torch sees a GPU)."""

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        both = set(self.grid) & set(self.random)
        if both:
            raise ValueError(f"fields {sorted(both)} are in both grid and random")
        empty = [k for k, v in self.grid.items() if not v]
        if empty:
            raise ValueError(f"grid fields {empty} have no values")
        bad = [s for s in self.seed_list if not 0 <= s < self.seed_stride]
        if bad or len(set(self.seed_list)) != len(self.seed_list):
            raise ValueError(f"seeds must be distinct and in [0, seed_stride={self.seed_stride}), got {self.seed_list}")
        return self

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @classmethod
    def from_file(cls, path: str | Path) -> SweepSpec:
        """Read a ``.yaml``/``.yml`` or ``.json`` sweep file."""
        p = Path(path)
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{p}: a sweep file holds a mapping (algorithm, env, grid, seeds, ...)")
        return cls.model_validate(data)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of the sweep: point ``point`` (its field values ``params``) × seed ``seed``."""

    index: int
    point: int
    seed: int
    run_seed: int  # the driver seed: seed + seed_stride * point
    params: dict[str, Any]
    chunk: int


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The swept field values: the grid's product × ``n_samples`` random draws (just the grid without ``random``)."""
    names = list(spec.grid)
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*spec.grid.values())]
    if not spec.random:
        return grid
    draws = []
    for i in range(spec.n_samples):
        k = random.fold_in(random.key(spec.sample_seed), i)
        draws.append({n: d.sample(random.fold_in(k, j)) for j, (n, d) in enumerate(sorted(spec.random.items()))})
    return [{**g, **d} for g in grid for d in draws]


# --- The algorithms a sweep can train --------------------------------------------------------------

RL_KEYS = ("total_timesteps", "eval_every", "compile")


@dataclasses.dataclass(frozen=True)
class Entry:
    """How a sweep trains one algorithm: the train module holding its loop spec and ``make_task``."""

    module: str
    spec: str  # the loop.Spec's name in ``module``
    train_keys: tuple[str, ...]  # the keys ``train:`` accepts
    demos: bool = False  # its task holds the sweep's demonstrations


ALGORITHMS: dict[str, Entry] = {
    "bc": Entry(
        "imitation_fn.train.driver", "BC_SPEC", ("n_epochs", "n_batches", "eval_every", "log_every", "compile"), True
    ),
    "dagger": Entry("imitation_fn.train.dagger", "SPEC", RL_KEYS),
    "gail": Entry("imitation_fn.train.adversarial", "GAIL_SPEC", RL_KEYS, True),
    "airl": Entry("imitation_fn.train.adversarial", "AIRL_SPEC", RL_KEYS, True),
    "density": Entry("imitation_fn.train.density", "SPEC", RL_KEYS, True),
    "mce_irl": Entry("imitation_fn.train.mce_irl", "SPEC", ("eval_every", "compile")),
    "preference_comparisons": Entry("imitation_fn.train.preference_comparisons", "SPEC", ("eval_every", "compile")),
    "ppo": Entry("imitation_fn.train.rl", "PPO_SPEC", RL_KEYS),
    "sac": Entry("imitation_fn.train.rl", "SAC_SPEC", RL_KEYS),
}
"""Every algorithm, by the name a sweep file gives it. Each trains through :func:`loop.train`."""


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: one per sweep spec and process
class Context:
    """What a sweep needs once per process: the algorithm's spec, its data, and its tasks by config."""

    spec: loop.Spec
    sweep: SweepSpec
    make_task: Callable[..., Task]
    demos: list[Any] | None

    @property
    def algo(self) -> types.ModuleType:
        return self.spec.algo

    def budget(self, cfg: Config) -> int:
        """The run's budget in the spec's unit, from the sweep's ``train`` keys."""
        name, train = self.sweep.algorithm, self.sweep.train
        if name == "mce_irl":
            return int(cfg.max_iter)  # type: ignore[attr-defined]
        if name == "preference_comparisons":  # rounds: the initial reward training, then num_iterations
            return int(cfg.num_iterations) + 1  # type: ignore[attr-defined]
        if name == "bc":
            if train.get("n_batches") is not None:
                return int(train["n_batches"])
            data = flatten_trajectories(self.demos or [])
            return int(train.get("n_epochs") or 1) * loop.minibatches_per_epoch(cfg, data)
        total = int(train.get("total_timesteps", 0))
        if total <= 0:
            raise ValueError(f"sweep: {name} needs train.total_timesteps > 0")
        if name in ("gail", "airl"):  # whole rounds only, as imitation's train(total_timesteps)
            from imitation_fn.train.adversarial import whole_rounds

            return whole_rounds(cfg, total)  # type: ignore[arg-type]
        return total

    def task(self, cfg: Config) -> Task:
        return _task(self, cfg.to_json())

    def init_one(self, cfg: Config, key: Tensor) -> Any:
        """One run's initial state (to tell tensor fields from structural ones)."""
        return self.algo.init(cfg, key, self.task(cfg))


@functools.cache
def _task(ctx: Context, cfg_json: str) -> Task:
    cfg = ctx.algo.Config.model_validate_json(cfg_json)
    data = {"demos": ctx.demos} if ctx.demos is not None else {}
    return ctx.make_task(cfg, ctx.sweep.env, budget=ctx.budget(cfg), n_eval_episodes=ctx.sweep.n_eval_episodes, **data)


def _demos(spec: SweepSpec) -> list[Any]:
    """The spec's expert trajectories (the first ``n_demos``)."""
    from imitation_fn.data import serialize
    from imitation_fn.policies import zoo

    trajs = serialize.load(zoo.demos_path(spec.env) if spec.demos == "zoo" else Path(spec.demos))
    return list(trajs[: spec.n_demos] if spec.n_demos else trajs)


def context(spec: SweepSpec) -> Context:
    """The sweep's algorithm, data and tasks (built once per process)."""
    return _context(spec.model_dump_json())


@functools.cache
def _context(spec_json: str) -> Context:
    sweep = SweepSpec.model_validate_json(spec_json)
    entry = ALGORITHMS[sweep.algorithm]
    module = importlib.import_module(entry.module)
    return Context(getattr(module, entry.spec), sweep, module.make_task, _demos(sweep) if entry.demos else None)


# --- Tensor vs structural fields -------------------------------------------------------------------


def _slots(a: Any, b: Any) -> list[int] | None:
    """Indices of the leaves where states ``a`` and ``b`` differ, when all are 0-d and the structure
    (static fields included) is equal; None when the difference is structural."""
    flat_a, spec_a = tree.flatten(a)
    flat_b, spec_b = tree.flatten(b)
    if spec_a != spec_b or any(x.shape != y.shape or x.dtype != y.dtype for x, y in zip(flat_a, flat_b, strict=True)):
        return None
    differ = [i for i, (x, y) in enumerate(zip(flat_a, flat_b, strict=True)) if not torch.equal(x, y)]
    if any(flat_a[i].ndim != 0 for i in differ):
        return None
    return differ


def classify_fields(
    init_one: Callable[[Config, Tensor], Any],
    make_cfg: Callable[[Mapping[str, Any]], Config],
    values: Mapping[str, list[Any]],
) -> dict[str, bool]:
    """``{field: is_tensor}`` for each swept field.

    A field is a *tensor* field when changing it (everything else at the base config) changes only
    0-d leaves of ``init``'s state, at least one, identically for two different keys: then runs that
    differ in it can share one vmapped training. Otherwise (shapes, static fields, or no visible
    effect on the state, like a batch size the driver reads) it is *structural*.
    """
    keys = (random.key(0), random.key(1))
    out: dict[str, bool] = {}
    for name, vals in values.items():
        distinct = list({json.dumps(v, sort_keys=True): v for v in vals}.values())
        if len(distinct) < 2:
            out[name] = False  # constant: nothing to vmap over
            continue
        is_tensor = True
        for key in keys:
            ref = init_one(make_cfg({name: distinct[0]}), key)
            for v in distinct[1:]:
                slots = _slots(ref, init_one(make_cfg({name: v}), key))
                is_tensor = is_tensor and bool(slots)
        out[name] = is_tensor
    return out


# --- Planning and running chunks ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """The runs of a sweep, their chunks, and which fields are vmapped (tensor) or grouped (structural)."""

    runs: list[Run]
    chunks: list[list[int]]  # run indices of each chunk
    tensor_fields: list[str]
    structural_fields: list[str]


def _make_cfg(spec: SweepSpec, algo: types.ModuleType) -> Callable[[Mapping[str, Any]], Config]:
    def make(params: Mapping[str, Any]) -> Config:
        cfg: Config = algo.Config(**{**spec.config, **params})
        return cfg

    return make


def plan(spec: SweepSpec) -> Plan:
    """Expand ``spec`` into runs, classify the swept fields and cut the structural groups into chunks."""
    ctx = _context(spec.model_dump_json())
    train_keys = ALGORITHMS[spec.algorithm].train_keys
    unknown = set(spec.train) - set(train_keys)
    if unknown:
        raise ValueError(f"sweep: unknown train keys {sorted(unknown)} for {spec.algorithm}; use {train_keys}")
    pts = points(spec)
    make_cfg = _make_cfg(spec, ctx.algo)
    for p in pts:
        make_cfg(p)  # validate every point before training anything
    swept = {name: [p[name] for p in pts] for name in (pts[0] if pts else {})}
    kinds = classify_fields(ctx.init_one, make_cfg, swept)
    structural = [n for n, t in kinds.items() if not t]
    groups: dict[str, list[int]] = {}
    for j, p in enumerate(pts):
        groups.setdefault(json.dumps({n: p[n] for n in structural}, sort_keys=True), []).append(j)
    seeds = spec.seed_list
    runs: list[Run] = []
    chunks: list[list[int]] = []
    for members in groups.values():
        group_runs = [(j, s) for j in members for s in seeds]
        size = spec.chunk_size or len(group_runs)
        for start in range(0, len(group_runs), size):
            chunk = []
            for j, s in group_runs[start : start + size]:
                run = Run(len(runs), j, s, s + spec.seed_stride * j, pts[j], len(chunks))
                runs.append(run)
                chunk.append(run.index)
            chunks.append(chunk)
    return Plan(runs, chunks, [n for n, t in kinds.items() if t], structural)


def chunk_dir(out: str | Path, chunk: int) -> Path:
    return Path(out) / CHUNKS / f"chunk_{chunk:03d}"


def _prepare_resume(d: Path) -> bool:
    """Make a chunk directory safe to (re)start: True to resume from its checkpoint.

    Without a checkpoint the partial directory is removed; with one, the driver drops the metric rows logged
    after it (the run died between logging and saving), so the resumed run does not repeat them.
    """
    if not (d / CHECKPOINT).exists():
        if d.exists():
            shutil.rmtree(d)
        return False
    return True


def run_chunk(spec_json: str, out: str, chunk: int, progress: bool = False) -> dict[str, Any]:
    """Train one chunk (one vmapped driver call) into ``OUT/chunks/chunk_NNN``; returns its ``result.json``.

    Runs in this process or as a Ray task: it needs only the spec, the output directory and the index.
    Skips a chunk that already finished.
    """
    d = chunk_dir(out, chunk)
    if (d / RESULT).exists():
        return dict(json.loads((d / RESULT).read_text()))
    spec = SweepSpec.model_validate_json(spec_json)
    ctx = _context(spec_json)
    sweep_plan = plan(spec)
    runs = [sweep_plan.runs[i] for i in sweep_plan.chunks[chunk]]
    make_cfg = _make_cfg(spec, ctx.algo)
    cfgs = [make_cfg(r.params) for r in runs]  # differ only in tensor fields: one vmapped training
    resume = _prepare_resume(d)
    d.mkdir(parents=True, exist_ok=True)
    serialization.write_text_atomic(d / RUNS, json.dumps([_run_json(r, make_cfg) for r in runs], indent=1))
    train = spec.train
    loop_spec = ctx.spec
    if train.get("log_every") is not None:
        loop_spec = dataclasses.replace(loop_spec, log_every=int(train["log_every"]))
    result = loop.train(
        loop_spec,
        cfgs,
        ctx.task(cfgs[0]),
        budget=ctx.budget(cfgs[0]),
        seeds=[r.run_seed for r in runs],
        eval_every=train.get("eval_every"),
        log_dir=d,
        checkpoint_every=spec.checkpoint_every,
        resume=resume,
        compile=bool(train.get("compile", False)),
        progress=progress,
        env_id=spec.env,
        device=spec.device,
    )
    returns = result.evaluation.get("returns")
    record = {
        "chunk": chunk,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "runs": [r.index for r in runs],
        "steps": result.steps,
        "eval_returns": returns.tolist() if returns is not None else [[] for _ in runs],
    }
    serialization.write_text_atomic(d / RESULT, json.dumps(record))
    return record


def _run_json(r: Run, make_cfg: Callable[[Mapping[str, Any]], Config]) -> dict[str, Any]:
    return {**dataclasses.asdict(r), "config": json.loads(make_cfg(r.params).to_json())}


# --- The sweep ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Every run of a finished sweep and its final evaluation returns ``(n_runs, n_eval_episodes)``."""

    runs: list[Run]
    eval_returns: Tensor
    plan: Plan


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    use_ray: bool = False,
    resume: bool = False,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Run every chunk of ``spec`` into ``out`` (locally one after another, or as Ray tasks) and collect results.

    ``resume`` continues a sweep in ``out`` with the same spec: finished chunks are skipped, the others
    restart from their last checkpoint. ``use_ray`` needs ``ray`` (``pip install imitation-fn[ray]``);
    it uses the running Ray instance, or starts a local one. ``on_chunk(done, total)`` reports progress.
    """
    out = Path(out)
    spec_json = spec.model_dump_json()
    if (out / SPEC).exists():
        if not resume:
            raise FileExistsError(
                f"sweep: {out} already holds a sweep; pass resume=True (--resume) or choose another directory"
            )
        if json.loads((out / SPEC).read_text()) != json.loads(spec_json):
            raise ValueError(f"sweep: the spec in {out / SPEC} differs from the one given; refusing to mix sweeps")
    sweep_plan = plan(spec)
    out.mkdir(parents=True, exist_ok=True)
    serialization.write_text_atomic(out / SPEC, spec.model_dump_json(indent=2))
    make_cfg = _make_cfg(spec, _context(spec_json).algo)
    serialization.write_text_atomic(out / RUNS, json.dumps([_run_json(r, make_cfg) for r in sweep_plan.runs], indent=1))
    n = len(sweep_plan.chunks)
    if use_ray:
        if not ray_available():
            raise ImportError("run_sweep(use_ray=True) needs Ray: pip install 'imitation-fn[ray]'")
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"))
        task = ray.remote(num_cpus=1)(_ray_chunk)
        pending = [task.remote(spec_json, str(out.resolve()), c) for c in range(n)]
        done = 0
        while pending:
            ready, pending = ray.wait(pending)
            ray.get(ready)
            done += len(ready)
            if on_chunk:
                on_chunk(done, n)
    else:
        for c in range(n):
            run_chunk(spec_json, str(out), c, progress)
            if on_chunk:
                on_chunk(c + 1, n)
    return load_sweep(out)


def _ray_chunk(spec_json: str, out: str, chunk: int) -> dict[str, Any]:
    torch.set_num_threads(1)  # one CPU per task; small networks run best single-threaded
    return run_chunk(spec_json, out, chunk)


def load_sweep(out: str | Path) -> SweepResult:
    """The runs of the sweep in ``out`` and their final returns; raises if a chunk has not finished."""
    out = Path(out)
    if not (out / SPEC).exists():
        raise FileNotFoundError(f"{out} is not a sweep directory (no {SPEC})")
    spec = SweepSpec.model_validate_json((out / SPEC).read_text())
    sweep_plan = plan(spec)
    returns: list[Tensor | None] = [None] * len(sweep_plan.runs)
    missing = []
    for c, members in enumerate(sweep_plan.chunks):
        path = chunk_dir(out, c) / RESULT
        if not path.exists():
            missing.append(c)
            continue
        record = json.loads(path.read_text())
        for i, r in zip(members, record["eval_returns"], strict=True):
            returns[i] = torch.tensor(r)
    if missing:
        raise RuntimeError(f"sweep in {out}: chunks {missing} have not finished; run it again with resume")
    return SweepResult(sweep_plan.runs, torch.stack([r for r in returns if r is not None]), sweep_plan)


def load_run_state(out: str | Path, run: int) -> Any:
    """The final ``State`` of run ``run`` (an index into ``load_sweep(out).runs``), from its chunk's checkpoint."""
    out = Path(out)
    spec = SweepSpec.model_validate_json((out / SPEC).read_text())
    ctx = _context(spec.model_dump_json())
    sweep_plan = plan(spec)
    r = sweep_plan.runs[run]
    members = sweep_plan.chunks[r.chunk]
    template = tree.stack(
        [ctx.init_one(_make_cfg(spec, ctx.algo)(sweep_plan.runs[i].params), random.key(0)) for i in members]
    )
    states = serialization.load(chunk_dir(out, r.chunk) / CHECKPOINT, template)
    return tree.index(states, members.index(run))


def finished_chunks(out: str | Path) -> list[int]:
    """Indices of the chunks of the sweep in ``out`` that have a ``result.json``."""
    root = Path(out) / CHUNKS
    if not root.is_dir():
        return []
    return sorted(int(p.name.split("_")[1]) for p in root.iterdir() if (p / RESULT).exists())


def swept_fields(spec: SweepSpec | Mapping[str, Any]) -> set[str]:
    """The fields that take more than one value in the sweep (the ones worth naming in a label)."""
    s = spec if isinstance(spec, SweepSpec) else SweepSpec.model_validate(spec)
    return {k for k, v in s.grid.items() if len({json.dumps(x) for x in v}) > 1} | set(s.random)


def label(algorithm: str, params: Mapping[str, Any]) -> str:
    """``bc[lr=0.001, l2_weight=0]``: a sweep point's name in tables and plots."""
    if not params:
        return algorithm
    return f"{algorithm}[{', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in params.items())}]"


__all__ = [
    "ALGORITHMS",
    "Context",
    "Distribution",
    "Entry",
    "Plan",
    "Run",
    "SweepResult",
    "SweepSpec",
    "chunk_dir",
    "classify_fields",
    "context",
    "finished_chunks",
    "label",
    "load_run_state",
    "load_sweep",
    "plan",
    "points",
    "ray_available",
    "run_chunk",
    "run_sweep",
    "swept_fields",
]
