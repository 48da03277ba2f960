"""GAIL and AIRL through :mod:`imitation_fn.train.loop`: N seeds at once on a torch environment.

    result = train_adversarial(gail, cfg, "seals/CartPole-v0", trajectories, seeds=range(8), total_timesteps=300_000)

Every iteration of the loop is one round for every seed (:func:`round_step`): ``vmap(algo.train_round)``
with PPO's collection and update batched (and compiled when asked) and the host-side variable-horizon
guard run on what was collected. As ``imitation``'s ``train(total_timesteps)``, a run is
``total_timesteps // gen_train_timesteps`` rounds; progress counts generator env steps. At every
evaluation point (and the end) each seed's policy and reward net are saved.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Unpack

import torch
from torch import Tensor

from imitation_fn import envs, rewards
from imitation_fn.algorithms import adversarial, airl, gail
from imitation_fn.core import random, tree
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.data.utils import check_spaces
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.host import HostEnvs, restart_keys
from imitation_fn.envs.task import Task
from imitation_fn.policies.io import save_policy
from imitation_fn.rl import ppo, ppo_batched
from imitation_fn.train import loop, warm_start
from imitation_fn.train.rl import policy_for_saving


def env_steps(states: Any) -> int:
    """Generator env steps every seed has collected (the staggering burn-in is not counted)."""
    return int(states.gen.timesteps.min())


def round_step(algo: ModuleType, cfg: Any, task: Task, data_keys: Tensor, compile: bool) -> loop.Step:
    """``vmap(algo.train_round)`` over stacked states, with PPO's pieces batched and compiled when asked.

    The round of :func:`adversarial.train_round`, its generator part through :func:`ppo_batched.batched_collect`
    and :func:`ppo_batched.batched_update` (compiled with ``compile``), the rest the algorithm's own functions
    vmapped, and the variable-horizon guard (which cannot run inside ``vmap``) on the batched rollouts.
    """
    assert task.env is not None, "round_step: the task has no env"
    demos = adversarial.expert_transitions(task.demos)  # flattened once, shared by every seed and round
    if isinstance(task.env, GymEnv):
        collect = ppo_batched.host_collect(task.env, on_restart=host_stagger if cfg.stagger_envs else None)
    else:
        collect = ppo_batched.batched_collect(task.env, compile)
    label = torch.func.vmap(lambda s, r: adversarial.label(s, r, algo.reward_train(s)))
    gen_update = ppo_batched.batched_update(compile)
    store = torch.func.vmap(adversarial.store)
    gen_metrics = torch.func.vmap(adversarial.generator_metrics)
    end_round = torch.func.vmap(lambda s, m: adversarial.end_round(s, demos, algo.loss, m))

    def step(states: Any, done: int) -> tuple[Any, loop.Metrics]:
        history = []
        for _ in range(states.n_gen_updates):
            gen, rollouts = collect(states.gen)
            adversarial.check_fixed_horizon(rollouts.terminated, states.allow_variable_horizon)  # host-side
            states, rollouts = label(states.replace(gen=gen), rollouts)
            gen, metrics = gen_update(states.gen, rollouts)
            states = store(states.replace(gen=gen), rollouts)
            history.append(gen_metrics(metrics, rollouts))
        return end_round(states, adversarial.mean_metrics(history))

    return step


def host_stagger(gens: ppo.State, envs: HostEnvs) -> None:
    """:func:`adversarial.stagger` for host envs as they (re)start: sub-env ``j`` of every seed is put
    ``stagger_offsets[j]`` steps into its episode by the generators' current stochastic policies."""
    keys = restart_keys(gens.key)
    act = torch.func.vmap(lambda s, obs, k: ppo.policy(s, deterministic=False)(obs, k))
    fold = torch.func.vmap(random.fold_in, in_dims=(0, None))
    envs.advance(adversarial.stagger_offsets(envs, gens.key.device), lambda obs, t: act(gens, obs, fold(keys, t)))


def save_reward(algo: ModuleType, state: Any, path: str | Path) -> None:
    """One seed's reward net as a saved reward (``rewards.load_reward`` reads it).

    AIRL saves its shaped net ``f`` with the generator's normalisation statistics (kinds ``normalized``,
    ``shaped``, ``unshaped``). GAIL saves its discriminator, whose output is the logit; its training
    reward is ``softplus(logit)`` (noted in the metadata), so no normalisation statistics are saved.
    """
    params = adversarial.disc_net_params(state, state.disc_params)  # the input normalisation folded in
    if algo is airl:
        norm = state.reward_norm if state.normalize_reward else None
        rewards.save(path, state.net, params, norm, metadata={"algorithm": "airl"})
    else:
        meta = {"algorithm": "gail", "output": "discriminator logit; GAIL's reward is softplus(logit) = -log(1 - D)"}
        rewards.save(path, state.net, params, metadata=meta)


def save_outputs(algo: ModuleType, out: str | Path, states: Any, seeds: Sequence[int], task: Task) -> list[Path]:
    """Each seed's policy as ``out/policies/seed_<s>`` and reward net as ``out/rewards/seed_<s>``."""
    spaces = (task.observation_space, task.action_space)
    paths = []
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        kind, params, config, obs_norm = policy_for_saving(ppo, state.gen)
        path = Path(out) / "policies" / f"seed_{seed}"
        save_policy(path, kind, params, spaces, config, obs_norm)  # type: ignore[arg-type]
        save_reward(algo, state, Path(out) / "rewards" / f"seed_{seed}")
        paths.append(path)
    return paths


GAIL_SPEC, AIRL_SPEC = (
    loop.Spec(
        algo=algo,
        progress=env_steps,
        make_step=round_step,
        export=functools.partial(save_outputs, algo),
        bar=("disc_acc",),
        warm_start=warm_start.inside("gen", warm_start.into_ppo),
    )
    for algo in (gail, airl)
)
SPECS = {"gail": GAIL_SPEC, "airl": AIRL_SPEC}


def whole_rounds(cfg: adversarial.Config, total_timesteps: int) -> int:
    """The env steps of the whole rounds within ``total_timesteps`` (``imitation`` trains ``total // round``)."""
    per_round = cfg.round_timesteps
    if total_timesteps < per_round:
        raise ValueError(
            f"train_adversarial: no rounds: one round takes gen_train_timesteps={per_round} env steps, "
            f"but total_timesteps={total_timesteps}"
        )
    return total_timesteps // per_round * per_round


def prepare_demos(demos: Sequence[Trajectory] | Transitions, env: Env, allow_variable_horizon: bool) -> Transitions:
    """Check expert data against ``env``'s spaces and the horizon guard; flatten trajectories to transitions."""
    if len(demos) == 0:
        what = "" if isinstance(demos, Transitions) else " (0 trajectories)"
        raise ValueError(f"train_adversarial: the demonstrations are empty{what}")
    check_spaces(demos, env.observation_space, env.action_space)
    adversarial.check_demo_horizon(demos, allow_variable_horizon)
    return adversarial.expert_transitions(demos)


def make_task(
    cfg: adversarial.Config,
    env_id: str,
    *,
    budget: int,
    n_eval_episodes: int,
    demos: Sequence[Trajectory] | Transitions,
) -> Task:
    """The task of a GAIL/AIRL run: ``cfg.gen.n_envs`` training envs per seed, ``n_eval_episodes`` evaluation
    envs, the checked expert ``demos`` as transitions, and ``budget`` generator env steps."""
    env = envs.make(env_id, n_envs=cfg.gen.n_envs)
    eval_env = envs.make(env_id, n_envs=n_eval_episodes)
    data = prepare_demos(demos, env, cfg.allow_variable_horizon)
    return Task(env=env, demos=data, total=budget, eval_env=eval_env)


def train_adversarial(
    algo: ModuleType,
    cfg: adversarial.Config,
    env_id: str,
    demos: Sequence[Trajectory] | Transitions,
    *,
    total_timesteps: int,
    n_eval_episodes: int = 10,
    **options: Unpack[loop.RunOptions],
) -> loop.Result:
    """Train ``algo`` (:mod:`gail` or :mod:`airl`) on ``env_id`` from expert ``demos`` for every seed.

    Runs ``total_timesteps // cfg.round_timesteps`` rounds (``imitation``'s ``train``). ``eval_every``
    counts generator env steps; evaluation (``n_eval_episodes`` deterministic episodes per seed) always
    runs at the end, after the policies and reward nets are saved. The rest: :func:`loop.train`
    (``callback(env_steps, states, metrics, evaluation or None)`` after every round).
    ``Result.steps`` is the env steps each seed took.
    """
    spec = SPECS[algo.__name__.rsplit(".", 1)[-1]]
    budget = whole_rounds(cfg, total_timesteps)
    task = make_task(cfg, env_id, budget=budget, n_eval_episodes=n_eval_episodes, demos=demos)
    return loop.train(
        spec,
        cfg,
        task,
        budget=budget,
        env_id=env_id,
        **options,
    )


__all__ = [
    "AIRL_SPEC",
    "GAIL_SPEC",
    "SPECS",
    "env_steps",
    "host_stagger",
    "make_task",
    "prepare_demos",
    "round_step",
    "save_outputs",
    "save_reward",
    "train_adversarial",
    "whole_rounds",
]
