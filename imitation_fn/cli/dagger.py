"""``dagger``: interactive imitation of an expert policy, vmapped over seeds.

    imitation-fn dagger --env CartPole-v1 --expert tests/data/experts/CartPole-v1 --seeds 8 \\
        --total-timesteps 10000 --out runs/dagger
    imitation-fn dagger --env CartPole-v1 --expert scripted --seeds 4 --out runs/dagger --resume
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from imitation_fn.algorithms import dagger
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
from imitation_fn.core.errors import InputError
from imitation_fn.data import serialize
from imitation_fn.data.utils import check_spaces as check_demo_spaces
from imitation_fn.envs.base import PolicyFn
from imitation_fn.envs.experts import expert_for
from imitation_fn.policies import check_spaces, load_policy
from imitation_fn.train.dagger import train_dagger


def load_expert(spec: str, env_id: str) -> PolicyFn:
    """``"scripted"`` (the env's scripted expert) or a saved policy (directory, ``.safetensors``, SB3 ``.zip``)."""
    env = make_env(env_id, n_envs=1)
    if spec == "scripted":
        try:
            return expert_for(env_id)
        except KeyError as e:
            raise CLIError(f"--expert scripted: {e.args[0]}") from e
    try:
        policy = load_policy(spec)
        check_spaces(policy, env.observation_space, env.action_space, env_id)
    except FileNotFoundError as e:
        raise CLIError(f"--expert {spec}: {e}") from e
    except InputError as e:  # the message names the file
        raise CLIError(f"--expert: {e}") from e
    return policy.policy_fn()


def cmd_dagger(args: argparse.Namespace) -> None:
    init_policy, arch = init_policy_from_args(args, "bc")
    cfg = config_from_args(dagger.Config, args, over=arch)
    expert = load_expert(args.expert, args.env)
    expert_trajs = None
    if args.expert_demos:
        try:
            expert_trajs = serialize.load(args.expert_demos)
            env = make_env(args.env, n_envs=1)
            check_demo_spaces(expert_trajs, env.observation_space, env.action_space)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(f"--expert-demos {args.expert_demos}: {e}") from e
    seeds = list(range(args.seed, args.seed + args.seeds))
    console.print(f"DAgger on {args.env}: {args.total_timesteps} env steps × {len(seeds)} seeds, expert {args.expert}")
    t0 = time.perf_counter()
    try:
        result = train_dagger(
            cfg,
            args.env,
            expert,
            total_timesteps=args.total_timesteps,
            seeds=seeds,
            expert_trajs=expert_trajs,
            scratch_dir=args.out,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            log_formats=args.log_formats,
            n_eval_episodes=args.n_eval_episodes,
            eval_every=args.eval_every,
            target_return=args.target_return,
            compile=args.compile,
            device=args.device,
            progress=not args.no_progress,
            init_policy=init_policy,
        )
    except ValueError as e:  # the library's checks of settings and data
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0
    console.print(results_table(f"DAgger on {args.env}", seeds, result.eval_returns))
    rounds, steps = int(result.states.round.max()), int(result.states.timesteps.max())
    console.print(f"{rounds} rounds, {steps} env steps per seed (at most), {len(seeds)} seeds in {elapsed:.1f} s")
    if args.out:
        console.print(f"policies in {args.out}/policies/seed_<s>; datasets, checkpoint and metrics in {args.out}")


def register(sub: Any) -> None:
    p = add_command(sub, "dagger", help="DAgger: imitate an expert policy interactively (vmapped over seeds)")
    p.add_argument("--env", default="CartPole-v1", help="environment id (any gymnasium id steps on the host)")
    p.add_argument(
        "--expert",
        required=True,
        help="expert policy: a saved policy directory/file, an SB3 .zip, a Hugging Face repo org/algo-env, or "
        "'scripted'",
    )
    p.add_argument("--expert-demos", default=None, help="optional initial expert demonstrations (dataset or .npz)")
    p.add_argument("--total-timesteps", type=positive_int, default=10_000, help="environment steps per seed")
    p.add_argument("--target-return", type=float, default=None, help="stop a seed once its evaluation reaches this")
    p.add_argument("--out", default=None, help="scratch directory: datasets per round, checkpoint, policies")
    p.add_argument("--config", default=None, help="JSON or YAML file of config fields")
    add_init_policy_flag(p, "the learner")
    add_run_flags(
        p,
        eval_unit="env steps (1: after every round)",
        eval_every=1,
        compile_help="torch.compile the vmapped steps (slow to start)",
    )
    add_config_flags(p, dagger.Config)
    p.set_defaults(func=cmd_dagger)
