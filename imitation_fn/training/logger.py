"""Per-seed metrics to JSONL, and a rich progress bar with live metrics (host-side only)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from imitation_fn.core.errors import InputError


class MetricsWriter:
    """Appends one JSON line per (step, seed): ``{"step", "seed", "kind", **metrics}``.

    Metrics arrive stacked over seeds (each a ``(n_seeds,)`` tensor or a ``(n_seeds, k)`` one,
    written as a list); appending means a resumed run continues the same file.
    """

    def __init__(self, path: Path | None, seeds: Sequence[int]) -> None:
        self.path = path
        self.seeds = list(seeds)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, kind: str, metrics: Mapping[str, Tensor]) -> None:
        if self.path is None:
            return
        host = {k: v.detach().cpu().tolist() for k, v in metrics.items()}
        with self.path.open("a") as f:
            for i, seed in enumerate(self.seeds):
                row: dict[str, Any] = {"step": step, "seed": seed, "kind": kind}
                row.update({k: v[i] for k, v in host.items()})
                f.write(json.dumps(row) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics JSONL file.

    A half-written last line (a run killed while writing it) is skipped; a broken line anywhere else
    means the file is not a metrics file, and is refused naming it.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path} cannot be read as a metrics file: {e}") from e
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise InputError(f"{path}, line {i + 1}: not a JSON metrics row ({e})") from e
        if not isinstance(row, dict) or "step" not in row:
            raise InputError(f"{path}, line {i + 1}: not a metrics row (a JSON object with a 'step')")
        rows.append(row)
    return rows


class ProgressBar:
    """A rich progress bar whose description shows the latest seed-mean metrics."""

    def __init__(self, total: int, description: str, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total, metrics="")
        self.shown: dict[str, float] = {}

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def advance(self, completed: int, metrics: Mapping[str, Tensor] | None = None) -> None:
        if metrics:
            self.shown.update({k: float(torch.as_tensor(v, dtype=torch.float64).mean()) for k, v in metrics.items()})
        text = "  ".join(f"{k}={v:.4g}" for k, v in self.shown.items())
        self.progress.update(self.task, completed=completed, metrics=text)
