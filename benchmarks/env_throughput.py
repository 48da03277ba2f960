"""Environment steps per second: torch envs (eager and compiled) against gymnasium.

    python benchmarks/env_throughput.py                      # every classic-control task, 1/16/256/4096 envs
    python benchmarks/env_throughput.py --ids CartPole-v1 --sizes 256 4096 --rounds 20

For each task and number of parallel environments: our torch env stepped eagerly and under
``torch.compile`` (one compiled ``step`` per call; the Python loop stays outside), ``--unroll`` steps
per compiled call (the env stepped K times inside one compiled function, returning all K
``TimeStep``s stacked: what a compiled rollout does), gymnasium's ``SyncVectorEnv`` and, where gymnasium
has one, its own vectorised implementation (``make_vec(..., vectorization_mode="vector_entry_point")``).
Actions are uniformly random and drawn before timing, so every variant times the environment alone (our
``step`` still draws its auto-reset noise from a key each step, as in training). One torch thread
(``--threads``): with 2 cores, more threads oversubscribe.

The variants of one cell are timed interleaved, ``--rounds`` times each for ``--seconds / --rounds``,
and each reports its median round, so a burst of load on a shared machine hits all of them alike. The
clock is this thread's CPU time by default (every variant is single-threaded; a loaded machine's waits
for a core do not count), ``--clock wall`` for wall time. The 1-minute load average is recorded per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs
from imitation_fn.core import compile as compile_lib
from imitation_fn.core import random, tree
from imitation_fn.envs.base import TimeStep

CLASSIC_CONTROL = ["CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Acrobot-v1"]
N_ACTION_BATCHES = 64  # pre-drawn action batches, cycled


Stepper = Callable[[int], None]  # step_once(i): advance by one call (the i-th pre-drawn action batch)


def _interleaved_rates(
    variants: dict[str, tuple[Stepper, int]], seconds: float, rounds: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Steps per second of each ``(step_once, env_steps_per_call)``: median over interleaved rounds."""
    for step_once, _ in variants.values():
        step_once(0)  # warm up (and compile)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    calls = dict.fromkeys(variants, 0)
    for _ in range(rounds):
        for name, (step_once, per_call) in variants.items():
            steps, t0 = 0, clock()
            while (elapsed := clock() - t0) < seconds / rounds:
                for _ in range(4):
                    step_once(calls[name])
                    calls[name] += 1
                    steps += per_call
            rates[name].append(steps / elapsed)
    return {name: statistics.median(r) for name, r in rates.items()}


def _random_actions(space: gym.Space[Any], n_envs: int, seed: int = 0) -> list[np.ndarray]:
    space.seed(seed)
    return [np.stack([space.sample() for _ in range(n_envs)]) for _ in range(N_ACTION_BATCHES)]


def torch_stepper(env_id: str, n_envs: int, compiled: bool, unroll: int = 1) -> tuple[Stepper, int]:
    """Our env: ``unroll`` steps per call (``unroll > 1`` needs ``compiled``), ``n_envs * unroll`` env steps."""
    env = envs.make(env_id, n_envs=n_envs)
    actions = [torch.as_tensor(a) for a in _random_actions(env.action_space, n_envs)]
    # A list, as the actions (and gymnasium's): indexing a (64, 2) tensor each step would time an op against us.
    keys = list(random.split(random.key(0), N_ACTION_BATCHES))
    state = [env.reset(random.key(1)).env_state]

    def steps(env_state: Any, acts: list[torch.Tensor], step_keys: list[torch.Tensor]) -> tuple[Any, TimeStep]:
        out = []
        for action, key in zip(acts, step_keys, strict=True):
            out.append(env.step(env_state, action, key))
            env_state = out[-1].env_state
        return env_state, tree.stack(out)  # every step's obs, reward, ... stacked, as a rollout keeps them

    if unroll == 1:
        step = compile_lib.compiled(env.step) if compiled else env.step  # the library's compile: static shapes

        def step_once(i: int) -> None:
            state[0] = step(state[0], actions[i % N_ACTION_BATCHES], keys[i % N_ACTION_BATCHES]).env_state

    else:
        run = compile_lib.compiled(steps)

        def step_once(i: int) -> None:
            first = (i * unroll) % N_ACTION_BATCHES
            idx = [(first + j) % N_ACTION_BATCHES for j in range(unroll)]
            state[0] = run(state[0], [actions[j] for j in idx], [keys[j] for j in idx])[0]

    return step_once, n_envs * unroll


def gym_stepper(env_id: str, n_envs: int, mode: str) -> tuple[Stepper, int] | None:
    try:
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode)
    except gym.error.Error:
        return None  # no vectorised implementation of this task
    venv.reset(seed=0)
    actions = _random_actions(venv.single_action_space, n_envs)

    def step_once(i: int) -> None:
        venv.step(actions[i % N_ACTION_BATCHES])

    return step_once, n_envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=[i for i in CLASSIC_CONTROL if i in envs.registered_ids()])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 256, 4096])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per variant and cell (default: 1.0)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per cell (default: 10)")
    parser.add_argument("--unroll", type=int, default=8, help="env steps per call in the unrolled column (default: 8)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="thread CPU time or wall time")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled torch column")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "env_throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=140)

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    rows = []
    for env_id in args.ids:
        for n in args.sizes:
            variants = {"torch_eager": torch_stepper(env_id, n, compiled=False)}
            if not args.no_compile:
                variants["torch_compiled"] = torch_stepper(env_id, n, compiled=True)
                variants["torch_compiled_unrolled"] = torch_stepper(env_id, n, compiled=True, unroll=args.unroll)
            for col, mode in (("gym_sync", "sync"), ("gym_vector", "vector_entry_point")):
                if (stepper := gym_stepper(env_id, n, mode)) is not None:
                    variants[col] = stepper
            load = os.getloadavg()[0]
            rates = _interleaved_rates(variants, args.seconds * len(variants), args.rounds, clock)
            row: dict[str, Any] = {"env": env_id, "n_envs": n, "load_1min": round(load, 2)}
            for col in ("torch_eager", "torch_compiled", "torch_compiled_unrolled", "gym_sync", "gym_vector"):
                row[col] = rates.get(col)
            # One step per call (the Python loop outside, as gymnasium is driven) ...
            best_torch = max(v for v in (row["torch_eager"], row["torch_compiled"]) if v is not None)
            row["torch_over_sync"] = best_torch / row["gym_sync"]
            row["torch_over_gym_vector"] = best_torch / row["gym_vector"] if row["gym_vector"] else None
            # ... and K steps per compiled call (a compiled rollout's loop).
            unrolled = row["torch_compiled_unrolled"]
            row["unrolled_over_sync"] = unrolled / row["gym_sync"] if unrolled else None
            row["unrolled_over_gym_vector"] = unrolled / row["gym_vector"] if unrolled and row["gym_vector"] else None
            rows.append(row)
            console.log(row)

    def fmt(v: float | None, ratio: bool = False) -> str:
        return "—" if v is None else (f"{v:.1f}×" if ratio else f"{v:,.0f}")

    title = f"env steps/s ({args.threads} torch thread(s), {platform.machine()}, {args.clock} clock)"
    table = Table(title=title)
    k = args.unroll
    columns = ["env", "n_envs", "load", "torch eager", "torch compiled", f"compiled ×{k}/call", "gym sync"]
    columns += ["gym vector", "torch/sync", "torch/vector", f"×{k}/sync", f"×{k}/vector"]
    for col in columns:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["env"],
            str(r["n_envs"]),
            f"{r['load_1min']:.1f}",
            fmt(r["torch_eager"]),
            fmt(r["torch_compiled"]),
            fmt(r["torch_compiled_unrolled"]),
            fmt(r["gym_sync"]),
            fmt(r["gym_vector"]),
            fmt(r["torch_over_sync"], True),
            fmt(r["torch_over_gym_vector"], True),
            fmt(r["unrolled_over_sync"], True),
            fmt(r["unrolled_over_gym_vector"], True),
        )
    console.print(table)
    for r in rows:
        if r["env"] == "CartPole-v1" and r["n_envs"] == 4096 and r["torch_over_gym_vector"]:
            console.print(
                f"CartPole @4096: torch / gymnasium vectorised = {r['torch_over_gym_vector']:.2f}× one step per call, "
                f"{fmt(r['unrolled_over_gym_vector'], True)} {args.unroll} per call (target ≥ 1.5×)"
            )
        if r["env"] == "CartPole-v1" and r["n_envs"] == 256:
            console.print(
                f"CartPole @256: torch / gymnasium sync vector env = {r['torch_over_sync']:.1f}× one step per call, "
                f"{fmt(r['unrolled_over_sync'], True)} {args.unroll} per call (target ≥ 50×)"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.platform(),
        "threads": args.threads,
        "clock": args.clock,
        "rounds": args.rounds,
        "seconds_per_variant": args.seconds,
        "unroll": args.unroll,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
