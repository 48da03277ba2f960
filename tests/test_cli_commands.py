"""Acceptance tests of the installed ``imitation-fn`` console script, run as a user runs it (subprocesses).

1. ``--help`` of the top level and of every registered command (found from the parser, so a new command is
   covered without editing this file): exit 0, no traceback, no option showing its default twice.
2. Every ``imitation-fn ...`` command shown in README.md runs, in README order and in one scratch directory (the
   commands build on each other), with extra flags from ``TINY`` that make it take seconds.
3. Bad input (damaged files, impossible values, mismatched environments) stops with exit status 2, a message
   naming the flag or file, and no traceback.
4. A run killed with SIGKILL resumes from its last checkpoint and ends exactly like an uninterrupted run.

Subprocesses start torch (about 2 s each); the help and bad-input cases therefore run a few at a time in a
thread pool (only the ones pytest selected), and each test waits for its own result.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
EXPERTS = REPO / "tests" / "data" / "experts"
ENV = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
WORKERS = max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------------------------------------
# Running the console script
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished (or timed-out: ``returncode`` None) ``imitation-fn`` subprocess."""

    args: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def report(self, lines: int = 12) -> str:
        tail = "\n".join(self.output.rstrip().splitlines()[-lines:])
        status = "timed out" if self.returncode is None else f"exit {self.returncode}"
        return f"$ imitation-fn {shlex.join(self.args)}\n{status} after {self.seconds:.1f} s; output ends:\n{tail}"


def executable() -> str:
    exe = shutil.which("imitation-fn")
    if exe is None:
        pytest.fail("the imitation-fn console script is not installed (pip install -e .)")
    return exe


def run_cli(args: list[str], cwd: Path, timeout: float = 120) -> Run:
    t0 = time.monotonic()
    try:
        proc = subprocess.run([executable(), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:

        def text(x: Any) -> str:
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")

        note = f"\n[killed after {timeout:.0f} s: the command did not stop by itself]"
        return Run(args, None, text(e.stdout), text(e.stderr) + note, time.monotonic() - t0)
    return Run(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def assert_exit(run: Run, codes: tuple[int, ...] = (0,)) -> None:
    if "Traceback" in run.output:
        pytest.fail("a traceback reached the user:\n" + run.report(), pytrace=False)
    if run.returncode not in codes:
        pytest.fail(f"expected exit status {' or '.join(map(str, codes))}:\n" + run.report(), pytrace=False)


def message(run: Run) -> str:
    """The output without argparse's usage block (it lists every flag, so it must not count as naming one)."""
    kept, in_usage = [], False
    for line in run.output.splitlines():
        if line.startswith("usage:"):
            in_usage = True
        elif not (in_usage and line.startswith(" ")):
            in_usage = False
            kept.append(line)
    return "\n".join(kept)


def mentions(text: str, token: str) -> bool:
    """``token`` in ``text``, also when the console wrapped a long path or line inside it."""
    return token in text or re.sub(r"\s+", "", token) in re.sub(r"\s+", "", text)


class Prefetch:
    """Runs jobs concurrently (a few subprocesses at a time); ``get`` waits for one, or runs it if not prefetched."""

    def __init__(self, jobs: dict[str, Callable[[], Run]]) -> None:
        self.jobs = jobs
        self.pool = ThreadPoolExecutor(WORKERS)
        self.futures: dict[str, Future[Run]] = {}

    def start(self, keys: list[str]) -> None:
        for key in keys:
            if key in self.jobs and key not in self.futures:
                self.futures[key] = self.pool.submit(self.jobs[key])

    def get(self, key: str) -> Run:
        self.start([key])
        return self.futures[key].result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def selected_params(request: pytest.FixtureRequest, test_name: str, param: str) -> list[Any]:
    """The values of ``param`` of the items of ``test_name`` that pytest will run (after -k / deselection)."""
    return [
        item.callspec.params[param]
        for item in request.session.items
        if getattr(item, "originalname", None) == test_name and hasattr(item, "callspec")
    ]


# ---------------------------------------------------------------------------------------------------------------------
# 1. --help of every command
# ---------------------------------------------------------------------------------------------------------------------


def _discover_commands() -> tuple[list[str], str | None]:
    try:
        from imitation_fn.cli import build_parser

        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return sorted(sub.choices), None
    except Exception as e:  # reported by test_help, not as a collection error of the whole module
        return [], f"{type(e).__name__}: {e}"


COMMANDS, DISCOVERY_ERROR = _discover_commands()
HELP_CASES = ["top-level", *COMMANDS]


def help_entries(text: str) -> list[str]:
    """Each option's (or positional's) help entry, its wrapped lines joined: entries start with two spaces."""
    entries: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"  \S", line):
            current = [line.strip()]
            entries.append(current)
        elif current is not None and line.startswith("   ") and line.strip():
            current.append(line.strip())
        else:
            current = None
    return [" ".join(e) for e in entries]


@pytest.fixture(scope="module")
def help_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prefetch]:
    cwd = tmp_path_factory.mktemp("help")
    jobs = {
        case: (lambda case=case: run_cli(["--help"] if case == "top-level" else [case, "--help"], cwd, timeout=60))
        for case in HELP_CASES
    }
    prefetch = Prefetch(jobs)
    prefetch.start(selected_params(request, "test_help", "command"))
    yield prefetch
    prefetch.close()


def test_commands_are_discovered() -> None:
    assert DISCOVERY_ERROR is None, f"imitation_fn.cli.build_parser() failed: {DISCOVERY_ERROR}"
    assert COMMANDS, "build_parser() registered no commands"


@pytest.mark.parametrize("command", HELP_CASES)
def test_help(command: str, help_runs: Prefetch) -> None:
    run = help_runs.get(command)
    assert_exit(run)
    assert "usage:" in run.stdout
    twice = [entry for entry in help_entries(run.stdout) if entry.count("(default:") > 1]
    if twice:
        pytest.fail("help entries that show a default more than once:\n" + "\n".join(twice), pytrace=False)


# ---------------------------------------------------------------------------------------------------------------------
# 2. Every command in README.md, with a tiny budget
# ---------------------------------------------------------------------------------------------------------------------

BC_TINY = "--seeds 2 --n-epochs 1 --n-eval-episodes 2 --no-progress"
ADVERSARIAL_TINY = "--seeds 2 --total-timesteps 2048 --n-eval-episodes 2 --no-progress"  # one round of the preset

# README command (as extracted by readme_commands) -> flags appended to it. argparse keeps a repeated flag's last
# value, so these override the README's own budgets. A new command in README.md needs an entry here.
TINY: dict[str, str] = {
    "imitation-fn quickstart": "--n-demos 4 " + BC_TINY,
    "imitation-fn demos --env CartPole-v1 --n-episodes 50 --out demos/cartpole": "--n-episodes 4",
    "imitation-fn bc --env CartPole-v1 --demos demos/cartpole --seeds 8 --out runs/bc": BC_TINY,
    "imitation-fn bc --demos demos/cartpole --seeds 8 --lr 1e-3 --batch-size 32 --net-arch 64 64": BC_TINY,
    "imitation-fn bc --demos demos/cartpole --config bc.yaml --seeds 8 --out runs/bc-yaml": BC_TINY,
    # Resuming a finished run: the same seeds and budget as the run it continues.
    "imitation-fn bc --env CartPole-v1 --demos demos/cartpole --seeds 8 --out runs/bc --resume": BC_TINY,
    "imitation-fn eval --run runs/bc --n-episodes 20": "--n-episodes 2",
    "imitation-fn bc --help": "",
    "imitation-fn dagger --env CartPole-v1 --expert tests/data/experts/CartPole-v1 --seeds 8 --out runs/dagger": (
        "--seeds 2 --total-timesteps 1000 --rollout-round-min-timesteps 200 --rollout-round-min-episodes 1 "
        "--n-batches 10 --n-eval-episodes 2 --no-progress"
    ),
    "imitation-fn gail --env seals/CartPole-v0 --demos tests/data/experts/seals_CartPole-v0/demos --seeds 8 "
    "--out runs/gail": ADVERSARIAL_TINY,
    "imitation-fn airl --env seals/CartPole-v0 --demos tests/data/experts/seals_CartPole-v0/demos --seeds 8 "
    "--out runs/airl": ADVERSARIAL_TINY,
    "imitation-fn density --env seals/CartPole-v0 --demos tests/data/experts/seals_CartPole-v0/demos --seeds 8": (
        "--seeds 2 --total-timesteps 512 --n-eval-episodes 2 --no-progress"
    ),
    "imitation-fn train-rl --algo sac --env seals/Hopper-v1 --seeds 2 --out runs/hopper --save-demos 50": (
        "--total-steps 128 --learning-starts 64 --batch-size 32 --train-freq 16 --save-demos 2 --n-eval-episodes 1 "
        "--no-progress"
    ),
    "imitation-fn gail --env seals/Hopper-v1 --demos runs/hopper/demos --seeds 4 --out runs/hopper-gail": (
        "--seeds 2 --total-timesteps 1024 --n-envs 2 --n-steps 512 --batch-size 256 --demo-batch-size 256 "
        "--n-eval-episodes 1 --no-progress"
    ),
    "imitation-fn mce-irl --env CliffWorld --horizon 40 --seeds 16 --out runs/mce": "--seeds 2 --n-eval-episodes 2",
    "imitation-fn preference-comparisons --env Pendulum-v1 --seeds 4 --out runs/pc": (
        "--seeds 1 --total-timesteps 800 --total-comparisons 20 --num-iterations 2 "
        """--agent-config '{"learning_starts": 100, "buffer_size": 1000}' --n-eval-episodes 2 --no-progress"""
    ),
    "imitation-fn train-rl --algo ppo --env CartPole-v1 --seeds 4 --out runs/ppo --save-demos 50": (
        "--seeds 2 --total-steps 512 --save-demos 2 --n-eval-episodes 2 --no-progress"
    ),
    "imitation-fn train-rl --algo sac --env Pendulum-v1 --seeds 8 --out runs/sac": (
        "--seeds 2 --total-steps 256 --learning-starts 128 --batch-size 64 --train-freq 16 --n-eval-episodes 1 "
        "--no-progress"
    ),
    # No PPO preset for seals/CartPole-v0: the defaults' rollout (8 envs x 2048 steps) would take 25 s.
    "imitation-fn train-rl --algo ppo --env seals/CartPole-v0 --reward runs/airl/rewards/seed_0 "
    "--reward-kind unshaped": "--total-steps 512 --n-envs 8 --n-steps 64 --n-eval-episodes 2 --no-progress",
    "imitation-fn rollouts --policy runs/ppo/policies/seed_0 --env CartPole-v1 --episodes 50 --out demos/ppo": (
        "--episodes 2"
    ),
    "imitation-fn eval --policy my_sb3_expert.zip --env Pendulum-v1 --n-episodes 20 --video videos/": "--n-episodes 2",
    "imitation-fn export-sb3 --policy runs/ppo --seed 0 --out ppo_cartpole.zip": "",
    "imitation-fn bc --env CartPole-v1 --demos demos/cartpole --out runs/bc-from-ppo --init-policy ppo_cartpole.zip": (
        BC_TINY
    ),
    "imitation-fn train-rl --algo ppo --env CartPole-v1 --init-policy runs/bc/policies/seed_0 --out runs/ppo-from-bc": (
        "--total-steps 256 --n-eval-episodes 2 --no-progress"
    ),
    # Whole Pong games are evaluated: one episode each.
    "imitation-fn train-rl --algo ppo --env ALE/Pong-v5 --seeds 2 --out runs/pong": (
        "--seeds 1 --total-steps 64 --n-envs 2 --n-steps 32 --batch-size 64 --n-epochs 1 --n-eval-episodes 1 "
        "--no-progress"
    ),
    "imitation-fn rollouts --policy runs/pong/policies/seed_0 --env ALE/Pong-v5 --episodes 10 --out demos/pong": (
        "--episodes 1"
    ),
    "imitation-fn bc --env ALE/Pong-v5 --demos demos/pong --out runs/pong-bc": (
        "--n-epochs 1 --n-eval-episodes 1 --no-progress"
    ),
    # examples/sweeps/bc.yaml in the scratch directory is a tiny copy of the real one (see tiny_sweep_file).
    "imitation-fn sweep examples/sweeps/gail.yaml --dry-run": "",
    "imitation-fn sweep examples/sweeps/bc.yaml --out runs/sweep": "",
    "imitation-fn analyze runs/sweep runs/dagger --out runs/analysis": "--n-resamples 200",
    # examples/tune/bc.yaml in the scratch directory is a tiny copy of the real one (see tiny_tune_file).
    "imitation-fn tune examples/tune/bc.yaml --dry-run": "",
    "imitation-fn tune examples/tune/bc.yaml --out runs/tune --max-concurrent 2": "",
}


def readme_commands() -> list[str]:
    """``imitation-fn ...`` commands of README.md's bash blocks, in order: continuations joined, comments and
    ``pip install ... &&`` prefixes dropped, whitespace normalised."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)
            for part in line.split("&&"):
                part = " ".join(part.split())
                if part.startswith("imitation-fn "):
                    commands.append(part)
    return commands


README_COMMANDS = readme_commands()


def _readme_ids(commands: list[str]) -> list[str]:
    ids, seen = [], {}
    for command in commands:
        name = command.split()[1]
        seen[name] = seen.get(name, 0) + 1
        ids.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return ids


def test_readme_commands_all_have_a_tiny_budget() -> None:
    assert README_COMMANDS, "no imitation-fn command found in README.md's bash blocks"
    missing = [c for c in README_COMMANDS if c not in TINY]
    stale = [c for c in TINY if c not in README_COMMANDS]
    assert not missing, "README.md commands without an entry in TINY (add the flags that make them tiny):\n" + (
        "\n".join(missing)
    )
    assert not stale, "TINY entries for commands no longer in README.md (remove them):\n" + "\n".join(stale)


def tiny_sweep_file(path: Path) -> None:
    """The README's sweep file with the same fields and grid, at a few seconds' budget."""
    import yaml

    spec = yaml.safe_load((REPO / "examples" / "sweeps" / "bc.yaml").read_text())
    assert spec.get("algorithm") == "bc", "examples/sweeps/bc.yaml changed algorithm: update tiny_sweep_file"
    spec.update(seeds=2, n_demos=2, n_eval_episodes=2, train={"n_batches": 20, "eval_every": 10})
    if "checkpoint_every" in spec:
        spec["checkpoint_every"] = 10
    path.write_text(yaml.safe_dump(spec))


def tiny_tune_file(path: Path) -> None:
    """The README's tune file with the same search space and scheduler, two trials at a few seconds' budget."""
    import yaml

    spec = yaml.safe_load((REPO / "examples" / "tune" / "bc.yaml").read_text())
    assert spec.get("algorithm") == "bc", "examples/tune/bc.yaml changed algorithm: update tiny_tune_file"
    grid = {k: v[:1] for k, v in spec.get("grid", {}).items()}
    spec.update(seeds=2, n_demos=2, n_eval_episodes=2, n_samples=2, grid=grid, train={"n_batches": 20, "eval_every": 5})
    if spec.get("scheduler") == "asha":
        spec["asha"] = {"grace_period": 5, "reduction_factor": 2}
    path.write_text(yaml.safe_dump(spec))


class _NotATensor:
    """Pickled into an SB3 zip's policy.pth: torch's weights-only loader must refuse it."""

    def __init__(self) -> None:
        self.payload = "anything"


def _sb3_box(space: Any) -> dict[str, Any]:
    return {
        ":type:": "<class 'gymnasium.spaces.box.Box'>",
        "dtype": str(space.dtype),
        "_shape": list(space.shape),
        "low": str(space.low),
        "high": str(space.high),
        "bounded_below": str(space.bounded_below),
        "bounded_above": str(space.bounded_above),
        "low_repr": None,
        "high_repr": None,
        "_np_random": None,
    }


def write_sb3_zip(path: Path, policy_pth: Any = None) -> Path:
    """The shipped Pendulum-v1 SAC expert in stable-baselines3's zip layout (as tests/test_sb3.py builds them);
    ``policy_pth`` replaces the state_dict pickled as policy.pth."""
    from imitation_fn.policies import load_policy

    expert = load_policy(EXPERTS / "Pendulum-v1")
    state_dict: dict[str, torch.Tensor] = {}
    for i in range(len(expert.params["trunk"]) // 2):  # our Linear i is SB3's nn.Sequential index 2i
        for t in ("weight", "bias"):
            state_dict[f"actor.latent_pi.{2 * i}.{t}"] = expert.params["trunk"][f"layers.{i}.{t}"]
    for part in ("mu", "log_std"):
        for t in ("weight", "bias"):
            state_dict[f"actor.{part}.{t}"] = expert.params[part][f"layers.0.{t}"]
    sac_policy = "gAWVMAAAAAAAAACMHnN0YWJsZV9iYXNlbGluZXMzLnNhYy5wb2xpY2llc5SMCVNBQ1BvbGljeZSTlC4="  # SACPolicy
    data = {
        "policy_class": {
            ":type:": "<class 'abc.ABCMeta'>",
            ":serialized:": sac_policy,
            "__module__": "stable_baselines3.sac.policies",
        },
        "policy_kwargs": {"use_sde": False, "net_arch": list(expert.config["net_arch"])},
        "observation_space": _sb3_box(expert.observation_space),
        "action_space": _sb3_box(expert.action_space),
        "use_sde": False,
    }

    def pth(obj: Any) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", json.dumps(data, indent=4))
        z.writestr("policy.pth", pth(state_dict if policy_pth is None else policy_pth))
        z.writestr("pytorch_variables.pth", pth({}))
        z.writestr("_stable_baselines3_version", "2.3.0")
    return path


# Files the README assumes the user has, made just before the first command that names them.
PLACEHOLDERS: dict[str, Callable[[Path], Any]] = {
    "bc.yaml": lambda workdir: (workdir / "bc.yaml").write_text("lr: 0.001\nbatch_size: 64\nnet_arch: [64, 64]\n"),
    "my_sb3_expert.zip": lambda workdir: write_sb3_zip(workdir / "my_sb3_expert.zip"),
}


class ReadmeRunner:
    """Runs the README's commands in order in one directory, each once, as far as a test needs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runs: list[Run | None] = []

    def result(self, index: int) -> Run | None:
        while len(self.runs) <= index:
            command = README_COMMANDS[len(self.runs)]
            args = shlex.split(command)[1:]
            for name, make in PLACEHOLDERS.items():
                if name in args and not (self.workdir / name).exists():
                    make(self.workdir)
            extra = TINY.get(command)
            self.runs.append(None if extra is None else run_cli([*args, *shlex.split(extra)], self.workdir))
        return self.runs[index]


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> ReadmeRunner:
    workdir = tmp_path_factory.mktemp("readme")
    (workdir / "tests").mkdir()
    (workdir / "tests" / "data").symlink_to(REPO / "tests" / "data", target_is_directory=True)
    shutil.copytree(REPO / "examples" / "sweeps", workdir / "examples" / "sweeps")  # --dry-run reads them as they are
    tiny_sweep_file(workdir / "examples" / "sweeps" / "bc.yaml")
    (workdir / "examples" / "tune").mkdir()
    tiny_tune_file(workdir / "examples" / "tune" / "bc.yaml")
    return ReadmeRunner(workdir)


@pytest.mark.parametrize("index", range(len(README_COMMANDS)), ids=_readme_ids(README_COMMANDS))
def test_readme_command(index: int, readme: ReadmeRunner) -> None:
    command = README_COMMANDS[index]
    run = readme.result(index)
    if run is None:
        pytest.fail(f"no tiny budget for the README command {command!r}: add it to TINY")
    assert_exit(run)


# ---------------------------------------------------------------------------------------------------------------------
# 3. Bad input: exit 2, the flag or file named, no traceback
# ---------------------------------------------------------------------------------------------------------------------

TINY_BC = "--seeds 1 --n-epochs 1 --n-eval-episodes 1 --no-progress"


@dataclasses.dataclass(frozen=True)
class Artifacts:
    demos: Path  # 2 CartPole-v1 episodes of the scripted expert
    bc_run: Path  # a bc run directory: config.json, metrics.jsonl, checkpoint.safetensors
    ppo_run: Path  # a train-rl run directory with policies/seed_0 (a CartPole-v1 actor-critic)

    @property
    def policy(self) -> Path:
        return self.ppo_run / "policies" / "seed_0"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    root = tmp_path_factory.mktemp("artifacts")
    art = Artifacts(root / "demos", root / "bc_run", root / "ppo_run")
    ppo_args = "train-rl --algo ppo --env CartPole-v1 --total-steps 256 --n-eval-episodes 1 --no-progress --out"
    with ThreadPoolExecutor(2) as pool:
        ppo = pool.submit(run_cli, [*ppo_args.split(), str(art.ppo_run)], root)
        assert_exit(run_cli(["demos", "--env", "CartPole-v1", "--n-episodes", "2", "--out", str(art.demos)], root))
        assert_exit(run_cli(["bc", "--demos", str(art.demos), "--out", str(art.bc_run), *TINY_BC.split()], root))
        assert_exit(ppo.result())
    assert (art.bc_run / "checkpoint.safetensors").is_file() and (art.policy / "policy.safetensors").is_file()
    return art


# Preparations: each copies or writes what its case needs into the case's directory ``d`` and returns its path.


def truncated(src: str, file: str) -> Callable[[Artifacts, Path], Path]:
    """A copy of the artifact ``src`` whose ``file`` lost its second half."""

    def prepare(art: Artifacts, d: Path) -> Path:
        copied = shutil.copytree(getattr(art, src), d / src)
        data = (copied / file).read_bytes()
        (copied / file).write_bytes(data[: len(data) // 2])
        return copied

    return prepare


def edited_json(src: str, file: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Artifacts, Path], Path]:
    """A copy of the artifact ``src`` whose JSON ``file`` went through ``edit``."""

    def prepare(art: Artifacts, d: Path) -> Path:
        copied = shutil.copytree(getattr(art, src), d / src)
        data = json.loads((copied / file).read_text())
        edit(data)
        (copied / file).write_text(json.dumps(data, indent=2))
        return copied

    return prepare


def written(name: str, text: str, src: str | None = None, append: bool = False) -> Callable[[Artifacts, Path], Path]:
    """``text`` written into ``d/name`` (a file), or into the file ``name`` of a copy of the artifact ``src``."""

    def prepare(art: Artifacts, d: Path) -> Path:
        if src is None:
            (d / name).write_text(text)
            return d / name
        copied = shutil.copytree(getattr(art, src), d / src)
        with (copied / name).open("a" if append else "w") as f:
            f.write(text)
        return copied

    return prepare


def empty_dir(name: str) -> Callable[[Artifacts, Path], Path]:
    def prepare(art: Artifacts, d: Path) -> Path:
        (d / name).mkdir()
        return d / name

    return prepare


def copied(src: str) -> Callable[[Artifacts, Path], Path]:
    return lambda art, d: shutil.copytree(getattr(art, src), d / src)


def npz(name: str, n_obs: int, n_acts: int, n_rews: int) -> Callable[[Artifacts, Path], Path]:
    """imitation's .npz layout (serialize._load_npz) of two episodes split at ``indices``: consistent is 12/10/10."""

    def prepare(art: Artifacts, d: Path) -> Path:
        rng = np.random.default_rng(0)
        np.savez(
            d / name,
            obs=(0.05 * rng.standard_normal((n_obs, 4))).astype(np.float32),
            acts=rng.integers(0, 2, n_acts),
            rews=np.ones(n_rews, np.float32),
            terminal=np.array([True, True]),
            indices=np.array([5]),
        )
        return d / name

    return prepare


def set_activation(activation: str | None) -> Callable[[dict[str, Any]], None]:
    """Set policy.json's activation; None: switch it to another valid one (tanh <-> relu)."""

    def edit(data: dict[str, Any]) -> None:
        old = data["config"].get("activation", "tanh")
        data["config"]["activation"] = activation or ("relu" if old != "relu" else "tanh")

    return edit


def config_field(field: str, value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data[field] = value(data.get(field))

    return edit


# Further checks, given the run and the case's directory.


def names_pendulum_or_both_spaces(run: Run, d: Path) -> None:
    text = message(run)
    if not (mentions(text, "Pendulum-v1") or ("Discrete" in text and "Box" in text)):
        pytest.fail("the message names neither Pendulum-v1 nor both spaces:\n" + run.report(), pytrace=False)


def says_nothing_to_resume(run: Run, d: Path) -> None:
    if "nothing to resume" not in " ".join(message(run).lower().split()):
        pytest.fail("the message does not say there is nothing to resume:\n" + run.report(), pytrace=False)


def wrote_checkpoint(run: Run, d: Path) -> None:
    if not (d / "run" / "checkpoint.safetensors").is_file():
        pytest.fail("no checkpoint written:\n" + run.report(), pytrace=False)


def if_refused_then_before_training(run: Run, d: Path) -> None:
    if run.returncode == 2:
        if not mentions(message(run), "--n-eval-episodes"):
            pytest.fail("the message does not name '--n-eval-episodes':\n" + run.report(), pytrace=False)
        if (d / "run" / "checkpoint.safetensors").exists():
            pytest.fail("refused only after training:\n" + run.report(), pytrace=False)


def if_refused_then_names(token: str) -> Callable[[Run, Path], None]:
    def check(run: Run, d: Path) -> None:
        if run.returncode == 2 and not mentions(message(run), token):
            pytest.fail(f"the message does not name {token!r}:\n" + run.report(), pytrace=False)

    return check


@dataclasses.dataclass(frozen=True)
class Case:
    """``command`` is formatted with {demos}, {bc_run}, {policy}, {experts}, {dir} (the case's directory),
    {tiny} (TINY_BC) and {prepared} (what ``prepare`` returned)."""

    id: str
    command: str
    prepare: Callable[[Artifacts, Path], Path] | None = None
    names: tuple[str, ...] = ()  # each must appear in the output (argparse's usage block excluded)
    forbid: tuple[str, ...] = ()  # none may appear in the output
    codes: tuple[int, ...] = (2,)
    check: Callable[[Run, Path], None] | None = None
    timeout: float = 30  # a refusal is immediate; a command that trains instead is stopped here

    def args(self, art: Artifacts, d: Path) -> list[str]:
        paths = {"demos": art.demos, "bc_run": art.bc_run, "policy": art.policy, "experts": EXPERTS, "dir": d}
        if self.prepare is not None:
            paths["prepared"] = self.prepare(art, d)
        quoted = {k: shlex.quote(str(v)) for k, v in paths.items()}
        return shlex.split(self.command.format(tiny=TINY_BC, **quoted))


CASES = [
    # Damaged files of a run or of a policy.
    Case(
        "eval-run-truncated-checkpoint",
        "eval --run {prepared} --n-episodes 1",
        truncated("bc_run", "checkpoint.safetensors"),
        names=("checkpoint.safetensors",),
    ),
    Case(
        "bc-resume-truncated-checkpoint",
        "bc --demos {demos} --out {prepared} --resume --seeds 1 --n-epochs 2 --n-eval-episodes 1 --no-progress",
        truncated("bc_run", "checkpoint.safetensors"),
        names=("checkpoint.safetensors",),
    ),
    Case(
        "eval-policy-truncated-safetensors",
        "eval --policy {prepared} --n-episodes 1",
        truncated("policy", "policy.safetensors"),
        names=("policy.safetensors",),
    ),
    Case(
        "rollouts-policy-truncated-safetensors",
        "rollouts --policy {prepared} --env CartPole-v1 --episodes 1 --out {dir}/out",
        truncated("policy", "policy.safetensors"),
        names=("policy.safetensors",),
    ),
    # Config file and threads.
    Case(
        "config-malformed-yaml",
        "bc --demos {demos} --config {prepared} {tiny}",
        written("bad.yaml", "lr: [1, 2\n"),
        names=("bad.yaml",),
    ),
    Case("threads-negative", "bc --demos {demos} {tiny} --threads -2", names=("--threads",)),
    Case("threads-zero", "bc --demos {demos} {tiny} --threads 0", names=("--threads",)),
    # imitation .npz files whose arrays do not fit together.
    Case(
        "npz-acts-shorter-than-obs",
        "bc --demos {prepared} {tiny} --batch-size 4",
        npz("short_acts.npz", 12, 8, 8),
        names=("short_acts.npz",),
    ),
    Case(
        "npz-inconsistent-lengths",
        "bc --demos {prepared} {tiny} --batch-size 4",
        npz("inconsistent.npz", 12, 10, 7),
        names=("inconsistent.npz",),
    ),
    # A policy for another environment; policy files that were edited or cannot be loaded safely.
    Case(
        "eval-cartpole-policy-on-pendulum",
        "eval --policy {policy} --env Pendulum-v1 --n-episodes 1",
        check=names_pendulum_or_both_spaces,
    ),
    Case(
        "policy-json-unknown-activation",
        "eval --policy {prepared} --n-episodes 1",
        edited_json("policy", "policy.json", set_activation("swish")),
        names=("policy.json",),
    ),
    Case(
        "policy-json-activation-edited",
        "eval --policy {prepared} --n-episodes 1",
        edited_json("policy", "policy.json", set_activation(None)),
        names=("policy.json",),
    ),
    Case(
        "sb3-zip-pickled-object",
        "eval --policy {prepared} --env Pendulum-v1 --n-episodes 1",
        lambda art, d: write_sb3_zip(d / "pickled.zip", policy_pth=_NotATensor()),
        names=("pickled.zip",),
        forbid=("weights_only=False",),
    ),
    # Values that used to be taken silently (or to fall back to a preset's budget).
    Case("bc-lr-inf", "bc --demos {demos} {tiny} --lr inf", names=("--lr",)),
    Case("bc-n-epochs-negative", "bc --demos {demos} {tiny} --n-epochs -3", names=("--n-epochs",)),
    Case("bc-n-epochs-zero", "bc --demos {demos} {tiny} --n-epochs 0", names=("--n-epochs",)),
    Case("bc-seeds-zero", "bc --demos {demos} {tiny} --seeds 0", names=("--seeds",)),
    Case("bc-n-eval-episodes-negative", "bc --demos {demos} {tiny} --n-eval-episodes -1", names=("--n-eval-episodes",)),
    Case(
        "train-rl-total-steps-zero",
        "train-rl --algo ppo --env CartPole-v1 --total-steps 0 --n-eval-episodes 1 --no-progress",
        names=("--total-steps",),
    ),
    Case(
        "train-rl-total-steps-negative",
        "train-rl --algo ppo --env CartPole-v1 --total-steps -5 --n-eval-episodes 1 --no-progress",
        names=("--total-steps",),
    ),
    Case(
        "gail-total-timesteps-zero",
        "gail --env seals/CartPole-v0 --demos {experts}/seals_CartPole-v0/demos --total-timesteps 0 "
        "--n-eval-episodes 1 --no-progress",
        names=("--total-timesteps",),
    ),
    # Run directories and datasets with edited or broken JSON.
    Case(
        "eval-run-config-activation-edited",
        "eval --run {prepared} --n-episodes 1",
        edited_json("bc_run", "config.json", config_field("activation", lambda a: "relu" if a != "relu" else "tanh")),
        names=("config.json",),
    ),
    Case(
        "eval-run-config-net-arch-edited",
        "eval --run {prepared} --n-episodes 1",
        edited_json("bc_run", "config.json", config_field("net_arch", lambda arch: [16])),
        names=("config.json",),
    ),
    Case(
        "eval-run-config-not-json",
        "eval --run {prepared} --n-episodes 1",
        written("config.json", "{not json", src="bc_run"),
        names=("config.json",),
    ),
    Case(
        "bc-demos-broken-dataset-info",
        "bc --demos {prepared} {tiny}",
        written("dataset_info.json", '{"citation": "", "features": {"obs": ', src="demos"),
        names=("dataset_info.json",),
    ),
    Case(
        "eval-run-on-wrong-env",
        "eval --run {bc_run} --env Pendulum-v1 --n-episodes 1",
        names=("CartPole-v1",),
    ),
    Case(
        "analyze-half-written-metrics-line",
        "analyze {prepared} --no-normalize --n-resamples 100",
        written("metrics.jsonl", '{"step": 99, "seed": 0, "kind": "eval", "return_me', src="bc_run", append=True),
        codes=(0, 2),
        check=if_refused_then_names("metrics.jsonl"),
    ),
    # --out and --resume.
    Case(
        "bc-out-holds-a-run-without-resume",
        "bc --demos {demos} --out {prepared} {tiny}",
        copied("bc_run"),
        names=("--resume", "--out"),
        forbid=("resume=True", "log_dir"),
    ),
    Case(
        "bc-resume-into-empty-dir",
        "bc --demos {demos} --out {prepared} --resume {tiny}",
        empty_dir("empty"),
        check=says_nothing_to_resume,
    ),
    Case(
        "bc-resume-into-missing-dir",
        "bc --demos {demos} --out {dir}/missing --resume {tiny}",
        check=says_nothing_to_resume,
    ),
    # Environments without a torch version (gymnasium only), and zero evaluation episodes.
    Case(
        "bc-gymnasium-only-env",
        "bc --env CartPole-v0 --demos {demos} --out {dir}/run {tiny}",
        codes=(0,),
        check=wrote_checkpoint,
    ),
    Case(
        "bc-zero-eval-episodes",
        "bc --demos {demos} --out {dir}/run {tiny} --n-eval-episodes 0",
        codes=(0, 2),
        check=if_refused_then_before_training,
    ),
    Case(
        "train-rl-gymnasium-only-env",
        "train-rl --env CartPole-v0 --algo ppo --total-steps 256 --n-steps 32 --n-eval-episodes 1 --no-progress "
        "--out {dir}/run",
        codes=(0, 2),
        check=if_refused_then_names("CartPole-v0"),
    ),
]
CASES_BY_ID = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "duplicate case ids"


@pytest.fixture(scope="module")
def bad_input_runs(
    request: pytest.FixtureRequest, artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prefetch, dict[str, Path]]]:
    # Neutral directory names: a token a case looks for (an env id, a file name) must come from the message.
    dirs = {case.id: tmp_path_factory.mktemp(f"case{i:02d}_") for i, case in enumerate(CASES)}

    def job(case: Case) -> Callable[[], Run]:
        return lambda: run_cli(case.args(artifacts, dirs[case.id]), dirs[case.id], timeout=case.timeout)

    prefetch = Prefetch({case.id: job(case) for case in CASES})
    prefetch.start(selected_params(request, "test_bad_input_is_refused", "case_id"))
    yield prefetch, dirs
    prefetch.close()


@pytest.mark.parametrize("case_id", list(CASES_BY_ID))
def test_bad_input_is_refused(case_id: str, bad_input_runs: tuple[Prefetch, dict[str, Path]]) -> None:
    case = CASES_BY_ID[case_id]
    prefetch, dirs = bad_input_runs
    run = prefetch.get(case_id)
    assert_exit(run, case.codes)
    text = message(run)
    for token in case.names:
        if not mentions(text, token):
            pytest.fail(f"the message does not name {token!r}:\n" + run.report(), pytrace=False)
    for token in case.forbid:
        if token in run.output:
            pytest.fail(f"the output mentions {token!r}:\n" + run.report(), pytrace=False)
    if case.check is not None:
        case.check(run, dirs[case_id])


# ---------------------------------------------------------------------------------------------------------------------
# 4. kill -9, then --resume: the same result as an uninterrupted run
# ---------------------------------------------------------------------------------------------------------------------

# Checkpoints fall at every evaluation (every EVAL_EVERY env steps; the preset's rollouts are 128 steps, 8 envs x 16);
# --checkpoint-every counts seconds, and 600 keeps its wall-clock checkpoints out of this run, so the steps between two
# checkpoints are known and the kill lands after rows that the resume must not log twice.
EVAL_EVERY = 512
KILL_RUN = shlex.split(
    f"train-rl --algo ppo --env CartPole-v1 --total-steps 4096 --eval-every {EVAL_EVERY} --checkpoint-every 600 "
    "--n-eval-episodes 2 --no-progress"
)


def metrics_rows(path: Path) -> list[dict[str, Any]]:
    """Complete rows of a metrics.jsonl (a line still being written has no newline yet)."""
    if not path.is_file():
        return []
    lines = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def past_a_checkpoint(rows: list[dict[str, Any]]) -> bool:
    """Rows logged after the second checkpoint: a resume must not log those steps twice."""
    last = max((r["step"] for r in rows), default=0)
    return last > 2 * EVAL_EVERY and last % EVAL_EVERY != 0


def final_evals(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    evals = [r for r in rows if r.get("kind") == "eval"]
    assert evals, "no evaluation rows in metrics.jsonl"
    last = max(r["step"] for r in evals)
    return {r["seed"]: r for r in evals if r["step"] == last}


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    exe = executable()

    def start(out: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [exe, *KILL_RUN, "--out", out],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    whole = start("whole")  # the uninterrupted run, alongside (2 cores)
    killed = start("killed")
    try:
        checkpoint, metrics = tmp_path / "killed" / "checkpoint.safetensors", tmp_path / "killed" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while not (checkpoint.is_file() and past_a_checkpoint(metrics_rows(metrics))):
            if killed.poll() is not None:
                output = killed.communicate()[0]
                pytest.fail(
                    f"$ imitation-fn {shlex.join([*KILL_RUN, '--out', 'killed'])}\nexited {killed.returncode} before "
                    f"a checkpoint and progress in metrics.jsonl could be seen:\n{output[-3000:]}"
                )
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate()
        assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed: raise --total-steps"

        resumed = run_cli([*KILL_RUN, "--out", "killed", "--resume"], tmp_path, timeout=180)
        assert_exit(resumed)
        steps = [
            int(n.replace(",", "").replace("_", ""))
            for line in resumed.output.splitlines()
            if "resum" in line.lower()
            for n in re.findall(r"\d[\d,_]*", line)
        ]
        assert any(s > 0 for s in steps), "the output does not say from which step it resumes:\n" + resumed.report()

        rows = metrics_rows(metrics)
        keys = [(r["step"], r["seed"], r["kind"]) for r in rows]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        assert not duplicates, f"metrics.jsonl repeats (step, seed, kind) rows after the resume: {duplicates[:10]}"

        output = whole.communicate(timeout=180)[0]
        assert whole.returncode == 0 and "Traceback" not in output, f"uninterrupted run failed:\n{output[-3000:]}"
        assert final_evals(rows) == final_evals(metrics_rows(tmp_path / "whole" / "metrics.jsonl"))
    finally:
        for proc in (whole, killed):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
