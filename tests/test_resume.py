"""Resumed ≡ uninterrupted, bit for bit, for every training command; ``eval --run`` reads every command's run.

Each command runs once with a checkpoint after every update (``--checkpoint-every 0``); a copy of the
run directory is taken at every checkpoint, as a kill right after it would leave it. Resuming from a
copy taken mid-run — or from the finished directory with that mid-run checkpoint, as a run killed
after logging further would leave it — must end in the same checkpoint tensors and the same metrics
rows as the run that was never interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from imitation_fn.cli import main
from imitation_fn.core import serialization
from imitation_fn.train.run import CHECKPOINT, METRICS

EXPERTS = Path(__file__).parent / "data" / "experts"
SEALS_DEMOS = EXPERTS / "seals_CartPole-v0" / "demos"
PPO_SMALL = "--n-envs 4 --n-steps 16 --batch-size 32 --n-epochs 2 --lr 1e-3"
COMMANDS: dict[str, str] = {
    "bc": f"bc --demos {EXPERTS / 'CartPole-v1' / 'demos'} --n-epochs 1 --batch-size 512 --eval-every 7 "
    "--net-arch 16 16 --seeds 2 --n-eval-episodes 2 --no-progress",
    "train-rl ppo": f"train-rl --algo ppo --no-preset {PPO_SMALL} --total-steps 256 --eval-every 128 --seeds 2 "
    "--n-eval-episodes 2 --no-progress",
    "train-rl sac": "train-rl --algo sac --env Pendulum-v1 --no-preset --n-envs 2 --learning-starts 16 "
    "--batch-size 16 --buffer-size 128 --net-arch 16 16 --total-steps 48 --seeds 2 --n-eval-episodes 1 --no-progress",
    "dagger": f"dagger --expert {EXPERTS / 'CartPole-v1'} --n-envs 4 --batch-size 32 --total-timesteps 256 "
    "--rollout-round-min-episodes 0 --rollout-round-min-timesteps 64 --n-batches 3 --seeds 2 --n-eval-episodes 2 "
    "--no-progress",
    "gail": f"gail --demos {SEALS_DEMOS} --n-demos 5 --no-preset {PPO_SMALL} --demo-batch-size 32 "
    "--total-timesteps 192 --seeds 2 --n-eval-episodes 2 --no-progress",
    "airl": f"airl --demos {SEALS_DEMOS} --n-demos 5 --no-preset {PPO_SMALL} --demo-batch-size 32 "
    "--total-timesteps 192 --eval-every 64 --seeds 2 --n-eval-episodes 2 --no-progress",
    "density": f"density --demos {SEALS_DEMOS} --n-demos 2 --density-type state --no-preset {PPO_SMALL} "
    "--total-timesteps 192 --seeds 2 --n-eval-episodes 2 --no-progress",
    "mce-irl": "mce-irl --env CliffWorld --max-iter 12 --log-interval 2 --seeds 2 --n-eval-episodes 4 --no-plot",
    "preference-comparisons": "preference-comparisons --env Pendulum-v1 --no-preset --seeds 2 --total-timesteps 96 "
    "--total-comparisons 24 --num-iterations 3 --fragment-length 10 --initial-epoch-multiplier 2 --agent sac "
    '--agent-config {"n_envs":2,"net_arch":[16,16],"learning_starts":16,"buffer_size":256,"batch_size":16} '
    "--n-eval-episodes 1 --no-progress",
}


def _argv(command: str) -> list[str]:
    head, _, config = command.partition("--agent-config ")
    if not config:
        return command.split()
    value, _, rest = config.partition(" ")
    return [*head.split(), "--agent-config", value, *rest.split()]


def _checkpoint(run: Path) -> dict[str, torch.Tensor]:
    return serialization.load_flat(run / CHECKPOINT)


def _rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / METRICS).read_text().splitlines()]


@pytest.mark.parametrize("logged_past_it", [False, True], ids=["killed-at-a-checkpoint", "killed-later"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_resumed_run_equals_the_uninterrupted_one(
    command: str, logged_past_it: bool, tmp_path: Path, copies_at_checkpoints: Any
) -> None:
    argv = _argv(COMMANDS[command])
    full = tmp_path / "full"
    with copies_at_checkpoints() as copies:
        assert main([*argv, "--out", str(full), "--checkpoint-every", "0"]) == 0
    assert len(copies) >= 3, f"{command}: too few checkpoints ({len(copies)}) to resume from the middle"

    killed = copies[len(copies) // 2]
    assert (
        serialization.load_metadata(killed / CHECKPOINT)["step"]
        < serialization.load_metadata(full / CHECKPOINT)["step"]
    )
    assert main([*argv, "--out", str(killed), "--resume"]) == 0

    expected, resumed = _checkpoint(full), _checkpoint(killed)
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        assert torch.equal(resumed[name], tensor), f"{command}: {name} differs after resuming"
    assert _rows(killed) == _rows(full)
    assert (killed / "metrics.csv").read_text() == (full / "metrics.csv").read_text()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_eval_reads_the_run_of_every_command(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main([*_argv(COMMANDS[command]), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--n-episodes", "2"]) == 0
    table = capsys.readouterr().out
    step = serialization.load_metadata(run / CHECKPOINT)["step"]
    assert "mean return" in table and f"after {step} steps" in " ".join(table.split())
    assert [line.split()[1] for line in table.splitlines() if line.split()[1:2] in (["0"], ["1"])] == ["0", "1"]
