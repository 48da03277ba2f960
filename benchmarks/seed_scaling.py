"""Wall time of 1 seed against 8 vmapped seeds, same budget per seed, for every algorithm with a policy.

    python benchmarks/seed_scaling.py                          # all eight, eager
    python benchmarks/seed_scaling.py --algos bc ppo --force   # re-measure some
    python benchmarks/seed_scaling.py --compile                # the compiled steps (results/seed_scaling_compiled.json)

Each algorithm trains through its public entry point (``loop.train`` underneath) on the budget below, first
for seed 0 alone, then for seeds 0–7 in one vmapped run; the ratio ``t8 / t1`` says how close to free the extra
seeds come (8 would be a loop of single runs; the issue's target is ≤ 4 on 2 CPU cores). Every algorithm first
runs a tiny warm-up (one-time costs: imports, env construction, the compile of the first call with
``--compile``) so that neither timed run pays them. The times include the final evaluation (10 episodes per
seed), as a user's run does. One torch thread (small networks on a shared 2-core machine: more threads only
add contention). Results go to ``results/seed_scaling.json`` after every algorithm, so an interrupted run
resumes where it stopped (``--force`` re-measures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs, presets
from imitation_fn.algorithms import airl, bc, dagger, density, gail
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import serialization
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.policies import load_policy, zoo
from imitation_fn.rl import ppo, sac
from imitation_fn.train import adversarial as adversarial_training
from imitation_fn.train import density as density_training
from imitation_fn.train import driver
from imitation_fn.train import preference_comparisons as pc_training
from imitation_fn.train.dagger import train_dagger
from imitation_fn.train.rl import train_rl

RESULTS = Path(__file__).resolve().parent / "results"
CARTPOLE, SEALS_CARTPOLE, PENDULUM = "CartPole-v1", "seals/CartPole-v0", "Pendulum-v1"
N_EVAL = 10
console = Console()

Train = Callable[[Sequence[int], bool, bool], Any]
"""``(seeds, compile, warm_up) -> loop.Result``: one run on the algorithm's benchmark budget (tiny if warm_up)."""


def _bc(seeds: Sequence[int], compile: bool, warm_up: bool) -> Any:
    demos = flatten_trajectories(serialize.load(zoo.demos_path(CARTPOLE)))
    cfg = bc.Config(batch_size=32)  # imitation's BC batch: the per-step overhead shows most here
    return driver.train(
        bc, cfg, demos, envs.make(CARTPOLE, n_envs=N_EVAL), seeds=seeds, n_batches=20 if warm_up else 2_000,
        compile=compile, progress=False,
    )  # fmt: skip


def _dagger(seeds: Sequence[int], compile: bool, warm_up: bool) -> Any:
    expert = load_policy(zoo.expert_path(CARTPOLE)).policy_fn()
    cfg = dagger.Config(rollout_round_min_episodes=0, n_epochs=4)
    return train_dagger(
        cfg, CARTPOLE, expert, seeds=seeds, total_timesteps=600 if warm_up else 3_000, n_eval_episodes=N_EVAL,
        eval_every=None, compile=compile, progress=False,
    )  # fmt: skip


def _adversarial(module: Any) -> Train:
    def run(seeds: Sequence[int], compile: bool, warm_up: bool) -> Any:
        preset = presets.get(module.__name__.rsplit(".", 1)[-1], SEALS_CARTPOLE)
        assert preset is not None
        cfg = module.Config.model_validate(preset.config)
        demos = serialize.load(zoo.demos_path(SEALS_CARTPOLE))
        steps = (1 if warm_up else 6) * cfg.round_timesteps
        return adversarial_training.train_adversarial(
            module, cfg, SEALS_CARTPOLE, demos, seeds=seeds, total_timesteps=steps, n_eval_episodes=N_EVAL,
            compile=compile, progress=False,
        )  # fmt: skip

    return run


def _density(seeds: Sequence[int], compile: bool, warm_up: bool) -> Any:
    preset = presets.get("density", SEALS_CARTPOLE)
    assert preset is not None
    cfg = density.Config(rl=ppo.Config.model_validate(preset.config))  # imitation's density model, the preset's PPO
    demos = serialize.load(zoo.demos_path(SEALS_CARTPOLE))[:8]
    steps = cfg.rl.n_envs * cfg.rl.n_steps * (1 if warm_up else 40)
    return density_training.train_policy(
        cfg, SEALS_CARTPOLE, demos, seeds=seeds, total_timesteps=steps, n_eval_episodes=N_EVAL, compile=compile,
        progress=False,
    )  # fmt: skip


def _preference_comparisons(seeds: Sequence[int], compile: bool, warm_up: bool) -> Any:
    preset = presets.get("preference_comparisons", SEALS_CARTPOLE)
    assert preset is not None
    values = {**preset.config, "total_timesteps": 20_000, "total_comparisons": 100, "num_iterations": 4}
    if warm_up:
        values.update(total_timesteps=2_000, total_comparisons=20, num_iterations=1)
    cfg = pc.Config.model_validate(values)
    return pc_training.train(cfg, SEALS_CARTPOLE, seeds=seeds, n_eval_episodes=N_EVAL, compile=compile, progress=False)


def _rl(module: Any, env_id: str, steps: int) -> Train:
    def run(seeds: Sequence[int], compile: bool, warm_up: bool) -> Any:
        preset = presets.get(module.__name__.rsplit(".", 1)[-1], env_id)
        assert preset is not None
        cfg = module.Config.model_validate(preset.config)
        budget = steps // 20 if warm_up else steps
        return train_rl(
            module, cfg, env_id, seeds=seeds, total_timesteps=budget, n_eval_episodes=N_EVAL, compile=compile,
            progress=False,
        )  # fmt: skip

    return run


ALGOS: dict[str, tuple[Train, str]] = {
    "bc": (_bc, "CartPole-v1, 50 demos, batch 32, 2,000 gradient steps"),
    "dagger": (_dagger, "CartPole-v1, shipped expert, 3,000 env steps, 4 BC epochs per round"),
    "gail": (_adversarial(gail), "seals/CartPole-v0 preset, 6 rounds (12,288 generator steps)"),
    "airl": (_adversarial(airl), "seals/CartPole-v0 preset, 6 rounds (12,288 generator steps)"),
    "density": (_density, "seals/CartPole-v0, imitation's density model, PPO preset, 40 rollouts (5,120 steps)"),
    "preference_comparisons": (_preference_comparisons, "seals/CartPole-v0 preset, 100 comparisons, 20,000 steps"),
    "ppo": (_rl(ppo, CARTPOLE, 20_000), "CartPole-v1 preset, 20,000 env steps"),
    "sac": (_rl(sac, PENDULUM, 3_000), "Pendulum-v1 preset, 3,000 env steps"),
}


def timed(train: Train, seeds: Sequence[int], compile: bool) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    result = train(seeds, compile, False)
    seconds = time.perf_counter() - t0
    return seconds, result.eval_returns.mean(-1).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=list(ALGOS), default=list(ALGOS), metavar="ALGO")
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the vmapped run")
    parser.add_argument("--compile", action="store_true", help="compiled steps (warm-up compiles first)")
    parser.add_argument("--force", action="store_true", help="re-measure algorithms already in the results")
    parser.add_argument("--out", default=None, help="results JSON (default: results/seed_scaling[_compiled].json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out or RESULTS / f"seed_scaling{'_compiled' if args.compile else ''}.json")
    results: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}

    for name in args.algos:
        if name in results and not args.force:
            console.print(f"{name}: already measured (--force to redo)")
            continue
        train, budget = ALGOS[name]
        console.print(f"[bold]{name}[/]: {budget}")
        train(range(args.seeds), args.compile, True)  # one-time costs, the vmapped size's compile included
        train([0], args.compile, True)
        t1, returns1 = timed(train, [0], args.compile)
        t8, returns8 = timed(train, list(range(args.seeds)), args.compile)
        results[name] = {
            "t1": t1,
            "t8": t8,
            "ratio_8_to_1": t8 / t1,
            "budget": budget,
            "returns_1": returns1,
            "returns_8": returns8,
            "n_seeds": args.seeds,
        }
        console.print(f"  1 seed {t1:.1f} s, {args.seeds} seeds {t8:.1f} s: {t8 / t1:.2f}×")
        results["_meta"] = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "compile": args.compile,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_average": os.getloadavg(),
        }
        serialization.write_text_atomic(out, json.dumps(results, indent=2))

    table = Table(title=f"1 seed against {args.seeds} vmapped seeds, same budget per seed ({out.name})")
    for col in ("algorithm", "budget per seed", "1 seed (s)", f"{args.seeds} seeds (s)", "ratio", "per seed"):
        table.add_column(col, justify="right")
    for name, row in results.items():
        if name.startswith("_"):
            continue
        n = row["n_seeds"]
        table.add_row(
            name, row["budget"], f"{row['t1']:.1f}", f"{row['t8']:.1f}", f"{row['ratio_8_to_1']:.2f}×",
            f"{n / row['ratio_8_to_1']:.1f}× faster",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
