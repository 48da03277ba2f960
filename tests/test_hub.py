"""Hugging Face Hub repo ids for ``--demos`` / ``--expert`` / ``--policy``, resolved from a local cache only.

Each test builds a cache in a temporary directory with huggingface_hub's layout
(``datasets--org--name/refs/main`` naming a commit, the files under ``snapshots/<commit>/``) and runs
with ``HF_HUB_OFFLINE=1``: nothing here touches the network.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
import torch

from imitation_fn.data import hub, serialize
from imitation_fn.data.hub import MissingPathError
from imitation_fn.policies import load_policy

DEMOS = Path(__file__).parent / "data" / "experts" / "CartPole-v1" / "demos"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hub cache that huggingface_hub (already imported, so patched too) and subprocesses use, offline."""
    path = tmp_path / "hf_cache"
    path.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(path))
    return path


def cached_repo(cache: Path, kind: str, repo_id: str) -> Path:
    """The snapshot directory of ``repo_id`` (a ``dataset`` or ``model`` repo) at ``main``, as a download leaves it."""
    folder = cache / f"{kind}s--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    return snapshot


def pushed_dataset(cache: Path, repo_id: str, n: int = 4) -> list[Any]:
    """``n`` CartPole expert episodes as ``Dataset.push_to_hub`` stores them: parquet under ``data/``."""
    trajs = serialize.load(DEMOS)[:n]
    infos = [[{"t": t} for t in range(len(traj))] for traj in trajs]
    snapshot = cached_repo(cache, "dataset", repo_id)
    (snapshot / "data").mkdir()
    serialize.to_dataset(trajs, infos).to_parquet(str(snapshot / "data" / "train-00000-of-00001.parquet"))
    return trajs


def pushed_sb3_model(cache: Path, repo_id: str) -> None:
    """An (untrained) SB3 PPO for CartPole-v1 as huggingface_sb3 stores it: ``{algo}-{env}.zip`` in the repo."""
    sb3 = pytest.importorskip("stable_baselines3")
    snapshot = cached_repo(cache, "model", repo_id)
    sb3.PPO("MlpPolicy", "CartPole-v1", device="cpu").save(snapshot / f"{repo_id.split('/')[1]}.zip")


def same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x.obs, y.obs) and torch.equal(x.acts, y.acts) and x.terminal == y.terminal
        for x, y in zip(a, b, strict=True)
    )


def test_repo_ids_are_org_slash_name_that_name_no_local_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for spec in ("HumanCompatibleAI/ppo-seals-CartPole-v0", "org/name", "org/ppo-CartPole-v1", "a.b/c_d"):
        assert hub.is_repo_id(spec), spec
    for spec in ("name", "a/b/c", "/abs/path", "./org/name", "org/demos.npz", "org/expert.zip", "org/x--y", "org/"):
        assert not hub.is_repo_id(spec), spec
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert not hub.is_repo_id("org/name")  # an existing path always wins


def test_a_dataset_repo_in_the_cache_loads_with_its_infos(cache: Path) -> None:
    trajs = pushed_dataset(cache, "HumanCompatibleAI/ppo-CartPole-v1")
    assert same(serialize.load("HumanCompatibleAI/ppo-CartPole-v1"), trajs)
    episodes = serialize.load_with_infos("HumanCompatibleAI/ppo-CartPole-v1")
    assert same(episodes.trajectories, trajs)
    assert episodes.infos == [[{"t": t} for t in range(len(traj))] for traj in trajs]


def test_a_save_to_disk_directory_uploaded_as_is_loads(cache: Path) -> None:
    trajs = serialize.load(DEMOS)[:2]
    serialize.save(cached_repo(cache, "dataset", "org/uploaded") / "tmp", trajs)
    snapshot = cache / "datasets--org--uploaded" / "snapshots" / COMMIT
    for f in (snapshot / "tmp").iterdir():
        f.rename(snapshot / f.name)
    assert same(serialize.load("org/uploaded"), trajs)


def test_an_unknown_repo_id_is_one_clear_error(cache: Path) -> None:
    with pytest.raises(MissingPathError, match=r"no trajectories at org/missing: not a file or directory, and not a "):
        serialize.load("org/missing")
    with pytest.raises(FileNotFoundError, match=r"\(HF_HUB_OFFLINE is set\) and not in the cache .*hf_cache\)$"):
        serialize.load("org/missing")
    with pytest.raises(FileNotFoundError, match="the path does not exist"):  # not a repo id: the old message
        serialize.load("missing/demos/dir")
    with pytest.raises(MissingPathError, match=r"not a Hugging Face model in the cache/hub holding ppo-Nope-v0\.zip"):
        load_policy("org/ppo-Nope-v0")


def test_a_model_repo_in_huggingface_sb3_naming_loads_as_a_policy(cache: Path) -> None:
    pushed_sb3_model(cache, "HumanCompatibleAI/ppo-CartPole-v1")
    policy = load_policy("HumanCompatibleAI/ppo-CartPole-v1")
    assert policy.kind == "actor_critic" and policy.action_space.n == 2  # type: ignore[attr-defined]
    # The repo without its zip (say, another file name) is a clear error, not a policy.
    cached_repo(cache, "model", "org/ppo-Empty-v0")
    with pytest.raises(MissingPathError, match=r"ppo-Empty-v0\.zip"):
        load_policy("org/ppo-Empty-v0")


def _cli(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(["imitation-fn", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_commands_take_repo_ids_for_demos_and_policies(tmp_path: Path, cache: Path) -> None:
    pushed_dataset(cache, "org/cartpole-demos")
    pushed_sb3_model(cache, "org/ppo-CartPole-v1")
    bc = ["bc", "--demos", "org/cartpole-demos", "--env", "CartPole-v1", "--seeds", "1", "--n-epochs", "1"]
    for args in (
        [*bc, "--batch-size", "16", "--n-eval-episodes", "1", "--no-progress"],
        ["eval", "--policy", "org/ppo-CartPole-v1", "--env", "CartPole-v1", "--n-episodes", "1"],
        ["convert", "org/cartpole-demos", "local.npz"],
    ):
        proc = _cli(args, tmp_path, cache)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert serialize.load_with_infos(tmp_path / "local.npz").infos[0][:2] == [{"t": 0}, {"t": 1}]

    for args, flag in (
        (["bc", "--demos", "org/missing", "--env", "CartPole-v1", "--no-progress"], "--demos org/missing"),
        (["eval", "--policy", "org/ppo-Nope-v0", "--env", "CartPole-v1"], "--policy org/ppo-Nope-v0"),
    ):
        proc = _cli(args, tmp_path, cache)
        output = (proc.stdout + proc.stderr).strip()
        assert proc.returncode == 2 and "Traceback" not in output, output
        assert output.startswith(f"error: {flag}: no ") and "not a file or directory" in output, output
        assert len(output.splitlines()) == 1, output
