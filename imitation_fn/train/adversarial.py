"""The adversarial driver: trains GAIL or AIRL for N seeds at once on a torch environment.

    result = train_adversarial(gail, cfg, "seals/CartPole-v0", trajectories, seeds=range(8), total_timesteps=300_000)

Each round is one vmapped ``collect`` over the stacked seeds, the host-side variable-horizon guard
on what was collected, the relabelling with the learned reward, the PPO update, the store into each
seed's generator buffer and the vmapped discriminator steps: exactly ``vmap(algo.train_round)``, in
pieces so PPO's steps can be compiled. As ``imitation``'s ``train(total_timesteps)``, a run is
``total_timesteps // gen_train_timesteps`` rounds. Evaluation, JSONL metrics, checkpoints and resume
work as in :mod:`imitation_fn.train.driver`; at the end each seed's policy and reward net are saved.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from imitation_fn import envs, rewards
from imitation_fn.algorithms import adversarial
from imitation_fn.core import tree
from imitation_fn.data import flatten_trajectories
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.data.utils import check_spaces
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.policies.io import save_policy
from imitation_fn.rl import ppo
from imitation_fn.train.driver import TrainResult, check_seeds, evaluate_at, seed_keys
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.rl import policy_for_saving
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS, crossed, open_run

Round = Callable[[Any, Transitions], tuple[Any, dict[str, Tensor]]]


def algo_name(algo: ModuleType) -> str:
    return algo.__name__.rsplit(".", 1)[-1]


@functools.cache
def batched_round(algo: ModuleType, env: Env, compile: bool = False) -> Round:
    """``vmap(algo.train_round)`` over stacked states (``demos`` shared), with the host-side horizon guard.

    Built from the same pieces as :func:`adversarial.train_round`; with ``compile`` PPO's collection step
    and update pieces go through ``torch.compile`` (:func:`ppo.batched_collect`, :func:`ppo.batched_update`).
    Cached per (algo, env, compile).
    """
    collect = ppo.batched_collect(env, compile)
    label = torch.func.vmap(lambda s, r: adversarial.label(s, r, algo.reward_train(s)))
    gen_update = ppo.batched_update(compile)
    store = torch.func.vmap(adversarial.store)
    gen_metrics = torch.func.vmap(adversarial.generator_metrics)
    disc = torch.func.vmap(algo.update_discriminator, in_dims=(0, None))

    def run(states: Any, demos: Transitions) -> tuple[Any, dict[str, Tensor]]:
        history = []
        for _ in range(states.n_gen_updates):
            gen, rollouts = collect(states.gen, None)
            adversarial.check_fixed_horizon(rollouts.terminated, states.allow_variable_horizon)  # host-side
            states, rollouts = label(states.replace(gen=gen), rollouts)
            gen, metrics = gen_update(states.gen, rollouts)
            states = store(states.replace(gen=gen), rollouts)
            history.append(gen_metrics(metrics, rollouts))
        states, metrics = disc(states, demos)
        metrics.update(tree.map(lambda *xs: torch.stack(xs).mean(0), *history))
        return states.replace(rounds=states.rounds + 1), metrics

    return run


def prepare_demos(demos: Sequence[Trajectory] | Transitions, env: Env, allow_variable_horizon: bool) -> Transitions:
    """Check expert data against ``env``'s spaces and the horizon guard; flatten trajectories to transitions."""
    if isinstance(demos, Transitions):
        if len(demos) == 0:
            raise ValueError("train_adversarial: the demonstrations are empty")
        data = demos
    else:
        if len(demos) == 0:
            raise ValueError("train_adversarial: the demonstrations are empty (0 trajectories)")
        data = flatten_trajectories(demos)
    check_spaces(demos, env.observation_space, env.action_space)
    adversarial.check_demo_horizon(demos, allow_variable_horizon)
    return data


def init_states(algo: ModuleType, cfg: adversarial.Config, env: Env, seeds: Sequence[int]) -> Any:
    """``vmap(algo.init)`` over the seeds' init keys: states stacked over seeds."""
    init_keys, _, _ = seed_keys(seeds)
    return torch.func.vmap(lambda k: algo.init(cfg, k, env))(init_keys)


def train_adversarial(
    algo: ModuleType,
    cfg: adversarial.Config,
    env_id: str,
    demos: Sequence[Trajectory] | Transitions,
    *,
    seeds: Sequence[int] = (0,),
    total_timesteps: int,
    eval_every: int | None = None,
    n_eval_episodes: int = 10,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    compile: bool = False,
    progress: bool = True,
    callback: Callable[[int, Any, Tensor | None], None] | None = None,
) -> TrainResult:
    """Train ``algo`` (:mod:`gail` or :mod:`airl`) on ``env_id`` from expert ``demos`` for every seed.

    Runs ``total_timesteps // cfg.round_timesteps`` rounds (``imitation``'s ``train``). ``eval_every``
    counts generator env steps; evaluation (``n_eval_episodes`` deterministic episodes per seed) always
    runs at the end, after the policies and reward nets are saved. ``log_dir``, ``checkpoint_every``
    (seconds), ``resume``, ``log_formats``: see :mod:`imitation_fn.train.run`. ``callback(round, states,
    eval_returns or None)`` runs after every round. ``TrainResult.steps`` is the env steps each seed took.
    """
    seeds = check_seeds(seeds, "train_adversarial")
    per_round = cfg.round_timesteps
    n_rounds = total_timesteps // per_round
    if n_rounds < 1:
        raise ValueError(
            f"train_adversarial: no rounds: one round takes gen_train_timesteps={per_round} env steps, "
            f"but total_timesteps={total_timesteps}"
        )
    env = envs.make(env_id, n_envs=cfg.gen.n_envs)
    eval_env = envs.make(env_id, n_envs=n_eval_episodes)
    if isinstance(env, GymEnv):
        raise NotImplementedError(
            f"train_adversarial: {env_id} has no torch version; vmapped seeds need one. Use the algorithm's "
            "collect/update directly on a GymEnv, one seed at a time."
        )
    data = prepare_demos(demos, env, cfg.allow_variable_horizon)
    if cfg.demo_batch_size > len(data):
        raise ValueError(
            f"train_adversarial: demo_batch_size={cfg.demo_batch_size} is larger than the {len(data)} expert "
            "transitions; lower it or give more demonstrations"
        )
    _, _, eval_keys = seed_keys(seeds)
    states = init_states(algo, cfg, env, seeds)
    step = batched_round(algo, env, compile)
    name = algo_name(algo)
    total = n_rounds * per_round
    run, states, _ = open_run(
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
    run.export = lambda out, states: save_outputs(algo, states, seeds, env, out)

    def evaluate(states: Any, t: int, metrics: dict[str, Tensor] | None = None) -> Tensor:
        returns = evaluate_at(algo, eval_env, states, eval_keys, t)
        run.write_eval(t, {"return_mean": returns.mean(-1), "returns": returns})
        shown = {"return": returns} if metrics is None else {"return": returns, "disc_acc": metrics["disc_acc"]}
        bar.advance(t, shown)
        return returns

    eval_returns: Tensor | None = None
    start = int(states.rounds.min())
    with ProgressBar(total, f"{name} on {env_id} × {len(seeds)} seeds", enabled=progress) as bar:
        bar.advance(start * per_round)
        if run.pending_eval:
            eval_returns = evaluate(states, start * per_round)
        for r in range(start, n_rounds):
            states, metrics = step(tree.contiguous(states), data)  # see tree.contiguous: exact resumes
            before, done = r * per_round, (r + 1) * per_round
            run.writer.write(done, "train", metrics)
            evaluating = r + 1 == n_rounds or crossed(before, done, eval_every)
            run.after_update(states, done, evaluating=evaluating)
            returns = None
            if evaluating:
                returns = eval_returns = evaluate(states, done, metrics)
            else:
                bar.advance(done)
            if callback is not None:
                callback(r + 1, states, returns)
    if eval_returns is None:  # resumed a finished run whose evaluation was logged
        eval_returns = evaluate_at(algo, eval_env, states, eval_keys, total)
    return TrainResult(states=states, seeds=seeds, steps=total, eval_returns=eval_returns)


def save_reward(algo: ModuleType, state: Any, path: str | Path) -> None:
    """One seed's reward net as a saved reward (``rewards.load_reward`` reads it).

    AIRL saves its shaped net ``f`` with the generator's normalisation statistics (kinds ``normalized``,
    ``shaped``, ``unshaped``). GAIL saves its discriminator, whose output is the logit; its training
    reward is ``softplus(logit)`` (noted in the metadata), so no normalisation statistics are saved.
    """
    name = algo_name(algo)
    params = adversarial.disc_net_params(state, state.disc_params)  # the input normalisation folded in
    if name == "airl":
        norm = state.reward_norm if state.normalize_reward else None
        rewards.save(path, state.net, params, norm, metadata={"algorithm": "airl"})
    else:
        meta = {"algorithm": name, "output": "discriminator logit; GAIL's reward is softplus(logit) = -log(1 - D)"}
        rewards.save(path, state.net, params, metadata=meta)


def save_outputs(algo: ModuleType, states: Any, seeds: Sequence[int], env: Env, out: str | Path) -> list[Path]:
    """Each seed's policy as ``out/policies/seed_<s>`` and reward net as ``out/rewards/seed_<s>``."""
    paths = []
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        kind, params, config, obs_norm = policy_for_saving(ppo, state.gen)
        path = Path(out) / "policies" / f"seed_{seed}"
        save_policy(path, kind, params, (env.observation_space, env.action_space), config, obs_norm)  # type: ignore[arg-type]
        save_reward(algo, state, Path(out) / "rewards" / f"seed_{seed}")
        paths.append(path)
    return paths


__all__ = [
    "batched_round",
    "init_states",
    "prepare_demos",
    "save_outputs",
    "save_reward",
    "train_adversarial",
]
