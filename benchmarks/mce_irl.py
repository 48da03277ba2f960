"""MCE IRL iterations per second on CliffWorld 4×7, horizon 40, (x, y) observations, [32, 32] MLP reward.

    python benchmarks/mce_irl.py                  # dense and sparse, eager and compiled, 1 and 16 seeds
    python benchmarks/mce_irl.py --no-compile --iters 200

One iteration is the whole MCE IRL step: the reward net over all states, soft value iteration over the 40
steps, the occupancy measure, the gradient and the Adam step (``mce_irl.batched_update``: all seeds at once,
the solvers with the seed axis innermost). "dense" plans with the (S·A, S) transition matrix (GEMMs), "sparse"
with ``mce_irl.sparse_transitions`` (K = 2 successors per (s, a), gathers); ``train`` picks sparse here. The
peer library does 66 iterations/s on this task (L∞ 0.036 after 1000 iterations, 15 s); the target is 10× that
(660 it/s) for one seed, and 16 seeds in at most 2× the wall time of one. Throughput is timed with the stopping
rule off (``linf_eps = grad_l2_eps = 0``): every configuration is built and warmed up first (the first call,
compilation included, is reported separately; it is much shorter when inductor's cache is warm), then short
timed rounds interleave the configurations so that load from other processes hits them alike. We report the
median round and the best one (the least disturbed), and the 16:1 wall ratio both as the median of per-round
ratios (each against the 1-seed round just before it) and as the ratio of the best rounds. "compiled vmap(update)"
is the per-seed layout (seed axis outermost), one seed, for reference. Then the real task: 16 seeds trained to
L∞ ≤ 1e-3 in one vmapped run. One torch thread (tiny tensors on a shared 2-core machine: more threads only add
contention). Results go to ``results/mce_irl.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn.algorithms import mce_irl
from imitation_fn.core import random
from imitation_fn.envs.tabular import cliff_world
from imitation_fn.envs.task import Task
from imitation_fn.train import mce_irl as mce_training

PEER_IT_PER_S = 66.0
ROOT = Path(__file__).resolve().parent
console = Console(width=140)


class Config:
    """One timed configuration: a step function and its seeds' state, advanced in place between rounds."""

    def __init__(self, step: Any, mdp: Any, demo: torch.Tensor, transitions: Any, n_seeds: int) -> None:
        cfg = mce_irl.Config(linf_eps=0.0, grad_l2_eps=0.0)
        keys = torch.stack([random.key(s) for s in range(n_seeds)])
        self.step, self.args = step, (mce_irl.Batch(demo, mdp, transitions),)
        self.state = torch.func.vmap(lambda k: mce_irl.init(cfg, k, Task(mdp=mdp)))(keys)
        t0 = time.perf_counter()
        self.state, _ = step(self.state, *self.args)
        self.first_call_s = time.perf_counter() - t0
        self.run(20)
        self.rounds_ms: list[float] = []

    def run(self, iters: int) -> float:
        t0 = time.perf_counter()
        for _ in range(iters):
            self.state, metrics = self.step(self.state, *self.args)
        float(metrics["linf_delta"].sum())  # synchronise (a no-op on CPU; matters on a GPU)
        return 1e3 * (time.perf_counter() - t0) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=1000, help="timed iterations per configuration")
    parser.add_argument("--seeds", type=int, default=16, help="seeds of the vmapped runs")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--out", default=str(ROOT / "results" / "mce_irl.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    # float64 planning, as imitation's numpy: in float32, soft values of ~400 leave π with errors that keep the
    # occupancy from reaching L∞ <= 1e-3 (measured: 1 of 16 seeds in 5000 iterations, against 16 of 16).
    mdp = cliff_world(width=7, height=4, horizon=40, use_xy_obs=True, dtype=torch.float64)
    _, _, expert_pi = mce_irl.mce_partition_fh(mdp)
    _, demo = mce_irl.mce_occupancy_measures(mdp, pi=expert_pi)
    sparse = mce_irl.sparse_transitions(mdp)
    modes = ["eager"] + ([] if args.no_compile else ["compiled"])
    configs: dict[tuple[str, str, int], Config] = {}
    for mode in modes:
        step = mce_irl.batched_update(compile=mode == "compiled")
        for planning, transitions in (("dense", None), ("sparse", sparse)):
            for n in (1, args.seeds):
                console.print(f"[bold]{mode}, {planning}, {n} seed(s)[/]: first call ...")
                configs[mode, planning, n] = Config(step, mdp, demo, transitions, n)
    if not args.no_compile:  # the per-seed layout, one seed, for reference
        options: dict[str, Any] = {"cpp_wrapper": True}
        per_seed = torch.func.vmap(mce_irl.update, in_dims=(0, None))
        step = torch.compile(per_seed, fullgraph=True, dynamic=False, options=options)
        console.print("[bold]compiled vmap(update), sparse, 1 seed[/]: first call ...")
        configs["compiled vmap(update)", "sparse", 1] = Config(step, mdp, demo, sparse, 1)
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for (mode, _, _), c in configs.items():
            c.rounds_ms.append(c.run(max(1, (args.iters if mode != "eager" else args.iters // 5) // args.rounds)))
    load_after = os.getloadavg()

    table = Table(
        title="MCE IRL, CliffWorld 4×7 H=40, [32, 32] MLP: one iteration = VI + occupancy + grad + Adam "
        f"(median of {args.rounds} interleaved rounds; best in brackets)"
    )
    for col in ("mode", "planning", "seeds", "first call (s)", "ms / iteration", "it/s", "seed·it/s", "× peer",
                "wall ratio 16:1"):  # fmt: skip
        table.add_column(col, justify="right")
    rows: dict[str, dict[str, Any]] = {}
    for (mode, planning, n), c in configs.items():
        ms, best = statistics.median(c.rounds_ms), min(c.rounds_ms)
        one = configs.get((mode, planning, 1))
        ratio = statistics.median(x / y for x, y in zip(c.rounds_ms, one.rounds_ms, strict=True)) if one else 0.0
        best_ratio = best / min(one.rounds_ms) if one else 0.0
        rows[f"{mode}/{planning}/{n}"] = {
            "first_call_s": c.first_call_s,
            "ms_per_it": ms,
            "ms_per_it_best": best,
            "ms_per_it_rounds": c.rounds_ms,
            "it_per_s": 1e3 / ms,
            "x_peer": 1e3 / ms / PEER_IT_PER_S,
            "wall_ratio_vs_1_seed": ratio,
            "wall_ratio_vs_1_seed_best": best_ratio,
        }
        table.add_row(
            mode,
            planning,
            str(n),
            f"{c.first_call_s:.1f}",
            f"{ms:.3f} ({best:.3f})",
            f"{1e3 / ms:.0f}",
            f"{n * 1e3 / ms:.0f}",
            f"{1e3 / ms / PEER_IT_PER_S:.1f}×",
            f"{ratio:.2f}× ({best_ratio:.2f}×)" if n > 1 else "",
        )
    console.print(table)
    console.print(f"load average (1, 5, 15 min) before timing {load_before}, after {load_after}")

    # The task itself: every seed to L∞ <= 1e-3 (imitation's linf_eps), as fast as this machine allows.
    mode = modes[-1]
    cfg = mce_irl.Config(max_iter=5000, log_interval=None)
    t0 = time.perf_counter()
    result = mce_training.train(cfg, mdp, demo, seeds=range(args.seeds), compile=mode == "compiled")  # sparse: auto
    seconds = time.perf_counter() - t0  # the final evaluation (10 sampled episodes per seed) included
    states = result.states
    returns = torch.func.vmap(lambda s: mce_irl.expected_return(mdp, s.pi))(states)
    expert_return = float(mce_irl.expected_return(mdp, expert_pi))
    linf = (mce_training.occupancies(states, mdp) - demo).abs().amax(-1)
    task = {
        "mode": mode,
        "planning": "sparse (train's default here: K = 2 <= S / 4)",
        "n_seeds": args.seeds,
        "converged": int(states.converged.sum()),
        "iterations_per_seed": states.step.tolist(),
        "loop_iterations": result.steps,
        "seconds": seconds,
        "final_linf": linf.tolist(),
        "return_exact": returns.tolist(),
        "expert_return_exact": expert_return,
        "max_abs_return_gap": float((returns - expert_return).abs().max()),
    }
    console.print(
        f"[bold]task[/] ({mode}, {args.seeds} seeds vmapped): {task['converged']}/{args.seeds} reached L∞ ≤ 1e-3, "
        f"after {int(states.step.min())}–{int(states.step.max())} iterations; {result.steps} vmapped "
        f"iterations in {seconds:.1f} s; max |return − expert| = {task['max_abs_return_gap']:.2e} "
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
        "load_average_before_timing": load_before,
        "load_average_after_timing": load_after,
        "load_average_end": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    console.print(f"results in {args.out}")


if __name__ == "__main__":
    main()
