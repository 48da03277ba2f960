"""Trajectories on disk, in ``imitation``'s formats (host-side I/O).

``save`` writes a Hugging Face ``datasets`` directory with exactly the columns and encodings of
``imitation.data.huggingface_utils.trajectories_to_dataset``: one row per episode,

- ``obs``: ``(T + 1, *obs_shape)``, ``acts``: ``(T, *act_shape)``, ``rews``: ``(T,)`` (only when every
  trajectory has rewards), ``terminal``: bool,
- ``infos``: ``T`` JSON(-pickle) strings per episode; ``imitation_fn`` keeps no infos, so it writes
  ``"{}"`` for each step, which ``jsonpickle.decode`` reads back as an empty dict, as ``imitation``
  writes for ``infos=None``.

So ``imitation.data.serialize.load`` reads our directories and :func:`load` reads theirs (infos are
ignored). :func:`load` also reads ``imitation``'s older ``.npz`` files (never unpickling anything:
their pickled ``infos`` array is skipped). The even older pickle format is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch

from imitation_fn.data.types import Trajectory, TrajectoryWithRew

AnyPath = str | os.PathLike[str]

REQUIRED_COLUMNS = ("obs", "acts", "terminal")
_EMPTY_INFO = json.dumps({})  # == jsonpickle.encode({})


def to_dataset(trajectories: Sequence[Trajectory]) -> datasets.Dataset:
    """Trajectories as a ``datasets.Dataset`` in ``imitation``'s column layout (e.g. to ``push_to_hub``)."""
    if len(trajectories) == 0:
        raise ValueError("cannot save an empty sequence of trajectories")
    has_rews = [isinstance(traj, TrajectoryWithRew) for traj in trajectories]
    if any(has_rews) and not all(has_rews):
        raise ValueError("Some trajectories have rewards but not all")
    _check_no_nan(trajectories)
    columns: dict[str, list[object]] = {
        "obs": [_numpy(traj.obs) for traj in trajectories],
        "acts": [_numpy(traj.acts) for traj in trajectories],
        "infos": [[_EMPTY_INFO] * len(traj) for traj in trajectories],
        "terminal": [bool(traj.terminal) for traj in trajectories],
    }
    if all(has_rews):
        columns["rews"] = [_numpy(traj.rews) for traj in trajectories]  # type: ignore[attr-defined]
    return datasets.Dataset.from_dict(columns)


def from_dataset(dataset: datasets.Dataset) -> list[Trajectory | TrajectoryWithRew]:
    """Trajectories from a ``datasets.Dataset`` in ``imitation``'s layout (e.g. one from the Hub).

    Gives :class:`TrajectoryWithRew` when the dataset has a ``rews`` column (rewards as float32),
    else :class:`Trajectory`. Observations and actions keep their stored dtype.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"dataset is missing required column(s) {missing}: found {dataset.column_names}, expected "
            "imitation's trajectory columns obs, acts, infos, terminal and optionally rews"
        )
    with_rews = "rews" in dataset.column_names
    columns = [*REQUIRED_COLUMNS, "rews"] if with_rews else list(REQUIRED_COLUMNS)
    trajs: list[Trajectory | TrajectoryWithRew] = []
    for row in dataset.with_format("numpy", columns=columns):
        obs, acts = torch.tensor(np.asarray(row["obs"])), torch.tensor(np.asarray(row["acts"]))
        terminal = bool(row["terminal"])
        if with_rews:
            rews = torch.tensor(np.asarray(row["rews"]), dtype=torch.float32)
            trajs.append(TrajectoryWithRew(obs=obs, acts=acts, terminal=terminal, rews=rews))
        else:
            trajs.append(Trajectory(obs=obs, acts=acts, terminal=terminal))
    _check_no_nan(trajs)
    return trajs


def save(path: AnyPath, trajectories: Sequence[Trajectory]) -> None:
    """Write ``trajectories`` to the directory ``path`` (``imitation``'s datasets format).

    Atomic: the dataset is written to a temporary sibling directory and renamed into place, so an
    error never leaves a half-written dataset or loses one already at ``path``. An existing
    ``path`` is replaced only if it is itself a saved dataset.
    """
    path = Path(path)
    if path.exists() and not _is_saved_dataset(path):
        raise FileExistsError(f"{path} exists and is not a saved trajectory dataset; refusing to overwrite it")
    dataset = to_dataset(trajectories)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with _quiet():
            dataset.save_to_disk(str(tmp))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load(path: AnyPath) -> list[Trajectory | TrajectoryWithRew]:
    """Read trajectories saved by :func:`save`, by ``imitation``'s ``serialize.save``, or its older ``.npz``.

    Gives :class:`TrajectoryWithRew` when rewards were saved, else :class:`Trajectory`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no trajectories at {path}: the path does not exist")
    if path.is_dir():
        _check_complete(path)
        try:
            dataset = datasets.load_from_disk(str(path))
        except (FileNotFoundError, pa.ArrowInvalid) as e:
            raise ValueError(f"{path} is not a readable Hugging Face datasets directory ({e})") from e
        if not isinstance(dataset, datasets.Dataset):
            raise ValueError(
                f"expected {path} to hold a datasets.Dataset, got a {type(dataset).__name__} "
                f"with splits {list(dataset)}; load it yourself and pass one split to from_dataset"
            )
        return from_dataset(dataset)
    return _load_npz(path)


def load_with_rewards(path: AnyPath) -> list[TrajectoryWithRew]:
    """:func:`load`, requiring rewards."""
    trajs = load(path)
    without = [i for i, traj in enumerate(trajs) if not isinstance(traj, TrajectoryWithRew)]
    if without:
        raise ValueError(f"expected trajectories with rewards in {path}, but trajectory {without[0]} has none")
    return trajs  # type: ignore[return-value]


def _load_npz(path: Path) -> list[Trajectory | TrajectoryWithRew]:
    """``imitation``'s ``.npz`` (<= 0.3): episodes concatenated, split at ``indices`` (len = n_traj - 1)."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:  # numpy refuses anything that is not .npy/.npz without unpickling it
        raise ValueError(
            f"{path} is neither a datasets directory nor an .npz file. imitation's older pickle format is not "
            "supported (unpickling can run arbitrary code): convert it with imitation's convert_trajs script"
        ) from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is neither a datasets directory nor an imitation .npz file")
    with data:
        missing = [k for k in (*REQUIRED_COLUMNS, "indices") if k not in data.files]
        if missing:
            raise ValueError(f"{path} is missing required array(s) {missing}: found {data.files}")
        try:
            indices = data["indices"].astype(np.int64)
            # Each episode has one more obs than acts: shift the split points by the episode index.
            obs = np.split(data["obs"], indices + np.arange(len(indices)) + 1)
            acts = np.split(data["acts"], indices)
            terminal = data["terminal"]
            rews = np.split(data["rews"], indices) if "rews" in data.files else None
        except ValueError as e:
            raise ValueError(f"{path}: cannot read its arrays ({e}); dict observations are not supported") from e
    if not len(obs) == len(acts) == len(terminal):
        raise ValueError(
            f"{path} is inconsistent: {len(obs)} obs and {len(acts)} acts pieces, {len(terminal)} terminal"
        )
    trajs: list[Trajectory | TrajectoryWithRew] = []
    for i in range(len(obs)):
        o, a, term = torch.tensor(obs[i]), torch.tensor(acts[i]), bool(terminal[i])
        if rews is None:
            trajs.append(Trajectory(obs=o, acts=a, terminal=term))
        else:
            r = torch.tensor(rews[i], dtype=torch.float32)
            trajs.append(TrajectoryWithRew(obs=o, acts=a, terminal=term, rews=r))
    _check_no_nan(trajs)
    return trajs


_ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow IPC end-of-stream marker: written when a shard is closed


def _check_complete(path: Path) -> None:
    """Refuse a datasets directory that an interrupted save or copy left incomplete.

    ``save_to_disk`` writes the data shards first and ``state.json`` / ``dataset_info.json`` last, and
    closes every shard with Arrow's end-of-stream marker. A missing file or marker means the writer
    did not finish; without this check a shard cut between record batches loads with rows missing.
    """
    if (path / "dataset_dict.json").is_file():
        return  # a DatasetDict: load() explains that it wants one split
    missing = [name for name in ("state.json", "dataset_info.json") if not (path / name).is_file()]
    if missing:
        raise ValueError(
            f"{path} is not a Hugging Face datasets directory (written by save_to_disk): it has no "
            f"{' or '.join(missing)}, so it is something else or a save that did not finish"
        )
    try:
        shards = [entry["filename"] for entry in json.loads((path / "state.json").read_text())["_data_files"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is incomplete or corrupt: cannot read its state.json ({e!r})") from e
    for name in shards:
        shard = path / name
        if not shard.is_file():
            raise ValueError(f"{path} is incomplete: its data file {name} is missing")
        with open(shard, "rb") as f:
            f.seek(max(shard.stat().st_size - len(_ARROW_EOS), 0))
            if f.read() != _ARROW_EOS:
                raise ValueError(
                    f"{path} is incomplete: its data file {name} is truncated (no Arrow end-of-stream marker), "
                    "so the save or copy that wrote it did not finish"
                )


def _check_no_nan(trajectories: Sequence[Trajectory]) -> None:
    for i, traj in enumerate(trajectories):
        for name in ("obs", "acts", "rews"):
            x = getattr(traj, name, None)
            if isinstance(x, torch.Tensor) and x.is_floating_point() and bool(torch.isnan(x).any()):
                raise ValueError(f"trajectory {i}: {name} contains NaN ({int(torch.isnan(x).sum())} values)")


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "dataset_info.json").exists() and (path / "state.json").exists()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ``datasets``' progress bars for one call, restoring the user's setting."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


__all__ = ["from_dataset", "load", "load_with_rewards", "save", "to_dataset"]
