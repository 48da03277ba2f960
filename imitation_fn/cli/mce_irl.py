"""``imitation-fn mce-irl``: MCE IRL on a tabular MDP, one vmapped run over seeds.

    imitation-fn mce-irl --env CliffWorld --width 7 --height 4 --horizon 40 --use-xy-obs --seeds 4 --out runs/mce
    imitation-fn mce-irl --env RandomMDP --n-states 16 --n-actions 3 --branch-factor 2 --net-arch --seeds 8

The expert is the soft-optimal policy of the MDP's true reward; its occupancy measure is the demonstration
(or ``--n-demos`` sampled episodes of it). For CliffWorld, ``--out`` also gets a plot of the learned reward
and occupancy over the grid (needs matplotlib: ``pip install imitation-fn[plot]``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from imitation_fn.algorithms import mce_irl
from imitation_fn.cli.common import (
    CLIError,
    add_command,
    add_config_flags,
    add_run_flags,
    config_from_args,
    console,
    nonnegative_int,
    positive_int,
)
from imitation_fn.core import random, serialization, tree
from imitation_fn.envs.tabular import TabularEnv, TabularMDP
from imitation_fn.policies import tabular
from imitation_fn.train import mce_irl as mce_training

ENVS = mce_training.ENVS
MDP_SPEC = "mdp.json"
MDP_FLAGS = (
    "env", "horizon", "width", "height", "use_xy_obs", "n_states", "n_actions", "branch_factor", "obs_dim",
    "one_hot_obs", "generator_seed",
)  # fmt: skip


def make_mdp(args: argparse.Namespace) -> TabularMDP:
    """The MDP named by ``--env`` with its flags (float64, as ``imitation`` plans in numpy float64)."""
    try:
        return mce_training.make_mdp(args.env, **{k: getattr(args, k) for k in MDP_FLAGS if k != "env"})
    except ValueError as e:
        raise CLIError(f"--env {args.env}: {e}") from e


def plot_cliff_world(
    path: Path,
    mdp: TabularMDP,
    width: int,
    height: int,
    rewards: torch.Tensor,
    occ: torch.Tensor,
    expert_occ: torch.Tensor,
) -> None:
    """Learned vs true reward, learned vs expert occupancy, over the ``height × width`` grid (row 0 on top)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError as e:
        raise CLIError("plotting needs matplotlib: pip install 'imitation-fn[plot]' (or pass --no-plot)") from e
    panels = [
        ("learned reward (seed 0)", rewards),
        ("true reward", mdp.reward_matrix),
        ("occupancy, learned reward (seed 0)", occ),
        ("occupancy, expert", expert_occ),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(2 + 1.2 * width, 2 + 1.6 * height), constrained_layout=True)
    for ax, (title, values) in zip(axes.flat, panels, strict=True):
        grid = values.detach().to(torch.float64).reshape(height, width).numpy()
        im = ax.imshow(grid, cmap="viridis")
        for (r, c), v in np.ndenumerate(grid):
            ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7, color="w")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (column)")
        ax.set_ylabel("y (row)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_mdp_spec(path: Path, args: argparse.Namespace) -> None:
    """The flags that build the run's MDP, so ``eval --run`` can build it again."""
    serialization.write_text_atomic(path, json.dumps({k: getattr(args, k) for k in MDP_FLAGS}, indent=2))


def load_mdp(path: Path) -> TabularMDP:
    """The MDP of a run directory's ``mdp.json``."""
    try:
        spec = json.loads(path.read_text())
        return make_mdp(argparse.Namespace(**{k: spec[k] for k in MDP_FLAGS}))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CLIError(f"{path} does not describe an MDP ({e})") from e


def cmd_mce_irl(args: argparse.Namespace) -> None:
    cfg = config_from_args(mce_irl.Config, args)
    mdp = make_mdp(args)
    _, _, expert_pi = mce_irl.mce_partition_fh(mdp, discount=cfg.discount)
    _, expert_occ = mce_irl.mce_occupancy_measures(mdp, pi=expert_pi, discount=cfg.discount)
    demos: Any = None  # the expert's exact occupancy measure
    if args.n_demos:
        env = TabularEnv(mdp, n_envs=min(args.n_demos, 256), expose_state=True)
        demos = tabular.generate_trajectories(
            env, tabular.TabularPolicy(expert_pi), random.key(args.seed + 10_000), n_episodes=args.n_demos
        )
    seeds = list(range(args.seed, args.seed + args.seeds))
    console.print(
        f"MCE IRL on {args.env} ({mdp.n_states} states, {mdp.n_actions} actions, horizon {mdp.horizon}), "
        f"{len(seeds)} seed(s), net {list(cfg.net_arch) or 'linear'}, "
        f"demonstrations: {f'{args.n_demos} sampled episodes' if args.n_demos else 'expert occupancy measure'}"
    )

    def log(it: int, metrics: mce_irl.Metrics) -> None:
        console.print(
            f"  iteration {it:>5}: max L∞ {float(metrics['linf_delta'].max()):.4g}, "
            f"max grad norm {float(metrics['grad_norm'].max()):.4g}, "
            f"converged {int(metrics['converged'].sum())}/{len(seeds)}"
        )

    t0 = time.perf_counter()
    try:
        result = mce_training.train(
            cfg,
            mdp,
            demos,
            seeds=seeds,
            compile=args.compile,
            device=args.device,
            log_fn=log,
            n_eval_episodes=args.n_eval_episodes,
            log_dir=args.out,
            checkpoint_every=args.checkpoint_every,
            log_formats=args.log_formats,
            resume=args.resume,
            env_id=args.env,
        )
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0

    states, evaluation = result.states, result.evaluation
    returns, sampled, linf = evaluation["expected_return"], evaluation["returns"].mean(-1), evaluation["linf"]
    expert_return = float(mce_irl.expected_return(mdp, expert_pi))
    table = Table(title=f"MCE IRL on {args.env}: expert return {expert_return:.3f}")
    for col in ("seed", "steps", "converged", "final L∞", "return", "Δ expert", "sampled"):
        table.add_column(col, justify="right")
    for i, seed in enumerate(seeds):
        table.add_row(
            str(seed),
            str(int(states.step[i])),
            "yes" if bool(states.converged[i]) else "no",
            f"{float(linf[i]):.2e}",
            f"{float(returns[i]):.3f}",
            f"{float(returns[i]) - expert_return:+.2e}",
            f"{float(sampled[i]):.2f}",
        )
    console.print(table)
    console.print(
        f"{result.steps} iterations × {len(seeds)} seeds in {elapsed:.1f} s ({result.steps / elapsed:.0f} it/s); "
        "return: exact expected return of the learned reward's soft-optimal policy; sampled: mean over "
        f"{args.n_eval_episodes} episodes"
    )

    if args.out:
        out = Path(args.out)
        save_mdp_spec(out / MDP_SPEC, args)
        serialization.save(out / "reward_params.safetensors", states.params, {"seeds": seeds})
        summary = {
            "env": args.env,
            "mdp": {"n_states": mdp.n_states, "n_actions": mdp.n_actions, "horizon": mdp.horizon},
            "expert_return": expert_return,
            "seconds": elapsed,
            "seeds": [
                {
                    "seed": seed,
                    "iterations": int(states.step[i]),
                    "converged": bool(states.converged[i]),
                    "linf": float(linf[i]),
                    "return_exact": float(returns[i]),
                    "return_sampled": float(sampled[i]),
                }
                for i, seed in enumerate(seeds)
            ],
        }
        serialization.write_text_atomic(out / "results.json", json.dumps(summary, indent=2))
        if args.env == "CliffWorld" and not args.no_plot:
            first = tree.index(states, 0)
            rewards = mce_irl.reward(first)(mdp.observation_matrix)
            occ = mce_irl.occupancy(first, mdp)[1]
            plot_cliff_world(out / "cliff_world.png", mdp, args.width, args.height, rewards, occ, expert_occ)
        console.print(f"config, reward parameters, results{' and plot' if args.env == 'CliffWorld' else ''} in {out}")


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "mce-irl",
        help="maximum causal entropy IRL on a tabular MDP (CliffWorld, RandomMDP)",
        description=__doc__,
    )
    p.add_argument("--env", choices=ENVS, default="CliffWorld", help="tabular MDP")
    p.add_argument(
        "--horizon", type=positive_int, default=None, help="episode length (default: 9 CliffWorld, 20 RandomMDP)"
    )
    cliff = p.add_argument_group("CliffWorld")
    cliff.add_argument("--width", type=positive_int, default=7, help="grid width")
    cliff.add_argument("--height", type=positive_int, default=4, help="grid height")
    cliff.add_argument("--use-xy-obs", action="store_true", help="observe (x, y) instead of the one-hot state")
    rnd = p.add_argument_group("RandomMDP")
    rnd.add_argument("--n-states", type=positive_int, default=16, help="number of states")
    rnd.add_argument("--n-actions", type=positive_int, default=3, help="number of actions")
    rnd.add_argument("--branch-factor", type=positive_int, default=2, help="successors per (state, action)")
    rnd.add_argument("--obs-dim", type=positive_int, default=5, help="random observation size")
    rnd.add_argument("--one-hot-obs", action="store_true", help="observe the one-hot state, not random features")
    rnd.add_argument("--generator-seed", type=nonnegative_int, default=42, help="seed of the MDP's construction")
    p.add_argument(
        "--n-demos", type=nonnegative_int, default=0, help="sampled expert episodes (0: the exact occupancy measure)"
    )
    p.add_argument("--out", default=None, help="run directory: config, checkpoint, metrics, results, plot")
    p.add_argument("--no-plot", action="store_true", help="skip the CliffWorld plot")
    p.add_argument("--config", default=None, help="JSON or YAML file of config fields")
    add_run_flags(
        p,
        eval_unit=None,
        n_eval_episodes=100,
        progress=False,
        compile_help="torch.compile the vmapped update (~1-3 min to start)",
    )
    add_config_flags(p, mce_irl.Config)
    p.set_defaults(func=cmd_mce_irl)
