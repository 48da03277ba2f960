"""DAgger on CartPole-v1 with the shipped PPO expert: wall time until every seed reaches 475, 1 and 8 vmapped seeds.

    python benchmarks/dagger.py                # eager and compiled, 1 and 8 seeds
    python benchmarks/dagger.py --no-compile   # eager only (no minutes of compilation)

The reference ("peer") is ``imitation``'s SimpleDAggerTrainer, measured at ~48 s for one seed to
reach 500 in 10k steps on this machine kind; the target is the 8-seed sweep as a whole >= 20× faster
than 8 × 48 s, i.e. <= 19.2 s. Setting: ``dagger.Config()`` (8 envs per seed, BC (32, 32) tanh,
batch 256, lr 3e-3, imitation's linear β over 15 rounds, 4 BC epochs per round), rounds of >= 500
steps (``rollout_round_min_episodes=0``: every step is kept, so rounds need not hold whole
episodes), 10k env steps at most. After every round each seed's deterministic learner plays 10
evaluation episodes; a seed stops at the first evaluation with mean >= 475.

``wall_s`` is the whole run, evaluations included (they are how "reached 475" is known);
``train_s`` counts collection and BC updates only. With torch.compile, one untimed run first
compiles the vmapped collection step, BC step and evaluation step for that number of seeds: its
extra time is ``compile_s``. One torch thread (set below): more only oversubscribe 2 cores with
networks this small. The machine is shared with other processes, so the 1-minute load average is
recorded; compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn.algorithms import dagger
from imitation_fn.core import random
from imitation_fn.envs.base import PolicyFn
from imitation_fn.policies import actor_critic, load_policy, zoo
from imitation_fn.train import loop
from imitation_fn.train.dagger import Rounds, make_task

torch.set_num_threads(1)

PEER_S_PER_SEED = 48.0
TARGET = 475.0
MAX_STEPS = 10_000
RESULTS = Path(__file__).parent / "results" / "dagger.json"


def expert_fn() -> PolicyFn:
    """The shipped PPO expert. ``LoadedPolicy.act`` reads ``int(action_space.start)`` (a numpy int) on each
    call, a graph break under torch.compile; this expert has no observation normalisation and ``start == 0``,
    so its acting is exactly ``actor_critic.act`` on its params (checked below)."""
    policy = load_policy(zoo.expert_path("CartPole-v1"))
    assert policy.kind == "actor_critic" and policy.obs_norm is None and int(policy.action_space.start) == 0  # type: ignore[attr-defined]

    def act(obs: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return actor_critic.act(policy.params, obs, key, deterministic=True, activation=policy.activation)

    obs = torch.randn(64, 4)
    key = random.key(0)
    assert torch.equal(act(obs, key), policy.policy_fn()(obs, key))
    return act


def run(expert: PolicyFn, n_seeds: int, compile: bool) -> dict[str, Any]:
    cfg = dagger.Config(rollout_round_min_episodes=0)
    rounds = Rounds(target_return=TARGET)  # its history keeps the per-round wall times, no files written
    t0 = time.perf_counter()
    result = loop.train(
        rounds.spec(),
        cfg,
        make_task(cfg, "CartPole-v1", budget=MAX_STEPS, n_eval_episodes=10, expert=expert),
        budget=MAX_STEPS,
        seeds=range(n_seeds),
        eval_every=1,
        compile=compile,
        progress=False,
    )
    wall = time.perf_counter() - t0
    hist = rounds.history
    reached = [
        min((h["timesteps"][i] for h in hist if h.get("return_mean", [-1] * n_seeds)[i] >= TARGET), default=None)
        for i in range(n_seeds)
    ]
    return {
        "n_seeds": n_seeds,
        "compile": compile,
        "wall_s": wall,
        "train_s": sum(h["collect_s"] + h["update_s"] for h in hist),
        "collect_s": sum(h["collect_s"] for h in hist),
        "update_s": sum(h["update_s"] for h in hist),
        "eval_s": sum(h.get("eval_s", 0.0) for h in hist),
        "rounds": len(hist),
        "steps_to_target": reached,
        "all_reached_within_10k": all(r is not None and r <= MAX_STEPS for r in reached),
        "final_return_mean": result.eval_returns.mean(-1).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-compile", action="store_true", help="eager runs only")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 8], help="sweep sizes (default: 1 8)")
    parser.add_argument("--out", default=str(RESULTS), help=f"results JSON (default: {RESULTS})")
    args = parser.parse_args()
    console = Console(width=120)
    expert = expert_fn()
    load_before = os.getloadavg()[0]

    rows: dict[str, dict[str, Any]] = {}
    run(expert, 1, compile=False)  # one-off lazy initialisation of torch.func and the envs: not timed
    for n in args.seeds:
        rows[f"eager_{n}"] = run(expert, n, compile=False)
        console.print(f"eager, {n} seeds: {rows[f'eager_{n}']['wall_s']:.1f} s")
    if not args.no_compile:
        for n in args.seeds:
            t0 = time.perf_counter()
            run(expert, n, compile=True)  # compiles for these shapes
            first_s = time.perf_counter() - t0
            row = run(expert, n, compile=True)
            row["compile_s"] = first_s - row["wall_s"]
            rows[f"compiled_{n}"] = row
            console.print(f"compiled, {n} seeds: {row['wall_s']:.1f} s (+{row['compile_s']:.0f} s compiling)")
    load_after = os.getloadavg()[0]

    table = Table(title=f"DAgger, CartPole-v1, PPO expert: wall time until every seed's evaluation >= {TARGET:.0f}")
    for col in ("run", "seeds", "wall s", "train s", "eval s", "compile s", "rounds", "steps to 475", "vs peer"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        peer = PEER_S_PER_SEED * r["n_seeds"]
        r["speedup_vs_peer"] = peer / r["wall_s"]
        r["speedup_vs_peer_train_only"] = peer / r["train_s"]
        table.add_row(
            name.split("_")[0],
            str(r["n_seeds"]),
            f"{r['wall_s']:.1f}",
            f"{r['train_s']:.1f}",
            f"{r['eval_s']:.1f}",
            f"{r.get('compile_s', 0.0):.0f}",
            str(r["rounds"]),
            f"max {max(s or 10**9 for s in r['steps_to_target'])}",
            f"{r['speedup_vs_peer']:.1f}×",
        )
    console.print(table)
    console.print(
        f"peer: {PEER_S_PER_SEED:.0f} s per seed; target: 8 seeds <= {8 * PEER_S_PER_SEED / 20:.1f} s (20×). "
        f"1-minute load average {load_before:.1f} → {load_after:.1f} on {os.cpu_count()} cores."
    )
    out = {
        "meta": {
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_avg_1m": [load_before, load_after],
            "peer_s_per_seed": PEER_S_PER_SEED,
            "target": TARGET,
            "max_steps": MAX_STEPS,
            "config": json.loads(dagger.Config(rollout_round_min_episodes=0).to_json()),
            "n_eval_episodes": 10,
        },
        **rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()
