"""The driver: trains any offline ``(init, update)`` algorithm for N seeds at once.

    result = train(bc, bc.Config(), demos, env, seeds=range(8), n_epochs=10)

``init`` is vmapped over per-seed keys and ``update`` over the stacked states, so N seeds cost one
batched computation per step. Seed ``i``'s minibatches are drawn from its own key
(``fold_in(data_key_i, epoch)`` → a permutation), so its results never depend on which other seeds
run beside it. Everything host-side lives here: batching, evaluation schedule, JSONL metrics,
safetensors checkpoints, resume and the progress bar. The algorithm files stay pure math.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from imitation_fn.core import checks, random, serialization, tree
from imitation_fn.core.config import Config
from imitation_fn.data.types import Transitions
from imitation_fn.envs.base import Env
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.training.logger import MetricsWriter, ProgressBar

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: final states stacked over seeds and the last evaluation."""

    states: Any  # the algorithm's State with a leading (n_seeds,) axis
    seeds: list[int]
    steps: int  # gradient steps taken per seed
    eval_returns: Tensor  # (n_seeds, n_eval_episodes): returns of the final evaluation


def seed_keys(seeds: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Per-seed ``(init, data, eval)`` keys, each ``(n_seeds, 2)``; seed i's keys depend on seed i only."""
    keys = torch.stack([random.split(random.key(s), 3) for s in seeds])
    return keys[:, 0], keys[:, 1], keys[:, 2]


def _validate(data: Transitions, env: Env, batch_size: int) -> None:
    if len(data) == 0:
        raise ValueError("train: the dataset is empty (0 transitions)")
    obs_shape = tuple(env.observation_space.shape or ())
    if tuple(data.obs.shape[1:]) != obs_shape:
        raise ValueError(
            f"train: demonstrations have observations of shape {tuple(data.obs.shape[1:])}, "
            f"but the environment's observation space has shape {obs_shape}"
        )
    checks.assert_finite(data.obs, name="demonstrations.obs")
    checks.assert_finite(data.acts, name="demonstrations.acts")
    if len(data) < batch_size:
        raise ValueError(f"train: the dataset has {len(data)} transitions, fewer than batch_size={batch_size}")


@functools.cache
def make_update(algo: ModuleType, compile: bool = False) -> Callable[[Any, Any], tuple[Any, dict[str, Tensor]]]:
    """``vmap(algo.update)``, optionally under ``torch.compile`` (compile outside the transform).

    Cached, so every run in a process shares one compiled function (and its compiled graphs).
    """
    update = torch.func.vmap(algo.update)
    return torch.compile(update) if compile else update


def train(
    algo: ModuleType,
    cfg: Config,
    data: Transitions,
    env: Env,
    *,
    seeds: Sequence[int] = (0,),
    n_epochs: int | None = None,
    n_batches: int | None = None,
    eval_every: int | None = None,
    log_every: int = 100,
    log_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    compile: bool = False,
    progress: bool = True,
    env_id: str | None = None,
) -> TrainResult:
    """Train ``algo`` (a module with ``init``/``update``/``policy``) on ``data`` for every seed.

    Exactly one of ``n_epochs`` and ``n_batches`` (``imitation``'s BC.train convention). ``env``
    gives the spaces and runs evaluation: ``env.n_envs`` episodes per seed every ``eval_every``
    steps and at the end. With ``log_dir``: metrics to ``metrics.jsonl``, the config to
    ``config.json`` and a checkpoint every ``checkpoint_every`` steps and at the end; ``resume``
    continues from that checkpoint and gives the same result as an uninterrupted run. ``env_id``, when
    given, is recorded in the checkpoint (``analyze`` reads it).
    """
    seeds = check_seeds(seeds, "train")
    if (n_epochs is None) == (n_batches is None):
        raise ValueError("train: give exactly one of n_epochs and n_batches")
    batch_size = int(cfg.batch_size)  # type: ignore[attr-defined]
    _validate(data, env, batch_size)
    batches_per_epoch = len(data) // batch_size  # the last partial batch is dropped, as imitation's loader does
    total = n_batches if n_batches is not None else int(n_epochs or 0) * batches_per_epoch

    init_keys, data_keys, eval_keys = seed_keys(seeds)
    states = init_states(algo, cfg, init_keys, env.observation_space, env.action_space)
    update = make_update(algo, compile)

    def evaluate(states: Any, step: int) -> Tensor:
        return evaluate_at(algo, env, states, eval_keys, step)

    out, states, start, writer = open_run(log_dir, resume, states, cfg, seeds, "train")

    def permutations(epoch: int) -> Tensor:
        return torch.func.vmap(lambda k: random.permutation(random.fold_in(k, epoch), len(data)))(data_keys)

    eval_returns: Tensor | None = None
    epoch_cached, perms = -1, torch.empty(0)
    name = getattr(algo, "__name__", "algo").rsplit(".", 1)[-1]
    with ProgressBar(total, f"{name} × {len(seeds)} seeds", enabled=progress) as bar:
        bar.advance(start)
        for step in range(start, total):
            epoch, j = divmod(step, batches_per_epoch)
            if epoch != epoch_cached:
                epoch_cached, perms = epoch, permutations(epoch)
            idx = perms[:, j * batch_size : (j + 1) * batch_size]  # (n_seeds, batch_size)
            batch = tree.index(data, idx)  # (n_seeds, batch_size, ...)
            states, metrics = update(states, batch)
            done = step + 1
            if done % log_every == 0 or done == total:
                writer.write(done, "train", metrics)
                bar.advance(done, {"loss": metrics["loss"]} if "loss" in metrics else None)
            if (eval_every and done % eval_every == 0) or done == total:
                eval_returns = evaluate(states, done)
                writer.write(done, "eval", {"return_mean": eval_returns.mean(-1), "returns": eval_returns})
                bar.advance(done, {"return": eval_returns})
            else:
                bar.advance(done)
            if out is not None and ((checkpoint_every and done % checkpoint_every == 0) or done == total):
                save_checkpoint(out, states, seeds, done, name, env_id)
    if eval_returns is None:  # resumed a run that had already finished: evaluate, nothing new to log
        eval_returns = evaluate(states, total)
    return TrainResult(states=states, seeds=seeds, steps=total, eval_returns=eval_returns)


def check_seeds(seeds: Sequence[int], who: str) -> list[int]:
    """``seeds`` as a list of distinct ints; raises a clear error otherwise."""
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"{who}: seeds must be a non-empty list of distinct integers, got {seeds}")
    return seeds


def open_run(
    log_dir: str | Path | None, resume: bool, states: Any, cfg: Config, seeds: Sequence[int], who: str
) -> tuple[Path | None, Any, int, MetricsWriter]:
    """Prepare a run directory: refuse to overwrite a run, or load its checkpoint when resuming.

    Returns ``(out, states, step, writer)``: the directory (None without ``log_dir``), the states to
    continue from, the step their checkpoint reached (0 for a new run) and the metrics writer.
    """
    out = Path(log_dir) if log_dir is not None else None
    step = 0
    if out is not None:
        if resume and (out / CHECKPOINT).exists():
            states, step = load_checkpoint(out, states, cfg, seeds)
        elif (out / CHECKPOINT).exists():
            raise FileExistsError(f"{who}: {out} already holds a run; pass resume=True or choose another log_dir")
        out.mkdir(parents=True, exist_ok=True)
        serialization.write_text_atomic(out / CONFIG, cfg.to_json())
    return out, states, step, MetricsWriter(out / METRICS if out is not None else None, seeds)


def evaluate_at(algo: ModuleType, env: Env, states: Any, eval_keys: Tensor, step: int) -> Tensor:
    """Each seed's evaluation returns ``(n_seeds, env.n_envs)`` at ``step``; the keys depend on seed and step only."""
    step_t = torch.full((eval_keys.shape[0],), step)
    return evaluate_seeds(algo, env, states, torch.func.vmap(random.fold_in)(eval_keys, step_t))


def init_states(
    algo: ModuleType, cfg: Config, keys: Tensor, observation_space: gym.Space[Any], action_space: gym.Space[Any]
) -> Any:
    """``vmap(algo.init)`` over ``keys: (n_seeds, 2)``: states stacked over seeds."""
    init = functools.partial(algo.init, cfg, observation_space=observation_space, action_space=action_space)
    return torch.func.vmap(init)(keys)


def evaluate_seeds(algo: ModuleType, env: Env, states: Any, keys: Tensor) -> Tensor:
    """Returns ``(n_seeds, env.n_envs)`` of each seed's ``algo.policy`` on ``env``, one vmapped evaluation."""
    return torch.func.vmap(lambda s, k: evaluate_policy(env, algo.policy(s), k).returns)(states, keys)


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """A run directory read back: its config, the states stacked over its seeds, and the step reached."""

    cfg: Config
    states: Any
    seeds: list[int]
    step: int


def load_run(
    algo: ModuleType, run_dir: str | Path, observation_space: gym.Space[Any], action_space: gym.Space[Any]
) -> SavedRun:
    """Load a run written by :func:`train`: needs only the code's ``init`` and the saved ``config.json``."""
    out = Path(run_dir)
    if not (out / CHECKPOINT).is_file() or not (out / CONFIG).is_file():
        raise FileNotFoundError(f"{out} is not a run directory (expected {CHECKPOINT} and {CONFIG})")
    meta = serialization.load_metadata(out / CHECKPOINT)
    name = algo.__name__.rsplit(".", 1)[-1]
    if meta.get("algorithm") != name:
        raise ValueError(f"{out} holds a {meta.get('algorithm')!r} run, not {name!r}")
    cfg = algo.Config.load(out / CONFIG)
    seeds = [int(s) for s in meta["seeds"]]
    template = init_states(algo, cfg, seed_keys(seeds)[0], observation_space, action_space)
    return SavedRun(cfg=cfg, states=serialization.load(out / CHECKPOINT, template), seeds=seeds, step=int(meta["step"]))


def save_checkpoint(
    out: Path, states: Any, seeds: Sequence[int], step: int, algo_name: str, env_id: str | None = None
) -> None:
    """States (stacked over seeds) as safetensors; step, seeds, algorithm and environment in its metadata."""
    meta: dict[str, Any] = {"step": step, "seeds": list(seeds), "algorithm": algo_name}
    if env_id is not None:
        meta["env"] = env_id
    serialization.save(out / CHECKPOINT, states, meta)


def load_checkpoint(out: Path, template: Any, cfg: Config, seeds: Sequence[int]) -> tuple[Any, int]:
    """States and step from ``out``; refuses a checkpoint written for other seeds or another config."""
    meta = serialization.load_metadata(out / CHECKPOINT)
    if list(meta.get("seeds", [])) != list(seeds):
        raise ValueError(f"resume: checkpoint in {out} is for seeds {meta.get('seeds')}, not {list(seeds)}")
    saved_cfg = json.loads((out / CONFIG).read_text()) if (out / CONFIG).exists() else None
    if saved_cfg is not None and saved_cfg != json.loads(cfg.to_json()):
        raise ValueError(f"resume: {out / CONFIG} differs from the config given; refusing to mix runs")
    return serialization.load(out / CHECKPOINT, template), int(meta["step"])


__all__ = [
    "SavedRun",
    "TrainResult",
    "check_seeds",
    "evaluate_at",
    "evaluate_seeds",
    "init_states",
    "load_checkpoint",
    "load_run",
    "make_update",
    "open_run",
    "save_checkpoint",
    "seed_keys",
    "train",
]
