"""``tune``: a Ray Tune search over Config fields (grid, random, ASHA), each trial all seeds in one vmapped run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.markup import escape

from imitation_fn.cli.common import CLIError, add_command, console, positive_int
from imitation_fn.core.device import DEVICE_CHOICES
from imitation_fn.core.errors import InputError
from imitation_fn.train import sweep, tune

EXAMPLE = """example tune file (YAML or JSON): a sweep file plus the search's scheduler and metric

  algorithm: bc
  env: CartPole-v1
  seeds: 4                                          # every trial trains these seeds, vmapped
  grid: {batch_size: [32, 64]}                      # tune.grid_search
  random: {lr: {loguniform: [0.0001, 0.01]}}        # tune.uniform / loguniform / choice
  n_samples: 4                                      # Tune's num_samples: 4 draws per grid point
  train: {n_batches: 1000}                          # evaluated 10 times unless train.eval_every is given
  scheduler: asha                                   # or fifo (the default): every trial runs its budget
  asha: {grace_period: 200, reduction_factor: 2}    # in the budget's unit; max_t: default the budget
  metric: return_mean                               # or return_iqm (over seeds)

writes OUT/trials/<trial>/ (run directories: `imitation-fn analyze OUT/trials/<trial>`), OUT/best.json (the
best trial's config, score and run directory) and OUT/ray/ (Ray's records).
one example per algorithm: examples/tune/<algorithm>.yaml
"""


def cmd_tune(args: argparse.Namespace) -> None:
    try:
        spec = tune.TuneSpec.from_file(args.file)
    except InputError as e:  # not a readable mapping: the message names the file
        raise CLIError(str(e)) from e
    except ValidationError as e:
        raise CLIError(f"invalid tune file {args.file}:\n{_describe(e)}") from e
    if args.num_samples is not None:
        spec = spec.model_copy(update={"n_samples": args.num_samples})
    if args.device is not None:
        spec = spec.model_copy(update={"device": str(args.device)})
    out = Path(args.out or Path(args.file).with_suffix(""))
    try:
        first = tune.check(spec)
    except ValidationError as e:
        raise CLIError(f"invalid tune file {args.file}: a searched value is not a valid config:\n{_describe(e)}") from e
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(f"invalid tune file {args.file}: {e}") from e
    console.print(
        f"{spec.algorithm} on {spec.env}: {spec.n_trials} trial(s) × {len(spec.seed_list)} seeds (vmapped per trial), "
        f"scheduler {spec.scheduler}, maximising {spec.metric}\n"
        f"  budget {first.budget} {first.unit}, evaluated every {first.eval_every}"
    )
    if args.dry_run:
        console.print(_space_table(spec))
        return
    t0 = time.perf_counter()
    try:
        result = tune.run_tune(spec, out, max_concurrent=args.max_concurrent, address=args.address)
    except ImportError as e:
        raise CLIError(tune.NEEDS_RAY) from e
    except FileExistsError as e:
        raise CLIError(str(e)) from e
    console.print(_trials_table(spec, result))
    for t in result.trials:
        if t.error:
            console.print(f"[red]trial {t.name} failed:[/] {escape(t.error)}", soft_wrap=True)
    if result.best is None:
        raise CLIError(f"tune: no trial reported a score; see the errors above and Ray's records in {out / 'ray'}")
    best = result.best
    console.print(
        f"{time.perf_counter() - t0:.1f} s; best: {escape(sweep.label(spec.algorithm, best['params']))} with "
        f"{best['metric']} {best['score']:.1f}, its run {best['run_dir']} (config and score in {out / tune.BEST})",
        soft_wrap=True,
    )


def _describe(e: ValidationError) -> str:
    """One line per invalid field (pydantic's own text adds links and input dumps)."""
    lines = [(".".join(map(str, err["loc"])), err["msg"]) for err in e.errors(include_url=False)]
    return "\n".join(f"  {loc}: {msg}" if loc else f"  {msg}" for loc, msg in lines)


def _space_table(spec: tune.TuneSpec) -> Any:
    """What ``--dry-run`` shows: each searched field and how Tune picks its values."""
    from rich.table import Table

    table = Table(title=f"{spec.algorithm} search space on {spec.env} (nothing trained)")
    for col in ("field", "search", "values"):
        table.add_column(col)
    for name, values in spec.grid.items():
        table.add_row(name, "grid_search", escape(", ".join(map(str, values))))
    for name, d in spec.random.items():
        kind = "uniform" if d.uniform is not None else "loguniform" if d.loguniform is not None else "choice"
        table.add_row(name, kind, escape(str(list(d.uniform or d.loguniform or d.choice or []))))
    return table


def _trials_table(spec: tune.TuneSpec, result: tune.TuneResult) -> Any:
    """Every trial, best first: its searched values, how far it trained, its last score and how it ended."""
    from rich.table import Table

    table = Table(title=f"{spec.algorithm} search on {spec.env}: {spec.metric} at each trial's last evaluation")
    fields = [*spec.grid, *spec.random]
    for col in ("trial", *fields, "progress", spec.metric, "status"):
        table.add_column(escape(col), justify="left" if col in ("trial", "status") else "right")
    ranked = sorted(result.trials, key=lambda t: -t.scores.get(spec.metric, float("-inf")))
    for t in ranked:
        status = "error" if t.error else "done" if t.complete else "stopped"
        table.add_row(
            t.name,
            *(escape(_short(t.params.get(f))) for f in fields),
            "-" if t.progress is None else str(t.progress),
            f"{t.scores[spec.metric]:.1f}" if spec.metric in t.scores else "-",
            status,
        )
    return table


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "tune",
        help="Ray Tune search over Config fields (grid, random, ASHA); each trial trains all seeds vmapped",
        epilog=EXAMPLE,
    )
    p.add_argument("file", help="tune file (.yaml/.yml/.json)")
    p.add_argument("--out", default=None, help="output directory (default: the file's name without suffix)")
    p.add_argument("--num-samples", type=positive_int, default=None, help="Tune's num_samples (overrides n_samples)")
    p.add_argument(
        "--max-concurrent", type=positive_int, default=None, help="trials at once (default: one per CPU of the cluster)"
    )
    p.add_argument(
        "--address",
        default=None,
        help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray started in this process",
    )
    p.add_argument(
        "--device", default=None, metavar="DEVICE", help=f"where trials train: {DEVICE_CHOICES} (overrides the file)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the search space and the budget; train nothing")
    p.set_defaults(func=cmd_tune)
