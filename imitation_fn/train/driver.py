"""Offline training (BC): minibatches of demonstrations through :mod:`imitation_fn.train.loop`, and run exports.

    result = train(bc, bc.Config(), demos, env, seeds=range(8), n_epochs=10)

Seed ``i``'s minibatches are drawn from its own key (``fold_in(data_key_i, epoch)`` → a permutation),
so its results never depend on which other seeds run beside it (:func:`loop.minibatch_step`). Also
here: each seed's policy exported beside a run (:func:`export_policies`) and a run read back
(:func:`load_run`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Unpack

import gymnasium as gym

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import checks, serialization, tree
from imitation_fn.core.config import Config
from imitation_fn.core.errors import InputError
from imitation_fn.data.rollout import flatten_trajectories
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.base import Env
from imitation_fn.envs.task import Task
from imitation_fn.policies.io import save_policy
from imitation_fn.train import loop, warm_start
from imitation_fn.train.run import CHECKPOINT, CONFIG, check_config_file


def _validate(data: Transitions, spaces: tuple[gym.Space[Any], gym.Space[Any]]) -> None:
    if len(data) == 0:
        raise ValueError("train: the dataset is empty (0 transitions)")
    obs_shape = tuple(spaces[0].shape or ())
    if tuple(data.obs.shape[1:]) != obs_shape:
        raise ValueError(
            f"train: demonstrations have observations of shape {tuple(data.obs.shape[1:])}, "
            f"but the environment's observation space has shape {obs_shape}"
        )
    checks.assert_finite(data.obs, name="demonstrations.obs")
    checks.assert_finite(data.acts, name="demonstrations.acts")


PolicyExport = tuple[str, Any, dict[str, Any], Any]
"""``(kind, params, config, obs_norm)`` of one seed's acting policy: :func:`policies.save_policy`'s arguments."""

# The policy files an offline algorithm's runs export beside their checkpoint (``OUT/policies/seed_<s>``).
POLICY_EXPORTS: dict[str, Callable[[Any], PolicyExport]] = {
    "bc": lambda state: ("mlp", state.params, {"activation": state.activation}, None),
}
WARM_STARTS: dict[str, warm_start.WarmStart] = {"bc": warm_start.into_bc}


def gradient_steps(states: Any) -> int:
    """Gradient steps every seed has taken (an offline algorithm's progress)."""
    return int(states.step.min())


def offline_spec(algo: ModuleType) -> loop.Spec:
    """The loop spec of an offline ``(init, update, policy)`` algorithm trained on minibatches of demonstrations."""
    name = algo.__name__.rsplit(".", 1)[-1]
    policy_of = POLICY_EXPORTS.get(name)
    export = None
    if policy_of is not None:

        def export(out: Path, states: Any, seeds: Sequence[int], task: Task) -> object:
            return export_policies(
                out / "policies", states, seeds, (task.observation_space, task.action_space), policy_of
            )

    return loop.Spec(
        algo=algo,
        progress=gradient_steps,
        make_step=loop.minibatch_step,
        export=export,
        log_every=100,
        unit="gradient steps",
        bar=("loss",),
        warm_start=WARM_STARTS.get(name),
    )


BC_SPEC = offline_spec(bc)


def make_task(
    cfg: Config, env_id: str, *, budget: int, n_eval_episodes: int, demos: Sequence[Trajectory] | Transitions
) -> Task:
    """The task of an offline run on ``env_id``: the demonstrations as transitions, ``n_eval_episodes`` eval envs."""
    data = demos if isinstance(demos, Transitions) else flatten_trajectories(demos)
    env = envs.make(env_id, n_envs=n_eval_episodes)
    _validate(data, (env.observation_space, env.action_space))
    loop.minibatches_per_epoch(cfg, data)  # at least one minibatch
    return Task(env=env, demos=data, eval_env=env, total=budget)


def train(
    algo: ModuleType,
    cfg: Config,
    data: Transitions,
    env: Env,
    *,
    n_epochs: int | None = None,
    n_batches: int | None = None,
    log_every: int = 100,
    env_id: str | None = None,
    **options: Unpack[loop.RunOptions],
) -> loop.Result:
    """Train ``algo`` (a module with ``init``/``update``/``policy``, e.g. :mod:`bc`) on ``data`` for every seed.

    Exactly one of ``n_epochs`` and ``n_batches`` (``imitation``'s BC.train convention). ``env``
    gives the spaces and runs evaluation: ``env.n_envs`` episodes per seed every ``eval_every``
    steps and at the end (a gymnasium env is evaluated seed by seed on the host). Metrics every
    ``log_every`` steps. ``env_id``, when given, is recorded in the checkpoint (``eval --run`` and
    ``analyze`` read it). The rest (``seeds``, ``log_dir``, ``resume``, ...): :func:`loop.train`.
    """
    if (n_epochs is None) == (n_batches is None):
        raise ValueError("train: give exactly one of n_epochs and n_batches")
    for name, value in (("n_epochs", n_epochs), ("n_batches", n_batches)):
        if value is not None and value < 1:
            raise InputError(f"train: {name} must be >= 1, got {value}")
    _validate(data, (env.observation_space, env.action_space))
    per_epoch = loop.minibatches_per_epoch(cfg, data)
    total = n_batches if n_batches is not None else int(n_epochs or 0) * per_epoch
    task = Task(env=env, demos=data, eval_env=env, total=total)
    spec = dataclasses.replace(offline_spec(algo), log_every=log_every)
    return loop.train(spec, cfg, task, budget=total, env_id=env_id, **options)


def export_policies(
    out: Path,
    states: Any,
    seeds: Sequence[int],
    spaces: Env | tuple[gym.Space[Any], gym.Space[Any]],
    policy_of: Callable[[Any], PolicyExport],
) -> list[Path]:
    """Each seed's acting policy as ``out/seed_<s>/`` (``policies.load_policy`` reads it); returns the paths."""
    space_pair = spaces if isinstance(spaces, tuple) else (spaces.observation_space, spaces.action_space)
    paths = []
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        kind, params, config, obs_norm = policy_of(state)
        path = Path(out) / f"seed_{seed}"
        save_policy(path, kind, params, space_pair, config, obs_norm)  # type: ignore[arg-type]
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
    template = loop.init_states(offline_spec(algo), cfg, Task(spaces=(observation_space, action_space)), seeds)
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
    "BC_SPEC",
    "POLICY_EXPORTS",
    "SavedRun",
    "export_policies",
    "gradient_steps",
    "load_run",
    "make_task",
    "offline_spec",
    "train",
]
