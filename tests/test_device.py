"""``--device`` / ``device=``: every run's tensors on the device it names, and one clear error for a device
this machine does not have.

Without a GPU, placement is checked with torch's ``meta`` device: around the training loop torch's default
device is ``meta``, and the run is asked for ``cpu``. A tensor that a step creates without following its
inputs (``torch.zeros(n)`` instead of ``torch.zeros(n, device=key.device)``) then lands on ``meta``, and the
first op that mixes it with the run's tensors fails — on a GPU it would have been a CPU tensor in a CUDA
run. The tests marked ``cuda`` run the same properties on a GPU and skip without one.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from imitation_fn import cli, envs
from imitation_fn.algorithms import bc
from imitation_fn.core import device, serialization, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.task import Task
from imitation_fn.policies import load_policy
from imitation_fn.train import driver, loop
from imitation_fn.train.run import CHECKPOINT

EXPERTS = Path(__file__).resolve().parent / "data" / "experts"
CARTPOLE_DEMOS = EXPERTS / "CartPole-v1" / "demos"
SEALS_DEMOS = EXPERTS / "seals_CartPole-v0" / "demos"
HOST_ENV = "test_host_envs:TinyPoint-v0"  # a user's gymnasium env, stepped on the host (tests/test_host_envs.py)
HAS_CUDA = torch.cuda.is_available()
TINY_EVAL = "--n-eval-episodes 2"
PPO_TINY = "--n-envs 2 --n-steps 32 --batch-size 32 --n-epochs 1"

# One tiny run of every training command, on torch envs and on a host env.
COMMANDS: dict[str, str] = {
    "bc": f"bc --env CartPole-v1 --demos {CARTPOLE_DEMOS} --seeds 2 --n-epochs 1",
    "dagger": (
        f"dagger --env CartPole-v1 --expert {EXPERTS / 'CartPole-v1'} --seeds 2 --total-timesteps 400 "
        "--rollout-round-min-timesteps 200 --rollout-round-min-episodes 1 --n-batches 10"
    ),
    "gail": f"gail --env seals/CartPole-v0 --demos {SEALS_DEMOS} --seeds 2 --total-timesteps 2048",
    "airl": f"airl --env seals/CartPole-v0 --demos {SEALS_DEMOS} --seeds 2 --total-timesteps 2048",
    "density": f"density --env seals/CartPole-v0 --demos {SEALS_DEMOS} --seeds 2 --total-timesteps 512",
    "mce-irl": "mce-irl --env CliffWorld --horizon 40 --seeds 2",
    "preference-comparisons": (
        "preference-comparisons --env Pendulum-v1 --seeds 2 --total-timesteps 800 --total-comparisons 20 "
        """--num-iterations 2 --agent-config '{"learning_starts": 100, "buffer_size": 1000}'"""
    ),
    "train-rl ppo": "train-rl --algo ppo --env CartPole-v1 --seeds 2 --total-steps 512",
    "train-rl sac": (
        "train-rl --algo sac --env Pendulum-v1 --seeds 2 --total-steps 256 --learning-starts 128 --batch-size 64 "
        "--train-freq 16"
    ),
    "train-rl ppo, host env": f"train-rl --algo ppo --env {HOST_ENV} --seeds 2 --total-steps 128 {PPO_TINY}",
    "gail, host env": (
        f"gail --env {HOST_ENV} --demos DEMOS --seeds 2 --total-timesteps 64 --demo-batch-size 16 {PPO_TINY}"
    ),
    "preference-comparisons, host env": (
        f"preference-comparisons --env {HOST_ENV} --seeds 2 --total-timesteps 128 --total-comparisons 12 "
        """--num-iterations 2 --fragment-length 4 --agent ppo --agent-config '{"n_envs": 2, "n_steps": 16, """
        """"batch_size": 16}'"""
    ),
}


@pytest.fixture(scope="module")
def host_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six episodes of the host env (a random PPO policy is enough to have demonstrations to fit)."""
    out = tmp_path_factory.mktemp("host") / "ppo"
    argv = shlex.split(f"train-rl --algo ppo --env {HOST_ENV} --total-steps 64 --save-demos 6 --out {out}")
    assert cli.main([*argv, *shlex.split(f"{PPO_TINY} {TINY_EVAL}"), "--no-progress"]) == 0
    return out / "demos"


def _run(command: str, out: Path, *, device_flag: str, demos: Path | None = None) -> int:
    argv = shlex.split(command.replace("DEMOS", str(demos)))
    quiet = [] if argv[0] == "mce-irl" else ["--no-progress"]  # mce-irl shows no progress bar
    return cli.main([*argv, *shlex.split(TINY_EVAL), *quiet, "--out", str(out), "--device", device_flag])


# --- resolve ---------------------------------------------------------------------------------------------------------


def test_resolve_names_the_devices() -> None:
    assert device.resolve("cpu") == torch.device("cpu")
    assert device.resolve("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    assert device.resolve(None) == device.resolve("auto")
    for bad in ("gpu", "tpu", "cuda:x", "mps"):
        with pytest.raises(InputError, match=f"device '{bad}'"):
            device.resolve(bad)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_clear_error() -> None:
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(InputError, match=r"no CUDA GPU on this machine.*use --device cpu"):
            device.resolve(name)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_every_training_command_refuses_cuda_without_a_gpu_before_it_reads_anything(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    for command in ("bc --demos no/such/dir", "gail --demos no/such/dir", "train-rl --algo ppo", "mce-irl"):
        proc = subprocess.run(
            ["imitation-fn", *command.split(), "--device", "cuda"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in output, output
        assert "no CUDA GPU" in output and "no/such/dir" not in output, output


def test_every_training_command_has_the_flag() -> None:
    parser = cli.build_parser()
    for name in ("bc", "quickstart", "dagger", "gail", "airl", "density", "mce-irl", "preference-comparisons"):
        assert "--device" in _help(parser, name)
    assert "--device" in _help(parser, "train-rl")


def _help(parser: Any, name: str) -> str:
    sub = next(a for a in parser._actions if a.dest == "command")
    return str(sub.choices[name].format_help())


# --- placement, checked on the CPU --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_tensor_a_run_creates_follows_its_device(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    demos = request.getfixturevalue("host_demos") if "DEMOS" in COMMANDS[name] else None
    train = loop.train

    @functools.wraps(train)
    def train_with_meta_default(*args: Any, **kwargs: Any) -> loop.Result:
        assert kwargs["device"] == torch.device("cpu")
        with torch.device("meta"):
            result = train(*args, **kwargs)
        assert {x.device for x in tree.leaves(result.states)} == {torch.device("cpu")}
        return result

    monkeypatch.setattr(loop, "train", train_with_meta_default)
    assert _run(COMMANDS[name], tmp_path / "run", device_flag="cpu", demos=demos) == 0


def test_task_to_moves_what_the_task_holds() -> None:
    demos = flatten_trajectories(serialize.load(CARTPOLE_DEMOS))
    policy = load_policy(EXPERTS / "CartPole-v1")
    gym_env = GymEnv("CartPole-v1", 2)
    try:
        task = Task(env=gym_env, demos=demos, expert=policy.policy_fn(), eval_env=envs.make("CliffWorld", 2))
        moved = task.to("meta")
        assert moved.env is not gym_env and moved.env.device == torch.device("meta")  # type: ignore[union-attr]
        assert gym_env.device == torch.device("cpu")  # the caller's env is left as it was
        assert {x.device.type for x in tree.leaves(moved.demos)} == {"meta"}
        assert {x.device.type for x in tree.leaves(moved.expert.policy.params)} == {"meta"}  # type: ignore[union-attr]
        assert {x.device.type for x in tree.leaves(vars(moved.eval_env)["mdp"])} == {"meta"}
        assert task.to("cpu").env is gym_env
    finally:
        gym_env.close()


def test_a_resumed_checkpoint_loads_onto_the_runs_device(tmp_path: Path) -> None:
    demos = flatten_trajectories(serialize.load(CARTPOLE_DEMOS))
    env = envs.make("CartPole-v1", 2)
    run = {"seeds": [0, 1], "n_batches": 20, "log_dir": tmp_path, "progress": False, "device": "cpu"}
    first = driver.train(bc, bc.Config(), demos, env, **run)  # type: ignore[arg-type]
    again = driver.train(bc, bc.Config(), demos, env, resume=True, **run)  # type: ignore[arg-type]
    assert {x.device for x in tree.leaves(again.states)} == {torch.device("cpu")}
    assert tree.allclose(first.states, again.states)
    assert serialization.load_metadata(tmp_path / CHECKPOINT)["step"] == 20


# --- on a GPU ----------------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_trains_on_cuda(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    demos = request.getfixturevalue("host_demos") if "DEMOS" in COMMANDS[name] else None
    train, seen = loop.train, []

    def recording(*args: Any, **kwargs: Any) -> loop.Result:
        result = train(*args, **kwargs)
        seen.append({x.device.type for x in tree.leaves(result.states)})
        return result

    monkeypatch.setattr(loop, "train", recording)
    assert _run(COMMANDS[name], tmp_path / "run", device_flag="cuda", demos=demos) == 0
    assert seen == [{"cuda"}]


def _bc_on_cuda(seeds: list[int], **kwargs: Any) -> loop.Result:
    demos = flatten_trajectories(serialize.load(CARTPOLE_DEMOS))
    cfg = bc.Config()
    return driver.train(bc, cfg, demos, envs.make("CartPole-v1", 2), seeds=seeds, n_batches=50, progress=False,
                        device="cuda", **kwargs)  # fmt: skip


@pytest.mark.cuda
@cuda
def test_on_cuda_a_seed_alone_equals_the_seed_in_a_sweep() -> None:
    alone, sweep = _bc_on_cuda([3]), _bc_on_cuda([1, 3, 5, 7])
    assert tree.allclose(alone.states, tree.index(sweep.states, slice(1, 2)), rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@cuda
def test_on_cuda_vmap_equals_the_loop_over_seeds() -> None:
    swept = _bc_on_cuda([0, 1, 2])
    one_by_one = tree.stack([tree.index(_bc_on_cuda([s]).states, 0) for s in (0, 1, 2)])
    assert tree.allclose(swept.states, one_by_one, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@cuda
def test_on_cuda_a_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path, copies_at_checkpoints: Any) -> None:
    with copies_at_checkpoints() as copies:
        whole = _bc_on_cuda([0, 1], log_dir=tmp_path / "whole", checkpoint_every=0)
    killed = shutil.copytree(copies[len(copies) // 2], tmp_path / "killed")
    resumed = _bc_on_cuda([0, 1], log_dir=killed, resume=True)
    assert resumed.steps == whole.steps
    assert tree.allclose(resumed.states, whole.states, rtol=0, atol=0)
