"""SAC per-step cost: eager vmap(collect)/vmap(update) against batched_collect/batched_update(compile=True).

    python benchmarks/sac_speed.py                 # Pendulum, 64x64 networks, batch 256, 1 and 8 seeds
    python benchmarks/sac_speed.py --seeds 1 --net-arch 256 256

For each seed count: milliseconds per ``collect`` (``n_envs`` env steps and a replay-buffer write) and per
gradient step, eager and compiled; the compile time (first calls) apart; and whether the compiled numbers
match eager ones from the same states. Compile time depends on torch's on-disk caches
(``/tmp/torchinductor_$USER``): the first run on a machine compiles cold, later runs find the kernels there.
One torch thread (the machine is a shared 2-core one); the load average is printed beside the times.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.func import vmap

from imitation_fn.core import random, tree
from imitation_fn.envs.pendulum import Pendulum
from imitation_fn.envs.task import Task
from imitation_fn.rl import sac, sac_batched

ROOT = Path(__file__).resolve().parent.parent


def _time(fn: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def run(n_seeds: int, cfg: sac.Config, n: int) -> dict[str, Any]:
    env = Pendulum(n_envs=cfg.n_envs)
    states = vmap(lambda k: sac.init(cfg, k, Task(env=env)))(torch.stack([random.key(s) for s in range(n_seeds)]))
    eager_collect, eager_update = sac_batched.batched_collect(env), sac_batched.batched_update()
    for _ in range(cfg.learning_starts // cfg.n_envs + 2):  # fill the buffer past learning_starts
        states, _ = eager_collect(states)
    out: dict[str, Any] = {"seeds": n_seeds, "load_average_before": os.getloadavg()[0]}
    c_collect, c_update = sac_batched.batched_collect(env, compile=True), sac_batched.batched_update(compile=True)
    t0 = time.perf_counter()
    got_c = c_collect(states)
    out["compile_collect_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    got_u = c_update(states)
    out["compile_update_s"] = time.perf_counter() - t0
    out["compiled_matches_eager"] = bool(
        tree.allclose(got_c, eager_collect(states), rtol=1e-4, atol=1e-5)
        and tree.allclose(got_u, eager_update(states), rtol=1e-4, atol=1e-5)
    )
    steps = cfg.gradient_steps
    out["eager_collect_ms"] = _time(lambda: eager_collect(states), n)
    out["eager_gradient_step_ms"] = _time(lambda: eager_update(states), n) / steps
    out["compiled_collect_ms"] = _time(lambda: c_collect(states), n)
    out["compiled_gradient_step_ms"] = _time(lambda: c_update(states), n) / steps
    # A training loop feeds outputs back in: check that this does not recompile (and time it).
    t0 = time.perf_counter()
    for _ in range(n):
        states, _ = c_update(*c_collect(states))
    out["compiled_loop_ms"] = (time.perf_counter() - t0) / n * 1e3
    out["speedup_gradient_step"] = out["eager_gradient_step_ms"] / out["compiled_gradient_step_ms"]
    out["speedup_collect"] = out["eager_collect_ms"] / out["compiled_collect_ms"]
    out["load_average_after"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--net-arch", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--gradient-steps", type=int, default=1)
    parser.add_argument("--iters", type=int, default=100, help="calls timed per measurement")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sac_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("torch threads: 1 (shared 2-core machine)")
    cfg = sac.Config(
        n_envs=args.n_envs,
        net_arch=tuple(args.net_arch),
        batch_size=args.batch_size,
        gradient_steps=args.gradient_steps,
        learning_starts=100,
        buffer_size=20_000,
    )
    results = []
    for n in args.seeds:
        r = run(n, cfg, args.iters)
        results.append(r)
        print(json.dumps(r, indent=1))
    print(
        f"{'seeds':>5} {'step eager ms':>14} {'step compiled ms':>17} {'x':>5} {'collect eager':>14} "
        f"{'collect comp.':>14} {'compile s':>10} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['seeds']:>5} {r['eager_gradient_step_ms']:>14.2f} {r['compiled_gradient_step_ms']:>17.2f} "
            f"{r['speedup_gradient_step']:>5.1f} {r['eager_collect_ms']:>14.2f} {r['compiled_collect_ms']:>14.2f} "
            f"{r['compile_collect_s'] + r['compile_update_s']:>10.1f} {r['load_average_before']:>5.1f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": json.loads(cfg.to_json()), "runs": results}, indent=2) + "\n")
    print(f"→ {out}")


if __name__ == "__main__":
    main()
