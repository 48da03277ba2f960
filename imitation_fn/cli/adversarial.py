"""``gail`` and ``airl``: adversarial imitation from a demonstrations dataset, vmapped over seeds."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from imitation_fn import presets
from imitation_fn.algorithms import airl, gail
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    add_config_flags,
    add_init_policy_flag,
    add_run_flags,
    config_from_args,
    console,
    init_policy_from_args,
    positive_int,
    read_config_file,
    require_env,
    results_table,
)
from imitation_fn.data import rollout_stats, serialize
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.rl import ppo
from imitation_fn.train import adversarial as driver

ALGORITHMS = {"gail": gail, "airl": airl}


def build_config(name: str, args: argparse.Namespace, gen_arch: dict[str, Any] | None = None) -> Any:
    """Defaults < preset < ``--config`` file < ``gen_arch`` (``--init-policy``'s networks) < flags; PPO's flags
    build the nested ``gen`` config."""
    algo = ALGORITHMS[name]
    found = presets.get(name, args.env) if not args.no_preset else None
    base: dict[str, Any] = dict(found.config) if found else {}
    if args.config:
        base.update(read_config_file(args.config))
    args.config = None
    gen_base = base.pop("gen", {})
    if not isinstance(gen_base, dict):
        raise CLIError("--config: 'gen' must be a mapping of PPO config fields")
    gen = config_from_args(ppo.Config, args, base=gen_base, over=gen_arch)
    return config_from_args(algo.Config, args, base={**base, "gen": gen})


def cmd_adversarial(args: argparse.Namespace) -> None:
    name = args.command
    algo = ALGORITHMS[name]
    require_env(args.env)
    init_policy, gen_arch = init_policy_from_args(args, "ppo")
    cfg = build_config(name, args, gen_arch)
    found = presets.get(name, args.env) if not args.no_preset else None
    total = args.total_timesteps if args.total_timesteps is not None else (found.total_timesteps if found else None)
    if total is None:
        raise CLIError(f"no preset for {name} on {args.env}: give --total-timesteps")
    try:
        trajs = serialize.load(args.demos)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(f"--demos {args.demos}: {e}") from e
    if args.n_demos is not None:
        trajs = trajs[: args.n_demos]
    with_rews = [t for t in trajs if isinstance(t, TrajectoryWithRew)]
    stats = rollout_stats(with_rews) if with_rews and len(with_rews) == len(trajs) else None
    seeds = list(range(args.seed, args.seed + args.seeds))
    console.print(
        f"{name} on {args.env}: {len(trajs)} expert episodes"
        + (f" (return {stats['return_mean']:.1f})" if stats else "")
        + f", {total} generator steps × {len(seeds)} seeds"
        + (" (preset)" if found else "")
    )
    t0 = time.perf_counter()
    try:
        result = driver.train_adversarial(
            algo,
            cfg,
            args.env,
            trajs,
            seeds=seeds,
            total_timesteps=total,
            eval_every=args.eval_every,
            n_eval_episodes=args.n_eval_episodes,
            log_dir=args.out,
            checkpoint_every=args.checkpoint_every,
            log_formats=args.log_formats,
            resume=args.resume,
            compile=args.compile,
            device=args.device,
            progress=not args.no_progress,
            init_policy=init_policy,
        )
    except ValueError as e:  # the library's checks of settings and data
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0
    console.print(results_table(f"{name} on {args.env}", seeds, result.eval_returns))
    console.print(f"{result.steps} generator steps × {len(seeds)} seeds in {elapsed:.1f} s")
    if args.out:
        console.print(f"metrics, config, checkpoint, policies/ and rewards/ in {Path(args.out)}")


def register(sub: Any) -> None:
    for name, algo in ALGORITHMS.items():
        p = add_command(
            sub,
            name,
            help=f"{name.upper()}: adversarial imitation from demonstrations, PPO generator, vmapped over seeds",
        )
        p.add_argument("--env", default="seals/CartPole-v0", help="environment id (a torch one: seeds are vmapped)")
        p.add_argument(
            "--demos",
            required=True,
            help="dataset directory (ours or imitation's), .npz file, or Hugging Face dataset org/name",
        )
        p.add_argument(
            "--n-demos", type=positive_int, default=None, help="use the first N expert episodes (default: all)"
        )
        p.add_argument(
            "--total-timesteps", type=positive_int, default=None, help="generator env steps (default: the preset's)"
        )
        p.add_argument("--out", default=None, help="run directory: metrics, config, checkpoint, policies/, rewards/")
        p.add_argument("--config", default=None, help="JSON or YAML file of config fields (over the preset)")
        p.add_argument("--no-preset", action="store_true", help="start from the defaults, not the env's preset")
        add_init_policy_flag(p, "the PPO generator")
        add_run_flags(p, eval_unit="env steps", compile_help="torch.compile the PPO minibatch step")
        p.add_argument("--gen", help=argparse.SUPPRESS)  # the nested PPO config comes from PPO's own flags below
        add_config_flags(p, algo.Config)
        add_config_flags(p, ppo.Config)
        p.set_defaults(func=cmd_adversarial)
