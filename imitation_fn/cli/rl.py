"""``train-rl``: PPO or SAC experts, vmapped over seeds, from named presets."""

from __future__ import annotations

import argparse
import types
from pathlib import Path
from typing import Any

from imitation_fn import presets, rewards
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
    make_env,
    nonnegative_int,
    positive_int,
    read_config_file,
    require_env,
    results_table,
)
from imitation_fn.core import random
from imitation_fn.data import generate_trajectories, rollout_stats, serialize
from imitation_fn.policies import load_policy
from imitation_fn.rl import ppo, sac
from imitation_fn.train.rl import train_rl

RL_ALGORITHMS: dict[str, types.ModuleType] = {"ppo": ppo, "sac": sac}


def cmd_train_rl(args: argparse.Namespace) -> None:
    algo = RL_ALGORITHMS[args.algo]
    require_env(args.env)
    others = {f for name, mod in RL_ALGORITHMS.items() if name != args.algo for f in mod.Config.model_fields}
    foreign = [f for f in others - set(algo.Config.model_fields) if getattr(args, f, None) is not None]
    if foreign:
        raise CLIError(f"{', '.join(flag(f) for f in sorted(foreign))}: not an option of {args.algo}")
    preset = presets.get(args.algo, args.env) if not args.no_preset else None
    base = dict(preset.config) if preset else {}
    if args.config:
        base.update(read_config_file(args.config))
    args.config = None
    init_policy, arch = init_policy_from_args(args, args.algo)
    cfg = config_from_args(algo.Config, args, base=base, over=arch)
    total = args.total_steps if args.total_steps is not None else (preset.total_timesteps if preset else None)
    if total is None:
        raise CLIError(f"no preset for {args.algo} on {args.env}: give --total-steps")
    seeds = list(range(args.seed, args.seed + args.seeds))
    reward_fn = None
    if args.reward is not None:
        try:
            kwargs = {"alpha": args.reward_alpha} if args.reward_alpha is not None else {}
            reward_fn = rewards.load_reward(args.reward_kind, args.reward, make_env(args.env, n_envs=1), **kwargs)
        except (FileNotFoundError, ValueError, TypeError) as e:
            raise CLIError(f"--reward {args.reward}: {e}") from e
        console.print(f"training on the {args.reward_kind} reward at {args.reward} (evaluation: the env's reward)")
    console.print(
        f"{args.algo} on {args.env}: {total} env steps × {len(seeds)} seeds" + (" (preset)" if preset else "")
    )
    try:
        result = train_rl(
            algo,
            cfg,
            args.env,
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
            reward_fn=reward_fn,
            init_policy=init_policy,
        )
    except ValueError as e:  # the library's checks of settings and data
        raise CLIError(str(e)) from e
    console.print(results_table(f"{args.algo} on {args.env}", seeds, result.eval_returns))
    if args.out:
        paths = [Path(args.out) / "policies" / f"seed_{s}" for s in seeds]  # written with every checkpoint
        console.print(f"policies: {', '.join(map(str, paths))}")
        if args.save_demos:
            best = int(result.eval_returns.mean(-1).argmax())
            policy = load_policy(paths[best]).policy_fn()
            trajs = generate_trajectories(
                make_env(args.env, n_envs=args.save_demos), policy, random.key(args.seed), min_episodes=args.save_demos
            )[: args.save_demos]
            serialize.save(Path(args.out) / "demos", trajs)
            stats = rollout_stats(trajs)
            console.print(
                f"demos: {len(trajs)} episodes of seed {seeds[best]}'s policy, return "
                f"{stats['return_mean']:.1f} ± {stats['return_std']:.1f} → {Path(args.out) / 'demos'}"
            )


def register(sub: Any) -> None:
    r = add_command(sub, "train-rl", help="train PPO or SAC experts, vmapped over seeds")
    r.add_argument("--algo", choices=sorted(RL_ALGORITHMS), default="ppo", help="RL algorithm")
    r.add_argument("--env", default="CartPole-v1", help="environment id (a torch one: seeds are vmapped)")
    r.add_argument("--total-steps", type=positive_int, default=None, help="env steps per seed (default: the preset's)")
    r.add_argument("--out", default=None, help="run directory: metrics, config, checkpoint, policies/, demos/")
    r.add_argument("--config", default=None, help="JSON or YAML file of config fields (over the preset)")
    r.add_argument("--no-preset", action="store_true", help="start from the algorithm's defaults, not the preset")
    r.add_argument(
        "--reward",
        default=None,
        metavar="PATH",
        help="train on a saved reward net (rewards.save: a directory or .safetensors) instead of the env's reward",
    )
    r.add_argument(
        "--reward-kind",
        default="normalized",
        choices=[*rewards.KINDS, *rewards.io.IMITATION_KINDS],
        help="which reward of the saved net: normalized (needs saved statistics), unnormalized, shaped, "
        "unshaped (AIRL's test-time reward), std_added, zero; imitation's RewardNet_* names work too",
    )
    r.add_argument(
        "--reward-alpha",
        type=float,
        default=None,
        help="with --reward-kind std_added: the reward is mean + alpha * std over the ensemble (default: 0, "
        "imitation's AddSTDRewardWrapper)",
    )
    r.add_argument(
        "--save-demos",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="also save N episodes of the best seed's policy as a dataset in OUT/demos",
    )
    add_init_policy_flag(r, "the PPO or SAC policy")
    add_run_flags(
        r,
        eval_unit="env steps",
        compile_help="compile the per-step collection and the update pieces (~1 min to start; pays off past ~50k "
        "steps)",
    )
    for mod in RL_ALGORITHMS.values():
        add_config_flags(r, mod.Config)
    r.set_defaults(func=cmd_train_rl)
