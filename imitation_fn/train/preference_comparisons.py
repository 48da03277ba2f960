"""The preference-comparisons driver: every round of N seeds as one vmapped call, plus the host-side pieces.

    result = train(cfg, "Pendulum-v1", seeds=range(8))             # synthetic labels, agent on torch env
    result = train(cfg, "Pendulum-v1", gatherer=my_human_gatherer)   # labels from a front end (host-side)
    result = train(cfg, "seals/CartPole-v0", trajectories=demos)     # fragments from a fixed dataset, no agent

With synthetic labels a round's reward part (sample trajectories, fragment, label, push, train the
reward) is one ``vmap`` of :func:`preference_comparisons.iteration`; a :class:`PreferenceGatherer` (a
human front end) splits it: vmapped ``collect``, then the gatherer on each seed's fragments on the host,
then vmapped ``update``. The agent then trains on the new reward for all seeds at once
(:func:`agent_trainer.batched_train_agent`: ``vmap(train_agent)``, SAC's steps optionally compiled).
Host-side here: the fragment-supply warnings, the fixed-horizon check,
evaluation, JSONL metrics, a checkpoint per round (resumable) and the saved reward, policy and dataset.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from imitation_fn import envs, rewards
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import random, serialization, tree
from imitation_fn.data import preferences
from imitation_fn.data.preferences import Fragments
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.envs.base import Env
from imitation_fn.envs.gym import GymEnv
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.policies.io import save_policy
from imitation_fn.rewards import preference_model
from imitation_fn.rl import agent_trainer
from imitation_fn.train.driver import check_seeds, seed_keys
from imitation_fn.train.logger import ProgressBar
from imitation_fn.train.rl import policy_for_saving
from imitation_fn.train.run import CHECKPOINT, CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS, open_run

ALGORITHM = "preference_comparisons"


PreferenceGatherer = Callable[[Fragments], Tensor]
"""What a human front end implements: label pairs of fragments (host-side, one seed at a time).

It gets ``Fragments`` with leaves ``(pairs, 2, L, ...)`` (obs, acts, next_obs, dones, the true rews when
known) and returns ``(pairs,)`` float probabilities that the first fragment is preferred (0, 1, 0.5 a tie).
"""


@dataclasses.dataclass(frozen=True)
class PCResult:
    """What :func:`train` returns."""

    states: Any  # pc.State stacked over seeds
    seeds: list[int]
    rounds: list[pc.Round]
    eval_returns: Tensor | None  # (n_seeds, n_eval_episodes) of the final policy, None without an agent
    metrics: dict[str, Tensor]  # the last round's metrics, (n_seeds,) each
    seconds: float  # wall time of the rounds (not counting evaluation)

    @property
    def reward_accuracy(self) -> Tensor:
        return self.metrics["reward/accuracy"]


def _check_horizon(metrics: dict[str, Tensor], allow_variable_horizon: bool) -> None:
    lo, hi = metrics.get("terminal_len_min"), metrics.get("terminal_len_max")
    if allow_variable_horizon or lo is None or hi is None:
        return
    lo_v, hi_v = float(lo.min()), float(hi.max())
    if lo_v != float("inf") and lo_v != hi_v:
        raise ValueError(
            f"Episodes of different length detected: terminal episodes of {int(lo_v)} to {int(hi_v)} steps. "
            "Variable horizon environments are discouraged -- termination conditions leak information about "
            "reward. See https://imitation.readthedocs.io/en/latest/guide/variable_horizon.html for more "
            "information. If you are SURE you want to run imitation on a variable horizon task, then please "
            "pass in the flag: `allow_variable_horizon=True`."
        )


def _check_dataset(trajectories: Sequence[TrajectoryWithRew], cfg: pc.Config) -> None:
    horizons = {len(t) for t in trajectories if t.terminal}
    if len(horizons) > 1 and not cfg.allow_variable_horizon:
        _check_horizon(
            {
                "terminal_len_min": torch.tensor(float(min(horizons))),
                "terminal_len_max": torch.tensor(float(max(horizons))),
            },
            False,
        )


@functools.cache
def _env(env_id: str, n_envs: int) -> Env:
    return envs.make(env_id, n_envs=n_envs)


def evaluate(states: Any, env: Env, keys: Tensor) -> Tensor:
    """Each seed's deterministic policy for one episode per sub-env: ``(n_seeds, env.n_envs)``."""
    return torch.func.vmap(lambda s, k: evaluate_policy(env, pc.policy(s), k).returns)(states, keys)


def train(
    cfg: pc.Config,
    env_id: str,
    *,
    seeds: Sequence[int] = (0,),
    trajectories: Sequence[TrajectoryWithRew] | None = None,
    gatherer: PreferenceGatherer | None = None,
    n_eval_episodes: int = 10,
    eval_every: int | None = None,
    log_dir: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, Any, dict[str, Tensor]], None] | None = None,
    compile: bool = False,
) -> PCResult:
    """Run every round of preference comparisons for every seed (see the module docstring).

    ``eval_every`` counts rounds (evaluation always runs at the end when there is an agent). With
    ``log_dir``: ``config.json``, ``metrics.jsonl`` and a checkpoint every ``checkpoint_every`` seconds
    (at a round's end), at every evaluation and at the end; ``resume`` continues from it (see
    :mod:`imitation_fn.train.run`). ``callback(round, states, metrics)`` runs after each round.
    ``compile``: SAC agents train through ``torch.compile`` (see :func:`agent_trainer.batched_train_agent`;
    compiling takes seconds with torch's on-disk caches warm, a few minutes cold).
    """
    seeds = check_seeds(seeds, "preference_comparisons.train")
    agent_env: Env | None = None
    pool: pc.Pool | None = None
    if trajectories is None:
        n_envs = int(cfg.agent_cfg().n_envs)
        agent_env = _env(env_id, n_envs)
        if isinstance(agent_env, GymEnv):
            raise NotImplementedError(
                f"preference comparisons vmaps every round over seeds, which needs a torch environment; "
                f"{env_id} has none"
            )
        horizon = agent_env.max_episode_steps
        spaces = None
    else:
        _check_dataset(trajectories, cfg)
        pool = pc.pool_from_trajectories(trajectories, cfg.fragment_length)
        probe = _env(env_id, 1)
        spaces = (probe.observation_space, probe.action_space)
        horizon = None
    rounds = pc.plan(cfg, horizon)

    init_keys, _, eval_keys = seed_keys(seeds)
    states = torch.func.vmap(lambda k: pc.init(cfg, k, agent_env, spaces=spaces))(init_keys)
    run, states, start = open_run(
        log_dir,
        resume,
        states,
        cfg,
        seeds,
        algorithm=ALGORITHM,
        env_id=env_id,
        budget=len(rounds),
        checkpoint_every=checkpoint_every,
        log_formats=log_formats,
    )
    run.export = lambda out, states: export_artifacts(out, states, seeds, env_id)
    eval_env = _env(env_id, n_eval_episodes) if agent_env is not None else None

    # The agent trains after each round's reward update, on a stack of states (SAC's pieces compiled if asked).
    train_agent = None
    if agent_env is not None:
        reward = functools.partial(preference_model.agent_reward, states.net, cfg.normalize_reward)
        train_agent = agent_trainer.batched_train_agent(cfg.agent, agent_env, reward, compile)
    sampler = None
    if compile and gatherer is None and pool is None:
        # Compiled sampling of the agent's trajectories: one pool size for every round (a new size recompiles).
        n_pool = max(r.pool_envs for r in rounds)
        rounds = [dataclasses.replace(r, pool_envs=n_pool) for r in rounds]
        sampler = agent_trainer.batched_sample_pool(cfg.agent, _env(env_id, n_pool), pc.exploration(cfg), compile=True)

    def iteration(rnd: pc.Round) -> Callable[[Any], tuple[Any, dict[str, Tensor]]]:
        source = pool if pool is not None else _env(env_id, rnd.pool_envs)
        if sampler is not None:

            def reward_round(states: Any) -> tuple[Any, dict[str, Tensor]]:
                states, k_pool, k_frag = torch.func.vmap(pc.collect_keys)(states)
                pools, m = sampler(states.agent, k_pool, rnd.pool_steps)
                states = states.replace(sample_steps=states.sample_steps + rnd.pool_envs * rnd.pool_steps)
                if len(seeds) == 1:
                    one = tree.index((states, pools, k_frag, m), 0)
                    state, metrics = pc.iteration_from_pool(one[0], one[1], one[2], rnd, None, one[3])
                    return tree.stack([state]), tree.stack([metrics])
                return torch.func.vmap(lambda s, p, k, m: pc.iteration_from_pool(s, p, k, rnd, None, m))(
                    states, pools, k_frag, m
                )

        elif gatherer is None and len(seeds) == 1:
            # vmap over one seed only adds overhead (DESIGN §8): run the same pure function unbatched.
            def reward_round(states: Any) -> tuple[Any, dict[str, Tensor]]:
                state, m = pc.iteration(tree.index(states, 0), None, source, rnd)
                return tree.stack([state]), tree.stack([m])

        elif gatherer is None:

            def reward_round(states: Any) -> tuple[Any, dict[str, Tensor]]:
                return torch.func.vmap(lambda s: pc.iteration(s, None, source, rnd))(states)

        else:

            def reward_round(states: Any) -> tuple[Any, dict[str, Tensor]]:
                states, frags, m1 = torch.func.vmap(lambda s: pc.collect(s, source, rnd))(states)
                prefs = torch.stack(
                    [torch.as_tensor(gatherer(tree.index(frags, i)), dtype=torch.float32) for i in range(len(seeds))]
                )
                states, m2 = torch.func.vmap(lambda s, f, p: pc.update(s, f, p, rnd, None))(states, frags, prefs)
                return states, {**m1, **m2}

        def whole_round(states: Any) -> tuple[Any, dict[str, Tensor]]:
            states, m = reward_round(states)
            if train_agent is not None:
                agents, m_agent = train_agent(states.agent, (states.reward_params, states.reward_norm), rnd.agent_calls)
                states, m = states.replace(agent=agents), {**m, **m_agent}
            return states, m

        return whole_round

    def evaluate_and_log(states: Any, done: int) -> Tensor:
        assert eval_env is not None
        keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((len(seeds),), done))
        returns = evaluate(states, eval_env, keys)
        run.write_eval(done, {"return_mean": returns.mean(-1), "returns": returns})
        return returns

    metrics: dict[str, Tensor] = {}
    eval_returns: Tensor | None = None
    seconds = 0.0
    with ProgressBar(len(rounds), f"preference comparisons on {env_id} × {len(seeds)} seeds", enabled=progress) as bar:
        bar.advance(start)
        if run.pending_eval and eval_env is not None:
            eval_returns = evaluate_and_log(states, start)
        for rnd in rounds[start:]:
            if rnd.num_pairs > 0:
                lengths = (
                    [len(t) for t in trajectories] if trajectories is not None else [rnd.pool_steps] * rnd.pool_envs
                )
                pc.check_fragment_supply(lengths, cfg.fragment_length, rnd.num_pairs, cfg.warning_threshold)
            t0 = time.perf_counter()
            states, metrics = iteration(rnd)(tree.contiguous(states))  # see tree.contiguous: exact resumes
            seconds += time.perf_counter() - t0
            _check_horizon(metrics, cfg.allow_variable_horizon)
            done = rnd.index + 1
            run.writer.write(done, "train", metrics)
            last = done == len(rounds)
            show = {k: metrics[k] for k in ("reward/accuracy",) if k in metrics}
            evaluating = eval_env is not None and (last or bool(eval_every and done % eval_every == 0))
            run.after_update(states, done, evaluating=evaluating, final=last)
            if evaluating:
                eval_returns = show["return"] = evaluate_and_log(states, done)
            bar.advance(done, show)
            if callback is not None:
                callback(done, states, metrics)
    if eval_env is not None and eval_returns is None:  # resumed a finished run whose evaluation was logged
        keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((len(seeds),), len(rounds)))
        eval_returns = evaluate(states, eval_env, keys)
    return PCResult(states, seeds, rounds, eval_returns, metrics, seconds)


def save_artifacts(result: PCResult, env_id: str, out: str | Path) -> list[Path]:
    """Per seed: ``out/seed_<s>/{reward/, policy/, preferences.safetensors}``; returns the seed directories."""
    return export_artifacts(Path(out), result.states, result.seeds, env_id)


def export_artifacts(out: Path, states: Any, seeds: Sequence[int], env_id: str) -> list[Path]:
    """:func:`save_artifacts` of stacked ``states`` (a run writes them at every checkpoint)."""
    paths = []
    probe = _env(env_id, 1)
    for seed, state in zip(seeds, tree.unstack(states), strict=True):
        d = Path(out) / f"seed_{seed}"
        rewards.save(
            d / "reward",
            state.net,
            state.reward_params,
            state.reward_norm,
            metadata={"algorithm": ALGORITHM, "env": env_id, "seed": seed},
        )
        preferences.save(d / "preferences.safetensors", state.dataset)
        if agent_trainer.has_agent(state.agent):
            kind, params, config, obs_norm = policy_for_saving(agent_trainer.AGENTS[state.cfg.agent], state.agent)
            save_policy(d / "policy", kind, params, (probe.observation_space, probe.action_space), config, obs_norm)  # type: ignore[arg-type]
        paths.append(d)
    return paths


def has_checkpoint(log_dir: str | Path) -> bool:
    return (Path(log_dir) / CHECKPOINT).is_file()


def load_states(log_dir: str | Path, template: Any) -> Any:
    """States saved by a run's last checkpoint, into ``template``'s structure."""
    return serialization.load(Path(log_dir) / CHECKPOINT, template)


__all__ = [
    "ALGORITHM",
    "PCResult",
    "PreferenceGatherer",
    "evaluate",
    "has_checkpoint",
    "load_states",
    "save_artifacts",
    "train",
]
