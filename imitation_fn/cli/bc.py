"""Behavioural cloning: ``bc`` from a dataset, and the ``quickstart`` that makes one and trains on it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from imitation_fn.algorithms import bc
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    add_config_flags,
    add_init_policy_flag,
    add_run_flags,
    config_from_args,
    console,
    init_policy_from_args,
    make_env,
    positive_int,
    results_table,
)
from imitation_fn.cli.data import expert_demos
from imitation_fn.data import flatten_trajectories, rollout_stats, serialize
from imitation_fn.data.utils import check_spaces
from imitation_fn.train import train


def _run_bc(cfg: bc.Config, env_id: str, trajs: list[Any], args: argparse.Namespace, init_policy: Any = None) -> None:
    env = make_env(env_id, n_envs=args.n_eval_episodes)
    try:
        check_spaces(trajs, env.observation_space, env.action_space)
    except ValueError as e:
        raise CLIError(f"--demos do not fit {env_id}: {e}") from e
    data = flatten_trajectories(trajs)
    seeds = list(range(args.seed, args.seed + args.seeds))
    t0 = time.perf_counter()
    try:
        result = train(
            bc,
            cfg,
            data,
            env,
            seeds=seeds,
            n_epochs=args.n_epochs,
            eval_every=args.eval_every,
            log_dir=args.out,
            checkpoint_every=args.checkpoint_every,
            log_formats=args.log_formats,
            resume=args.resume,
            compile=args.compile,
            device=args.device,
            progress=not args.no_progress,
            env_id=env_id,
            init_policy=init_policy,
        )
    except (ValueError, AssertionError) as e:  # the library's checks of data and settings
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0
    console.print(results_table(f"BC on {env_id}", seeds, result.eval_returns))
    console.print(f"{len(data)} transitions, {result.steps} steps × {len(seeds)} seeds in {elapsed:.1f} s")
    if args.out:
        console.print(f"metrics, config and checkpoint in {args.out}")


def cmd_bc(args: argparse.Namespace) -> None:
    init_policy, arch = init_policy_from_args(args, "bc")
    cfg = config_from_args(bc.Config, args, over=arch)
    try:
        trajs = serialize.load(args.demos)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(f"--demos {args.demos}: {e}") from e
    _run_bc(cfg, args.env, trajs, args, init_policy)


def cmd_quickstart(args: argparse.Namespace) -> None:
    out = Path(args.out)
    demos = out / "demos"
    console.print(f"[bold]1.[/] scripted CartPole expert → {args.n_demos} demonstrations → {demos}")
    trajs = expert_demos("CartPole-v1", args.n_demos, args.seed)
    serialize.save(demos, trajs)
    stats = rollout_stats(trajs)
    console.print(f"   expert return {stats['return_mean']:.1f} ± {stats['return_std']:.1f}")
    console.print(f"[bold]2.[/] behavioural cloning, {args.seeds} seeds in one vmapped run")
    args.out = str(out / "bc")
    _run_bc(bc.Config(), "CartPole-v1", serialize.load(demos), args)


def register(sub: Any) -> None:
    q = add_command(sub, "quickstart", help="scripted expert → 50 demos → BC over 8 seeds → evaluation table")
    q.add_argument("--out", default="quickstart", help="output directory")
    q.add_argument("--n-demos", type=positive_int, default=50, help="expert episodes")
    q.add_argument("--n-epochs", type=positive_int, default=10, help="passes over the demonstrations")
    add_run_flags(q, seeds=8)
    q.set_defaults(func=cmd_quickstart)

    b = add_command(sub, "bc", help="behavioural cloning from a demonstrations dataset")
    b.add_argument("--env", default="CartPole-v1", help="environment id (any gymnasium id evaluates on the host)")
    b.add_argument(
        "--demos",
        required=True,
        help="dataset directory (ours or imitation's), .npz file, or Hugging Face dataset org/name",
    )
    b.add_argument("--out", default=None, help="run directory: metrics.jsonl, config.json, checkpoint")
    b.add_argument("--config", default=None, help="JSON or YAML file of config fields")
    b.add_argument("--n-epochs", type=positive_int, default=10, help="passes over the demonstrations")
    add_init_policy_flag(b, "the BC policy")
    add_run_flags(b, seeds=1)
    add_config_flags(b, bc.Config)
    b.set_defaults(func=cmd_bc)
