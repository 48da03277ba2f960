"""Env steps per second of the vmapped learner on a host MuJoCo env, against SB3 on the same env, in one run.

    python benchmarks/host_envs.py                               # seals/Hopper-v1, PPO and SAC, N = 1, 4, 8
    python benchmarks/host_envs.py --algo ppo --seeds 1 8 --env seals/HalfCheetah-v1

For each algorithm: SB3 trains one seed (its defaults: PPO with 1 env, n_steps 2048, batch 64, 10 epochs;
SAC with 256x256 networks, batch 256, one gradient step per env step), then imitation_fn trains N seeds in one
vmapped run through the one loop (``loop.train``, the same hyperparameters and per-seed budget; the seeds' envs
are one gymnasium vector env of N × n_envs copies, synchronous, and, for the largest N, also asynchronous:
one subprocess per copy). Throughput is env steps of all seeds per second of training (no evaluation);
the ratio is against SB3's single seed, so it reads "how many SB3 runs' worth of steps per second".
One torch thread for both (2-core machine); results to ``benchmarks/results/host_envs.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from imitation_fn import envs
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task
from imitation_fn.rl import ppo, sac
from imitation_fn.train import loop
from imitation_fn.train.rl import PPO_SPEC, SAC_SPEC

ROOT = Path(__file__).resolve().parent.parent
# SAC: both learn from step 100 on. Before it SB3 takes no gradient steps, while ours computes them masked (the
# update is one pure function of the state), so a later start would measure that difference, not the learning.
LEARNING_STARTS = 100


def sb3_steps_per_s(algo: str, env_id: str, steps: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import PPO, SAC

    env = gym.make(env_id)
    model = (
        PPO("MlpPolicy", env, seed=0, device="cpu")
        if algo == "ppo"
        else SAC("MlpPolicy", env, seed=0, device="cpu", learning_starts=LEARNING_STARTS)
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - t0)


def ours_steps_per_s(algo: str, env_id: str, steps: int, n_seeds: int, vectorization: str) -> float:
    if algo == "ppo":
        cfg: Any = ppo.Config()  # SB3's defaults: 1 env, n_steps 2048, batch 64, 10 epochs
        spec = PPO_SPEC
    else:
        cfg, spec = sac.Config(learning_starts=LEARNING_STARTS, buffer_size=steps), SAC_SPEC
    env = GymEnv(env_id, int(cfg.n_envs), vectorization=vectorization)  # type: ignore[arg-type]
    task = Task(env=env, total=steps)
    spec = dataclasses.replace(spec, evaluate=None, export=None)  # training only
    t0 = time.perf_counter()
    loop.train(spec, cfg, task, budget=steps, seeds=range(n_seeds), progress=False)
    return n_seeds * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="seals/Hopper-v1")
    parser.add_argument("--algo", choices=["ppo", "sac"], action="append")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--ppo-steps", type=int, default=4096, help="env steps per seed (two SB3 rollouts)")
    parser.add_argument("--sac-steps", type=int, default=1000, help="env steps per seed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "host_envs.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    envs.make(args.env).close()  # registers seals' ids; fails early on a bad id
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results: dict[str, Any] = {
        **(previous if previous.get("env") == args.env else {}),  # --algo: the other algorithm's rows are kept
        "env": args.env,
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": 1,
    }
    for algo in args.algo or ["ppo", "sac"]:
        steps = args.ppo_steps if algo == "ppo" else args.sac_steps
        sb3 = sb3_steps_per_s(algo, args.env, steps)
        rows = {"sb3_steps_per_s": sb3, "steps_per_seed": steps, "ours": {}}
        print(f"{algo} on {args.env}, {steps} env steps per seed: SB3 (1 seed) {sb3:.0f} steps/s")
        runs = [(n, "sync") for n in args.seeds] + [(max(args.seeds), "async")]
        for n, vectorization in runs:
            rate = ours_steps_per_s(algo, args.env, steps, n, vectorization)
            rows["ours"][f"{n}_{vectorization}"] = {"seeds": n, "vectorization": vectorization, "steps_per_s": rate,
                                                    "ratio_vs_sb3": rate / sb3}  # fmt: skip
            print(f"  imitation_fn {n} seeds ({vectorization}): {rate:.0f} steps/s = {rate / sb3:.2f}x SB3")
        results[algo] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
