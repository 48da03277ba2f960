"""The command line: quickstart end to end, config flags, and user errors without tracebacks."""

import json
from pathlib import Path

import pytest
import torch

from imitation_fn.cli import build_parser, main
from imitation_fn.data import serialize
from imitation_fn.train.logger import read_metrics


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "cartpole"
    assert main(["demos", "--env", "CartPole-v1", "--n-episodes", "4", "--out", str(path)]) == 0
    return path


def test_demos_writes_exactly_n_expert_episodes(demos: Path) -> None:
    trajs = serialize.load(demos)
    assert len(trajs) == 4
    assert all(len(t) == 500 for t in trajs)


def test_bc_run_writes_config_metrics_checkpoint_and_table(demos: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    flags = "--seeds 2 --n-epochs 1 --n-eval-episodes 2 --net-arch 16 16 --lr 0.01 --max-grad-norm 1.0 --no-progress"
    argv = ["bc", "--demos", str(demos), "--out", str(out), *flags.split()]
    assert main(argv) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["net_arch"] == [16, 16] and cfg["lr"] == 0.01 and cfg["max_grad_norm"] == 1.0
    rows = read_metrics(out / "metrics.jsonl")
    assert {r["seed"] for r in rows} == {0, 1} and any(r["kind"] == "eval" for r in rows)
    assert (out / "checkpoint.safetensors").is_file()
    assert "mean return" in capsys.readouterr().out
    # A second run into the same directory is refused unless it resumes.
    assert main(argv) == 2
    assert main([*argv, "--resume"]) == 0


def test_config_file_and_flag_precedence(demos: Path, tmp_path: Path) -> None:
    cfg_file = tmp_path / "bc.yaml"
    cfg_file.write_text("lr: 0.02\nbatch_size: 128\n")
    out = tmp_path / "run"
    flags = "--batch-size 64 --n-epochs 1 --n-eval-episodes 1 --no-progress"
    argv = ["bc", "--demos", str(demos), "--config", str(cfg_file), "--out", str(out), *flags.split()]
    assert main(argv) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["lr"] == 0.02 and cfg["batch_size"] == 64


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "fast"], "--lr"),
        (["--lr", "-1"], "greater than 0"),
        (["--batch-size", "0"], "--batch-size"),
        (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
        (["--env", "Pendulum-v1"], "do not fit Pendulum-v1"),
    ],
)
def test_invalid_values_are_field_level_errors(demos: Path, flags: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bc", "--demos", str(demos), "--no-progress", *flags]) == 2
    out = capsys.readouterr().out
    assert "error" in out and message in out and "Traceback" not in out


def test_missing_demos_and_bad_config_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bc", "--demos", str(tmp_path / "nope"), "--no-progress"]) == 2
    bad = tmp_path / "c.json"
    bad.write_text('{"lr": 0.1, "typo_field": 3}')
    assert main(["bc", "--demos", str(tmp_path / "nope"), "--config", str(bad)]) == 2
    assert "--typo-field: Extra inputs are not permitted" in capsys.readouterr().out


def test_unknown_flag_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as e:
        main(["bc", "--demos", "x", "--no-such-flag", "1"])
    assert e.value.code == 2


def test_help_lists_every_config_field_with_its_default() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["bc"].format_help()  # type: ignore[union-attr]
    for flag, default in [
        ("--lr", "0.003"),
        ("--batch-size", "256"),
        ("--ent-weight", "0.001"),
        ("--net-arch", "32 32"),
        ("--optimizer", "adam"),
    ]:
        assert flag in text and f"default: {default}" in text, flag


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    flags = "--n-demos 10 --seeds 2 --n-epochs 2 --n-eval-episodes 2 --no-progress"
    argv = ["quickstart", "--out", str(tmp_path), *flags.split()]
    assert main(argv) == 0
    assert len(serialize.load(tmp_path / "demos")) == 10
    assert (tmp_path / "bc" / "checkpoint.safetensors").is_file()
    assert "BC on CartPole-v1" in capsys.readouterr().out


def test_eval_reloads_a_run_and_reproduces_its_returns(demos: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    flags = "--seeds 2 --n-epochs 2 --n-eval-episodes 3 --no-progress"
    assert main(["bc", "--demos", str(demos), "--out", str(out), *flags.split()]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--n-episodes", "3"]) == 0
    table = capsys.readouterr().out
    assert "after 14 steps" in " ".join(table.split())  # 2 epochs × (2000 transitions // batch 256)
    assert sum(line.strip().startswith(("│ 0 ", "│    0 ", "│    1 ")) for line in table.splitlines()) >= 2
    assert main(["eval", "--run", str(tmp_path / "missing")]) == 2


def test_convert_round_trips_between_datasets_and_npz(demos: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    npz, back = tmp_path / "demos.npz", tmp_path / "back"
    assert main(["convert", str(demos), str(npz)]) == 0
    assert main(["convert", str(npz), str(back)]) == 0
    assert "4 trajectories" in capsys.readouterr().out
    original, converted = serialize.load(demos), serialize.load(back)
    assert len(converted) == len(original)
    for a, b in zip(original, converted, strict=True):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.acts, b.acts) and a.terminal == b.terminal
    assert main(["convert", str(demos), str(npz)]) == 2  # refuses to overwrite without --overwrite
    assert main(["convert", str(demos), str(npz), "--overwrite"]) == 0
