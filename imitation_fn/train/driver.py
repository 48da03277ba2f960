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
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from imitation_fn.core import checks, random, serialization, tree
from imitation_fn.core.config import Config
from imitation_fn.core.errors import InputError
from imitation_fn.data.types import Transitions
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.policies.io import save_policy
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.run import (
    CHECKPOINT,
    CHECKPOINT_EVERY_SECONDS,
    CONFIG,
    DEFAULT_LOG_FORMATS,
    check_config_file,
    open_run,
)


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
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    compile: bool = False,
    progress: bool = True,
    env_id: str | None = None,
) -> TrainResult:
    """Train ``algo`` (a module with ``init``/``update``/``policy``) on ``data`` for every seed.

    Exactly one of ``n_epochs`` and ``n_batches`` (``imitation``'s BC.train convention). ``env``
    gives the spaces and runs evaluation: ``env.n_envs`` episodes per seed every ``eval_every``
    steps and at the end (a gymnasium env is evaluated seed by seed on the host). With ``log_dir``
    (see :mod:`imitation_fn.train.run`): metrics, the config, and a checkpoint every
    ``checkpoint_every`` seconds, at every evaluation (before it) and at the end; ``resume``
    continues from that checkpoint and gives the same result as an uninterrupted run. ``env_id``,
    when given, is recorded in the checkpoint (``eval --run`` and ``analyze`` read it).
    """
    seeds = check_seeds(seeds, "train")
    if (n_epochs is None) == (n_batches is None):
        raise ValueError("train: give exactly one of n_epochs and n_batches")
    for name, value in (("n_epochs", n_epochs), ("n_batches", n_batches), ("eval_every", eval_every)):
        if value is not None and value < 1:
            raise InputError(f"train: {name} must be >= 1, got {value}")
    batch_size = int(cfg.batch_size)  # type: ignore[attr-defined]
    _validate(data, env, batch_size)
    batches_per_epoch = len(data) // batch_size  # the last partial batch is dropped, as imitation's loader does
    total = n_batches if n_batches is not None else int(n_epochs or 0) * batches_per_epoch

    init_keys, data_keys, eval_keys = seed_keys(seeds)
    states = init_states(algo, cfg, init_keys, env.observation_space, env.action_space)
    update = make_update(algo, compile)
    name = getattr(algo, "__name__", "algo").rsplit(".", 1)[-1]
    run, states, start = open_run(
        log_dir,
        resume,
        states,
        cfg,
        seeds,
        algorithm=name,
        env_id=env_id,
        budget=total,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
    )
    if name in POLICY_EXPORTS:
        run.export = lambda out, states: export_policies(out / "policies", states, seeds, env, POLICY_EXPORTS[name])

    def permutations(epoch: int) -> Tensor:
        return torch.func.vmap(lambda k: random.permutation(random.fold_in(k, epoch), len(data)))(data_keys)

    def is_eval_point(step: int) -> bool:
        return bool(eval_every and step % eval_every == 0) or step == total

    def evaluate(states: Any, step: int) -> Tensor:
        returns = evaluate_at(algo, env, states, eval_keys, step)
        run.write_eval(step, {"return_mean": returns.mean(-1), "returns": returns})
        bar.advance(step, {"return": returns})
        return returns

    eval_returns: Tensor | None = None
    epoch_cached, perms = -1, torch.empty(0)
    with ProgressBar(total, f"{name} × {len(seeds)} seeds", enabled=progress) as bar:
        bar.advance(start)
        if run.pending_eval:
            eval_returns = evaluate(states, start)  # its checkpoint was saved, its evaluation not logged
        for step in range(start, total):
            epoch, j = divmod(step, batches_per_epoch)
            if epoch != epoch_cached:
                epoch_cached, perms = epoch, permutations(epoch)
            idx = perms[:, j * batch_size : (j + 1) * batch_size]  # (n_seeds, batch_size)
            batch = tree.index(data, idx)  # (n_seeds, batch_size, ...)
            states, metrics = update(tree.contiguous(states), batch)  # see tree.contiguous: exact resumes
            done = step + 1
            if done % log_every == 0 or done == total:
                run.writer.write(done, "train", metrics)
                bar.advance(done, {"loss": metrics["loss"]} if "loss" in metrics else None)
            evaluating = is_eval_point(done)
            run.after_update(states, done, evaluating=evaluating)
            if evaluating:
                eval_returns = evaluate(states, done)
            else:
                bar.advance(done)
    if eval_returns is None:  # resumed a run that had already finished and logged its evaluation
        eval_returns = evaluate_at(algo, env, states, eval_keys, total)
    return TrainResult(states=states, seeds=seeds, steps=total, eval_returns=eval_returns)


def check_seeds(seeds: Sequence[int], who: str) -> list[int]:
    """``seeds`` as a list of distinct ints; raises a clear error otherwise."""
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"{who}: seeds must be a non-empty list of distinct integers, got {seeds}")
    return seeds


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
    """Returns ``(n_seeds, env.n_envs)`` of each seed's ``algo.policy`` on ``env``.

    One vmapped evaluation on a torch env; a gymnasium env (``GymEnv``) steps on the host, seed by seed.
    """
    if isinstance(env, GymEnv):
        return torch.stack(
            [
                evaluate_gym_policy(env, algo.policy(state), key, env.n_envs).returns
                for state, key in zip(tree.unstack(states), keys, strict=True)
            ]
        )
    return torch.func.vmap(lambda s, k: evaluate_policy(env, algo.policy(s), k).returns)(states, keys)


PolicyExport = tuple[str, Any, dict[str, Any], Any]
"""``(kind, params, config, obs_norm)`` of one seed's acting policy: :func:`policies.save_policy`'s arguments."""

# The policy files an offline algorithm's runs export beside their checkpoint (``OUT/policies/seed_<s>``).
POLICY_EXPORTS: dict[str, Callable[[Any], PolicyExport]] = {
    "bc": lambda state: ("mlp", state.params, {"activation": state.activation}, None),
}


def export_policies(
    out: Path, states: Any, seeds: Sequence[int], env: Env, policy_of: Callable[[Any], PolicyExport]
) -> list[Path]:
    """Each seed's acting policy as ``out/seed_<s>/`` (``policies.load_policy`` reads it); returns the paths."""
    paths = []
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        kind, params, config, obs_norm = policy_of(state)
        path = Path(out) / f"seed_{seed}"
        save_policy(path, kind, params, (env.observation_space, env.action_space), config, obs_norm)  # type: ignore[arg-type]
        paths.append(path)
    return paths


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
    """Load a run written by :func:`train`: needs only the code's ``init`` and the saved ``config.json``.

    Refuses (``InputError``) a directory without a run, a run of another algorithm, a ``config.json``
    edited after the checkpoint, and spaces other than the run's (naming the env it was trained on).
    """
    out = Path(run_dir)
    if not (out / CHECKPOINT).is_file() or not (out / CONFIG).is_file():
        raise InputError(f"{out} is not a run directory (expected {CHECKPOINT} and {CONFIG})")
    meta = serialization.load_metadata(out / CHECKPOINT)
    name = algo.__name__.rsplit(".", 1)[-1]
    if meta.get("algorithm") != name:
        raise InputError(f"{out} holds a {meta.get('algorithm')!r} run, not {name!r}")
    check_config_file(out)
    cfg = algo.Config.load(out / CONFIG)
    seeds = [int(s) for s in meta["seeds"]]
    template = init_states(algo, cfg, seed_keys(seeds)[0], observation_space, action_space)
    flat = serialization.load_flat(out / CHECKPOINT)  # a damaged file: its own error
    try:
        states = serialization.from_flat_dict(flat, template, what=str(out / CHECKPOINT))
    except ValueError as e:  # the checkpoint's shapes are another env's
        trained_on = f"trained on {meta['env']}" if "env" in meta else "trained on another environment"
        raise InputError(
            f"{out} was {trained_on}: its networks do not fit observation space {observation_space} and action "
            f"space {action_space}"
        ) from e
    return SavedRun(cfg=cfg, states=states, seeds=seeds, step=int(meta["step"]))


__all__ = [
    "SavedRun",
    "TrainResult",
    "check_seeds",
    "evaluate_at",
    "evaluate_seeds",
    "export_policies",
    "init_states",
    "load_run",
    "make_update",
    "seed_keys",
    "train",
]
