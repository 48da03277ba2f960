"""Metric writers chosen with --log-formats: JSONL always, CSV by default, TensorBoard and wandb on request."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from imitation_fn.cli import main
from imitation_fn.core.errors import InputError
from imitation_fn.train.logger import parse_log_formats, scalar_name

DEMOS = Path(__file__).parent / "data" / "experts" / "CartPole-v1" / "demos"
BC = f"bc --demos {DEMOS} --n-epochs 1 --batch-size 512 --eval-every 4 --net-arch 16 16 --seeds 2 --n-eval-episodes 2"


def bc(out: Path, *flags: str) -> list[str]:
    return [*BC.split(), "--no-progress", "--out", str(out), *flags]


def jsonl_scalars(out: Path) -> list[tuple[int, int, str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [
        (r["step"], r["seed"], scalar_name(r["kind"], k), float(v))
        for r in rows
        for k, v in r.items()
        if k not in ("step", "seed", "kind") and not isinstance(v, list)
    ]


def test_names_are_namespaced_and_formats_validated() -> None:
    assert scalar_name("train", "loss") == "train/loss"
    assert scalar_name("eval", "return_mean") == "eval/return_mean"
    assert scalar_name("train", "reward/accuracy") == "reward/accuracy"
    assert parse_log_formats("csv,tensorboard") == ("jsonl", "csv", "tensorboard")
    with pytest.raises(InputError, match="unknown format"):
        parse_log_formats("jsonl,xml")


def test_csv_holds_every_scalar_of_the_jsonl_file_in_long_form(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(bc(out)) == 0  # default: jsonl,csv
    with (out / "metrics.csv").open() as f:
        rows = [(int(r["step"]), int(r["seed"]), r["name"], float(r["value"])) for r in csv.DictReader(f)]
    assert sorted(rows) == sorted(jsonl_scalars(out))
    assert {"train/loss", "eval/return_mean"} <= {name for _, _, name, _ in rows}


def test_only_the_formats_asked_for_are_written(tmp_path: Path) -> None:
    assert main(bc(tmp_path / "run", "--log-formats", "jsonl")) == 0
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and not (tmp_path / "run" / "metrics.csv").exists()
    with pytest.raises(SystemExit) as e:  # argparse: usage and the message, exit 2
        main([*BC.split(), "--log-formats", "jsonl,yaml"])
    assert e.value.code == 2


def scalars_of(directory: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_one_run_per_seed_and_a_resume_rewrites_what_came_after_the_checkpoint(
    tmp_path: Path, copies_at_checkpoints: Any
) -> None:
    pytest.importorskip("tensorboard")
    full = tmp_path / "full"
    flags = ("--log-formats", "csv,tensorboard", "--checkpoint-every", "0")
    with copies_at_checkpoints() as copies:
        assert main(bc(full, *flags)) == 0
    expected = {seed: scalars_of(full / "tensorboard" / f"seed_{seed}") for seed in (0, 1)}
    for seed in (0, 1):
        losses = [(step, value) for step, s, name, value in jsonl_scalars(full) if (s, name) == (seed, "train/loss")]
        assert expected[seed]["train/loss"] == pytest.approx(losses)

    # A run killed after logging past its last checkpoint: every later scalar is still in its files.
    killed = shutil.copytree(full, tmp_path / "killed")
    shutil.copy(copies[len(copies) // 2] / "checkpoint.safetensors", killed / "checkpoint.safetensors")
    assert main(bc(killed, "--log-formats", "csv,tensorboard", "--resume")) == 0
    for seed in (0, 1):
        assert scalars_of(killed / "tensorboard" / f"seed_{seed}") == expected[seed]
    assert (killed / "metrics.csv").read_text() == (full / "metrics.csv").read_text()


def test_wandb_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main(bc(out, "--log-formats", "wandb")) == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_tensorboard_needs_a_run_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BC.split(), "--no-progress", "--log-formats", "tensorboard"]) == 2
    assert "--log-formats" in capsys.readouterr().out
