"""Datasets: ``demos`` (a scripted expert's episodes), ``rollouts`` (a saved policy's), ``convert`` (formats).

``rollouts`` on a gymnasium environment keeps each step's info dict in the dataset (JSON values, see
:mod:`imitation_fn.data.infos`); torch environments have none (empty dicts). On an environment with
``Dict`` observations of ``Box`` entries it writes them in the dict layout (one field per key, see
:mod:`imitation_fn.data.serialize`), which every ``--demos`` reads back flattened as the env gives them.
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym

from imitation_fn.cli.common import (
    CLIError,
    add_command,
    console,
    load_policy_arg,
    make_env,
    nonnegative_int,
    positive_int,
)
from imitation_fn.core import random
from imitation_fn.data import generate_trajectories, gym_rollout, rollout_stats, serialize
from imitation_fn.data.convert import convert
from imitation_fn.envs import GymEnv
from imitation_fn.envs.experts import expert_for
from imitation_fn.policies import check_spaces


def expert_demos(env_id: str, n_episodes: int, seed: int) -> list[Any]:
    """``n_episodes`` episodes of ``env_id``'s scripted expert."""
    env = make_env(env_id, n_envs=n_episodes)
    try:
        expert = expert_for(env_id)
    except KeyError as e:
        raise CLIError(str(e.args[0])) from e
    # generate_trajectories finishes every running episode (no short-episode bias); keep exactly n.
    return generate_trajectories(env, expert, random.key(seed), min_episodes=n_episodes)[:n_episodes]


def cmd_demos(args: argparse.Namespace) -> None:
    trajs = expert_demos(args.env, args.n_episodes, args.seed)
    save_dataset(args.out, trajs)
    stats = rollout_stats(trajs)
    console.print(
        f"saved {len(trajs)} episodes to {args.out}: return mean {stats['return_mean']:.1f}, "
        f"length mean {stats['len_mean']:.1f}"
    )


def cmd_convert(args: argparse.Namespace) -> None:
    try:
        dst = convert(args.src, args.dst, overwrite=args.overwrite)
        n_trajs = len(serialize.load(dst))
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise CLIError(str(e)) from e
    kind = "imitation .npz file" if dst.suffix == ".npz" else "datasets directory"
    console.print(f"{n_trajs} trajectories: {args.src} → {dst} ({kind})")


def save_dataset(
    out: str, trajs: list[Any], infos: list[list[dict[str, Any]]] | None = None, observation_space: Any = None
) -> None:
    try:
        serialize.save(out, trajs, infos=infos, observation_space=observation_space)
    except FileExistsError as e:
        raise CLIError(f"--out {out}: {e}") from e


def cmd_rollouts(args: argparse.Namespace) -> None:
    loaded = load_policy_arg(args.policy)
    env = make_env(args.env, n_envs=min(args.episodes, 64))
    try:
        check_spaces(loaded, env.observation_space, env.action_space, args.env)
    except ValueError as e:
        raise CLIError(f"--policy: {e}") from e
    policy = loaded.policy_fn(deterministic=not args.stochastic)
    key, n = random.key(args.seed), args.episodes
    infos, space = None, None
    if isinstance(env, GymEnv):  # the env's infos go into the dataset
        episodes = gym_rollout.collect_episodes(env, policy, key, min_episodes=n)
        trajs, infos = episodes.trajectories[:n], episodes.infos[:n]
        unflattened = env.unflattened_observation_space
        if isinstance(unflattened, gym.spaces.Dict) and serialize.has_dict_layout(unflattened):  # one field per key
            space = unflattened
            console.print(f"observations in the dict layout: {', '.join(unflattened.spaces)}")
        elif isinstance(unflattened, gym.spaces.Dict | gym.spaces.Tuple):
            why = "the dict layout holds Box entries, keys sorted"
            console.print(f"observations saved flattened ({why}): {unflattened}")
    else:
        trajs = generate_trajectories(env, policy, key, min_episodes=n)[:n]
    save_dataset(args.out, trajs, infos, space)
    stats = rollout_stats(trajs)
    console.print(
        f"saved {len(trajs)} episodes to {args.out}: return {stats['return_mean']:.1f} ± "
        f"{stats['return_std']:.1f}, length {stats['len_mean']:.1f}"
    )


def register(sub: Any) -> None:
    d = add_command(sub, "demos", help="roll out a scripted expert and save the episodes as a dataset")
    d.add_argument("--env", default="CartPole-v1", help="environment id")
    d.add_argument("--n-episodes", type=positive_int, default=50, help="episodes")
    d.add_argument("--seed", type=nonnegative_int, default=0, help="rollout seed")
    d.add_argument("--out", required=True, help="dataset directory to write")
    d.set_defaults(func=cmd_demos)

    c = add_command(sub, "convert", help="convert trajectories between a datasets directory and imitation's .npz")
    c.add_argument(
        "src", help="datasets directory (ours or imitation's), imitation .npz file, or a Hugging Face dataset org/name"
    )
    c.add_argument(
        "dst", help="output: a path ending in .npz gets imitation's npz layout, any other a datasets directory"
    )
    c.add_argument("--overwrite", action="store_true", help="replace dst if it already exists")
    c.set_defaults(func=cmd_convert)

    o = add_command(sub, "rollouts", help="roll out a saved policy (ours or an SB3 .zip) and save a dataset")
    o.add_argument(
        "--policy",
        required=True,
        help="policy directory, policy.safetensors/.json, SB3 .zip, or a Hugging Face repo id org/algo-env",
    )
    o.add_argument("--env", required=True, help="environment id")
    o.add_argument("--episodes", type=positive_int, default=50, help="episodes")
    o.add_argument("--out", required=True, help="dataset directory to write")
    o.add_argument("--seed", type=nonnegative_int, default=0, help="rollout seed")
    o.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    o.set_defaults(func=cmd_rollouts)
