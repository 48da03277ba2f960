"""The library's benchmark table: every algorithm, 8 seeds each, on tasks that run on a laptop CPU.

    python benchmarks/table.py                          # the table (~25 min on 2 cores) -> benchmarks/TABLE.md
    python benchmarks/table.py --all                    # plus GAIL/AIRL on Pendulum-v1 (~+20 min)
    python benchmarks/table.py --only bc dagger --seeds 4 --out /tmp/table

The counterpart of ``imitation``'s published benchmark table. Each row trains one algorithm on one task for
all its seeds in one vmapped run, with the shipped preset (the configuration the CLI uses) and the shipped
expert's 50 demonstrations (``policies.zoo``), then scores every seed's final policy on ``--eval-episodes``
episodes. The columns are ``analysis.summarize``'s: mean ± std over seeds, the interquartile mean with its 95%
stratified-bootstrap interval, and the normalised return (uniform-random policy 0, shipped expert 1). Wall
time is the whole vmapped run: data loading, compilation where a row compiles (GAIL, AIRL and preference
comparisons with SAC compile their RL steps), training and evaluation.
MCE IRL rows score the exact expected return of the learned reward's soft-optimal policy (no sampling).

One torch thread: the networks are small, and on a 2-core machine more threads only add contention.
Writes ``TABLE.md`` (with the date, machine and command) and ``results/table.json`` (every seed's return).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from imitation_fn import analysis, envs, presets
from imitation_fn.algorithms import airl, bc, dagger, density, gail, mce_irl
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import random, serialization
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.envs.tabular import TabularMDP, cliff_world, random_mdp
from imitation_fn.policies import load_policy, zoo
from imitation_fn.rl import ppo
from imitation_fn.train import adversarial as adversarial_training
from imitation_fn.train import density as density_training
from imitation_fn.train import mce_irl as mce_training
from imitation_fn.train import preference_comparisons as pc_training
from imitation_fn.train import train
from imitation_fn.train.dagger import train_dagger

ROOT = Path(__file__).resolve().parent
console = Console(width=140)


@dataclasses.dataclass(frozen=True)
class Outcome:
    returns: Tensor  # (n_seeds,): each seed's final return
    budget: str  # what each seed was given, in words
    references: tuple[float, float] | None = None  # (random, expert) where the zoo has none


Runner = Callable[[Sequence[int], int, bool], Outcome]  # (seeds, eval episodes, quick) -> outcome


@dataclasses.dataclass(frozen=True)
class Task:
    algorithm: str
    env: str
    run: Runner
    heavy: bool = False  # only with --all


# --- Offline and interactive imitation ----------------------------------------------------------------------------


def _demos(env_id: str, n: int | None = None) -> list[Any]:
    trajectories = serialize.load(zoo.demos_path(env_id))
    return list(trajectories[:n] if n is not None else trajectories)


def _bc(env_id: str) -> Runner:
    def run(seeds: Sequence[int], n_eval: int, quick: bool) -> Outcome:
        demos = flatten_trajectories(_demos(env_id))
        n_epochs = 1 if quick else 20
        result = train(
            bc, bc.Config(), demos, envs.make(env_id, n_envs=n_eval), seeds=seeds, n_epochs=n_epochs, progress=False
        )
        return Outcome(result.eval_returns.mean(-1), f"50 demos, {n_epochs} epochs, batch {bc.Config().batch_size}")

    return run


def _dagger(env_id: str) -> Runner:
    def run(seeds: Sequence[int], n_eval: int, quick: bool) -> Outcome:
        expert = load_policy(zoo.expert_path(env_id)).policy_fn()
        steps = 1_000 if quick else 10_000
        result = train_dagger(
            dagger.Config(rollout_round_min_episodes=0, n_epochs=10),
            env_id,
            expert,
            seeds=seeds,
            total_timesteps=steps,
            n_eval_episodes=n_eval,
            progress=False,
        )
        return Outcome(result.eval_returns.mean(-1), f"{steps:,} env steps, expert queried")

    return run


def _adversarial(name: str, env_id: str) -> Runner:
    module = {"gail": gail, "airl": airl}[name]

    def run(seeds: Sequence[int], n_eval: int, quick: bool) -> Outcome:
        preset = presets.get(name, env_id)
        assert preset is not None, (name, env_id)
        cfg = module.Config.model_validate(preset.config)
        steps = 2 * cfg.round_timesteps if quick else preset.total_timesteps
        result = adversarial_training.train_adversarial(
            module, cfg, env_id, _demos(env_id), seeds=seeds, total_timesteps=steps, n_eval_episodes=n_eval,
            compile=not quick, progress=False,
        )  # fmt: skip
        return Outcome(result.eval_returns.mean(-1), f"50 demos, {result.steps:,} env steps")

    return run


# The density benchmark's settings (benchmarks/density.py): an exponential kernel on raw inputs, rl-zoo's PPO.
DENSITY_PPO = ppo.Config(
    n_envs=8, n_steps=32, batch_size=256, n_epochs=20, lr=1e-3, lr_schedule="linear", gamma=0.98, gae_lambda=0.8
)
DENSITY = density.Config(kernel="exponential", kernel_bandwidth=2.0, standardise_inputs=False, rl=DENSITY_PPO)


def _density(env_id: str) -> Runner:
    def run(seeds: Sequence[int], n_eval: int, quick: bool) -> Outcome:
        steps = 512 if quick else 40 * 256
        result = density_training.train_policy(
            DENSITY, env_id, _demos(env_id, 8), seeds=seeds, total_timesteps=steps,
            n_eval_episodes=n_eval, progress=False,
        )  # fmt: skip
        return Outcome(result.eval_returns.mean(-1), f"8 demos, {result.steps:,} env steps")

    return run


def _preference_comparisons(env_id: str) -> Runner:
    def run(seeds: Sequence[int], n_eval: int, quick: bool) -> Outcome:
        preset = presets.get("preference_comparisons", env_id)
        assert preset is not None, env_id
        values = {**preset.config, "total_timesteps": preset.total_timesteps}
        if quick:
            values.update(total_timesteps=2_000, total_comparisons=40, num_iterations=2)
        cfg = pc.Config.model_validate(values)
        compiled = not quick and cfg.agent == "sac"  # SAC's compiled step is ~10x faster; PPO's gains less here
        result = pc_training.train(cfg, env_id, seeds=seeds, n_eval_episodes=n_eval, progress=False, compile=compiled)
        assert result.eval_returns is not None
        budget = f"{cfg.total_comparisons:,} comparisons, {cfg.total_timesteps:,} agent steps"
        return Outcome(result.eval_returns.mean(-1), budget)

    return run


# --- MCE IRL: exact returns on tabular MDPs ---------------------------------------------------------------------


def _mce(make_mdp: Callable[[], TabularMDP], description: str) -> Runner:
    def run(seeds: Sequence[int], n_eval: int, quick: bool) -> Outcome:
        mdp = make_mdp()
        _, _, expert_pi = mce_irl.mce_partition_fh(mdp)
        _, demo = mce_irl.mce_occupancy_measures(mdp, pi=expert_pi)
        max_iter = 50 if quick else 5_000
        result = mce_training.train(mce_irl.Config(max_iter=max_iter, log_interval=None), mdp, demo, seeds=seeds)
        returns = result.evaluation["expected_return"]
        uniform = torch.full((mdp.horizon, mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions, dtype=torch.float64)
        references = (float(mce_irl.expected_return(mdp, uniform)), float(mce_irl.expected_return(mdp, expert_pi)))
        converged = int(result.states.converged.sum())
        budget = f"{description}, ≤ {max_iter:,} iterations ({converged}/{len(seeds)} reached L∞ ≤ 1e-3)"
        return Outcome(returns.float(), budget, references)

    return run


def _cliff_world() -> TabularMDP:
    return cliff_world(width=7, height=4, horizon=40, use_xy_obs=True, dtype=torch.float64)


def _random_mdp() -> TabularMDP:
    return random_mdp(
        random.key(42), n_states=16, n_actions=3, branch_factor=2, horizon=20, random_obs=True, dtype=torch.float64
    )


CARTPOLE, PENDULUM = "seals/CartPole-v0", "Pendulum-v1"
TASKS: tuple[Task, ...] = (
    Task("bc", CARTPOLE, _bc(CARTPOLE)),
    Task("dagger", CARTPOLE, _dagger(CARTPOLE)),
    Task("gail", CARTPOLE, _adversarial("gail", CARTPOLE)),
    Task("airl", CARTPOLE, _adversarial("airl", CARTPOLE)),
    Task("density", CARTPOLE, _density(CARTPOLE)),
    Task("preference_comparisons", CARTPOLE, _preference_comparisons(CARTPOLE)),
    Task("bc", PENDULUM, _bc(PENDULUM)),
    Task("dagger", PENDULUM, _dagger(PENDULUM)),
    Task("gail", PENDULUM, _adversarial("gail", PENDULUM), heavy=True),
    Task("airl", PENDULUM, _adversarial("airl", PENDULUM), heavy=True),
    Task("preference_comparisons", PENDULUM, _preference_comparisons(PENDULUM)),
    Task("mce_irl", "CliffWorld-7x4", _mce(_cliff_world, "4×7 grid, horizon 40, [32, 32] MLP")),
    Task("mce_irl", "RandomMDP-16x3", _mce(_random_mdp, "16 states, 3 actions, horizon 20, [32, 32] MLP")),
)


# --- The table ------------------------------------------------------------------------------------------------------


def markdown(rows: Sequence[analysis.Summary], runs: dict[tuple[str, str], dict[str, Any]], header: str) -> str:
    cols = (
        "env", "algorithm", "seeds", "budget per seed", "wall (s)", "mean ± std", "worst seed", "IQM [95% CI]",
        "normalised",
    )  # fmt: skip
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for s in rows:
        run = runs[(s.env, s.algorithm)]
        cells = [
            s.env,
            s.algorithm,
            str(s.n),
            run["budget"],
            f"{run['wall_s']:.0f}",
            f"{s.mean:.1f} ± {s.std:.1f}",
            f"{s.worst:.1f}",
            f"{s.iqm.estimate:.1f} [{s.iqm.low:.1f}, {s.iqm.high:.1f}]",
            "-" if s.normalized is None else f"{s.normalized:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="seeds per row (one vmapped run)")
    parser.add_argument("--eval-episodes", type=int, default=50, help="evaluation episodes per seed")
    parser.add_argument("--only", nargs="+", metavar="ALGORITHM", help="rows of these algorithms only")
    parser.add_argument("--all", action="store_true", help="include the heavy rows (GAIL/AIRL on Pendulum-v1)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not the algorithms")
    parser.add_argument("--out", default=str(ROOT), help="directory for TABLE.md and results/table.json")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows an interrupted run with the same settings finished"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    known = sorted({t.algorithm for t in TASKS})
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"--only: unknown algorithm(s) {unknown}; known: {known}")
    tasks = [t for t in TASKS if (args.all or not t.heavy) and (not args.only or t.algorithm in args.only)]

    # The code that runs is the code at the start: commits made while the table runs are not in it.
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    seeds = list(range(args.seeds))
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    partial = out / "results" / "table_partial.json"
    settings = {"seeds": args.seeds, "eval_episodes": args.eval_episodes, "quick": args.quick}
    done = _finished_rows(partial, settings) if args.resume else {}
    records: list[analysis.RunRecord] = []
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    references: dict[str, tuple[float, float] | None] = {}
    start = time.perf_counter()
    for task in tasks:
        if (task.env, task.algorithm) in done:
            row = done[(task.env, task.algorithm)]
            console.print(f"[bold]{task.algorithm}[/] on {task.env}: kept from the interrupted run")
        else:
            console.print(f"[bold]{task.algorithm}[/] on {task.env}, {len(seeds)} seeds ...")
            t0 = time.perf_counter()
            outcome = task.run(seeds, args.eval_episodes, args.quick)
            wall = time.perf_counter() - t0
            refs = outcome.references or analysis.reference_returns(task.env)
            row = {"budget": outcome.budget, "wall_s": wall, "returns": outcome.returns.tolist()}
            row["references"] = list(refs) if refs is not None else None
            console.print(f"  {wall:.0f} s, returns {[round(r, 1) for r in row['returns']]}")
        runs[(task.env, task.algorithm)] = row
        records += [
            analysis.RunRecord(task.algorithm, task.env, s, r, [], [], "")
            for s, r in zip(seeds, row["returns"], strict=True)
        ]
        references[task.env] = tuple(row["references"]) if row["references"] is not None else None
        rows_so_far = [{"env": e, "algorithm": a, **r} for (e, a), r in runs.items()]
        serialization.write_text_atomic(partial, json.dumps({**settings, "rows": rows_so_far}, indent=2))
    total = time.perf_counter() - start + sum(done[k]["wall_s"] for k in runs if k in done)

    rows = analysis.summarize(records, references=references)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread"
    command = "python benchmarks/table.py " + " ".join(sys.argv[1:])
    at = f" at commit {commit.stdout.strip()}" if commit.returncode == 0 else ""
    header = (
        f"# Benchmark table\n\nGenerated {time.strftime('%Y-%m-%d')}{at} on {machine} by `{command.strip()}` "
        f"in {total / 60:.1f} min (load average {os.getloadavg()[0]:.1f} at the end). Normalised return: uniform-"
        "random policy 0, shipped expert 1. How each row is run: benchmarks/table.py and benchmarks/README.md."
    )
    table = Table(title=f"imitation_fn benchmark table ({total / 60:.1f} min)")
    for col in ("env", "algorithm", "n", "budget", "wall s", "mean ± std", "worst", "IQM [95% CI]", "norm."):
        table.add_column(col, justify="left" if col in ("env", "algorithm", "budget") else "right")
    for s in rows:
        run = runs[(s.env, s.algorithm)]
        table.add_row(
            s.env, s.algorithm, str(s.n), run["budget"], f"{run['wall_s']:.0f}", f"{s.mean:.1f} ± {s.std:.1f}",
            f"{s.worst:.1f}", f"{s.iqm.estimate:.1f} [{s.iqm.low:.1f}, {s.iqm.high:.1f}]",
            "-" if s.normalized is None else f"{s.normalized:.2f}",
        )  # fmt: skip
    console.print(table)

    (out / "TABLE.md").write_text(markdown(rows, runs, header))
    detail = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine,
        "command": command.strip(),
        "commit": commit.stdout.strip() if commit.returncode == 0 else None,
        "total_s": total,
        "eval_episodes": args.eval_episodes,
        "references": references,
        "rows": [{"env": e, "algorithm": a, **r} for (e, a), r in runs.items()],
    }
    (out / "results" / "table.json").write_text(json.dumps(detail, indent=2) + "\n")
    partial.unlink(missing_ok=True)
    console.print(f"{out / 'TABLE.md'} and {out / 'results' / 'table.json'} written ({total / 60:.1f} min)")


def _finished_rows(path: Path, settings: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows an interrupted run wrote to ``path``, if it ran with the same ``settings``."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    if any(saved.get(k) != v for k, v in settings.items()):
        console.print(f"{path} was written with other settings: starting over")
        return {}
    rows = saved["rows"]
    return {(r["env"], r["algorithm"]): {k: v for k, v in r.items() if k not in ("env", "algorithm")} for r in rows}


if __name__ == "__main__":
    main()
