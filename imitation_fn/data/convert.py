"""Convert trajectory files between ``imitation``'s datasets directories and its older ``.npz`` format.

    convert("demos.npz", "demos")       # .npz -> datasets directory (imitation >= 1.0, imitation_fn)
    convert("demos", "demos.npz")       # datasets directory -> .npz (imitation <= 0.3 ``types.save``)

The format of ``dst`` follows its suffix: ``.npz`` writes the old layout, anything else a datasets
directory. Both are read by :func:`imitation_fn.data.serialize.load` and by ``imitation``'s
``serialize.load``. Per-step ``infos`` are not carried over (imitation_fn keeps none): every step's
info is written as an empty dict, and a warning names a source whose infos were not all empty.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.exceptions import DatasetsError

from imitation_fn.core.errors import InputError
from imitation_fn.data import serialize
from imitation_fn.data.serialize import ExistingPathError
from imitation_fn.data.types import Trajectory, TrajectoryWithRew

AnyPath = str | os.PathLike[str]


def convert(src: AnyPath, dst: AnyPath, *, overwrite: bool = False) -> Path:
    """Read trajectories from ``src`` (datasets directory or ``.npz``) and write them to ``dst``.

    ``dst`` ending in ``.npz`` gets ``imitation``'s old npz layout, any other path a datasets
    directory. Refuses to replace an existing ``dst`` unless ``overwrite``; writes are atomic, so an
    interrupted conversion never leaves a partial ``dst``. Returns ``dst`` as a ``Path``.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise InputError(f"convert: source and destination are the same path {src}")
    if dst.exists() and not overwrite:
        raise ExistingPathError(f"convert: {dst} already exists; pass overwrite=True (--overwrite) to replace it")
    trajs = serialize.load(src)
    if src.is_dir() and _has_infos(src):
        warnings.warn(f"convert: {src} has non-empty per-step infos; they are not carried over to {dst}", stacklevel=2)
    try:
        if dst.suffix == ".npz":
            save_npz(dst, trajs)
        else:
            serialize.save(dst, trajs)
    except ExistingPathError:
        raise
    except OSError as e:  # e.g. a parent that is a file, or no permission
        raise InputError(f"convert: cannot write {dst}: {e.strerror or e}") from e
    return dst


def save_npz(path: AnyPath, trajectories: Sequence[Trajectory]) -> None:
    """Write ``imitation`` <= 0.3's ``types.save`` npz: episodes concatenated, split at ``indices``.

    Arrays: ``obs`` ``(sum(T_i + 1), *obs_shape)``, ``acts`` ``(sum(T_i), *act_shape)``, ``infos``
    (an object array of ``sum(T_i)`` empty dicts, pickled as ``imitation`` expects), ``terminal``
    ``(n,)`` bool, ``indices`` ``(n - 1,)`` int64 = cumulative episode lengths, and ``rews``
    ``(sum(T_i),)`` when every trajectory has rewards. Atomic (written beside, then renamed).
    """
    path = Path(path)
    if len(trajectories) == 0:
        raise ValueError("cannot save an empty sequence of trajectories")
    has_rews = [isinstance(traj, TrajectoryWithRew) for traj in trajectories]
    if any(has_rews) and not all(has_rews):
        raise ValueError("Some trajectories have rewards but not all")
    arrays: dict[str, np.ndarray] = {
        "obs": np.concatenate([_numpy(traj.obs) for traj in trajectories]),
        "acts": np.concatenate([_numpy(traj.acts) for traj in trajectories]),
        "infos": np.concatenate([_empty_infos(len(traj)) for traj in trajectories]),
        "terminal": np.array([bool(traj.terminal) for traj in trajectories]),
        "indices": np.cumsum([len(traj) for traj in trajectories[:-1]], dtype=np.int64),
    }
    if all(has_rews):
        arrays["rews"] = np.concatenate([_numpy(traj.rews) for traj in trajectories])  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a name not ending in it
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _empty_infos(n: int) -> np.ndarray:
    infos = np.empty(n, dtype=object)
    for i in range(n):
        infos[i] = {}
    return infos


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _has_infos(path: Path) -> bool:
    """Whether a datasets directory, already read by :func:`serialize.load`, has a per-step info other than ``{}``."""
    try:
        dataset = datasets.load_from_disk(str(path))
        if not isinstance(dataset, datasets.Dataset) or "infos" not in dataset.column_names:
            return False
        rows = dataset["infos"]
    except (pa.ArrowException, DatasetsError, OSError, ValueError, TypeError) as e:  # only if it changed since load()
        raise InputError(f"convert: cannot read the infos of {path} ({e})") from e
    # jsonpickle.encode({}) == "{}", which is what imitation writes for infos=None and what we write.
    # load() ignores infos, so a row may hold anything: count whatever is not a list of "{}" as infos.
    return any(not isinstance(row, list) or any(info != "{}" for info in row) for row in rows)


__all__ = ["convert", "save_npz"]
