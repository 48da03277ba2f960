"""``analyze``: run directories and sweeps → a table of final returns (rich, markdown, CSV, LaTeX) and curves."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from imitation_fn import analysis
from imitation_fn.cli.common import CLIError, add_command, console, positive_int


def cmd_analyze(args: argparse.Namespace) -> None:
    try:
        records = analysis.load_runs(args.run_dirs, env=args.env)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e)) from e
    refs: dict[str, tuple[float, float] | None] | None = {} if args.no_normalize else None
    rows = analysis.summarize(records, baseline=args.baseline, references=refs, n_resamples=args.n_resamples)
    if args.baseline and not any(r.baseline for r in rows):
        labels = sorted({r.algorithm for r in rows})
        console.print(
            f"[yellow]--baseline {escape(repr(args.baseline))} matches no single algorithm per env; "
            f"have {escape(str(labels))}[/]"
        )
    console.print(analysis.rich_table(rows))
    if args.out is None:
        return
    out = Path(args.out)
    paths = analysis.write_tables(rows, out)
    console.print("tables: " + ", ".join(str(p) for p in paths.values()))
    if not args.no_plot:
        try:
            console.print(f"learning curves: {analysis.plot_curves(records, out / 'curves.png')}")
        except ImportError as e:
            console.print(f"[yellow]{e}: no plot written[/]")


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "analyze",
        help="summarise run directories and sweeps: mean, std, IQM ± 95% CI, normalised return, significance",
    )
    p.add_argument("run_dirs", nargs="+", help="run directories, sweep directories, or folders holding them")
    p.add_argument("--out", default=None, help="write table.md, table.csv, table.tex and curves.png here")
    p.add_argument("--baseline", default=None, help="algorithm label (or unique prefix) the others are compared to")
    p.add_argument("--env", default=analysis.UNKNOWN_ENV, help="environment of runs whose checkpoint names none")
    p.add_argument("--n-resamples", type=positive_int, default=2000, help="bootstrap resamples for the IQM interval")
    p.add_argument("--no-normalize", action="store_true", help="skip normalised returns (no random-policy rollouts)")
    p.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    p.set_defaults(func=cmd_analyze)
