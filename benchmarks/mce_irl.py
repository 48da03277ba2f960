"""MCE IRL iterations per second on CliffWorld 4×7, horizon 40, (x, y) observations, [32, 32] MLP reward.

    python benchmarks/mce_irl.py                  # eager and compiled, 1 seed and 16 vmapped seeds
    python benchmarks/mce_irl.py --no-compile --iters 200

One iteration is the whole MCE IRL step: the reward net over all states, soft value iteration over the 40
steps, the occupancy measure, the gradient and the Adam step (``mce_irl.update``). The peer library does 66
iterations/s on this task (L∞ 0.036 after 1000 iterations, 15 s); the target is 10× that (660 it/s) for one
seed, and 16 vmapped seeds in at most 2× the wall time of one. Throughput is timed with the stopping rule off
(``linf_eps = grad_l2_eps = 0``) after a warm-up; compilation (``torch.compile`` of ``vmap(update)``, C++
wrapper) is timed separately. Then the real task: 16 seeds trained to L∞ ≤ 1e-3 in one vmapped run.
One torch thread (tiny tensors on a shared 2-core machine: more threads only add contention).
Results go to ``results/mce_irl.json``.
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

from imitation_fn.algorithms import mce_irl
from imitation_fn.core import random
from imitation_fn.envs.tabular import cliff_world

PEER_IT_PER_S = 66.0
ROOT = Path(__file__).resolve().parent
console = Console(width=120)


def throughput(step: Any, mdp: Any, demo: torch.Tensor, n_seeds: int, iters: int) -> dict[str, float]:
    """Time the first call (compilation, if any) and then ``iters`` calls of ``step`` on ``n_seeds`` seeds."""
    cfg = mce_irl.Config(linf_eps=0.0, grad_l2_eps=0.0)
    keys = torch.stack([random.key(s) for s in range(n_seeds)])
    state = torch.func.vmap(lambda k: mce_irl.init(cfg, k, mdp))(keys)
    t0 = time.perf_counter()
    state, _ = step(state, mdp, demo)
    first = time.perf_counter() - t0
    for _ in range(max(10, iters // 20)):
        state, _ = step(state, mdp, demo)
    t0 = time.perf_counter()
    for _ in range(iters):
        state, metrics = step(state, mdp, demo)
    float(metrics["linf_delta"].sum())  # synchronise (a no-op on CPU; matters on a GPU)
    seconds = time.perf_counter() - t0
    return {"first_call_s": first, "it_per_s": iters / seconds, "ms_per_it": 1e3 * seconds / iters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=1000, help="timed iterations per configuration")
    parser.add_argument("--seeds", type=int, default=16, help="seeds of the vmapped runs")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--out", default=str(ROOT / "results" / "mce_irl.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    # float64 planning, as imitation's numpy: in float32, soft values of ~400 leave π with errors that keep the
    # occupancy from reaching L∞ <= 1e-3 (measured: 1 of 16 seeds in 5000 iterations, against 16 of 16).
    mdp = cliff_world(width=7, height=4, horizon=40, use_xy_obs=True, dtype=torch.float64)
    _, _, expert_pi = mce_irl.mce_partition_fh(mdp)
    _, demo = mce_irl.mce_occupancy_measures(mdp, pi=expert_pi)
    modes = ["eager"] + ([] if args.no_compile else ["compiled"])
    rows: dict[str, dict[str, Any]] = {}
    for mode in modes:
        step = mce_irl.batched_update(compile=mode == "compiled")
        for n in (1, args.seeds):
            console.print(f"[bold]{mode}, {n} seed(s)[/] ...")
            rows[f"{mode}/{n}"] = throughput(step, mdp, demo, n, args.iters if mode == "compiled" else args.iters // 5)

    table = Table(title="MCE IRL, CliffWorld 4×7 H=40, [32, 32] MLP: one iteration = VI + occupancy + grad + Adam")
    for col in (
        "mode",
        "seeds",
        "first call (s)",
        "ms / iteration",
        "it/s",
        "seed·it/s",
        "× peer (66 it/s)",
        "wall ratio",
    ):
        table.add_column(col, justify="right")
    for mode in modes:
        one = rows[f"{mode}/1"]
        for n in (1, args.seeds):
            r = rows[f"{mode}/{n}"]
            r["wall_ratio_vs_1_seed"] = one["it_per_s"] / r["it_per_s"]
            r["x_peer"] = r["it_per_s"] / PEER_IT_PER_S
            table.add_row(
                mode,
                str(n),
                f"{r['first_call_s']:.1f}",
                f"{r['ms_per_it']:.2f}",
                f"{r['it_per_s']:.0f}",
                f"{n * r['it_per_s']:.0f}",
                f"{r['x_peer']:.1f}×",
                f"{r['wall_ratio_vs_1_seed']:.2f}×",
            )
    console.print(table)

    # The task itself: every seed to L∞ <= 1e-3 (imitation's linf_eps), as fast as this machine allows.
    mode = modes[-1]
    cfg = mce_irl.Config(max_iter=5000, log_interval=None)
    result = mce_irl.train(cfg, mdp, demo, seeds=range(args.seeds), compile=mode == "compiled")
    returns = torch.func.vmap(lambda s: mce_irl.expected_return(mdp, mce_irl.policy(s, mdp).pi))(result.state)
    expert_return = float(mce_irl.expected_return(mdp, expert_pi))
    linf = (result.occupancy - demo).abs().amax(-1)
    task = {
        "mode": mode,
        "n_seeds": args.seeds,
        "converged": int(result.converged.sum()),
        "iterations_per_seed": result.iterations.tolist(),
        "loop_iterations": result.n_iter,
        "seconds": result.seconds,
        "final_linf": linf.tolist(),
        "return_exact": returns.tolist(),
        "expert_return_exact": expert_return,
        "max_abs_return_gap": float((returns - expert_return).abs().max()),
    }
    console.print(
        f"[bold]task[/] ({mode}, {args.seeds} seeds vmapped): {task['converged']}/{args.seeds} reached L∞ ≤ 1e-3, "
        f"after {int(result.iterations.min())}–{int(result.iterations.max())} iterations; {result.n_iter} vmapped "
        f"iterations in {result.seconds:.1f} s; max |return − expert| = {task['max_abs_return_gap']:.2e} "
        f"(expert {expert_return:.3f}). Peer: L∞ 0.036 after 1000 iterations, 15 s, one seed."
    )
    out = {
        "task": "CliffWorld 4x7, horizon 40, xy obs, [32, 32] relu MLP reward, Adam lr 1e-2, float64 MDP, float32 net",
        "peer_it_per_s": PEER_IT_PER_S,
        "throughput": rows,
        "train_to_linf_1e-3": task,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other processes (timings are noisy)",
        "load_average": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    console.print(f"results in {args.out}")


if __name__ == "__main__":
    main()
