"""``preference-comparisons``: learn a reward from synthetic pairwise preferences, vmapped over seeds.

    imitation-fn preference-comparisons --env Pendulum-v1 --seeds 4 --out runs/pc
    imitation-fn preference-comparisons --env seals/CartPole-v0 --seeds 4 --total-comparisons 300

Presets (named by env id) hold settings that reach the issue's bars; flags and ``--config`` override
them (``--agent-config '{"lr": 3e-4}'`` is JSON). ``--out`` gets the config, metrics, a checkpoint per
round (``--resume``) and, per seed, the reward net, the policy and the preference dataset.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    add_config_flags,
    add_run_flags,
    config_from_args,
    console,
    read_config_file,
    require_torch_env,
    results_table,
)
from imitation_fn.data import serialize
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.training import preference_comparisons as tpc

PRESETS: dict[str, dict[str, Any]] = {
    # rl-zoo's SAC on 4 envs. -150 over random starts needs a near-optimal policy (the zoo's SAC expert averages
    # -149): about 12k gradient steps, here 4 per compiled call. 1,000 comparisons of 25-step fragments; 3 reward
    # epochs per round (seeds 0-11 at the bar: 9/12 against 8/12 with 1 epoch, 5/8 with 5).
    "Pendulum-v1": {
        "total_timesteps": 48_000,
        "total_comparisons": 1_000,
        "num_iterations": 20,
        "fragment_length": 25,
        "epochs": 3,
        "initial_epoch_multiplier": 20.0,
        "warning_threshold": 0,
        "agent": "sac",
        "agent_config": {
            "n_envs": 4,
            "train_freq": 4,
            "gradient_steps": 4,
            "net_arch": [64, 64],
            "lr": 1e-3,
            "learning_starts": 1000,
            "buffer_size": 20_000,
        },
    },
    # seals' CartPole pays 1 per step while upright, so fragments of a poor agent mostly tie. Soft labels score a
    # tie 0.5 rather than a coin flip the reward would fit as noise; the reward sees the state only (the true one
    # does; with the action it learned a bias the agent exploited); 40% of the comparisons come from the untrained
    # agent, so the first reward is not flat; an entropy bonus keeps PPO from collapsing onto an early reward.
    "seals/CartPole-v0": {
        "total_timesteps": 200_000,
        "total_comparisons": 500,
        "num_iterations": 10,
        "initial_comparison_frac": 0.4,
        "exploration_frac": 0.25,
        "fragment_length": 25,
        "gatherer_sample": False,
        "reward_use_action": False,
        "epochs": 10,
        "initial_epoch_multiplier": 50.0,
        "warning_threshold": 0,
        "agent": "ppo",
        "agent_config": {
            "n_envs": 8,
            "n_steps": 32,
            "batch_size": 256,
            "n_epochs": 20,
            "lr": 1e-3,
            "gamma": 0.98,
            "gae_lambda": 0.8,
            "ent_coef": 0.01,
        },
    },
}


def cmd_preference_comparisons(args: argparse.Namespace) -> None:
    if not args.trajectories:  # the agent's rollouts are vmapped over seeds
        require_torch_env(args.env, "preference-comparisons")
    base = dict(PRESETS.get(args.env, {})) if not args.no_preset else {}
    if args.config:
        base.update(read_config_file(args.config))
        args.config = None
    if args.agent_config is not None:
        try:
            agent_config = json.loads(args.agent_config)
        except json.JSONDecodeError as e:
            raise CLIError(f"--agent-config must be a JSON object: {e}") from e
        if not isinstance(agent_config, dict):
            raise CLIError("--agent-config must be a JSON object of the agent's Config fields")
        base["agent_config"] = {**base.get("agent_config", {}), **agent_config}
        args.agent_config = None
    cfg = config_from_args(pc.Config, args, base=base)
    trajectories = None
    if args.trajectories:
        try:
            loaded = serialize.load(args.trajectories)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(f"--trajectories {args.trajectories}: {e}") from e
        if not all(isinstance(t, TrajectoryWithRew) for t in loaded):
            raise CLIError(f"--trajectories {args.trajectories}: synthetic preferences need rewards (a 'rews' column)")
        trajectories = [t for t in loaded if isinstance(t, TrajectoryWithRew)]
    seeds = list(range(args.seed, args.seeds + args.seed))
    source = f"{len(trajectories)} trajectories" if trajectories is not None else f"{cfg.agent} agent"
    console.print(
        f"preference comparisons on {args.env}: {cfg.total_comparisons} comparisons, {cfg.total_timesteps} agent "
        f"steps, {cfg.num_iterations} iterations, fragments from the {source} × {len(seeds)} seeds"
        + (" (preset)" if args.env in PRESETS and not args.no_preset else "")
    )
    t0 = time.perf_counter()
    try:
        result = tpc.train(
            cfg,
            args.env,
            seeds=seeds,
            trajectories=trajectories,
            n_eval_episodes=args.n_eval_episodes,
            eval_every=args.eval_every,
            log_dir=args.out,
            checkpoint_every=args.checkpoint_every,
            log_formats=args.log_formats,
            resume=args.resume,
            progress=not args.no_progress,
            compile=args.compile,
        )
    except ValueError as e:  # the library's checks of settings and data
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0
    if result.eval_returns is not None:
        console.print(results_table(f"preference comparisons on {args.env}", seeds, result.eval_returns))
    acc = result.reward_accuracy
    console.print(
        f"reward model accuracy (last epoch): {', '.join(f'{a:.3f}' for a in acc.tolist())}; {elapsed:.1f} s in all"
    )
    if args.out:
        paths = [Path(args.out) / f"seed_{s}" for s in seeds]  # written with every checkpoint
        console.print(f"reward nets, policies and preference datasets: {', '.join(map(str, paths))}")


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "preference-comparisons",
        help="learn a reward from synthetic preference comparisons (Christiano et al. 2017), vmapped over seeds",
    )
    p.add_argument("--env", default="Pendulum-v1", help=f"environment id (presets: {', '.join(PRESETS)})")
    p.add_argument("--trajectories", default=None, help="fragments from this dataset instead of the agent's rollouts")
    p.add_argument("--out", default=None, help="run directory: config, metrics, checkpoint, per-seed artifacts")
    p.add_argument("--config", default=None, help="JSON or YAML file of config fields (over the preset)")
    p.add_argument("--no-preset", action="store_true", help="start from the defaults, not the env's preset")
    add_run_flags(
        p,
        eval_unit="rounds",
        compile_help="torch.compile the SAC agent's steps and the trajectory sampling (seconds to compile with "
        "torch's on-disk cache warm, minutes cold; pays off for runs of more than a few thousand agent steps)",
    )
    add_config_flags(p, pc.Config)
    p.set_defaults(func=cmd_preference_comparisons)
