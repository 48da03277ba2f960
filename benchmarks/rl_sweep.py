"""PPO on CartPole-v1: wall time and env steps to a mean return of 475, for 1 and 8 vmapped seeds.

    python benchmarks/rl_sweep.py                # our PPO (the CartPole preset), 1 and 8 seeds, and SB3 if installed
    python benchmarks/rl_sweep.py --no-sb3

Every 2 iterations each seed's deterministic policy is evaluated on 16 episodes; a seed "reaches"
475 at the first evaluation whose mean return is ≥ 475. Times count training only (collection and
updates), not the evaluations. SB3's PPO (the issue's reference settings: 1 env, n_steps 64,
batch 64, 10 epochs, lr 3e-4) is timed the same way when stable-baselines3 is installed.
One torch thread: more oversubscribe 2 cores with networks this small.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs
from imitation_fn.core import random
from imitation_fn.rl import ppo, presets
from imitation_fn.training.driver import evaluate_seeds, seed_keys
from imitation_fn.training.rl import batched_train_step, make_init

TARGET = 475.0


def ours(n_seeds: int, max_steps: int) -> dict[str, Any]:
    preset = presets.get("ppo", "CartPole-v1")
    assert preset is not None
    cfg = ppo.Config(**preset.config)
    env, eval_env = envs.make("CartPole-v1", n_envs=cfg.n_envs), envs.make("CartPole-v1", n_envs=16)
    init_keys, _, eval_keys = seed_keys(range(n_seeds))
    states = torch.func.vmap(make_init(ppo, cfg, env, preset.total_timesteps))(init_keys)
    step = batched_train_step(ppo, env, False)
    reached: list[tuple[int, float] | None] = [None] * n_seeds
    train_s, iteration, steps = 0.0, 0, 0
    while steps < max_steps and any(r is None for r in reached):
        t0 = time.perf_counter()
        states, _ = step(states)
        train_s += time.perf_counter() - t0
        iteration += 1
        steps = int(states.timesteps.min())
        if iteration % 2 == 0:
            keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((n_seeds,), iteration))
            means = evaluate_seeds(ppo, eval_env, states, keys).mean(-1)
            for i in range(n_seeds):
                if reached[i] is None and float(means[i]) >= TARGET:
                    reached[i] = (steps, train_s)
    return {
        "n_seeds": n_seeds,
        "reached": reached,
        "all_reached": all(r is not None for r in reached),
        "train_s": train_s,
        "steps": steps,
        "env_steps_per_s": steps * n_seeds / train_s,
        "time_to_all_s": max(r[1] for r in reached) if all(r is not None for r in reached) else None,
    }


def sb3(max_steps: int, seed: int = 0) -> dict[str, Any] | None:
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.evaluation import evaluate_policy
    except ImportError:
        return None

    class Timer(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.train_s, self.rollouts, self.reached = 0.0, 0, None
            self.t0 = time.perf_counter()

        def _on_rollout_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.train_s += time.perf_counter() - self.t0
            self.rollouts += 1
            if self.rollouts % 2 == 0 and self.reached is None:
                mean, _ = evaluate_policy(self.model, self.model.get_env(), n_eval_episodes=16, deterministic=True)
                if mean >= TARGET:
                    self.reached = (self.num_timesteps, self.train_s)

        def _on_step(self) -> bool:
            return self.reached is None

    model = PPO(
        "MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=10, learning_rate=3e-4, seed=seed, device="cpu"
    )
    timer = Timer()
    t0 = time.perf_counter()
    model.learn(total_timesteps=max_steps, callback=timer)
    return {"reached": timer.reached, "wall_s_including_eval": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=100_000, help="env steps per seed before giving up")
    parser.add_argument("--no-sb3", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "rl_sweep.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=120)
    one, eight = ours(1, args.max_steps), ours(8, args.max_steps)
    ref = None if args.no_sb3 else sb3(args.max_steps)
    table = Table(title="PPO on CartPole-v1 to a mean return of 475 (training time, evaluations excluded)")
    for col in ("run", "seeds reaching 475", "steps to 475 (per seed)", "time to 475 s (per seed)", "env steps/s"):
        table.add_column(col, justify="right")
    for name, r in (("ours, 1 seed", one), ("ours, 8 seeds vmapped", eight)):
        hits = [x for x in r["reached"] if x is not None]
        table.add_row(
            name,
            f"{len(hits)}/{r['n_seeds']}",
            ", ".join(str(x[0]) if x else "—" for x in r["reached"]),
            ", ".join(f"{x[1]:.1f}" if x else "—" for x in r["reached"]),
            f"{r['env_steps_per_s']:,.0f}",
        )
    if ref is not None:
        hit = ref["reached"]
        table.add_row(
            "SB3 PPO, 1 seed", "1/1" if hit else "0/1", str(hit[0]) if hit else "—", f"{hit[1]:.1f}" if hit else "—", ""
        )
    console.print(table)
    if one["all_reached"] and eight["all_reached"]:
        console.print(
            f"8 seeds vmapped / 1 seed, wall time to 475 for all: "
            f"{eight['time_to_all_s'] / one['time_to_all_s']:.2f}× (target ≤ 2.5×)"
        )
    if ref is not None and ref["reached"] and one["all_reached"]:
        console.print(f"1 seed: SB3 / ours time to 475 = {ref['reached'][1] / one['time_to_all_s']:.2f}× (target ≥ 5×)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "threads": args.threads,
        "torch": torch.__version__,
        "preset": presets.get("ppo", "CartPole-v1").config,
    }  # type: ignore[union-attr]
    out.write_text(json.dumps({"meta": meta, "ours_1": one, "ours_8": eight, "sb3": ref}, indent=2))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
