"""Every algorithm satisfies the one protocol, and the one loop trains each of them.

The structural check reads each module's signatures (the library itself never does). The loop check
trains every algorithm for a tiny budget through ``loop.train``, vmapped over 2 seeds, with a
checkpoint after every iteration, then resumes from a mid-run checkpoint and must end in the same
states, bit for bit.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from imitation_fn.algorithms import protocol
from imitation_fn.core import serialization, tree
from imitation_fn.train import loop, sweep
from imitation_fn.train.run import CHECKPOINT, Run

ALGORITHMS = list(sweep.ALGORITHMS)
ACTING = {"dagger", "gail", "airl", "density", "preference_comparisons", "ppo", "sac"}
REWARD_LEARNERS = {"gail", "airl", "density", "mce_irl", "preference_comparisons"}

# A tiny run of each algorithm: its config, environment and budget (in the spec's unit).
PPO_SMALL = {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 2, "lr": 1e-3}
TINY: dict[str, dict[str, Any]] = {
    "bc": {"env": "CartPole-v1", "config": {"batch_size": 64, "net_arch": [16, 16]}, "train": {"n_batches": 12}},
    "dagger": {
        "env": "CartPole-v1",
        "config": {
            "n_envs": 4,
            "batch_size": 32,
            "rollout_round_min_timesteps": 64,
            "rollout_round_min_episodes": 0,
            "n_batches": 3,
        },
        "train": {"total_timesteps": 256},
    },
    "gail": {
        "env": "seals/CartPole-v0",
        "config": {"gen": PPO_SMALL, "demo_batch_size": 32},
        "train": {"total_timesteps": 192},
    },
    "airl": {
        "env": "seals/CartPole-v0",
        "config": {"gen": PPO_SMALL, "demo_batch_size": 32},
        "train": {"total_timesteps": 192},
    },
    "density": {
        "env": "seals/CartPole-v0",
        "config": {"density_type": "state", "rl": PPO_SMALL},
        "train": {"total_timesteps": 192},
    },
    "mce_irl": {"env": "CliffWorld", "config": {"max_iter": 6}, "train": {}},
    "preference_comparisons": {
        "env": "Pendulum-v1",
        "config": {
            "total_timesteps": 64,
            "total_comparisons": 12,
            "num_iterations": 2,
            "fragment_length": 10,
            "initial_epoch_multiplier": 2,
            "warning_threshold": 0,
            "agent": "sac",
            "agent_config": {
                "n_envs": 2,
                "net_arch": [16, 16],
                "learning_starts": 16,
                "buffer_size": 256,
                "batch_size": 16,
            },
        },
        "train": {},
    },
    "ppo": {"env": "CartPole-v1", "config": PPO_SMALL, "train": {"total_timesteps": 192}},
    "sac": {
        "env": "Pendulum-v1",
        "config": {"n_envs": 2, "learning_starts": 8, "batch_size": 16, "buffer_size": 128, "net_arch": [16, 16]},
        "train": {"total_timesteps": 32},
    },
}


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _module(name: str) -> ModuleType:
    return sweep.context(_spec(name)).algo


def _spec(name: str) -> sweep.SweepSpec:
    tiny = TINY[name]
    return sweep.SweepSpec(
        algorithm=name,  # type: ignore[arg-type]
        env=tiny["env"],
        config=tiny["config"],
        train=tiny["train"],
        seeds=2,
        n_demos=2,
        n_eval_episodes=2,
    )


def test_every_algorithm_has_a_tiny_run() -> None:
    assert set(TINY) == set(ALGORITHMS) == ACTING | {"bc", "mce_irl"}


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_satisfies_the_protocol(name: str) -> None:
    algo = _module(name)
    assert isinstance(algo, protocol.Algorithm)
    assert isinstance(algo.Config, type) and isinstance(algo.State, type)
    assert _params(algo.init)[:3] == ["cfg", "key", "task"]
    assert _params(algo.update)[:2] == ["state", "batch"] and len(_params(algo.update)) == 2
    assert _params(algo.policy)[:2] == ["state", "deterministic"]
    if name in ACTING:
        assert isinstance(algo, protocol.Acting)
        assert _params(algo.collect) == ["state", "task", "key"]
    else:
        assert not hasattr(algo, "collect")
    if name in REWARD_LEARNERS:
        assert isinstance(algo, protocol.RewardLearner) and _params(algo.reward) == ["state"]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_loop_trains_every_algorithm_and_resumes_exactly(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = sweep.context(_spec(name))
    cfg = ctx.algo.Config(**TINY[name]["config"])
    task, budget = ctx.task(cfg), ctx.budget(cfg)
    copies: list[Path] = []
    save = Run.save

    def save_and_copy(self: Run, states: Any, step: int, **kwargs: Any) -> None:
        save(self, states, step, **kwargs)
        assert self.out is not None
        copies.append(shutil.copytree(self.out, tmp_path / f"killed_{len(copies)}"))

    def run(out: Path, resume: bool = False) -> loop.Result:
        return loop.train(
            ctx.spec,
            cfg,
            task,
            budget=budget,
            seeds=[3, 4],
            log_dir=out,
            resume=resume,
            checkpoint_every=0,
            progress=False,
        )

    with monkeypatch.context() as patch:
        patch.setattr(Run, "save", save_and_copy)
        whole = run(tmp_path / "whole")
    assert whole.steps >= budget or (ctx.spec.finished is not None and ctx.spec.finished(whole.states))
    assert tree.leaves(whole.states)[0].shape[0] == 2  # vmapped over the two seeds
    assert len(copies) >= 2, f"{name}: the tiny run should checkpoint more than once"
    killed = copies[len(copies) // 2 - 1]
    resumed = run(killed, resume=True)
    expected = serialization.load_flat(tmp_path / "whole" / CHECKPOINT)
    got = serialization.load_flat(killed / CHECKPOINT)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), f"{name}: {key} differs after resuming"
    assert resumed.steps == whole.steps
