"""``density``: fit a kernel density reward to demonstrations, then train PPO on it for N vmapped seeds."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from imitation_fn import presets
from imitation_fn.algorithms import density
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    add_config_flags,
    add_init_policy_flag,
    add_run_flags,
    config_from_args,
    console,
    flag,
    init_policy_from_args,
    positive_int,
    read_config_file,
    require_env,
)
from imitation_fn.cli.data import expert_demos
from imitation_fn.data import serialize
from imitation_fn.rl import ppo
from imitation_fn.train import density as density_training
from imitation_fn.train import loop


def _table(title: str, result: loop.Result) -> Table:
    table = Table(title=title)
    for col in ("seed", "true return", "std", "imitation return", "std"):
        table.add_column(col, justify="right")
    true, imit = result.eval_returns, result.evaluation["imitation_returns"]
    for i, seed in enumerate(result.seeds):
        table.add_row(
            str(seed),
            f"{true[i].mean():.1f}",
            f"{true[i].std(correction=0):.1f}",
            f"{imit[i].mean():.4g}",
            f"{imit[i].std(correction=0):.4g}",
        )
    table.add_row(
        "all",
        f"{true.mean():.1f}",
        f"{true.std(correction=0):.1f}",
        f"{imit.mean():.4g}",
        f"{imit.std(correction=0):.4g}",
        style="bold",
    )
    return table


def build_config(args: argparse.Namespace, rl_arch: dict[str, Any] | None = None) -> density.Config:
    """Defaults < ``--config`` file < flags for the density model; for its PPO agent (``rl``): the env's preset <
    ``--config``'s ``rl`` < ``--ppo-config`` file < ``rl_arch`` (``--init-policy``'s networks) < PPO's flags."""
    preset = None if args.no_preset else presets.get("density", args.env)
    base: dict[str, Any] = read_config_file(args.config) if args.config else {}
    args.config = None
    rl_base = base.pop("rl", {})
    if not isinstance(rl_base, dict):
        raise CLIError("--config: 'rl' must be a mapping of PPO config fields")
    rl_base = {**(preset.config if preset else {}), **rl_base}
    if args.ppo_config:
        rl_base.update(read_config_file(args.ppo_config, "--ppo-config"))
    rl_cfg = config_from_args(ppo.Config, args, base=rl_base, over=rl_arch)
    return config_from_args(density.Config, args, base={**base, "rl": rl_cfg})


def cmd_density(args: argparse.Namespace) -> None:
    require_env(args.env)
    init_policy, rl_arch = init_policy_from_args(args, "ppo")
    cfg = build_config(args, rl_arch)
    preset = None if args.no_preset else presets.get("density", args.env)
    total = args.total_timesteps if args.total_timesteps is not None else (preset.total_timesteps if preset else None)
    if total is None:
        raise CLIError(f"no PPO preset for {args.env}: give {flag('total_timesteps')}")
    if args.demos:
        try:
            trajs: list[Any] = serialize.load(args.demos)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(f"--demos {args.demos}: {e}") from e
    else:
        trajs = expert_demos(args.env, args.n_demos, args.seed)
        console.print(f"{len(trajs)} demonstrations from {args.env}'s scripted expert")
    seeds = list(range(args.seed, args.seed + args.seeds))
    console.print(
        f"density ({cfg.density_type.value}, {cfg.kernel}, bandwidth {cfg.kernel_bandwidth}) + PPO on {args.env}: "
        f"{total} env steps × {len(seeds)} seeds" + (" (PPO preset)" if preset else "")
    )
    t0 = time.perf_counter()
    try:
        result = density_training.train_policy(
            cfg,
            args.env,
            trajs,
            seeds=seeds,
            total_timesteps=total,
            n_eval_episodes=args.n_eval_episodes,
            eval_every=args.eval_every,
            log_dir=args.out,
            checkpoint_every=args.checkpoint_every,
            log_formats=args.log_formats,
            resume=args.resume,
            compile=args.compile,
            device=args.device,
            progress=not args.no_progress,
            init_policy=init_policy,
        )
    except (ValueError, KeyError) as e:  # the library's checks of settings and data
        raise CLIError(str(e.args[0] if e.args else e)) from e
    elapsed = time.perf_counter() - t0
    console.print(_table(f"density reward + PPO on {args.env}", result))
    console.print(f"{result.steps} env steps × {len(seeds)} seeds in {elapsed:.1f} s")
    if args.out:
        paths = [Path(args.out) / "policies" / f"seed_{s}" for s in seeds]  # written with every checkpoint
        console.print(f"policies: {', '.join(map(str, paths))}")


def register(sub: Any) -> None:
    p = add_command(
        sub, "density", help="density-based reward modelling: KDE reward from demonstrations + PPO, vmapped over seeds"
    )
    p.add_argument("--env", default="seals/CartPole-v0", help="environment id (a torch one; fixed horizon advised)")
    p.add_argument(
        "--demos",
        default=None,
        help="dataset directory, .npz or Hugging Face dataset org/name (default: the env's scripted expert)",
    )
    p.add_argument(
        "--n-demos", type=positive_int, default=10, help="scripted-expert episodes when --demos is not given"
    )
    p.add_argument(
        "--total-timesteps", type=positive_int, default=None, help="env steps per seed (default: the preset's)"
    )
    p.add_argument("--out", default=None, help="run directory: config, metrics, checkpoint, policies/")
    p.add_argument(
        "--config", default=None, help="JSON or YAML file of density config fields (PPO's under 'rl', over the preset)"
    )
    p.add_argument("--ppo-config", default=None, help="JSON or YAML file of PPO config fields (over the preset)")
    p.add_argument("--no-preset", action="store_true", help="start PPO from its defaults, not the env's preset")
    add_init_policy_flag(p, "the PPO agent")
    add_run_flags(p, eval_unit="env steps", compile_help="torch.compile PPO's vmapped minibatch step")
    p.add_argument("--rl", help=argparse.SUPPRESS)  # the nested PPO config comes from PPO's own flags below
    add_config_flags(p, density.Config)
    add_config_flags(p, ppo.Config)
    p.set_defaults(func=cmd_density)


__all__ = ["cmd_density", "register"]
