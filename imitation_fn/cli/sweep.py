"""``sweep``: a grid or random search over Config fields × seeds, vmapped per chunk, optionally on Ray."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imitation_fn.cli.common import CLIError, add_command, console, positive_int
from imitation_fn.core.device import DEVICE_CHOICES
from imitation_fn.train import sweep

EXAMPLE = """example sweep file (YAML or JSON):

  algorithm: bc
  env: CartPole-v1
  seeds: 8
  grid: {lr: [0.001, 0.003], l2_weight: [0.0, 0.0001]}
  train: {n_batches: 500, eval_every: 100}
  chunk_size: 16        # runs per vmapped chunk / Ray task (default: one chunk per structural group)

algorithms and their budgets (the train: keys):
  bc                                        n_epochs | n_batches
  dagger, gail, airl, density, ppo, sac     total_timesteps (env steps)
  mce_irl, preference_comparisons           the config's (max_iter; num_iterations rounds)
one example per algorithm: examples/sweeps/<algorithm>.yaml
"""


def cmd_sweep(args: argparse.Namespace) -> None:
    try:
        spec = sweep.SweepSpec.from_file(args.file)
    except FileNotFoundError as e:
        raise CLIError(f"no such sweep file {args.file}") from e
    except (ValidationError, ValueError) as e:
        raise CLIError(f"invalid sweep file {args.file}:\n{e}") from e
    if args.chunk_size is not None:
        spec = spec.model_copy(update={"chunk_size": args.chunk_size})
    if args.device is not None:
        spec = spec.model_copy(update={"device": str(args.device)})
    out = Path(args.out or Path(args.file).with_suffix(""))
    use_ray = args.ray
    if use_ray and not sweep.ray_available():
        console.print("[yellow]Ray is not installed (pip install 'imitation-fn[ray]'): running the chunks locally[/]")
        use_ray = False
    try:
        sweep_plan = sweep.plan(spec)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from e
    n_chunks = len(sweep_plan.chunks)
    where = "as Ray tasks" if use_ray else "locally, one after another"
    console.print(
        f"{spec.algorithm} on {spec.env}: {len(sweep_plan.runs)} runs in {n_chunks} vmapped chunk(s), {where}\n"
        f"  vmapped fields: {', '.join(sweep_plan.tensor_fields) or '-'}; "
        f"grouped (structural): {', '.join(sweep_plan.structural_fields) or '-'}"
    )
    if args.dry_run:
        console.print(_plan_table(spec, sweep_plan))
        return
    if args.resume:
        console.print(f"  resuming: {len(sweep.finished_chunks(out))} of {n_chunks} chunks already finished")

    def report(done: int, total: int) -> None:
        console.print(f"  chunk {done}/{total} done ({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    try:
        result = sweep.run_sweep(spec, out, use_ray=use_ray, resume=args.resume, progress=False, on_chunk=report)
    except (FileExistsError, ValueError) as e:
        raise CLIError(str(e)) from e
    console.print(_table(spec, result))
    console.print(f"{time.perf_counter() - t0:.1f} s; results in {out} (analyse with `imitation-fn analyze {out}`)")


def _plan_table(spec: sweep.SweepSpec, sweep_plan: sweep.Plan) -> Any:
    """What ``--dry-run`` shows: every vmapped chunk, its size and the points it holds."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{spec.algorithm} sweep on {spec.env}: the plan (nothing trained)")
    for col in ("chunk", "runs", "points", "seeds"):
        table.add_column(col, justify="left" if col == "points" else "right")
    varying = sweep.swept_fields(spec)
    for i, chunk in enumerate(sweep_plan.chunks):
        runs = [sweep_plan.runs[j] for j in chunk]
        by_point = {r.point: r for r in reversed(runs)}  # each point's first run
        labels = [
            sweep.label(spec.algorithm, {k: v for k, v in r.params.items() if k in varying})
            for r in sorted(by_point.values(), key=lambda r: r.point)
        ]
        table.add_row(str(i), str(len(runs)), escape("; ".join(labels)), str(len({r.seed for r in runs})))
    return table


def _table(spec: sweep.SweepSpec, result: sweep.SweepResult) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{spec.algorithm} sweep on {spec.env}: final return over seeds")
    for col in ("point", "seeds", "mean", "std", "min", "max"):
        table.add_column(col, justify="right" if col != "point" else "left")
    varying = sweep.swept_fields(spec)
    by_point: dict[int, list[int]] = {}
    for r in result.runs:
        by_point.setdefault(r.point, []).append(r.index)
    for runs in by_point.values():
        per_run = result.eval_returns[runs].mean(-1)
        params = {k: v for k, v in result.runs[runs[0]].params.items() if k in varying}
        table.add_row(
            escape(sweep.label(spec.algorithm, params)),
            str(len(runs)),
            f"{per_run.mean():.1f}",
            f"{per_run.std(correction=0):.1f}",
            f"{per_run.min():.1f}",
            f"{per_run.max():.1f}",
        )
    return table


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "sweep",
        help="grid/random search over Config fields × seeds (vmapped chunks, optionally Ray tasks)",
        epilog=EXAMPLE,
    )
    p.add_argument("file", help="sweep file (.yaml/.yml/.json)")
    p.add_argument("--out", default=None, help="output directory (default: the file's name without suffix)")
    p.add_argument("--ray", action="store_true", help="run each chunk as a Ray task (falls back to local without Ray)")
    p.add_argument("--resume", action="store_true", help="continue a sweep in --out: rerun only unfinished chunks")
    p.add_argument(
        "--dry-run", action="store_true", help="print the grid, the vmapped chunks and their sizes; train nothing"
    )
    p.add_argument("--chunk-size", type=positive_int, default=None, help="runs per vmapped chunk (overrides the file)")
    p.add_argument(
        "--device", default=None, metavar="DEVICE", help=f"where chunks train: {DEVICE_CHOICES} (overrides the file)"
    )
    p.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    p.set_defaults(func=cmd_sweep)
