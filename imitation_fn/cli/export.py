"""``export-sb3``: a saved policy (or one seed of a run) as a stable-baselines3 zip, for ``PPO.load`` / ``SAC.load``.

imitation-fn export-sb3 --policy runs/ppo --out expert.zip             # a run with one seed
imitation-fn export-sb3 --policy runs/ppo --seed 2 --out expert.zip    # one seed of several
imitation-fn export-sb3 --policy runs/ppo/policies/seed_0 --out expert.zip --overwrite
imitation-fn export-sb3 --policy runs/reach --env my_envs:DictReach-v0 --out expert.zip   # a MultiInputPolicy
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from imitation_fn import envs
from imitation_fn.cli.common import CLIError, add_command, console, load_policy_arg, make_env, nonnegative_int
from imitation_fn.core.errors import InputError
from imitation_fn.policies.io import CONFIG_FILE, check_spaces
from imitation_fn.policies.sb3_export import ALGO_OF_KIND, ALGOS, SB3ExportError, export_sb3, vecnormalize_path
from imitation_fn.train.run import CHECKPOINT

_SEED_DIR = re.compile(r"seed_(\d+)")


def run_policies(run: Path) -> dict[int, Path]:
    """Each seed's exported policy in a run directory: ``policies/seed_<s>`` (``seed_<s>/policy`` for
    preference comparisons)."""
    found: dict[int, Path] = {}
    for pattern, inner in (("policies/seed_*", ""), ("seed_*/policy", "policy")):
        for path in run.glob(pattern):
            seed_dir = path.parent if inner else path
            match = _SEED_DIR.fullmatch(seed_dir.name)
            if match and (path / CONFIG_FILE).is_file():
                found.setdefault(int(match.group(1)), path)
    return dict(sorted(found.items()))


def _policy_path(path: Path, seed: int | None) -> Path:
    """The policy that ``--policy`` (and ``--seed``) name: a policy file or directory, or one seed of a run."""
    is_run = (
        path.is_dir()
        and not (path / CONFIG_FILE).is_file()
        and ((path / CHECKPOINT).is_file() or (path / "policies").is_dir())
    )
    if not is_run:
        if seed is not None:
            raise CLIError(f"--seed {seed}: --policy {path} is not a run directory (--seed picks one of a run's seeds)")
        return path
    seeds = run_policies(path)
    if not seeds:
        raise CLIError(f"--policy {path} is a run directory without exported policies (no policies/seed_<s>/)")
    listed = ", ".join(map(str, seeds))
    if seed is None:
        if len(seeds) > 1:
            raise CLIError(f"--policy {path} holds seeds {listed}: pick one with --seed")
        return next(iter(seeds.values()))
    if seed not in seeds:
        raise CLIError(f"--seed {seed}: run {path} has no policy for it (seeds: {listed})")
    return seeds[seed]


def cmd_export_sb3(args: argparse.Namespace) -> None:
    path = _policy_path(Path(args.policy), args.seed)
    policy = load_policy_arg(str(path))
    expected = ALGO_OF_KIND[policy.kind]
    if args.algo is not None and args.algo != expected:
        raise CLIError(f"--algo {args.algo}: {path} has kind {policy.kind}, which exports as SB3 {expected.upper()}")
    observation_space = None
    if args.env is not None:  # the policy saw the env's Dict observations flattened: SB3's MultiInputPolicy
        env = make_env(args.env, n_envs=1)
        try:
            check_spaces(policy, env.observation_space, env.action_space, args.env)
        except InputError as e:
            raise CLIError(f"--env: {e}") from None
        if isinstance(env, envs.GymEnv):
            observation_space = env.unflattened_observation_space
            env.close()
    try:
        written = export_sb3(
            policy, args.out, algo=args.algo, overwrite=args.overwrite, observation_space=observation_space
        )
    except FileExistsError as e:
        raise CLIError(f"--out: {e.filename} exists; pass --overwrite to replace it") from None
    except SB3ExportError as e:
        raise CLIError(f"--policy: {e}") from None
    algo = expected.upper()
    console.print(f"wrote {written}: {path} as an SB3 {algo} model")
    load = f'{algo}.load("{written}")'
    if policy.obs_norm is not None:
        stats = vecnormalize_path(written)
        console.print(f'wrote {stats}: its observation normalisation, for VecNormalize.load("{stats}", venv)')
    console.print(f"load it with: from stable_baselines3 import {algo}; model = {load}")


def register(sub: Any) -> None:
    p = add_command(sub, "export-sb3", help="write a saved policy as a stable-baselines3 zip (PPO.load / SAC.load)")
    p.add_argument(
        "--policy", required=True, help="policy directory, .safetensors/.json file, SB3 .zip, or run directory"
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        help="with a run directory: which seed's policy (default: its only one)",
    )
    p.add_argument("--out", required=True, help="the zip to write (.zip is appended if missing)")
    p.add_argument(
        "--algo",
        choices=ALGOS,
        default=None,
        help="SB3 algorithm (default: from the policy: PPO for actor-critic and BC policies, SAC for SAC actors)",
    )
    p.add_argument(
        "--env",
        default=None,
        help="the environment the policy was trained on: with Dict observations the zip is SB3's MultiInputPolicy "
        "on them (default: an MlpPolicy on the observations as the policy saw them)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out (and its _vecnormalize.pkl) if it exists")
    p.set_defaults(func=cmd_export_sb3)
