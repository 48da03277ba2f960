"""Environment steps per second: torch envs (eager and compiled) against gymnasium.

    python benchmarks/env_throughput.py                      # every classic-control task, 1/16/256/4096 envs
    python benchmarks/env_throughput.py --ids CartPole-v1 --sizes 256 4096

For each task and number of parallel environments: our torch env stepped eagerly and under
``torch.compile`` (one compiled ``step``; the Python loop stays outside), gymnasium's
``SyncVectorEnv`` and, where gymnasium has one, its own vectorised implementation
(``make_vec(..., vectorization_mode="vector_entry_point")``). Actions are uniformly random and
drawn before timing, so every variant times the environment alone (our ``step`` still draws its
auto-reset noise from a key each step, as in training). One torch thread (``--threads``):
with 2 cores, more threads oversubscribe. Each cell runs for about ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import platform
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
from imitation_fn.core import random

CLASSIC_CONTROL = ["CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Acrobot-v1"]
N_ACTION_BATCHES = 64  # pre-drawn action batches, cycled


def _steps_per_second(step_once: Callable[[int], None], n_envs: int, seconds: float) -> float:
    step_once(0)  # warm up (and compile)
    steps, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(8):
            step_once(steps)
            steps += 1
    return steps * n_envs / elapsed


def _random_actions(space: gym.Space[Any], n_envs: int, seed: int = 0) -> list[np.ndarray]:
    space.seed(seed)
    return [np.stack([space.sample() for _ in range(n_envs)]) for _ in range(N_ACTION_BATCHES)]


def torch_throughput(env_id: str, n_envs: int, compiled: bool, seconds: float) -> float:
    env = envs.make(env_id, n_envs=n_envs)
    actions = [torch.as_tensor(a) for a in _random_actions(env.action_space, n_envs)]
    keys = random.split(random.key(0), N_ACTION_BATCHES)
    step = torch.compile(env.step, dynamic=False) if compiled else env.step  # static shapes: fastest per size
    state = [env.reset(random.key(1)).env_state]

    def step_once(i: int) -> None:
        state[0] = step(state[0], actions[i % N_ACTION_BATCHES], keys[i % N_ACTION_BATCHES]).env_state

    return _steps_per_second(step_once, n_envs, seconds)


def gym_throughput(env_id: str, n_envs: int, mode: str, seconds: float) -> float | None:
    try:
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode)
    except gym.error.Error:
        return None  # no vectorised implementation of this task
    venv.reset(seed=0)
    actions = _random_actions(venv.single_action_space, n_envs)
    rate = _steps_per_second(lambda i: venv.step(actions[i % N_ACTION_BATCHES]), n_envs, seconds)
    venv.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=[i for i in CLASSIC_CONTROL if i in envs.registered_ids()])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 256, 4096])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per cell (default: 1.0)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled torch column")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "env_throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=140)

    rows = []
    for env_id in args.ids:
        for n in args.sizes:
            row: dict[str, Any] = {"env": env_id, "n_envs": n}
            row["torch_eager"] = torch_throughput(env_id, n, False, args.seconds)
            row["torch_compiled"] = None if args.no_compile else torch_throughput(env_id, n, True, args.seconds)
            row["gym_sync"] = gym_throughput(env_id, n, "sync", args.seconds)
            row["gym_vector"] = gym_throughput(env_id, n, "vector_entry_point", args.seconds)
            best_torch = max(v for v in (row["torch_eager"], row["torch_compiled"]) if v is not None)
            row["torch_over_sync"] = best_torch / row["gym_sync"]
            row["torch_over_gym_vector"] = best_torch / row["gym_vector"] if row["gym_vector"] else None
            rows.append(row)
            console.log(row)

    def fmt(v: float | None, ratio: bool = False) -> str:
        return "—" if v is None else (f"{v:.1f}×" if ratio else f"{v:,.0f}")

    table = Table(title=f"env steps/s ({args.threads} torch thread(s), {platform.machine()})")
    for col in (
        "env",
        "n_envs",
        "torch eager",
        "torch compiled",
        "gym sync",
        "gym vector",
        "torch/sync",
        "torch/vector",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["env"],
            str(r["n_envs"]),
            fmt(r["torch_eager"]),
            fmt(r["torch_compiled"]),
            fmt(r["gym_sync"]),
            fmt(r["gym_vector"]),
            fmt(r["torch_over_sync"], True),
            fmt(r["torch_over_gym_vector"], True),
        )
    console.print(table)
    for r in rows:
        if r["env"] == "CartPole-v1" and r["n_envs"] == 4096 and r["torch_over_gym_vector"]:
            console.print(
                f"CartPole @4096: torch / gymnasium vectorised = {r['torch_over_gym_vector']:.2f}× (target ≥ 1.5×)"
            )
        if r["env"] == "CartPole-v1" and r["n_envs"] == 256:
            console.print(
                f"CartPole @256: torch / gymnasium sync vector env = {r['torch_over_sync']:.1f}× (target ≥ 50×)"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "threads": args.threads,
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
