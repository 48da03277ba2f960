"""Preference comparisons on Pendulum-v1 (and seals/CartPole-v0) against ``imitation`` 1.0.1's measured run.

    python benchmarks/preference_comparisons.py                        # Pendulum preset: 1 seed, then 8 vmapped
    python benchmarks/preference_comparisons.py --seeds 1 4 --env seals/CartPole-v0

The peer (issue 8): ``imitation`` reached −132 mean return on Pendulum-v1 with 1,000 synthetic comparisons,
60 iterations and ~125k agent steps in 426 s on this machine kind. Target: the same return in ≤ 42.6 s.
For each seed count: the CLI preset (``imitation_fn.presets``) trained in one
(vmapped) run; the wall time of the rounds (sampling, labelling, reward training, agent training, and the
initial state; not the final evaluation); then every seed's deterministic policy plays ``--eval-episodes``
episodes (200: Pendulum's return depends on the start, a 50-episode mean has a standard error of ~13). Reported:
per-seed mean returns, the reward model's last-epoch accuracy, env steps (agent + fragment sampling),
time and the ratio to the peer's 426 s per seed (the peer trains one seed per run). Results go to
``results/preference_comparisons.json``.
The SAC agent and the trajectory sampling run through ``torch.compile`` (``--no-compile``: eager); the
rounds' time includes compiling, which takes seconds when torch's on-disk caches (``/tmp/torchinductor_$USER``)
hold the kernels from an earlier run and minutes on a fresh machine.
One torch thread (small networks on a shared 2-core machine: more threads oversubscribe it). The machine
is shared with other jobs while this runs: the load average is recorded beside the times, and the CPU
seconds of the whole run (training, compiling, evaluation; this process and its compile workers) with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import presets
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.train import loop
from imitation_fn.train import preference_comparisons as tpc

ROOT = Path(__file__).resolve().parent.parent
PEER: dict[str, Any] = {
    "env": "Pendulum-v1",
    "return": -132.0,
    "seconds": 426.0,
    "comparisons": 1000,
    "agent_steps": 125_000,
}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (compile workers): the work done, whatever the load."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(env_id: str, n_seeds: int, eval_episodes: int, console: Console, compile: bool = True) -> dict[str, Any]:
    preset = presets.get("preference_comparisons", env_id)
    assert preset is not None and preset.target_return is not None, env_id
    bar = preset.target_return
    cfg = pc.Config(**preset.config, total_timesteps=preset.total_timesteps)
    budget = cfg.num_iterations + 1
    task = tpc.make_task(cfg, env_id, budget=budget, n_eval_episodes=eval_episodes)
    last: dict[str, torch.Tensor] = {}  # the last round's metrics
    load_before = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    # The rounds without their evaluation (timed alone), then the final evaluation tpc.train would run.
    result = loop.train(
        tpc.spec(env_id=env_id, evaluate=False),
        cfg,
        task,
        budget=budget,
        seeds=range(n_seeds),
        compile=compile,
        progress=False,
        env_id=env_id,
        callback=lambda done, states, metrics, evaluation: last.update(metrics),
    )
    seconds_rounds = time.perf_counter() - t0
    eval_keys = loop.eval_keys_at(loop.seed_keys(result.seeds)[2], result.steps)
    returns = loop.policy_returns(pc, task, result.states, eval_keys)["returns"].mean(-1)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    sample_steps = int(result.states.sample_steps[0])
    out = {
        "env": env_id,
        "seeds": n_seeds,
        "compile": compile,
        "threads": torch.get_num_threads(),
        "config": json.loads(cfg.to_json()),
        "seconds_rounds": seconds_rounds,
        "seconds_total": wall,
        "seconds_per_seed": seconds_rounds / n_seeds,
        "cpu_seconds_total": cpu,
        # The peer trains one seed per run: N seeds cost it N runs.
        "speedup_vs_peer": PEER["seconds"] * n_seeds / seconds_rounds if env_id == PEER["env"] else None,
        "returns": returns.tolist(),
        "return_mean": float(returns.mean()),
        "eval_episodes": eval_episodes,
        "seeds_at_bar": int((returns >= bar).sum()),
        "bar": bar,
        "reward_accuracy": last["reward/accuracy"].tolist(),
        "agent_steps": cfg.total_timesteps,
        "sample_steps": sample_steps,
        "comparisons": cfg.total_comparisons,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    console.print(
        f"{env_id} × {n_seeds}: {seconds_rounds:.1f} s (CPU {cpu:.1f} s, load {load_before:.1f}), "
        f"returns {[round(r, 1) for r in out['returns']]}, "
        f"accuracy {[round(a, 3) for a in out['reward_accuracy']]}"
    )
    return out


def _write(out: Path, env_id: str, runs: list[dict[str, Any]]) -> None:
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous[env_id] = {"peer": PEER, "machine": platform.processor() or platform.machine(), "runs": runs}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(previous, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1", choices=sorted(presets.env_ids("preference_comparisons")))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4], help="seed counts, each one vmapped run")
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (SAC's batch-256 steps gain from 2)")
    parser.add_argument(
        "--no-compile", action="store_true", help="eager agent and sampling (default: torch.compile, time included)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "preference_comparisons.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=160)  # the table, not wrapped in logs
    console.print(f"torch threads: {args.threads} (default 1: small networks on a shared 2-core machine)")
    out = Path(args.out)
    runs = []
    for n in args.seeds:
        runs.append(run(args.env, n, args.eval_episodes, console, compile=not args.no_compile))
        _write(out, args.env, runs)  # after every run: a long sweep leaves its finished runs on disk
    table = Table(title=f"preference comparisons on {args.env} (peer: {PEER['return']} in {PEER['seconds']} s)")
    for col in (
        "seeds",
        "return (mean of seeds)",
        f"seeds ≥ {runs[0]['bar']}",
        "accuracy",
        "env steps",
        "time [s]",
        "CPU [s]",
        "time / seed [s]",
        "× faster than peer (its runs for as many seeds)",
        "load avg",
    ):
        table.add_column(col, justify="right")
    for r in runs:
        speed = f"{r['speedup_vs_peer']:.2f}" if r["speedup_vs_peer"] else "-"
        table.add_row(
            str(r["seeds"]),
            f"{r['return_mean']:.1f}",
            f"{r['seeds_at_bar']}/{r['seeds']}",
            f"{sum(r['reward_accuracy']) / r['seeds']:.3f}",
            str(r["agent_steps"] + r["sample_steps"]),
            f"{r['seconds_rounds']:.1f}",
            f"{r['cpu_seconds_total']:.1f}",
            f"{r['seconds_per_seed']:.1f}",
            speed,
            f"{r['load_average_before']:.1f}",
        )
    console.print(table)
    console.print(f"→ {out}")


if __name__ == "__main__":
    main()
