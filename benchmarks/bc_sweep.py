"""BC seed sweeps: one vmapped run of N seeds against a loop of N single-seed runs.

    python benchmarks/bc_sweep.py            # N = 1, 8, 32; eager and compiled; ~6 minutes on 2 cores
    python benchmarks/bc_sweep.py --quick    # N = 1, 8; eager only

50 scripted-expert CartPole episodes (25k transitions), 10 epochs of BC with the default config,
then 10 evaluation episodes per seed. Every timing is the wall time of ``training.train`` (training
plus the final evaluation). torch runs with ONE intra-op thread (``--threads``): for networks this
small, extra threads oversubscribe 2 cores and make every variant slower. Compiled timings exclude
the one-off compile (reported as warmup_s); the loop reuses one compiled function across seeds.

Reference (from the issue, measured on this machine kind): ``imitation`` 1.0.1 trains BC (batch 32,
10 epochs of these 25k transitions) in ~32 s per seed, 265 s for 8 seeds in sequence.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import random
from imitation_fn.data import flatten_trajectories, generate_trajectories
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.train import train

IMITATION_8_SEEDS_S = 265.0  # the reference measurement


def timed_train(data, seeds, compile: bool) -> tuple[float, torch.Tensor]:  # type: ignore[no-untyped-def]
    env = envs.make("CartPole-v1", n_envs=10)
    t0 = time.perf_counter()
    result = train(bc, bc.Config(), data, env, seeds=seeds, n_epochs=10, progress=False, compile=compile)
    return time.perf_counter() - t0, result.eval_returns.mean(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 1, 8 and eager only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bc_sweep.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=120)

    demo_env = envs.make("CartPole-v1", n_envs=50)
    data = flatten_trajectories(generate_trajectories(demo_env, cartpole_expert, random.key(0), min_episodes=50)[:50])
    sizes = [1, 8] if args.quick else [1, 8, 32]
    modes = [False] if args.quick else [False, True]
    rows = []
    for compiled in modes:
        # Warm up each sweep size first (one-off allocations; for compiled: the compile itself, since
        # shapes differ per N), so the timings below are steady-state. Compile time is reported apart.
        t0 = time.perf_counter()
        for n in sizes:
            env = envs.make("CartPole-v1", n_envs=10)
            train(bc, bc.Config(), data, env, seeds=range(n), n_batches=2, progress=False, compile=compiled)
        warmup_s = time.perf_counter() - t0
        sweeps = {n: timed_train(data, list(range(n)), compiled) for n in sizes}
        for n in sizes:
            sweep_s, returns = sweeps[n]
            loop_s = sum(timed_train(data, [s], compiled)[0] for s in range(n)) if n > 1 else sweep_s
            rows.append(
                {
                    "mode": "compiled" if compiled else "eager",
                    "n_seeds": n,
                    "sweep_s": sweep_s,
                    "loop_s": loop_s,
                    "seeds_per_s": n / sweep_s,
                    "sweep_over_loop": sweep_s / loop_s,
                    "sweep_over_one_seed": sweep_s / sweeps[1][0],
                    "min_return": float(returns.min()),
                    "all_seeds_500": bool((returns >= 500).all()),
                    "warmup_s": warmup_s,
                }
            )
            console.log(rows[-1])

    table = Table(
        title=f"BC sweep: 25k CartPole transitions, 10 epochs, batch {bc.Config().batch_size}, {args.threads} thread(s)"
    )
    for col in ("mode", "N", "sweep s", "loop s", "seeds/s", "sweep/loop", "sweep/1 seed", "min return"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["mode"],
            str(r["n_seeds"]),
            f"{r['sweep_s']:.1f}",
            f"{r['loop_s']:.1f}",
            f"{r['seeds_per_s']:.2f}",
            f"{r['sweep_over_loop']:.2f}",
            f"{r['sweep_over_one_seed']:.2f}",
            f"{r['min_return']:.0f}",
        )
    console.print(table)
    eight = [r for r in rows if r["n_seeds"] == 8]
    for r in eight:
        console.print(
            f"{r['mode']}: 8 seeds in {r['sweep_s']:.1f} s = {r['sweep_over_one_seed']:.2f}× one seed "
            f"(target ≤ 2.5×); {IMITATION_8_SEEDS_S / r['sweep_s']:.1f}× faster than imitation's "
            f"{IMITATION_8_SEEDS_S:.0f} s (target ≥ 20×); all seeds 500: {r['all_seeds_500']}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "config": bc.Config().model_dump(),
        "imitation_8_seeds_s": IMITATION_8_SEEDS_S,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
