"""The DAgger trainer: ``imitation``'s ``SimpleDAggerTrainer.train`` for N seeds at once.

    result = train_dagger(dagger.Config(), "CartPole-v1", expert, seeds=range(8), total_timesteps=10_000,
                          scratch_dir="runs/dagger")

Each round: collect until the round has at least ``rollout_round_min_timesteps`` (and at least
``batch_size``) steps and ``rollout_round_min_episodes`` finished episodes, then ``n_epochs`` BC
epochs over the whole aggregate, then evaluate. On a torch environment all seeds run as one
vmapped computation; a seed that needs more collection than another (or has finished) is masked,
not dropped — its state is left unchanged, so seed ``i``'s run never depends on the others. A
gymnasium environment (``GymEnv``) gets one vector env per seed, stepped on the host.

``scratch_dir`` holds, after every round, ``demos/round-XXX/seed_<s>`` (that round's labelled
steps as a trajectory dataset: pieces of episodes cut at the round boundaries, which together are
exactly the aggregate), ``checkpoint.safetensors`` (every seed's full DAgger state, aggregate
included), ``policies/seed_<s>`` (the current learner), ``metrics.jsonl``, ``history.json`` and
``config.json``. ``resume=True`` continues from there (``imitation``'s ``reconstruct_trainer``):
stopping after round k and resuming gives the same final states as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from imitation_fn import envs
from imitation_fn.algorithms import bc, dagger
from imitation_fn.core import random, serialization, tree
from imitation_fn.data import buffer as buffer_lib
from imitation_fn.data import serialize
from imitation_fn.data.rollout import flatten_trajectories
from imitation_fn.data.types import Trajectory, TrajectoryWithRew
from imitation_fn.envs.base import Env, PolicyFn
from imitation_fn.envs.gym import GymEnv
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.policies.io import save_policy
from imitation_fn.train.driver import check_seeds, seed_keys
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.run import CHECKPOINT, DEFAULT_LOG_FORMATS, Run, open_run

HISTORY = "history.json"
# A GymEnv's TimeStep is a handle to live simulators: it is kept beside the stacked states, whose
# ``timestep`` is then this empty pytree (stackable and saveable, unlike None).
NO_TIMESTEP: Any = ()
Step = Callable[[Any], tuple[Any, dict[str, Tensor]]]


@dataclasses.dataclass(frozen=True)
class DAggerResult:
    """What :func:`train_dagger` returns."""

    states: dagger.State  # stacked over seeds (for a GymEnv, ``timestep`` is None)
    seeds: list[int]
    rounds: list[int]  # rounds each seed completed
    timesteps: list[int]  # environment steps each seed collected
    eval_returns: Tensor  # (n_seeds, n_eval_episodes): the last evaluation
    history: list[dict[str, Any]]  # per round: timesteps, return_mean, active (per seed)


# ---------------------------------------------------------------------------------------------------------------------
# Host-side helpers
# ---------------------------------------------------------------------------------------------------------------------


def select(mask: Tensor, new: Any, old: Any) -> Any:
    """Per seed, ``new`` where ``mask: (n_seeds,)`` else ``old`` (trees with a leading seed axis)."""
    return tree.map(lambda a, b: torch.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b), new, old)


def round_fragments(rollouts: Sequence[dagger.Rollout]) -> list[TrajectoryWithRew]:
    """One seed's consecutive rollouts of a round as trajectory pieces, cut at episode ends (host-side).

    Pieces at the round's start and end continue episodes of other rounds; they carry ``terminal=False``
    unless they end in a terminal state. ``flatten_trajectories`` of the pieces gives exactly the
    transitions the round added to the aggregate (per env, in time order).
    """
    batch = tree.map(lambda *xs: torch.cat(xs).detach().cpu(), *rollouts)
    n_steps, n_envs = batch.rews.shape
    pieces: list[TrajectoryWithRew] = []
    dones = batch.dones
    for e in range(n_envs):
        ends = [t + 1 for t in torch.nonzero(dones[:, e]).flatten().tolist()]
        if not ends or ends[-1] != n_steps:
            ends.append(n_steps)
        start = 0
        for stop in ends:
            last = stop - 1
            pieces.append(
                TrajectoryWithRew(
                    obs=torch.cat([batch.obs[start:stop, e], batch.next_obs[last, e][None]]),
                    acts=batch.acts[start:stop, e],
                    rews=batch.rews[start:stop, e],
                    terminal=bool(batch.terminated[last, e]),
                )
            )
            start = stop
    return pieces


def grow(states: dagger.State, capacity: int) -> dagger.State:
    """The aggregate moved into a larger buffer (host-side). Never wrapped, so slot order is kept."""
    data = states.data
    if capacity <= data.capacity:
        return states
    extra = capacity - data.capacity
    storage = tree.map(lambda x: torch.cat([x, x.new_zeros((x.shape[0], extra, *x.shape[2:]))], dim=1), data.storage)
    return states.replace(data=buffer_lib.ReplayBuffer(storage, data.insert_pos, data.size, capacity))


@functools.cache
def batched_update(compile: bool = False) -> Step:
    """``vmap(dagger.update)``, optionally compiled (cached: one compiled function per process)."""
    vupdate = torch.func.vmap(dagger.update)
    if not compile:
        return vupdate

    # A function of its own: torch.compile caches per code object, and every bare vmap shares one.
    def batched_dagger_update(states: dagger.State) -> tuple[dagger.State, dict[str, Tensor]]:
        return vupdate(states)

    return torch.compile(batched_dagger_update)


@functools.cache
def _eval_step(env: Env, compile: bool) -> Callable[..., tuple[Any, ...]]:
    def step(
        learner: bc.State, timestep: Any, act_key: Tensor, step_key: Tensor, returns: Tensor, running: Tensor
    ) -> tuple[Any, Tensor, Tensor]:
        action = bc.policy(learner)(timestep.obs, act_key)  # dagger.policy: the learner's mode
        timestep = env.step(timestep.env_state, action, step_key)
        return timestep, returns + torch.where(running, timestep.reward, 0.0), running & ~timestep.done

    vstep = torch.func.vmap(step)
    if not compile:
        return vstep

    def batched_eval_step(*args: Any) -> tuple[Any, Tensor, Tensor]:  # its own code object (see batched_update)
        return vstep(*args)

    return torch.compile(batched_eval_step)


def evaluate_batched(env: Env, states: dagger.State, keys: Tensor, compile: bool = False) -> Tensor:
    """Each seed's returns ``(n_seeds, env.n_envs)``: :func:`~imitation_fn.evaluation.evaluate_policy` with
    the same keys and result, its step vmapped and optionally compiled; stops once every episode ended."""
    horizon = env.max_episode_steps
    if horizon is None:
        raise ValueError("evaluate_batched: the env has no max_episode_steps")
    split3 = torch.func.vmap(lambda k: random.split(k, 3))(keys)
    reset_keys, act_key, step_key = split3[:, 0], split3[:, 1], split3[:, 2]
    act_keys = torch.func.vmap(lambda k: random.split(k, horizon))(act_key)
    step_keys = torch.func.vmap(lambda k: random.split(k, horizon))(step_key)
    timestep = torch.func.vmap(env.reset)(reset_keys)
    timestep = tree.map(
        lambda x: x.clone(), timestep
    )  # reset aliases obs and final_obs: a compiled step would guard on it
    n = keys.shape[0]
    returns = torch.zeros(n, env.n_envs)
    running = torch.ones(n, env.n_envs, dtype=torch.bool)
    step = _eval_step(env, compile)
    with torch.no_grad():
        for t in range(horizon):
            timestep, returns, running = step(states.bc, timestep, act_keys[:, t], step_keys[:, t], returns, running)
            if t % 50 == 49 and not bool(running.any()):  # the rest would add nothing
                break
    return returns


def _bc_steps(bc_train_kwargs: Mapping[str, Any] | None, cfg: dagger.Config) -> Callable[[Tensor], Tensor]:
    """``sizes (n_seeds,) -> BC steps (n_seeds,)`` from ``bc_train_kwargs`` (``n_epochs`` xor ``n_batches``)."""
    kwargs = dict(bc_train_kwargs or {})
    unknown = set(kwargs) - {"n_epochs", "n_batches"}
    if unknown:
        raise ValueError(f"train_dagger: bc_train_kwargs supports n_epochs and n_batches, got {sorted(unknown)}")
    if "n_epochs" in kwargs and "n_batches" in kwargs:
        raise ValueError("train_dagger: give at most one of bc_train_kwargs n_epochs and n_batches")
    if kwargs.get("n_batches") is not None:
        n_batches = int(kwargs["n_batches"])
        return lambda sizes: torch.full_like(sizes, n_batches)
    n_epochs = int(kwargs.get("n_epochs") or cfg.n_epochs)
    return lambda sizes: n_epochs * sizes // cfg.batch_size


def _demo_transitions(expert_trajs: Sequence[Trajectory] | None) -> Any:
    if not expert_trajs:
        return None
    return flatten_trajectories(expert_trajs)


# ---------------------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------------------


def train_dagger(
    cfg: dagger.Config,
    env_id: str,
    expert: PolicyFn,
    *,
    total_timesteps: int,
    seeds: Sequence[int] = (0,),
    rollout_round_min_episodes: int = 3,
    rollout_round_min_timesteps: int = 500,
    bc_train_kwargs: Mapping[str, Any] | None = None,
    expert_trajs: Sequence[Trajectory] | None = None,
    beta_schedule: dagger.BetaSchedule | None = None,
    scratch_dir: str | Path | None = None,
    resume: bool = False,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    n_eval_episodes: int = 10,
    eval_every: int | None = 1,
    target_return: float | None = None,
    max_rounds: int | None = None,
    compile: bool = False,
    progress: bool = True,
) -> DAggerResult:
    """Train DAgger on ``env_id`` with ``expert`` for every seed until each has ``total_timesteps`` env steps.

    ``SimpleDAggerTrainer.train``'s arguments and defaults. ``expert`` is any ``(obs, key) -> action``
    (a scripted expert, ``load_policy(path).policy_fn()``, a user function). ``expert_trajs`` start
    every seed's aggregate. ``bc_train_kwargs``: ``n_epochs`` (default ``cfg.n_epochs``) or
    ``n_batches`` per round. Evaluation (``n_eval_episodes`` episodes, deterministic learner) runs
    every ``eval_every`` rounds and at the end; with ``target_return`` a seed stops once an evaluation
    reaches it. ``max_rounds`` stops after that many rounds in total (a later ``resume`` finishes).
    """
    seeds = check_seeds(seeds, "train_dagger")
    for name, value in (
        ("total_timesteps", total_timesteps),
        ("rollout_round_min_timesteps", rollout_round_min_timesteps),
    ):
        if value < 1:
            raise ValueError(f"train_dagger: {name} must be >= 1, got {value}")
    if rollout_round_min_episodes < 0:
        raise ValueError(f"train_dagger: rollout_round_min_episodes must be >= 0, got {rollout_round_min_episodes}")
    bc_steps = _bc_steps(bc_train_kwargs, cfg)
    n_seeds = len(seeds)
    probe = envs.make(env_id, n_envs=cfg.n_envs)
    host = isinstance(probe, GymEnv)
    seed_envs: list[Env] = [probe] + [envs.make(env_id, n_envs=cfg.n_envs) for _ in seeds[1:]] if host else [probe]
    eval_env = envs.make(env_id, n_envs=n_eval_episodes)  # its own envs: evaluation must not reset training's
    demos = _demo_transitions(expert_trajs)
    n_demos = len(demos) if demos is not None else 0

    # A round: a first chunk of at least max(min_timesteps, batch_size) steps, then smaller chunks until
    # min_episodes episodes ended in it. The aggregate grows (host-side) whenever a chunk might not fit.
    first_chunk = math.ceil(max(rollout_round_min_timesteps, cfg.batch_size) / cfg.n_envs)
    extra_chunk = max(1, math.ceil(first_chunk / 4))
    capacity = max(1, n_demos + total_timesteps + first_chunk * cfg.n_envs)

    init_keys, reset_keys, eval_keys = seed_keys(seeds)
    out = Path(scratch_dir) if scratch_dir is not None else None
    if resume and out is not None and (out / CHECKPOINT).exists():
        capacity = int(serialization.load_metadata(out / CHECKPOINT).get("capacity", capacity))
    states = _init_states(cfg, init_keys, seed_envs, host, capacity, demos, beta_schedule)
    run, states, saved_rounds = open_run(
        out, resume, states, cfg, seeds, algorithm="dagger", env_id=env_id, checkpoint_every=0, log_formats=log_formats
    )
    # vmap broadcasts seed-independent leaves with stride 0 and reset aliases obs and final_obs; compiled
    # steps guard on both and would recompile when they change, so every leaf starts as its own contiguous copy.
    states = tree.map(lambda x: x.clone(memory_format=torch.contiguous_format), states)
    history: list[dict[str, Any]] = []
    if out is not None and resume and (out / HISTORY).exists():  # the records of the checkpoint's rounds
        history = [h for h in json.loads((out / HISTORY).read_text()) if h["round"] < saved_rounds]
    if demos is not None and out is not None and not (out / "demos" / "expert").exists():
        serialize.save(out / "demos" / "expert", list(expert_trajs or []))

    timesteps_gym: list[Any] = []
    if host:  # gymnasium envs cannot be checkpointed: (re)start them from keys that depend on seed and round
        rounds0 = states.round.tolist()
        timesteps_gym = [e.reset(random.fold_in(reset_keys[i], int(rounds0[i]))) for i, e in enumerate(seed_envs)]

    update = batched_update(compile)
    vcollect: dict[int, Callable[[dagger.State], tuple[dagger.State, dagger.Rollout]]] = {}

    def collect(states: dagger.State, n_steps: int, active: Tensor) -> tuple[dagger.State, list[dagger.Rollout | None]]:
        """One chunk for the active seeds; inactive seeds' states are unchanged."""
        if not host:
            if n_steps not in vcollect:
                vcollect[n_steps] = dagger.batched_collect(probe, expert, n_steps, compile)
            with torch.no_grad():
                new, rollouts = vcollect[n_steps](states)
            per_seed = tree.unstack(rollouts)
            return (new if bool(active.all()) else select(active, new, states)), [
                r if a else None for r, a in zip(per_seed, active.tolist(), strict=True)
            ]
        results: list[dagger.Rollout | None] = []
        singles = tree.unstack(states)
        for i, on in enumerate(active.tolist()):
            if not on:
                results.append(None)
                continue
            with torch.no_grad():
                s, r = dagger.collect(singles[i].replace(timestep=timesteps_gym[i]), seed_envs[i], expert, n_steps)
            timesteps_gym[i] = s.timestep
            singles[i] = s.replace(timestep=NO_TIMESTEP)
            results.append(r)
        return tree.stack(singles), results

    def evaluate(states: dagger.State, rnd: int) -> Tensor:
        if not isinstance(eval_env, GymEnv):
            # evaluate_at's keys and result (tested), stopping once every episode has ended
            keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((n_seeds,), rnd))
            return evaluate_batched(eval_env, states, keys, compile)
        rows = []
        for i, s in enumerate(tree.unstack(states)):
            key = random.fold_in(eval_keys[i], rnd)
            rows.append(evaluate_gym_policy(eval_env, dagger.policy(s), key, n_eval_episodes).returns)
        return torch.stack(rows)

    def finished(states: dagger.State) -> Tensor:
        done = states.timesteps >= total_timesteps
        if target_return is not None and history:
            reached = torch.tensor([any(h["return_mean"][i] >= target_return for h in history) for i in range(n_seeds)])
            done = done | reached
        return done

    def evaluate_and_log(states: dagger.State, rnd: int) -> Tensor:
        """Evaluate after round ``rnd`` (0-based): metrics row, and the round's record in the history."""
        t0 = time.perf_counter()
        returns = evaluate(states, rnd + 1)
        history[-1].update(return_mean=returns.mean(-1).tolist(), eval_s=time.perf_counter() - t0)
        run.write_eval(rnd + 1, {"return_mean": returns.mean(-1), "returns": returns})
        if run.out is not None:
            serialization.write_text_atomic(run.out / HISTORY, json.dumps(history))
        bar.advance(int(states.timesteps.min()), {"return": returns})
        return returns

    eval_returns: Tensor | None = None
    with ProgressBar(total_timesteps, f"dagger on {env_id} × {n_seeds} seeds", enabled=progress) as bar:
        bar.advance(int(states.timesteps.min()))
        if run.pending_eval:  # the last round was saved, its evaluation not logged
            eval_returns = evaluate_and_log(states, int(states.round.max()) - 1)
        while True:
            active = ~finished(states)
            if not bool(active.any()) or (max_rounds is not None and int(states.round.max()) >= max_rounds):
                break
            rnd = int(states.round[active].max())  # equal across active seeds
            # --- collection: chunks until every active seed's round has its minimum steps and episodes
            t_start = time.perf_counter()
            need = active.clone()
            round_steps = torch.zeros(n_seeds, dtype=torch.int64)
            round_eps = torch.zeros(n_seeds, dtype=torch.int64)
            pieces: list[list[dagger.Rollout]] = [[] for _ in seeds]
            chunk = first_chunk
            while bool(need.any()):
                if int(states.data.size.max()) + chunk * cfg.n_envs > states.data.capacity:
                    states = grow(states, 2 * states.data.capacity)
                states, rollouts = collect(states, chunk, need)
                for i, r in enumerate(rollouts):
                    if r is not None:
                        pieces[i].append(r)
                        round_eps[i] += int(r.dones.sum())
                round_steps += need.to(torch.int64) * chunk * cfg.n_envs
                need = need & ~(
                    (round_steps >= rollout_round_min_timesteps) & (round_eps >= rollout_round_min_episodes)
                )
                chunk = extra_chunk
            t_collected = time.perf_counter()
            # --- BC on the aggregate: n_epochs * size // batch_size steps per seed (masked beyond a seed's count)
            n_updates = torch.where(active, bc_steps(states.data.size), 0)
            metrics: dict[str, Tensor] = {}
            for j in range(int(n_updates.max())):
                new, metrics = update(states)
                on = n_updates > j
                # update changes only the learner and the key: mask those, not the whole aggregate
                states = (
                    new
                    if bool(on.all())
                    else states.replace(bc=select(on, new.bc, states.bc), key=select(on, new.key, states.key))
                )
            states = select(active, torch.func.vmap(dagger.next_round)(states), states)
            t_updated = time.perf_counter()
            # --- evaluation, logging, scratch files
            last_round = bool(finished(states).all()) or (max_rounds is not None and rnd + 1 >= max_rounds)
            record: dict[str, Any] = {
                "round": rnd,
                "timesteps": states.timesteps.tolist(),
                "active": active.tolist(),
                "round_steps": round_steps.tolist(),
                "round_episodes": round_eps.tolist(),
                "collect_s": t_collected - t_start,  # wall times, for benchmarks
                "update_s": t_updated - t_collected,
            }
            evaluating = bool(eval_every and (rnd + 1) % eval_every == 0) or last_round
            if metrics:
                run.writer.write(rnd + 1, "train", metrics)
            history.append(record)
            if run.out is not None:  # first: a failing evaluation loses nothing
                _save_round(run, states, rnd, pieces, history, seed_envs[0], evaluating)
            if evaluating:
                eval_returns = evaluate_and_log(states, rnd)
            else:
                bar.advance(int(states.timesteps.min()))
    if eval_returns is None:
        eval_returns = evaluate(states, int(states.round.max()))
    return DAggerResult(
        states=states.replace(timestep=None) if host else states,
        seeds=seeds,
        rounds=states.round.tolist(),
        timesteps=states.timesteps.tolist(),
        eval_returns=eval_returns,
        history=history,
    )


def _init_states(
    cfg: dagger.Config,
    keys: Tensor,
    seed_envs: Sequence[Env],
    host: bool,
    capacity: int,
    demos: Any,
    beta_schedule: dagger.BetaSchedule | None,
) -> dagger.State:
    def init(key: Tensor, env: Env) -> dagger.State:
        return dagger.init(cfg, key, env, capacity, demos, beta_schedule)

    if not host:
        return torch.func.vmap(lambda k: init(k, seed_envs[0]))(keys)
    # A GymEnv cannot run inside vmap, and its TimeStep (a handle to live simulators) cannot be stacked.
    return tree.stack([init(k, e).replace(timestep=NO_TIMESTEP) for k, e in zip(keys, seed_envs, strict=True)])


def _save_round(
    run: Run,
    states: dagger.State,
    rnd: int,
    pieces: Sequence[Sequence[dagger.Rollout]],
    history: list[dict[str, Any]],
    env: Env,
    evaluating: bool,
) -> None:
    """The round's datasets, the learners, then the checkpoint (last: a crash before it replays the round)."""
    assert run.out is not None
    out, seeds = run.out, run.seeds
    for seed, rollouts in zip(seeds, pieces, strict=True):
        if rollouts:
            serialize.save(out / "demos" / f"round-{rnd:03d}" / f"seed_{seed}", round_fragments(rollouts))
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        save_policy(
            out / "policies" / f"seed_{seed}",
            "mlp",
            state.bc.params,
            (env.observation_space, env.action_space),
            {"activation": state.bc.activation},
        )
    serialization.write_text_atomic(out / HISTORY, json.dumps(history))
    run.save(states, rnd + 1, evaluating=evaluating, capacity=states.data.capacity)


def load_dagger_run(scratch_dir: str | Path, env_id: str) -> tuple[dagger.Config, dagger.State, list[int]]:
    """``(cfg, states, seeds)`` of a scratch directory written by :func:`train_dagger` (``reconstruct_trainer``).

    Needs only ``config.json`` and ``checkpoint.safetensors``; a custom β schedule is not saved (the
    config's is restored). To continue training, call :func:`train_dagger` with ``resume=True``.
    """
    out = Path(scratch_dir)
    if not (out / CHECKPOINT).is_file() or not (out / "config.json").is_file():
        raise FileNotFoundError(f"{out} is not a DAgger scratch directory (expected {CHECKPOINT} and config.json)")
    meta = serialization.load_metadata(out / CHECKPOINT)
    if meta.get("algorithm") != "dagger":
        raise ValueError(f"{out} holds a {meta.get('algorithm')!r} run, not 'dagger'")
    cfg = dagger.Config.load(out / "config.json")
    seeds = [int(s) for s in meta["seeds"]]
    env = envs.make(env_id, n_envs=cfg.n_envs)
    host = isinstance(env, GymEnv)
    seed_envs = [env] * (len(seeds) if host else 1)
    template = _init_states(cfg, seed_keys(seeds)[0], seed_envs, host, int(meta["capacity"]), None, None)
    return cfg, serialization.load(out / CHECKPOINT, template), seeds


__all__ = ["DAggerResult", "batched_update", "grow", "load_dagger_run", "round_fragments", "select", "train_dagger"]
