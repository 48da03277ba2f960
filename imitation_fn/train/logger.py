"""Per-seed metrics to JSONL (and CSV, TensorBoard, wandb), and a rich progress bar (host-side only)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from imitation_fn.core import serialization
from imitation_fn.core.errors import InputError

LOG_FORMATS = ("jsonl", "csv", "tensorboard", "wandb")
"""Where metrics can go (``--log-formats``, as ``imitation``'s ``log_format_strs``); jsonl is always written."""
CSV = "metrics.csv"
TENSORBOARD = "tensorboard"

PerSeed = dict[str, list[Any]]  # metric name -> one value per seed (a number, or a list such as eval returns)


def scalar_name(kind: str, key: str) -> str:
    """A metric's stream name, namespaced as SB3 and ``imitation`` do: ``train/loss``, ``eval/return_mean``,
    ``disc/acc``; keys that carry their own namespace (``reward/accuracy``) keep it."""
    return key if "/" in key else f"{kind}/{key}"


class MetricsWriter:
    """Appends one JSON line per (step, seed): ``{"step", "seed", "kind", **metrics}``.

    Metrics arrive stacked over seeds (each a ``(n_seeds,)`` tensor or a ``(n_seeds, k)`` one,
    written as a list); appending means a resumed run continues the same file. ``also`` are further
    writers (``csv``, ``tensorboard``, ``wandb``) that get the same values.
    """

    def __init__(self, path: Path | None, seeds: Sequence[int], also: Sequence[Writer] = ()) -> None:
        self.path = path
        self.seeds = list(seeds)
        self.also = list(also)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, kind: str, metrics: Mapping[str, Tensor]) -> None:
        if self.path is None:
            return
        host: PerSeed = {k: v.detach().cpu().tolist() for k, v in metrics.items()}
        with self.path.open("a") as f:
            for i, seed in enumerate(self.seeds):
                row: dict[str, Any] = {"step": step, "seed": seed, "kind": kind}
                row.update({k: v[i] for k, v in host.items()})
                f.write(json.dumps(row) + "\n")
        for writer in self.also:
            writer.emit(step, kind, host)


class Writer(Protocol):
    """A further destination for the values :class:`MetricsWriter` writes."""

    def emit(self, step: int, kind: str, values: PerSeed) -> None: ...


def _scalars(kind: str, values: PerSeed) -> dict[str, list[float]]:
    """The scalar streams (per-episode lists such as eval returns stay in the JSONL file)."""
    return {scalar_name(kind, k): [float(x) for x in v] for k, v in values.items() if v and not isinstance(v[0], list)}


class CsvWriter:
    """``metrics.csv`` in long form, one row per (step, seed, metric): ``step,seed,name,value``.

    Long form because the metrics differ between rows (train and eval) and runs: any tool pivots it.
    """

    HEADER = "step,seed,name,value\n"

    def __init__(self, path: Path, seeds: Sequence[int]) -> None:
        self.path, self.seeds = path, list(seeds)
        if not path.exists():
            path.write_text(self.HEADER)

    def emit(self, step: int, kind: str, values: PerSeed) -> None:
        lines = [
            f"{step},{seed},{name},{v[i]!r}\n"
            for name, v in _scalars(kind, values).items()
            for i, seed in enumerate(self.seeds)
        ]
        with self.path.open("a") as f:
            f.writelines(lines)

    @classmethod
    def truncate(cls, path: Path, step: int) -> None:
        """Keep the rows up to ``step`` (a resumed run writes the rest again)."""
        if not path.exists():
            return
        rows = path.read_text().splitlines(keepends=True)[1:]
        keep = [
            r for r in rows if r.endswith("\n") and r.split(",", 1)[0].isdigit() and int(r.split(",", 1)[0]) <= step
        ]
        serialization.write_text_atomic(path, cls.HEADER + "".join(keep))


class TensorBoardWriter:
    """One TensorBoard run per seed (``tensorboard/seed_<s>``), so TensorBoard overlays the seeds."""

    def __init__(self, directory: Path, seeds: Sequence[int], resume_step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise InputError(
                "--log-formats tensorboard needs the tensorboard package: pip install 'imitation-fn[tensorboard]'"
            ) from e
        # purge_step drops what a killed run logged after its checkpoint, as the JSONL file is truncated.
        purge = resume_step + 1 if resume_step > 0 else None
        self.writers = [SummaryWriter(str(directory / f"seed_{s}"), purge_step=purge) for s in seeds]

    def emit(self, step: int, kind: str, values: PerSeed) -> None:
        for name, per_seed in _scalars(kind, values).items():
            for writer, value in zip(self.writers, per_seed, strict=True):
                writer.add_scalar(name, value, step)
        for writer in self.writers:
            writer.flush()


class WandbWriter:
    """One Weights & Biases run for the run directory, each seed's streams under ``seed_<s>/``.

    Configure wandb as usual through its environment (``WANDB_PROJECT``, ``WANDB_MODE=offline``, ...).
    """

    def __init__(self, directory: Path, seeds: Sequence[int], config: dict[str, Any], name: str) -> None:
        try:
            import wandb
        except ImportError as e:
            raise InputError("--log-formats wandb needs the wandb package: pip install 'imitation-fn[wandb]'") from e
        self.seeds = list(seeds)
        self.run = wandb.init(dir=str(directory), config=config, name=name, id=None, reinit="finish_previous")

    def emit(self, step: int, kind: str, values: PerSeed) -> None:
        row = {
            f"seed_{seed}/{name}": v[i]
            for name, v in _scalars(kind, values).items()
            for i, seed in enumerate(self.seeds)
        }
        self.run.log({**row, "step": step})


def parse_log_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"jsonl,csv"`` (or a list) as a tuple of known formats; an unknown one is an ``InputError``."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = sorted(set(names) - set(LOG_FORMATS))
    if unknown:
        raise InputError(f"--log-formats: unknown format(s) {', '.join(unknown)}; choose from {', '.join(LOG_FORMATS)}")
    return tuple(dict.fromkeys(["jsonl", *names]))


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
            self.shown.update({k: float(torch.as_tensor(v, device="cpu").double().mean()) for k, v in metrics.items()})
        text = "  ".join(f"{k}={v:.4g}" for k, v in self.shown.items())
        self.progress.update(self.task, completed=completed, metrics=text)
