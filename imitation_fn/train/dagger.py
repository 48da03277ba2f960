"""DAgger through the one loop (:mod:`imitation_fn.train.loop`): ``imitation``'s ``SimpleDAggerTrainer`` for N seeds.

    result = train_dagger(dagger.Config(), "CartPole-v1", expert, seeds=range(8), total_timesteps=10_000,
                          scratch_dir="runs/dagger")
    # the same through the loop (the sweep and the CLI do this):
    task = make_task(cfg, "CartPole-v1", budget=10_000, n_eval_episodes=10)
    result = loop.train(SPEC, cfg, task, budget=10_000, seeds=range(8), eval_every=1, log_dir="runs/dagger")

One iteration of the loop is one round for every seed (:class:`Rounds`): collect until the round has at
least ``rollout_round_min_timesteps`` (and ``batch_size``) steps and ``rollout_round_min_episodes``
finished episodes, then ``n_epochs`` BC epochs over the whole aggregate (or ``n_batches`` steps).
Progress is environment steps. On a torch environment all seeds run as one vmapped computation; a
seed that needs more collection than another (or has finished) is masked, not dropped — its state is
left unchanged, so seed ``i``'s run never depends on the others. A gymnasium environment (``GymEnv``)
gets one vector env per seed, stepped on the host.

A run directory holds, besides the loop's files, ``demos/round-XXX/seed_<s>`` (each round's labelled
steps as a trajectory dataset: pieces of episodes cut at the round boundaries, which together are
exactly the aggregate), ``demos/expert`` (the demonstrations that started it), ``policies/seed_<s>``
(the current learners) and ``history.json`` (one record per round), all written with each checkpoint.
``resume=True`` continues from there (``imitation``'s ``reconstruct_trainer``): stopping after round k
and resuming gives the same final states as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from imitation_fn import envs
from imitation_fn.algorithms import bc, dagger
from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random, serialization, tree
from imitation_fn.core.config import Config
from imitation_fn.data import serialize
from imitation_fn.data.types import Trajectory, TrajectoryWithRew, Transitions
from imitation_fn.envs.base import Env, PolicyFn
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task
from imitation_fn.policies import load_policy, zoo
from imitation_fn.policies.io import LoadedPolicy, save_policy
from imitation_fn.train import loop, warm_start
from imitation_fn.train.run import CHECKPOINT, DEFAULT_LOG_FORMATS

HISTORY = "history.json"
Step = Callable[[Any], tuple[Any, dict[str, Tensor]]]


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


def resize(states: dagger.State, capacity: int) -> dagger.State:
    """The aggregates moved into buffers of ``capacity`` slots (host-side). They never wrap, so slot order
    is kept; a smaller capacity drops empty slots only."""
    data = states.data
    if capacity == data.capacity:
        return states
    if capacity < int(data.size.max()):
        raise ValueError(f"dagger: an aggregate of {int(data.size.max())} transitions does not fit {capacity} slots")
    extra = capacity - data.capacity

    def fit(x: Tensor) -> Tensor:
        return torch.cat([x, x.new_zeros((x.shape[0], extra, *x.shape[2:]))], dim=1) if extra > 0 else x[:, :capacity]

    storage = tree.map(fit, data.storage)
    return states.replace(data=data.replace(storage=storage, capacity=capacity))


def checkpoint_capacity(path: Path) -> int:
    """The aggregate's capacity in a DAgger checkpoint (it grows on the host when a round needs more)."""
    return next(int(v.shape[1]) for k, v in serialization.load_flat(path).items() if k.startswith(".data.storage."))


@functools.cache
def batched_learn(compile: bool = False) -> Step:
    """``vmap(dagger.learn)``, optionally compiled (cached: one compiled function per process)."""
    vlearn = torch.func.vmap(dagger.learn)
    if not compile:
        return vlearn

    # A function of its own: torch.compile caches per code object, and every bare vmap shares one.
    def batched_dagger_learn(states: dagger.State) -> tuple[dagger.State, dict[str, Tensor]]:
        return vlearn(states)

    return compile_lib.or_eager(batched_dagger_learn)


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

    def batched_eval_step(*args: Any) -> tuple[Any, Tensor, Tensor]:  # its own code object (see batched_learn)
        return vstep(*args)

    return compile_lib.or_eager(batched_eval_step)


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
    returns = torch.zeros(n, env.n_envs, device=keys.device)
    running = torch.ones(n, env.n_envs, dtype=torch.bool, device=keys.device)
    step = _eval_step(env, compile)
    with torch.no_grad():
        for t in range(horizon):
            timestep, returns, running = step(states.bc, timestep, act_keys[:, t], step_keys[:, t], returns, running)
            if t % 50 == 49 and not bool(running.any()):  # the rest would add nothing
                break
    return returns


def _another(env: GymEnv) -> GymEnv:
    """A second ``GymEnv`` like ``env``: each seed steps simulators of its own."""
    return env.resized(env.n_envs)


# ---------------------------------------------------------------------------------------------------------------------
# DAgger's part in the loop
# ---------------------------------------------------------------------------------------------------------------------


class Rounds:
    """DAgger's part in the loop (:meth:`spec`): one iteration is one round for every seed.

    ``target_return``: a seed stops once one of its evaluations reaches this mean return.
    ``max_rounds``: the run stops after that many rounds (a later resume finishes it).
    ``beta_schedule``: any ``round -> β`` callable, in place of the config's.
    ``history`` is one record per round of the current run (timesteps, active, round_steps,
    round_episodes, collect_s/update_s wall times; return_mean and eval_s once evaluated): in
    ``history.json`` of the run directory too. Each :func:`loop.train` call starts a new run.
    """

    def __init__(
        self,
        *,
        target_return: float | None = None,
        max_rounds: int | None = None,
        beta_schedule: dagger.BetaSchedule | None = None,
    ) -> None:
        self.target_return = target_return
        self.max_rounds = max_rounds
        self.beta_schedule = beta_schedule
        self.history: list[dict[str, Any]] = []
        self.out: Path | None = None
        self.reached = torch.zeros(0, dtype=torch.bool)  # per seed: an evaluation reached target_return
        self.pending: dict[int, list[list[dagger.Rollout]]] = {}  # round -> per seed: rollouts not yet saved
        self.total = 0
        self.compile = False

    def spec(self) -> loop.Spec:
        return loop.Spec(
            algo=dagger,
            progress=self.progress,
            make_step=self.make_step,
            evaluate=self.evaluate,
            export=self.export,
            finished=self.finished,
            unit="env steps",
            bar=("loss",),
            warm_start=warm_start.inside("bc", warm_start.into_bc),
            prepare=self.prepare,
        )

    # --- the run's bookkeeping -----------------------------------------------------------------------------------

    def prepare(self, states: dagger.State, out: Path | None, resume: bool) -> dagger.State:
        """A new run: on a resume, the aggregate shaped like the checkpoint's and the history read back."""
        self.out, self.history, self.pending = out, [], {}
        self.reached = torch.zeros_like(states.round, dtype=torch.bool)
        if self.beta_schedule is not None:
            states = states.replace(beta_schedule=self.beta_schedule)
        if resume and out is not None and (out / CHECKPOINT).is_file():
            states = resize(states, checkpoint_capacity(out / CHECKPOINT))
            step = int(serialization.load_metadata(out / CHECKPOINT)["step"])
            if (out / HISTORY).is_file():  # the records of the checkpoint's rounds
                self.history = [h for h in json.loads((out / HISTORY).read_text()) if h["step"] <= step]
            for h in self.history:
                self._record_eval(h.get("return_mean"))
        return states

    def _record_eval(self, return_mean: Sequence[float] | None) -> None:
        if self.target_return is not None and return_mean is not None:
            self.reached |= torch.tensor(return_mean) >= self.target_return

    def active(self, states: dagger.State) -> Tensor:
        """``(n_seeds,)`` bool: the seeds that still collect (below the budget, target not reached)."""
        return (states.timesteps < self.total) & ~self.reached

    def progress(self, states: dagger.State) -> int:
        """Env steps of the slowest seed still running (stopped seeds no longer hold the run back)."""
        running = ~self.reached
        t = states.timesteps
        return int(t[running].min()) if bool(running.any()) else int(t.max())

    def finished(self, states: dagger.State) -> bool:
        if self.max_rounds is not None and int(states.round.max()) >= self.max_rounds:
            return True
        return not bool(self.active(states).any())

    def evaluate(self, algo: Any, task: Task, states: dagger.State, keys: Tensor) -> dict[str, Tensor]:
        """Each seed's deterministic learner on ``task.eval_env``; the result goes in the round's record."""
        env = task.eval_env
        assert env is not None, "dagger: the task has no eval_env"
        t0 = time.perf_counter()
        if isinstance(env, GymEnv):
            returns = loop.evaluate_seeds(dagger, env, states, keys)
        else:
            returns = evaluate_batched(env, states, keys, self.compile)
        return_mean = returns.mean(-1).tolist()
        self._record_eval(return_mean)
        if self.history:
            self.history[-1].update(return_mean=return_mean, eval_s=time.perf_counter() - t0)
            if self.out is not None:
                serialization.write_text_atomic(self.out / HISTORY, json.dumps(self.history))
        return {"returns": returns}

    def export(self, out: Path, states: dagger.State, seeds: Sequence[int], task: Task) -> None:
        """The rounds' datasets since the last checkpoint, the learners and the history (before the checkpoint)."""
        demos = task.demos
        if demos and not isinstance(demos, Transitions) and not (out / "demos" / "expert").exists():
            serialize.save(out / "demos" / "expert", list(demos))
        for rnd, pieces in sorted(self.pending.items()):
            for seed, rollouts in zip(seeds, pieces, strict=True):
                if rollouts:
                    serialize.save(out / "demos" / f"round-{rnd:03d}" / f"seed_{seed}", round_fragments(rollouts))
        self.pending.clear()
        spaces = (task.observation_space, task.action_space)
        for seed, state in zip(seeds, tree.unstack(states), strict=True):
            save_policy(
                out / "policies" / f"seed_{seed}", "mlp", state.bc.params, spaces, {"activation": state.bc.activation}
            )
        serialization.write_text_atomic(out / HISTORY, json.dumps(self.history))

    # --- the round -----------------------------------------------------------------------------------------------

    def make_step(self, algo: Any, cfg: Config, task: Task, data_keys: Tensor, compile: bool) -> loop.Step:
        """One round for every seed: chunks of collection until each active seed's round is long enough,
        then its BC steps; finished seeds are masked."""
        assert isinstance(cfg, dagger.Config)
        task.require("env", "expert", "total", "eval_env", who="dagger")
        env, expert = task.env, task.expert
        assert env is not None and expert is not None and task.total is not None
        self.total, self.compile = task.total, compile
        n_seeds, n_envs = data_keys.shape[0], cfg.n_envs
        seed_envs: list[Env] = [env]
        if isinstance(env, GymEnv):  # a vector env per seed, stepped on the host
            seed_envs += [_another(env) for _ in range(n_seeds - 1)]
        host = isinstance(env, GymEnv)
        live: list[Any] = []  # a GymEnv's timestep per seed
        started = False
        # A round: a first chunk of at least max(min_timesteps, batch_size) steps, then smaller chunks until
        # min_episodes episodes ended in it. The aggregate grows (host-side) whenever a chunk might not fit.
        first_chunk = cfg.round_steps
        extra_chunk = max(1, math.ceil(first_chunk / 4))
        learn = batched_learn(compile)
        vstore = torch.func.vmap(dagger.store)
        vcollect: dict[int, Callable[[dagger.State], tuple[dagger.State, dagger.Rollout]]] = {}

        def collect(
            states: dagger.State, n_steps: int, need: Tensor
        ) -> tuple[dagger.State, list[dagger.Rollout | None]]:
            """One chunk into the aggregate for the seeds in ``need``; the other seeds' states are unchanged."""
            if not host:
                if n_steps not in vcollect:
                    vcollect[n_steps] = dagger.batched_collect(env, expert, n_steps, compile)
                with torch.no_grad():
                    new, rollouts = vcollect[n_steps](states)
                    new = vstore(new, rollouts)
                per_seed = tree.unstack(rollouts)
                return (new if bool(need.all()) else select(need, new, states)), [
                    r if a else None for r, a in zip(per_seed, need.tolist(), strict=True)
                ]
            results: list[dagger.Rollout | None] = []
            singles = tree.unstack(states)
            for i, on in enumerate(need.tolist()):
                if not on:
                    results.append(None)
                    continue
                with torch.no_grad():
                    s, r = dagger.collect_env(singles[i].replace(timestep=live[i]), seed_envs[i], expert, n_steps)
                live[i] = s.timestep
                singles[i] = dagger.store(s.replace(timestep=dagger.NO_TIMESTEP), r)
                results.append(r)
            return tree.stack(singles), results

        def step(states: dagger.State, done: int) -> tuple[dagger.State, dict[str, Tensor]]:
            nonlocal started
            if not started:
                started = True
                # vmap broadcasts seed-independent leaves with stride 0 and reset aliases obs and final_obs;
                # compiled steps guard on both, so every leaf starts as its own contiguous copy.
                states = tree.map(lambda x: x.clone(memory_format=torch.contiguous_format), states)
                if host:  # gymnasium envs cannot be checkpointed: (re)start them from keys of seed and round
                    rounds = states.round.tolist()
                    live.extend(e.reset(random.fold_in(data_keys[i], rounds[i])) for i, e in enumerate(seed_envs))
            active = self.active(states)
            rnd = int(states.round[active].max())  # equal across active seeds
            # --- collection: chunks until every active seed's round has its minimum steps and episodes
            t_start = time.perf_counter()
            need = active.clone()
            round_steps = torch.zeros_like(states.round, dtype=torch.int64)
            round_eps = torch.zeros_like(states.round, dtype=torch.int64)
            pieces: list[list[dagger.Rollout]] = [[] for _ in range(n_seeds)]
            chunk = first_chunk
            while bool(need.any()):
                if int(states.data.size.max()) + chunk * n_envs > states.data.capacity:
                    states = resize(states, 2 * states.data.capacity)
                states, rollouts = collect(states, chunk, need)
                for i, r in enumerate(rollouts):
                    if r is not None:
                        pieces[i].append(r)
                        round_eps[i] += int(r.dones.sum())
                round_steps += need.to(torch.int64) * chunk * n_envs
                need = need & ~(
                    (round_steps >= cfg.rollout_round_min_timesteps) & (round_eps >= cfg.rollout_round_min_episodes)
                )
                chunk = extra_chunk
            t_collected = time.perf_counter()
            # --- BC on the aggregate: n_epochs * size // batch_size steps per seed (masked beyond a seed's count)
            n_updates = torch.where(active, cfg.bc_steps(states.data.size), 0)
            metrics: dict[str, Tensor] = {}
            for j in range(int(n_updates.max())):
                new, metrics = learn(states)
                on = n_updates > j
                # learn changes only the learner and the key: mask those, not the whole aggregate
                states = (
                    new
                    if bool(on.all())
                    else states.replace(bc=select(on, new.bc, states.bc), key=select(on, new.key, states.key))
                )
            states = select(active, torch.func.vmap(dagger.next_round)(states), states)
            if self.out is not None:  # saved with the next checkpoint
                self.pending[rnd] = pieces
            self.history.append(
                {
                    "round": rnd,
                    "step": self.progress(states),
                    "timesteps": states.timesteps.tolist(),
                    "active": active.tolist(),
                    "round_steps": round_steps.tolist(),
                    "round_episodes": round_eps.tolist(),
                    "collect_s": t_collected - t_start,  # wall times, for benchmarks
                    "update_s": time.perf_counter() - t_collected,
                }
            )
            return states, metrics

        return step


SPEC = Rounds().spec()
"""DAgger's loop spec with no target return, no round limit and the config's β schedule (the sweep's)."""


# ---------------------------------------------------------------------------------------------------------------------
# The task and the trainer
# ---------------------------------------------------------------------------------------------------------------------


def zoo_expert(env_id: str) -> PolicyFn:
    """The shipped expert policy of ``env_id`` (see :mod:`imitation_fn.policies.zoo`)."""
    return load_policy(zoo.expert_path(env_id)).policy_fn()


def make_task(
    cfg: dagger.Config,
    env_id: str,
    *,
    budget: int,
    n_eval_episodes: int,
    demos: Sequence[Trajectory] | None = None,
    expert: PolicyFn | None = None,
) -> Task:
    """DAgger's task on ``env_id``: ``cfg.n_envs`` training envs, ``expert`` (default: the shipped one),
    ``demos`` to start the aggregate, ``budget`` env steps per seed, ``n_eval_episodes`` evaluation envs
    of their own (evaluation must not reset training's)."""
    return Task(
        env=envs.make(env_id, n_envs=cfg.n_envs),
        demos=list(demos) if demos else None,
        expert=expert if expert is not None else zoo_expert(env_id),
        total=budget,
        eval_env=envs.make(env_id, n_envs=n_eval_episodes),
    )


def train_dagger(
    cfg: dagger.Config,
    env_id: str,
    expert: PolicyFn | None = None,
    *,
    total_timesteps: int,
    seeds: Sequence[int] = (0,),
    expert_trajs: Sequence[Trajectory] | None = None,
    beta_schedule: dagger.BetaSchedule | None = None,
    scratch_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every: float = 0.0,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    n_eval_episodes: int = 10,
    eval_every: int | None = 1,
    target_return: float | None = None,
    max_rounds: int | None = None,
    compile: bool = False,
    progress: bool = True,
    init_policy: LoadedPolicy | None = None,
    device: str | torch.device | None = "auto",
) -> loop.Result:
    """Train DAgger on ``env_id`` with ``expert`` for every seed until each has ``total_timesteps`` env steps.

    ``SimpleDAggerTrainer``'s arguments; its round sizes and BC epochs are ``cfg``'s fields. ``expert``
    is any ``(obs, key) -> action`` (a scripted expert, ``load_policy(path).policy_fn()``, a user
    function; default: the shipped one). ``expert_trajs`` start every seed's aggregate. Evaluation
    (``n_eval_episodes`` episodes, deterministic learner) runs every ``eval_every`` env steps (1: after
    every round) and at the end; ``target_return``, ``max_rounds`` and ``beta_schedule``: see
    :class:`Rounds`. ``scratch_dir`` is the run directory, checkpointed after every round by default
    (``checkpoint_every`` seconds otherwise). Rounds and env steps per seed are ``result.states.round``
    and ``result.states.timesteps``; the per-round records are in ``scratch_dir/history.json``.
    ``init_policy``: every seed's learner starts from this BC or actor-critic policy. ``device``: see
    :func:`loop.train`.
    """
    if total_timesteps < 1:
        raise ValueError(f"train_dagger: total_timesteps must be >= 1, got {total_timesteps}")
    task = make_task(
        cfg, env_id, budget=total_timesteps, n_eval_episodes=n_eval_episodes, demos=expert_trajs, expert=expert
    )
    rounds = Rounds(target_return=target_return, max_rounds=max_rounds, beta_schedule=beta_schedule)
    result = loop.train(
        rounds.spec(),
        cfg,
        task,
        budget=total_timesteps,
        seeds=seeds,
        eval_every=eval_every,
        log_dir=scratch_dir,
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
        resume=resume,
        compile=compile,
        progress=progress,
        env_id=env_id,
        init_policy=init_policy,
        device=device,
    )
    if isinstance(task.env, GymEnv):  # its live timesteps stayed on the host
        result = dataclasses.replace(result, states=result.states.replace(timestep=None))
    return result


def load_history(scratch_dir: str | Path) -> list[dict[str, Any]]:
    """The per-round records of a run directory (see :class:`Rounds`)."""
    return list(json.loads((Path(scratch_dir) / HISTORY).read_text()))


def load_dagger_run(scratch_dir: str | Path, env_id: str) -> tuple[dagger.Config, dagger.State, list[int]]:
    """``(cfg, states, seeds)`` of a run directory written by :func:`train_dagger` (``reconstruct_trainer``).

    Needs only ``config.json`` and ``checkpoint.safetensors``; a custom β schedule is not saved (the
    config's is restored). To continue training, call :func:`train_dagger` with ``resume=True``.
    """
    out = Path(scratch_dir)
    if not (out / CHECKPOINT).is_file() or not (out / "config.json").is_file():
        raise FileNotFoundError(f"{out} is not a DAgger run directory (expected {CHECKPOINT} and config.json)")
    meta = serialization.load_metadata(out / CHECKPOINT)
    if meta.get("algorithm") != "dagger":
        raise ValueError(f"{out} holds a {meta.get('algorithm')!r} run, not 'dagger'")
    cfg = dagger.Config.load(out / "config.json")
    seeds = [int(s) for s in meta["seeds"]]
    task = Task(env=envs.make(env_id, n_envs=cfg.n_envs), total=0)
    template = torch.func.vmap(lambda k: dagger.init(cfg, k, task))(loop.seed_keys(seeds)[0])
    template = resize(template, checkpoint_capacity(out / CHECKPOINT))
    return cfg, serialization.load(out / CHECKPOINT, template), seeds


__all__ = [
    "HISTORY",
    "SPEC",
    "Rounds",
    "batched_learn",
    "checkpoint_capacity",
    "evaluate_batched",
    "load_dagger_run",
    "load_history",
    "make_task",
    "resize",
    "round_fragments",
    "select",
    "train_dagger",
    "zoo_expert",
]
