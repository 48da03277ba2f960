"""A run directory: config, per-seed metrics, checkpoints on a schedule, and resume.

    run, states, start = open_run(log_dir, resume, states, cfg, seeds, algorithm="bc", env_id="CartPole-v1")
    ...
    run.after_update(states, step, evaluating=evaluating)   # saves first: a failing evaluation loses nothing
    if evaluating: ...

A directory holds ``config.json``, ``metrics.jsonl`` (plus ``metrics.csv``, ``tensorboard/`` or a wandb
run, as ``log_formats`` asks) and ``checkpoint.safetensors`` (the states stacked over seeds; step,
seeds, algorithm, environment and the config's fingerprint in its metadata). Files are replaced
atomically. Opening a run for a fresh start or a resume cuts the metrics back to the checkpoint's
step, so a resumed run never writes a row twice and its files equal an uninterrupted run's. Every
mistake (a run already there, nothing to resume, another config or seeds, a budget below the
checkpoint's step) is an :class:`~imitation_fn.core.errors.InputError` that names the directory
and the flag that fixes it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imitation_fn.core import serialization
from imitation_fn.core.config import Config
from imitation_fn.core.errors import InputError
from imitation_fn.train.logger import (
    CSV,
    TENSORBOARD,
    CsvWriter,
    MetricsWriter,
    TensorBoardWriter,
    WandbWriter,
    Writer,
    parse_log_formats,
    read_metrics,
)

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT_EVERY_SECONDS = 120.0
"""Default wall time between checkpoints: a killed run loses at most this much training."""
DEFAULT_LOG_FORMATS = ("jsonl", "csv")


def config_fingerprint(cfg: Config) -> str:
    """The fingerprint of a config as saved in ``config.json`` (ties that file to the checkpoint's weights)."""
    return serialization.fingerprint(json.loads(cfg.to_json()))


@dataclasses.dataclass
class Run:
    """An open run directory (or none: ``out is None`` makes every write a no-op)."""

    out: Path | None
    seeds: list[int]
    algorithm: str
    env_id: str | None
    config_sha256: str
    writer: MetricsWriter
    checkpoint_every: float  # seconds of wall time between checkpoints
    evaluated: set[int]  # steps whose evaluation rows are already in metrics.jsonl
    pending_eval: bool = False  # resumed from a checkpoint written just before an evaluation that was not logged
    export: Callable[[Path, Any], object] | None = None  # (out, states): per-seed files refreshed at every save
    last_save: float = dataclasses.field(default_factory=time.monotonic)

    def checkpoint_due(self) -> bool:
        """Whether ``checkpoint_every`` seconds have passed since the last checkpoint (or the start)."""
        return self.out is not None and time.monotonic() - self.last_save >= self.checkpoint_every

    def save(self, states: Any, step: int, *, evaluating: bool = False, **metadata: Any) -> None:
        """Write the checkpoint: ``states`` after ``step`` (in the algorithm's own unit) and ``metadata``.

        ``evaluating``: an evaluation of these states follows; a run resumed from this checkpoint
        before that evaluation was logged runs it first (``pending_eval``).
        """
        if self.out is None:
            return
        meta: dict[str, Any] = {
            "step": step,
            "seeds": self.seeds,
            "algorithm": self.algorithm,
            "config_sha256": self.config_sha256,
            "eval_due": evaluating,
            **metadata,
        }
        if self.env_id is not None:
            meta["env"] = self.env_id
        if self.export is not None:  # first: the checkpoint is the record of what is complete
            self.export(self.out, states)
        serialization.save(self.out / CHECKPOINT, states, meta)
        self.last_save = time.monotonic()

    def after_update(self, states: Any, step: int, *, evaluating: bool, final: bool = False) -> None:
        """Checkpoint after an update when an evaluation follows (saving first, a failing evaluation loses
        nothing), at the ``final`` step, or when ``checkpoint_every`` seconds have passed."""
        if evaluating or final or self.checkpoint_due():
            self.save(states, step, evaluating=evaluating)

    def write_eval(self, step: int, metrics: dict[str, Any]) -> None:
        self.writer.write(step, "eval", metrics)
        self.evaluated.add(step)


def crossed(before: int, after: int, every: int | None) -> bool:
    """Whether going from step ``before`` to ``after`` passed a multiple of ``every`` (an evaluation point)."""
    return every is not None and every > 0 and after // every > before // every


def open_run(
    log_dir: str | Path | None,
    resume: bool,
    states: Any,
    cfg: Config,
    seeds: Sequence[int],
    *,
    algorithm: str,
    env_id: str | None = None,
    budget: int | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    log_formats: Sequence[str] = DEFAULT_LOG_FORMATS,
) -> tuple[Run, Any, int]:
    """Prepare ``log_dir`` for a fresh run, or load its checkpoint to resume.

    Returns ``(run, states, step)``: the states to continue from and the step their checkpoint reached
    (0 for a fresh run). ``budget`` is the run's total in the checkpoint's unit: resuming a checkpoint
    past it is refused rather than reported as a shorter run. ``log_formats``: where metrics go besides
    ``metrics.jsonl`` (``csv``, ``tensorboard``, ``wandb``; see :mod:`imitation_fn.train.logger`).
    """
    formats = parse_log_formats(log_formats)
    out = Path(log_dir) if log_dir is not None else None
    if checkpoint_every < 0:
        raise InputError(f"checkpoint_every must be >= 0 seconds, got {checkpoint_every}")
    step = 0
    if out is None and resume:
        raise InputError("--resume needs --out: the run directory to continue")
    if out is not None:
        has_checkpoint = (out / CHECKPOINT).is_file()
        if resume and not has_checkpoint:
            raise InputError(
                f"--resume: nothing to resume in {out}: it holds no {CHECKPOINT} (the run never reached its first "
                "checkpoint, or the directory is new); run without --resume to start it"
            )
        if has_checkpoint and not resume:
            meta = serialization.load_metadata(out / CHECKPOINT)
            raise InputError(
                f"{out} already holds a {meta.get('algorithm', '')} run (checkpoint at step {meta.get('step')}): "
                "continue it with --resume, or choose another --out"
            )
        if resume:
            states, step = load_checkpoint(out, states, cfg, seeds, algorithm)
            if budget is not None and step > budget:
                raise InputError(
                    f"--resume: the checkpoint in {out} is at step {step}, past this run's budget of {budget}; "
                    f"give a budget of at least {step}"
                )
        out.mkdir(parents=True, exist_ok=True)
        serialization.write_text_atomic(out / CONFIG, cfg.to_json())
    evaluated = truncate_metrics(out / METRICS, step) if out is not None else set()
    writer = MetricsWriter(out / METRICS if out is not None else None, seeds, _writers(out, formats, seeds, step, cfg))
    run = Run(out, list(seeds), algorithm, env_id, config_fingerprint(cfg), writer, checkpoint_every, evaluated)
    if resume and out is not None:
        run.pending_eval = bool(serialization.load_metadata(out / CHECKPOINT).get("eval_due")) and step not in evaluated
    return run, states, step


def _writers(out: Path | None, formats: Sequence[str], seeds: Sequence[int], step: int, cfg: Config) -> list[Writer]:
    """The writers of ``formats`` besides JSONL, each continuing its files from ``step``."""
    if out is None:
        if set(formats) - {"jsonl", "csv"}:
            raise InputError(f"--log-formats {','.join(formats)} needs --out: the run directory they write to")
        return []
    writers: list[Writer] = []
    if "csv" in formats:
        CsvWriter.truncate(out / CSV, step)
        writers.append(CsvWriter(out / CSV, seeds))
    if "tensorboard" in formats:
        writers.append(TensorBoardWriter(out / TENSORBOARD, seeds, step))
    if "wandb" in formats:
        writers.append(WandbWriter(out, seeds, json.loads(cfg.to_json()), out.name))
    return writers


def truncate_metrics(path: Path, step: int) -> set[int]:
    """Keep the rows of ``path`` up to ``step`` (a half-written last line goes too); returns their eval steps."""
    if not path.exists():
        return set()
    rows = [r for r in read_metrics(path) if int(r.get("step", 0)) <= step] if step > 0 else []
    serialization.write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    return {int(r["step"]) for r in rows if r.get("kind") == "eval"}


def load_checkpoint(
    out: Path, template: Any, cfg: Config, seeds: Sequence[int], algorithm: str | None = None
) -> tuple[Any, int]:
    """States and step from ``out``; refuses a checkpoint of another algorithm, other seeds or another config."""
    meta = serialization.load_metadata(out / CHECKPOINT)
    if algorithm is not None and meta.get("algorithm", algorithm) != algorithm:
        raise InputError(f"--resume: {out} holds a {meta.get('algorithm')!r} run, not {algorithm!r}")
    if list(meta.get("seeds", [])) != list(seeds):
        raise InputError(
            f"--resume: the checkpoint in {out} is for seeds {meta.get('seeds')}, not {list(seeds)}; "
            "give the same --seed and --seeds"
        )
    check_config_file(out)
    saved = (out / CONFIG).read_text() if (out / CONFIG).exists() else None
    if saved is not None:
        try:
            same = json.loads(saved) == json.loads(cfg.to_json())
        except json.JSONDecodeError as e:
            raise InputError(f"{out / CONFIG} is not valid JSON: {e}") from e
        if not same:
            raise InputError(
                f"--resume: {out / CONFIG} differs from the config given; resume with the same flags and --config, "
                "or choose another --out"
            )
    return serialization.load(out / CHECKPOINT, template), int(meta["step"])


def check_config_file(out: Path) -> None:
    """Refuse a run whose ``config.json`` was edited after its checkpoint was written."""
    meta = serialization.load_metadata(out / CHECKPOINT)
    expected = meta.get("config_sha256")
    if expected is None or not (out / CONFIG).exists():  # written before checkpoints recorded it
        return
    try:
        saved = json.loads((out / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{out / CONFIG} is not valid JSON: {e}") from e
    if serialization.fingerprint(saved) != expected:
        raise InputError(
            f"{out / CONFIG} was changed after the run's checkpoint was written: its weights belong to another "
            "config; restore the file (or retrain)"
        )


__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_EVERY_SECONDS",
    "CONFIG",
    "DEFAULT_LOG_FORMATS",
    "METRICS",
    "Run",
    "check_config_file",
    "config_fingerprint",
    "crossed",
    "load_checkpoint",
    "open_run",
    "truncate_metrics",
]
