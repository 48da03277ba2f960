"""GAIL and AIRL on the fixed-horizon CartPole (seals/CartPole-v0) from 50 expert episodes; GAIL on Pendulum-v1.

    python benchmarks/adversarial.py                     # GAIL and AIRL, 1 seed and 8 seeds vmapped, + Pendulum
    python benchmarks/adversarial.py --algos gail --no-pendulum --seeds 8

For each algorithm: the preset (``imitation_fn.presets``), one seed alone and
``--seeds`` seeds in one vmapped run, each up to ``--max-steps`` generator env steps (the 1-seed run
stops once it reaches the target: it is there for timing). Every
``--eval-every`` rounds each seed's deterministic policy plays 16 episodes; a seed *reaches* the
target at the first evaluation whose mean return is ≥ 475. Times count training only (collection,
PPO and discriminator updates), not evaluations, the one-off init (env staggering) or the first
round (warm-up, and compilation with ``--compile``; counted at the mean round time instead). At the end
every seed plays 50 episodes: the final per-seed returns. Bars (issue 6): GAIL ≥ 475 on ≥ 7 of 8
seeds, AIRL ≥ 450 on ≥ 6 of 8, within 300k steps; Pendulum GAIL normalised return ≥ 0.8 (random 0,
expert 1). Learning curves go to ``results/adversarial.png``, numbers to ``results/adversarial.json``.
One torch thread (small networks on a shared 2-core machine: more threads oversubscribe it).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs, presets
from imitation_fn.algorithms import adversarial, airl, gail
from imitation_fn.core import random
from imitation_fn.data import serialize
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.train import adversarial as driver
from imitation_fn.train import loop

ROOT = Path(__file__).resolve().parent.parent
EXPERTS = ROOT / "tests" / "data" / "experts"
ALGOS: dict[str, ModuleType] = {"gail": gail, "airl": airl}


def evaluate(algo: ModuleType, env: envs.Env, states: Any, keys: torch.Tensor) -> torch.Tensor:
    """``(n_seeds, env.n_envs)`` returns of each seed's deterministic policy."""
    return torch.func.vmap(lambda s, k: evaluate_policy(env, algo.policy(s), k).returns)(states, keys)


def run(
    name: str,
    env_id: str,
    n_seeds: int,
    max_steps: int,
    eval_every: int,
    target: float,
    *,
    compile: bool = False,
    stop_when_reached: bool = False,
    n_demos: int = 50,
) -> dict[str, Any]:
    """Train ``n_seeds`` vmapped seeds of the preset; the learning curve and time/steps to ``target``."""
    algo = ALGOS[name]
    preset = presets.get(name, env_id)
    assert preset is not None, f"no preset for {name} on {env_id}"
    cfg = algo.Config(**preset.config)
    trajs = serialize.load(EXPERTS / env_id.replace("/", "_") / "demos")[:n_demos]
    n_rounds = max_steps // cfg.round_timesteps
    task = driver.make_task(cfg, env_id, budget=n_rounds * cfg.round_timesteps, n_eval_episodes=16, demos=trajs)
    env, eval_env, final_env = task.env, task.eval_env, envs.make(env_id, n_envs=50)
    assert env is not None and eval_env is not None
    seeds = list(range(n_seeds))
    spec = driver.SPECS[name]
    _, data_keys, eval_keys = loop.seed_keys(seeds)
    t0 = time.perf_counter()
    states = loop.init_states(spec, cfg, task, seeds)
    init_s = time.perf_counter() - t0
    step = spec.make_step(algo, cfg, task, data_keys, compile)
    curve: list[dict[str, Any]] = []
    reached: list[tuple[int, float] | None] = [None] * n_seeds
    train_s, first_round_s = 0.0, 0.0
    for r in range(1, n_rounds + 1):
        t = time.perf_counter()
        states, metrics = step(states, (r - 1) * cfg.round_timesteps)
        if r == 1:  # warm-up (and compilation): timed apart, replaced by the mean round time below
            first_round_s = time.perf_counter() - t
        else:
            train_s += time.perf_counter() - t
        if r % eval_every == 0 or r == n_rounds:
            keys = torch.func.vmap(random.fold_in)(eval_keys, torch.full((n_seeds,), r))
            means = evaluate(algo, eval_env, states, keys).mean(-1)
            steps = r * cfg.round_timesteps
            curve.append(
                {
                    "steps": steps,
                    "train_s": train_s,
                    "returns": means.tolist(),
                    "disc_acc": metrics["disc_acc"].tolist(),
                }
            )
            per_round = train_s / max(r - 1, 1)
            for i in range(n_seeds):
                if reached[i] is None and float(means[i]) >= target:
                    reached[i] = (steps, train_s + per_round)  # + the first round at the mean round time
            print(
                f"  {name} {env_id} N={n_seeds} {steps:>7} steps {train_s:6.1f} s  returns "
                + " ".join(f"{float(m):6.1f}" for m in means),
                flush=True,
            )
            if stop_when_reached and all(x is not None for x in reached):
                break
    final = evaluate(algo, final_env, states, torch.func.vmap(random.fold_in)(eval_keys, torch.full((n_seeds,), -1)))
    return {
        "algo": name,
        "env_id": env_id,
        "n_seeds": n_seeds,
        "config": json.loads(cfg.to_json()),
        "compile": compile,
        "rounds": r,
        "steps": r * cfg.round_timesteps,
        "stagger_burn_in_steps": int(adversarial.stagger_offsets(env).sum()) if cfg.stagger_envs else 0,
        "init_s": init_s,
        "first_round_s": first_round_s,
        "train_s": train_s,
        "env_steps_per_s": (r - 1) * cfg.round_timesteps * n_seeds / max(train_s, 1e-9),
        "reached": reached,
        "time_to_all_s": max(r[1] for r in reached if r is not None) if all(r is not None for r in reached) else None,
        "final_returns": final.mean(-1).tolist(),
        "curve": curve,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [
        r for k, r in results.items() if isinstance(r, dict) and "curve" in r and (r["n_seeds"] > 1 or "pendulum" in k)
    ]
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, r in zip(axes[0], runs, strict=True):
        steps = [c["steps"] for c in r["curve"]]
        for i in range(r["n_seeds"]):
            ax.plot(steps, [c["returns"][i] for c in r["curve"]], lw=1, alpha=0.8, label=f"seed {i}")
        if "target" in r:
            ax.axhline(r["target"], color="k", ls="--", lw=0.8)
        ax.set_title(f"{r['algo'].upper()} on {r['env_id']} ({r['n_seeds']} seeds vmapped)")
        ax.set_xlabel("generator env steps")
        ax.set_ylabel("mean return (16 episodes, deterministic)")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="*", default=["gail", "airl"], choices=sorted(ALGOS))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=300_000)
    parser.add_argument("--eval-every", type=int, default=5, help="rounds between evaluations")
    parser.add_argument("--no-single", action="store_true", help="skip the 1-seed runs")
    parser.add_argument("--compile", action="store_true", help="torch.compile PPO's steps (first round excluded)")
    parser.add_argument("--no-pendulum", action="store_true")
    parser.add_argument("--pendulum-seeds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "adversarial.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=120)
    results: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.platform(),
            "threads": args.threads,
            "torch": torch.__version__,
            "note": "shared 2-core machine, other jobs running: absolute times are pessimistic; ratios are in-run",
        }
    }
    bars = {"gail": (475.0, 7), "airl": (450.0, 6)}
    for name in args.algos:
        target = 475.0  # the time-to-target threshold (issue 6); the per-seed bar is bars[name]
        if not args.no_single:
            results[f"{name}_1"] = run(
                name,
                "seals/CartPole-v0",
                1,
                args.max_steps,
                args.eval_every,
                target,
                compile=args.compile,
                stop_when_reached=True,
            )
        results[f"{name}_{args.seeds}"] = r = run(
            name, "seals/CartPole-v0", args.seeds, args.max_steps, args.eval_every, target, compile=args.compile
        )
        r["target"] = bars[name][0]
        r["bar"] = {
            "return": bars[name][0],
            "min_seeds": bars[name][1],
            "seeds_at_bar": sum(x >= bars[name][0] for x in r["final_returns"]),
        }
    if not args.no_pendulum and presets.get("gail", "Pendulum-v1") is not None:
        summary = json.loads((EXPERTS / "Pendulum-v1" / "summary.json").read_text())
        expert = float(summary["demos"]["return_mean"])
        random_env = envs.make("Pendulum-v1", n_envs=100)
        uniform = lambda obs, key: random.uniform(key, (obs.shape[0], 1), minval=-2.0, maxval=2.0)  # noqa: E731
        rnd = float(evaluate_policy(random_env, uniform, random.key(0)).returns.mean())
        preset = presets.get("gail", "Pendulum-v1")
        assert preset is not None
        r = run(
            "gail",
            "Pendulum-v1",
            args.pendulum_seeds,
            preset.total_timesteps,
            args.eval_every,
            expert,
            compile=args.compile,
        )
        r["random_return"], r["expert_return"] = rnd, expert
        r["normalized_final"] = [(x - rnd) / (expert - rnd) for x in r["final_returns"]]
        results["gail_pendulum"] = r

    table = Table(title="Adversarial imitation: time to the target return (training only) and final returns")
    for col in ("run", "seeds ≥ target", "time to all s", "steps/s", "final returns (50 episodes)"):
        table.add_column(col, justify="right")
    for key, r in results.items():
        if key == "meta":
            continue
        hits = sum(x is not None for x in r["reached"])
        tta = f"{r['time_to_all_s']:.1f}" if r["time_to_all_s"] is not None else "-"
        finals = " ".join(f"{x:.0f}" for x in r["final_returns"])
        table.add_row(key, f"{hits}/{r['n_seeds']}", tta, f"{r['env_steps_per_s']:.0f}", finals)
    console.print(table)
    for name in args.algos:
        one, many = results.get(f"{name}_1"), results.get(f"{name}_{args.seeds}")
        if one and many and one["time_to_all_s"] and many["time_to_all_s"]:
            ratio = many["time_to_all_s"] / one["time_to_all_s"]
            console.print(f"{name}: {args.seeds} seeds vmapped / 1 seed, time to 475: {ratio:.2f}× (target ≤ 2.5×)")
    if "gail_pendulum" in results:
        console.print(f"Pendulum GAIL normalised final returns: {results['gail_pendulum']['normalized_final']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # runs of other algorithms (separate invocations) are kept; this run's keys replace theirs
        results = {**json.loads(out.read_text()), **results}
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    console.print(f"results → {out}, curves → {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
