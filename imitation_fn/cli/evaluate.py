"""``eval``: a training run directory (every seed) or one policy file, optionally recorded as video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from imitation_fn import envs
from imitation_fn.algorithms import bc, mce_irl
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    console,
    load_policy_arg,
    make_env,
    nonnegative_int,
    positive_int,
    results_table,
)
from imitation_fn.cli.mce_irl import MDP_SPEC, load_mdp
from imitation_fn.core import random, serialization, tree
from imitation_fn.envs.tabular import TabularEnv
from imitation_fn.envs.task import Task
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.policies import check_spaces, tabular
from imitation_fn.policies.io import LoadedPolicy
from imitation_fn.train import evaluate_seeds, load_run
from imitation_fn.train.run import CHECKPOINT, check_config_file
from imitation_fn.video import record_episodes

DEFAULT_ENV = "CartPole-v1"


def cmd_eval(args: argparse.Namespace) -> None:
    if (args.run is None) == (args.policy is None):
        raise CLIError("eval: give exactly one of --run (a training run directory) and --policy (a policy file)")
    if args.policy is not None:
        _eval_policy(args)
        return
    run = Path(args.run)
    if not (run / CHECKPOINT).is_file():
        raise CLIError(f"--run {run} is not a run directory (no {CHECKPOINT}): give the --out of a training command")
    meta = serialization.load_metadata(run / CHECKPOINT)
    check_config_file(run)
    algorithm, step, seeds = meta.get("algorithm", "?"), meta.get("step"), [int(s) for s in meta.get("seeds", [])]
    trained_on = meta.get("env")
    env_id = args.env or trained_on or DEFAULT_ENV
    if algorithm == "mce_irl":
        returns = _eval_mce_run(run, seeds, args)
    elif algorithm == "bc":
        returns = _eval_bc_run(run, env_id, args)
    else:
        returns = _eval_policies(run, seeds, env_id, trained_on, args)
    title = f"{algorithm} run {run} after {step} steps, on {env_id if algorithm != 'mce_irl' else trained_on}"
    console.print(results_table(title, seeds, returns))


def _eval_bc_run(run: Path, env_id: str, args: argparse.Namespace) -> torch.Tensor:
    """BC's checkpoint itself (runs written before BC exported policy files evaluate too)."""
    env = make_env(env_id, n_envs=args.n_episodes)
    saved = load_run(bc, run, env.observation_space, env.action_space)
    keys = torch.stack([random.fold_in(random.key(args.seed), s) for s in saved.seeds])
    return evaluate_seeds(bc, env, saved.states, keys)


def _eval_policies(
    run: Path, seeds: list[int], env_id: str, trained_on: str | None, args: argparse.Namespace
) -> torch.Tensor:
    """Every seed's exported policy (``policies/seed_<s>``, or ``seed_<s>/policy`` for preference comparisons)."""
    env = make_env(env_id, n_envs=args.n_episodes)
    rows = []
    for seed in seeds:
        candidates = (run / "policies" / f"seed_{seed}", run / f"seed_{seed}" / "policy")
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise CLIError(f"--run {run}: no policy for seed {seed} (looked for {', '.join(map(str, candidates))})")
        policy = load_policy_arg(str(path))
        try:
            check_spaces(policy, env.observation_space, env.action_space, env_id)
        except ValueError as e:
            where = f" (the run was trained on {trained_on})" if trained_on else ""
            raise CLIError(f"--run {run}: {e}{where}") from e
        key = random.fold_in(random.key(args.seed), seed)
        rows.append(_returns(policy, env, key, args.n_episodes, args.stochastic))
    return torch.stack(rows)


def _eval_mce_run(run: Path, seeds: list[int], args: argparse.Namespace) -> torch.Tensor:
    """Sampled returns of each seed's soft-optimal policy for its learned reward, on the run's own MDP."""
    mdp = load_mdp(run / MDP_SPEC)
    cfg = mce_irl.Config.load(run / "config.json")
    task = Task(mdp=mdp)
    template = torch.func.vmap(lambda k: mce_irl.init(cfg, k, task))(torch.stack([random.key(s) for s in seeds]))
    states = serialization.load(run / CHECKPOINT, template)
    env = TabularEnv(mdp, n_envs=args.n_episodes)
    rows = []
    for i, seed in enumerate(seeds):
        pi = mce_irl.policy(tree.index(states, i))
        with torch.no_grad():
            batch, _ = tabular.rollout(env, pi, random.fold_in(random.key(args.seed), seed), mdp.horizon)
        rows.append(batch.rews.sum(0).float())
    return torch.stack(rows)


def _returns(policy: LoadedPolicy, env: envs.Env, key: torch.Tensor, n_episodes: int, stochastic: bool) -> torch.Tensor:
    policy_fn = policy.policy_fn(deterministic=not stochastic)
    if isinstance(env, envs.GymEnv):
        return evaluate_gym_policy(env, policy_fn, key, n_episodes).returns
    return evaluate_policy(env, policy_fn, key).returns


def _eval_policy(args: argparse.Namespace) -> None:
    loaded = load_policy_arg(args.policy)
    env_id = args.env or DEFAULT_ENV
    env = make_env(env_id, n_envs=args.n_episodes)
    try:
        check_spaces(loaded, env.observation_space, env.action_space, env_id)
    except ValueError as e:
        raise CLIError(f"--policy: {e}") from e
    key = random.key(args.seed)
    returns = _returns(loaded, env, key, args.n_episodes, args.stochastic)
    console.print(results_table(f"{args.policy} on {env_id}", [args.seed], returns[None]))
    if args.video:
        policy = loaded.policy_fn(deterministic=not args.stochastic)
        try:
            paths = record_episodes(env_id, policy, key, args.video_episodes, args.video, fmt=args.video_format)
        except (ImportError, ValueError) as e:
            raise CLIError(f"--video: {e}") from e
        console.print(f"videos: {', '.join(map(str, paths))}")


def register(sub: Any) -> None:
    e = add_command(sub, "eval", help="evaluate a saved run directory (every seed) or a policy file")
    e.add_argument("--run", default=None, help="run directory written by any training command (--out)")
    e.add_argument(
        "--policy", default=None, help="policy directory, policy file, SB3 .zip, or Hugging Face repo org/algo-env"
    )
    e.add_argument("--env", default=None, help=f"environment id (default: the run's own; for --policy, {DEFAULT_ENV})")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    e.add_argument("--video", default=None, metavar="DIR", help="with --policy: record episodes into DIR")
    e.add_argument("--video-episodes", type=positive_int, default=1, help="episodes to record")
    e.add_argument("--video-format", choices=["gif", "mp4"], default="gif", help="video format")
    e.add_argument("--n-episodes", type=positive_int, default=10, help="episodes per seed")
    e.add_argument("--seed", type=nonnegative_int, default=0, help="evaluation seed")
    e.set_defaults(func=cmd_eval)
