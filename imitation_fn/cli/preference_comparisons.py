"""``preference-comparisons``: learn a reward from synthetic pairwise preferences, vmapped over seeds.

    imitation-fn preference-comparisons --env Pendulum-v1 --seeds 4 --out runs/pc
    imitation-fn preference-comparisons --env seals/CartPole-v0 --seeds 4 --total-comparisons 300

Presets (``imitation_fn.presets``, by env id) hold settings that reach the issue's bars; flags and
``--config`` override them (``--agent-config '{"lr": 3e-4}'`` is JSON). A run is ``--num-iterations + 1``
rounds (``--eval-every`` counts rounds). ``--out`` gets the config, metrics, checkpoints (``--resume``)
and, per seed, the reward net, the policy and the preference dataset.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from torch import Tensor

from imitation_fn import presets
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    add_config_flags,
    add_init_policy_flag,
    add_run_flags,
    config_from_args,
    console,
    init_policy_from_args,
    read_config_file,
    require_env,
    results_table,
)
from imitation_fn.data import serialize
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.train import preference_comparisons as tpc


def cmd_preference_comparisons(args: argparse.Namespace) -> None:
    if not args.trajectories:  # the agent's rollouts are vmapped over seeds
        require_env(args.env)
    preset = None if args.no_preset else presets.get("preference_comparisons", args.env)
    base = {**preset.config, "total_timesteps": preset.total_timesteps} if preset else {}
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
    agent = args.agent or base.get("agent", pc.Config.model_fields["agent"].default)
    init_policy, arch = init_policy_from_args(args, agent)
    if arch:  # the policy's networks over the preset's and the files' agent settings
        base["agent_config"] = {**base.get("agent_config", {}), **arch}
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
        + (" (preset)" if preset else "")
    )
    last: dict[str, Tensor] = {}  # the last round's metrics (a resumed finished run trains none)
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
            device=args.device,
            init_policy=init_policy,
            callback=lambda done, states, metrics, evaluation: last.update(metrics),
        )
    except ValueError as e:  # the library's checks of settings and data
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0
    if "returns" in result.evaluation:
        console.print(results_table(f"preference comparisons on {args.env}", seeds, result.eval_returns))
    if "reward/accuracy" in last:
        acc = ", ".join(f"{a:.3f}" for a in last["reward/accuracy"].tolist())
        console.print(f"reward model accuracy (last epoch): {acc}; {elapsed:.1f} s in all")
    if args.out:
        paths = [Path(args.out) / f"seed_{s}" for s in seeds]  # written with every checkpoint
        console.print(f"reward nets, policies and preference datasets: {', '.join(map(str, paths))}")


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "preference-comparisons",
        help="learn a reward from synthetic preference comparisons (Christiano et al. 2017), vmapped over seeds",
    )
    envs_with_presets = ", ".join(presets.env_ids("preference_comparisons"))
    p.add_argument("--env", default="Pendulum-v1", help=f"environment id (presets: {envs_with_presets})")
    p.add_argument("--trajectories", default=None, help="fragments from this dataset instead of the agent's rollouts")
    p.add_argument("--out", default=None, help="run directory: config, metrics, checkpoint, per-seed artifacts")
    p.add_argument("--config", default=None, help="JSON or YAML file of config fields (over the preset)")
    p.add_argument("--no-preset", action="store_true", help="start from the defaults, not the env's preset")
    add_init_policy_flag(p, "the agent")
    add_run_flags(
        p,
        eval_unit="rounds",
        compile_help="torch.compile the SAC agent's steps and the trajectory sampling (seconds to compile with "
        "torch's on-disk cache warm, minutes cold; pays off for runs of more than a few thousand agent steps)",
    )
    add_config_flags(p, pc.Config)
    p.set_defaults(func=cmd_preference_comparisons)
