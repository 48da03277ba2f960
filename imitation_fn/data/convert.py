"""Convert trajectory files between ``imitation``'s datasets directories and its older ``.npz`` format.

    convert("demos.npz", "demos")       # .npz -> datasets directory (imitation >= 1.0, imitation_fn)
    convert("demos", "demos.npz")       # datasets directory -> .npz (imitation <= 0.3 ``types.save``)

The format of ``dst`` follows its suffix: ``.npz`` writes the old layout, anything else a datasets
directory. Both are read by :func:`imitation_fn.data.serialize.load` and by ``imitation``'s
``serialize.load``. Per-step ``infos`` are carried both ways where they can be read safely: a
datasets directory holds them as JSON strings (:mod:`imitation_fn.data.infos`); an ``.npz`` written
here holds them twice, as ``imitation``'s pickled object array of plain dicts (which ``imitation``
reads) and as ``infos_json``, one JSON string per step (which is what is read back here). The
pickled ``infos`` of an ``.npz`` written by ``imitation`` is never unpickled: those infos load as
empty dicts, with a warning where the pickle may hold non-empty ones.

Observations in the dict layout (a Dict env's, see :mod:`imitation_fn.data.serialize`) stay in it from
one datasets directory to another; an ``.npz`` holds them flattened (``imitation``'s npz has no dict
form), as :func:`~imitation_fn.data.serialize.load` gives them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from imitation_fn.core.errors import InputError
from imitation_fn.data import infos as infos_json
from imitation_fn.data import serialize
from imitation_fn.data.serialize import ExistingPathError, Infos
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
    episodes = serialize.load_with_infos(src)
    try:
        if dst.suffix == ".npz":
            save_npz(dst, episodes.trajectories, infos=episodes.infos)
        else:
            space = serialize.stored_observation_space(src)  # a dict layout is written as it was read
            serialize.save(dst, episodes.trajectories, infos=episodes.infos, observation_space=space)
    except ExistingPathError:
        raise
    except OSError as e:  # e.g. a parent that is a file, or no permission
        raise InputError(f"convert: cannot write {dst}: {e.strerror or e}") from e
    return dst


def save_npz(path: AnyPath, trajectories: Sequence[Trajectory], *, infos: Infos | None = None) -> None:
    """Write ``imitation`` <= 0.3's ``types.save`` npz: episodes concatenated, split at ``indices``.

    Arrays: ``obs`` ``(sum(T_i + 1), *obs_shape)``, ``acts`` ``(sum(T_i), *act_shape)``, ``infos``
    (an object array of ``sum(T_i)`` dicts, pickled as ``imitation`` expects), ``infos_json``
    (``(sum(T_i),)`` str: the same infos as JSON, readable without unpickling), ``terminal`` ``(n,)``
    bool, ``indices`` ``(n - 1,)`` int64 = cumulative episode lengths, and ``rews`` ``(sum(T_i),)``
    when every trajectory has rewards. ``infos[i][t]`` is step ``t`` of trajectory ``i`` (default:
    empty dicts), reduced to JSON values first (:mod:`imitation_fn.data.infos`), so only plain dicts
    are pickled. Atomic (written beside, then renamed).
    """
    path = Path(path)
    if len(trajectories) == 0:
        raise ValueError("cannot save an empty sequence of trajectories")
    has_rews = [isinstance(traj, TrajectoryWithRew) for traj in trajectories]
    if any(has_rews) and not all(has_rews):
        raise ValueError("Some trajectories have rewards but not all")
    lengths = [len(traj) for traj in trajectories]
    given = [[{}] * n for n in lengths] if infos is None else infos
    strings = [s for row in infos_json.encode(given, lengths, "save_npz") for s in row]
    arrays: dict[str, np.ndarray] = {
        "obs": np.concatenate([_numpy(traj.obs) for traj in trajectories]),
        "acts": np.concatenate([_numpy(traj.acts) for traj in trajectories]),
        "infos": _object_array([json.loads(s) for s in strings]),
        "infos_json": np.array(strings, dtype=np.str_),
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


def _object_array(values: list[dict[str, object]]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)  # np.array would try to stack the dicts' contents
    for i, value in enumerate(values):
        array[i] = value
    return array


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


__all__ = ["convert", "save_npz"]
