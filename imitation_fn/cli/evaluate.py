"""``eval``: a training run directory (every seed) or one policy file, optionally recorded as video."""

from __future__ import annotations

import argparse
import types
from pathlib import Path
from typing import Any

import torch

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.cli.common import CLIError, console, load_policy_arg, make_env, results_table
from imitation_fn.core import random, serialization
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.training import evaluate_seeds, load_run
from imitation_fn.training.driver import CHECKPOINT
from imitation_fn.video import record_episodes

ALGORITHMS: dict[str, types.ModuleType] = {"bc": bc}


def cmd_eval(args: argparse.Namespace) -> None:
    if (args.run is None) == (args.policy is None):
        raise CLIError("eval: give exactly one of --run (a training run directory) and --policy (a policy file)")
    if args.policy is not None:
        _eval_policy(args)
        return
    env = make_env(args.env, n_envs=args.n_episodes)
    try:
        algo_name = serialization.load_metadata(Path(args.run) / CHECKPOINT).get("algorithm", "")
        algo = ALGORITHMS[algo_name]
        run = load_run(algo, args.run, env.observation_space, env.action_space)
    except FileNotFoundError as e:
        raise CLIError(f"{args.run} is not a run directory (no {CHECKPOINT})") from e
    except KeyError as e:
        raise CLIError(f"{args.run} holds an unknown algorithm {e.args[0]!r}") from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    keys = torch.stack([random.fold_in(random.key(args.seed), s) for s in run.seeds])
    returns = evaluate_seeds(algo, env, run.states, keys)
    title = f"{algo_name} run {args.run} after {run.step} steps, on {args.env}"
    console.print(results_table(title, run.seeds, returns))


def _eval_policy(args: argparse.Namespace) -> None:
    loaded = load_policy_arg(args.policy)
    policy = loaded.policy_fn(deterministic=not args.stochastic)
    env = make_env(args.env, n_envs=args.n_episodes)
    key = random.key(args.seed)
    if isinstance(env, envs.GymEnv):
        returns = evaluate_gym_policy(env, policy, key, args.n_episodes).returns
    else:
        returns = evaluate_policy(env, policy, key).returns
    console.print(results_table(f"{args.policy} on {args.env}", [args.seed], returns[None]))
    if args.video:
        try:
            paths = record_episodes(args.env, policy, key, args.video_episodes, args.video, fmt=args.video_format)
        except (ImportError, ValueError) as e:
            raise CLIError(f"--video: {e}") from e
        console.print(f"videos: {', '.join(map(str, paths))}")


def register(sub: Any) -> None:
    e = sub.add_parser("eval", help="evaluate a saved run directory (every seed) or a policy file")
    e.add_argument("--run", default=None, help="run directory written by a training command (--out)")
    e.add_argument("--policy", default=None, help="policy directory, policy file, or SB3 .zip")
    e.add_argument("--stochastic", action="store_true", help="with --policy: sample actions instead of the mode")
    e.add_argument("--video", default=None, metavar="DIR", help="with --policy: record episodes into DIR")
    e.add_argument("--video-episodes", type=int, default=1, help="episodes to record (default: 1)")
    e.add_argument("--video-format", choices=["gif", "mp4"], default="gif", help="video format (default: gif)")
    e.add_argument("--env", default="CartPole-v1", help="environment id (default: CartPole-v1)")
    e.add_argument("--n-episodes", type=int, default=10, help="episodes per seed (default: 10)")
    e.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    e.set_defaults(func=cmd_eval)
