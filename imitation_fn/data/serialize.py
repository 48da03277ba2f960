"""Trajectories on disk, in ``imitation``'s formats (host-side I/O).

``save`` writes a Hugging Face ``datasets`` directory with exactly the columns and encodings of
``imitation.data.huggingface_utils.trajectories_to_dataset``: one row per episode,

- ``obs``: ``(T + 1, *obs_shape)``, ``acts``: ``(T, *act_shape)``, ``rews``: ``(T,)`` (only when every
  trajectory has rewards), ``terminal``: bool,
- ``infos``: ``T`` JSON(-pickle) strings per episode, one info dict per step, as
  :mod:`imitation_fn.data.infos` encodes them (plain JSON, which ``jsonpickle.decode`` reads); ``"{}"``
  for every step when no infos are given, as ``imitation`` writes for ``infos=None``.

So ``imitation.data.serialize.load`` reads our directories and :func:`load` reads theirs.

**Dict observations.** Trajectories hold observations flattened as ``envs.gym.GymEnv`` flattens them
(``gymnasium.spaces.flatten``: entries in the ``Dict`` space's key order, each raveled). Saved with
``observation_space=`` a ``Dict`` of ``Box`` entries (``env.unflattened_observation_space``), ``obs`` is
written in the **dict layout**: a struct column with one field per key, each ``(T + 1, *entry_shape)``
in the entry's dtype (``{"position": (T + 1, 2), "velocity": (T + 1, 3)}``), as a ``DictObs``'s arrays
give it. :func:`load` reads it back flattened with the entries in **sorted key order** — the order
gymnasium gives a ``Dict`` built from a plain dict, whatever order the fields were stored in — or in
the order of the ``Dict`` given as ``observation_space=`` (keys and shapes then checked). So a policy
trained on the env acts on the result, also for a dataset built by hand from the env's observation
dicts. A ``Dict`` whose keys are not sorted (an ``OrderedDict``, ``sort_keys=False``) is saved flat
instead (``has_dict_layout`` is false), so that no file loads in an order its env does not use.
``imitation`` itself writes no dict layout (its ``serialize.save`` refuses ``DictObs``, up to at least
its 1.0 master) and reads none; save without ``observation_space`` (flat ``obs``) for a file it can read.
:func:`load` gives the trajectories alone; :func:`load_with_infos` gives them with their infos
(:class:`~imitation_fn.data.types.EpisodesWithInfos`), and ``save(path, trajs, infos=...)`` writes them:

    episodes = gym_rollout.collect_episodes(GymEnv("CartPole-v1", n_envs=4), policy_fn, key, min_episodes=10)
    serialize.save("demos", episodes.trajectories, infos=episodes.infos)
    serialize.load_with_infos("demos").infos[0][-1]  # the info of episode 0's last step

Both also read ``imitation``'s older ``.npz`` files without unpickling anything: their pickled ``infos``
array is not read (a warning says so where it may hold non-empty dicts); the ``infos_json`` array that
:func:`imitation_fn.data.convert.save_npz` adds beside it is. The even older pickle format is refused.
A path that does not exist but reads ``org/name`` is a Hugging Face Hub dataset (:mod:`.hub`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from math import prod
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
import torch
from datasets.exceptions import DatasetsError

from imitation_fn.core.errors import InputError
from imitation_fn.data import hub, infos
from imitation_fn.data.hub import MissingPathError
from imitation_fn.data.types import EpisodesWithInfos, Trajectory, TrajectoryWithRew
from imitation_fn.data.utils import item_mismatch

AnyPath = str | os.PathLike[str]

REQUIRED_COLUMNS = ("obs", "acts", "terminal")


class ExistingPathError(InputError, FileExistsError):
    """A path that exists and may not be replaced: an :class:`InputError`, and a ``FileExistsError``."""


Infos = Sequence[Sequence[Mapping[str, Any]]]  # infos[i][t]: step t of trajectory i


def to_dataset(
    trajectories: Sequence[Trajectory],
    infos: Infos | None = None,
    *,
    observation_space: gym.Space[Any] | None = None,
) -> datasets.Dataset:
    """Trajectories as a ``datasets.Dataset`` in ``imitation``'s column layout (e.g. to ``push_to_hub``).

    ``infos[i][t]`` is the info of step ``t`` of trajectory ``i`` (default: empty dicts); values JSON
    cannot hold are converted or dropped with a warning (:mod:`imitation_fn.data.infos`).
    ``observation_space``: a ``Dict`` of ``Box`` entries writes ``obs`` in the dict layout (see the module
    docstring; ``trajectories`` hold its flattened observations); ``None`` or a ``Box`` writes them as they are.
    """
    return _to_dataset(trajectories, infos, "to_dataset", observation_space)


def has_dict_layout(space: gym.Space[Any] | None) -> bool:
    """Whether ``save(..., observation_space=space)`` writes the dict layout: a ``Dict`` of ``Box`` entries with
    str keys in sorted order (the order :func:`load` flattens them in; gymnasium's default for a ``Dict``)."""
    if not isinstance(space, gym.spaces.Dict) or not space.spaces:
        return False
    keys = list(space.spaces)
    boxes = all(isinstance(k, str) and isinstance(v, gym.spaces.Box) for k, v in space.spaces.items())
    return boxes and keys == sorted(keys)


def _dict_entries(space: gym.Space[Any] | None, where: str) -> list[tuple[str, tuple[int, ...], np.dtype[Any]]] | None:
    """``(key, shape, dtype)`` of each entry of a dict-layout space in key order; ``None`` for flat ``obs``."""
    if space is None or isinstance(space, gym.spaces.Box):
        return None
    if not has_dict_layout(space):
        raise ValueError(
            f"{where}: observation_space {space} has no dict layout, which holds a Dict of Box entries with str keys "
            "in sorted order (the order load flattens them in). Save without observation_space to write the "
            "flattened observations as they are"
        )
    assert isinstance(space, gym.spaces.Dict)
    return [(k, tuple(v.shape or ()), np.dtype(v.dtype)) for k, v in space.spaces.items()]


def _obs_column(trajectories: Sequence[Trajectory], space: gym.Space[Any] | None, where: str) -> list[Any]:
    """The ``obs`` column: each trajectory's array, or in the dict layout one ``{key: array}`` per trajectory."""
    entries = _dict_entries(space, where)
    if entries is None:
        return [_numpy(traj.obs) for traj in trajectories]
    width = sum(prod(shape) for _, shape, _ in entries)
    column = []
    for i, traj in enumerate(trajectories):
        flat = _numpy(traj.obs)
        if flat.ndim != 2 or flat.shape[1] != width:
            raise ValueError(
                f"{where}: trajectory {i} has obs of shape {flat.shape}, expected (T + 1, {width}): "
                f"observations of {space} flattened (as GymEnv gives them)"
            )
        row, start = {}, 0
        for key, shape, dtype in entries:
            part = flat[:, start : start + prod(shape)]
            if np.issubdtype(dtype, np.integer) and not np.issubdtype(part.dtype, np.integer):
                part = np.rint(part)  # GymEnv cast integer entries to float32 with the others: exact, restored here
            row[key] = part.reshape(len(flat), *shape).astype(dtype)
            start += prod(shape)
        column.append(row)
    return column


def _to_dataset(
    trajectories: Sequence[Trajectory],
    infos: Infos | None,
    where: str,
    observation_space: gym.Space[Any] | None = None,
) -> datasets.Dataset:
    if len(trajectories) == 0:
        raise ValueError("cannot save an empty sequence of trajectories")
    has_rews = [isinstance(traj, TrajectoryWithRew) for traj in trajectories]
    if any(has_rews) and not all(has_rews):
        raise ValueError("Some trajectories have rewards but not all")
    _check_no_nan(trajectories)
    columns: dict[str, list[Any]] = {
        "obs": _obs_column(trajectories, observation_space, where),
        "acts": [_numpy(traj.acts) for traj in trajectories],
        "infos": _encode_infos(trajectories, infos, where),
        "terminal": [bool(traj.terminal) for traj in trajectories],
    }
    if all(has_rews):
        columns["rews"] = [_numpy(traj.rews) for traj in trajectories]  # type: ignore[attr-defined]
    return datasets.Dataset.from_dict(columns)


def from_dataset(
    dataset: datasets.Dataset, *, observation_space: gym.Space[Any] | None = None
) -> list[Trajectory | TrajectoryWithRew]:
    """Trajectories from a ``datasets.Dataset`` in ``imitation``'s layout (e.g. one from the Hub).

    Gives :class:`TrajectoryWithRew` when the dataset has a ``rews`` column (rewards as float32),
    else :class:`Trajectory`. Observations and actions keep their stored dtype. A dataset that does
    not hold valid trajectories raises :class:`InputError`. Observations in the dict layout come back
    flattened (see the module docstring), in the key order of ``observation_space`` if it is a ``Dict``.
    """
    return _from_dataset(dataset, "dataset", with_infos=False, observation_space=observation_space).trajectories


def from_dataset_with_infos(
    dataset: datasets.Dataset, *, observation_space: gym.Space[Any] | None = None
) -> EpisodesWithInfos[Trajectory | TrajectoryWithRew]:
    """:func:`from_dataset` with the per-step infos (empty dicts where the dataset has no ``infos`` column)."""
    return _from_dataset(dataset, "dataset", with_infos=True, observation_space=observation_space)


def stored_observation_space(path: AnyPath) -> gym.spaces.Dict | None:
    """The ``Dict`` space of a dataset whose ``obs`` are in the dict layout; ``None`` for flat ``obs`` or an ``.npz``.

    Keys sorted (the flatten order); each entry a ``Box`` of the stored dtype and per-step shape (from the first
    trajectory), unbounded (the bounds are not stored). ``save(..., observation_space=...)`` with it
    writes the same layout again (``convert`` does).
    """
    opened = _open_dataset(path)
    return None if opened is None else _stored_space(*opened)


def _stored_keys(dataset: datasets.Dataset) -> list[str] | None:
    """The field names of a struct ``obs`` column (the dict layout), in stored order; ``None`` for flat ``obs``."""
    feature = dataset.features.get("obs")
    return list(feature) if isinstance(feature, dict) else None


def _stored_space(dataset: datasets.Dataset, where: str) -> gym.spaces.Dict | None:
    keys = _stored_keys(dataset)
    if keys is None or len(dataset) == 0:
        return None
    first = dataset.with_format("numpy", columns=["obs"])[0]["obs"]
    entries: dict[str, gym.Space[Any]] = {}
    for key in keys:
        feature = dataset.features["obs"][key]
        while hasattr(feature, "feature"):  # List(List(Value)): the element type is innermost
            feature = feature.feature
        try:
            dtype = np.dtype(feature.dtype)
            shape = np.asarray(first[key]).shape[1:]
        except (AttributeError, TypeError) as e:
            raise InputError(f"{where}: obs entry {key!r} is not an array of numbers ({_reason(e)})") from e
        if dtype.kind == "f":
            entries[key] = gym.spaces.Box(-np.inf, np.inf, shape, dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            entries[key] = gym.spaces.Box(info.min, info.max, shape, dtype)
        else:
            raise InputError(f"{where}: obs entry {key!r} has dtype {dtype}; the dict layout holds Box entries")
    return gym.spaces.Dict(entries)  # keys sorted, as load flattens them


def _read_keys(dataset: datasets.Dataset, space: gym.Space[Any] | None, where: str) -> list[str] | None:
    """The keys to flatten a dict-layout ``obs`` by, in order: ``space``'s if it is a ``Dict``, else sorted."""
    stored = _stored_keys(dataset)
    if stored is None or not isinstance(space, gym.spaces.Dict):
        return None if stored is None else sorted(stored)
    keys = list(space.spaces)
    if set(keys) != set(stored):
        raise InputError(
            f"{where}: its observations have the keys {stored}, but the observation space has {keys}; "
            "the dict layout must hold exactly the Dict space's keys"
        )
    return keys


def _flat_obs(where: str, row: Any, keys: list[str], space: gym.Space[Any] | None) -> np.ndarray:
    """One trajectory's dict-layout observations, flattened as ``gymnasium.spaces.flatten`` does (in ``keys`` order)."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: obs is not a record of arrays by key")
    parts = []
    for key in keys:
        value = row[key]
        if isinstance(value, dict):
            raise InputError(f"{where}: obs entry {key!r} is itself a dict; the dict layout holds Box entries only")
        part = _tensor(where, f"obs entry {key!r}", value).numpy()
        if isinstance(space, gym.spaces.Dict):
            expected = tuple(space.spaces[key].shape or ())
            if part.shape[1:] != expected:
                raise InputError(
                    f"{where}: obs entry {key!r} has per-step shape {part.shape[1:]}, expected {expected} "
                    f"from the observation space's {space.spaces[key]}"
                )
        parts.append(part.reshape(len(part), -1))
    lengths = {len(p) for p in parts}
    if len(lengths) > 1:
        rows = {key: len(p) for key, p in zip(keys, parts, strict=True)}
        raise InputError(f"{where}: obs entries have different numbers of rows {rows}")
    flat = np.concatenate(parts, axis=1)
    # The dtype GymEnv gives the flattened observation: float32 once anything is float.
    return flat.astype(np.float32) if flat.dtype.kind == "f" else flat


def _from_dataset(
    dataset: datasets.Dataset,
    where: str,
    *,
    with_infos: bool,
    observation_space: gym.Space[Any] | None = None,
) -> EpisodesWithInfos[Trajectory | TrajectoryWithRew]:
    """:func:`from_dataset_with_infos`, naming the dataset ``where`` (its path) in errors; the infos are
    only read ``with_infos`` (else empty dicts)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise InputError(
            f"{where} is missing required column(s) {missing}: found {dataset.column_names}, expected "
            "imitation's trajectory columns obs, acts, infos, terminal and optionally rews"
        )
    if len(dataset) == 0:
        raise InputError(f"{where} holds no trajectories")
    with_rews = "rews" in dataset.column_names
    columns = [*REQUIRED_COLUMNS, "rews"] if with_rews else list(REQUIRED_COLUMNS)
    keys = _read_keys(dataset, observation_space, where)
    try:
        # A flipped byte can leave an Arrow file that parses but points outside its buffers: validate
        # every offset (of every column: convert reads the infos) before anything reads through them.
        dataset.data.table.validate(full=True)
        rows = list(dataset.with_format("numpy", columns=columns))
    except (pa.ArrowException, ValueError, TypeError, OSError) as e:
        raise InputError(f"{where}: cannot read its rows ({_reason(e)})") from e
    obs_dtype = _stored_dtype(dataset.features["obs"]) if keys is None else None
    trajs = [
        _trajectory(
            f"{where}: trajectory {i}",
            _as_stored(row["obs"], obs_dtype)
            if keys is None
            else _flat_obs(f"{where}: trajectory {i}", row["obs"], keys, observation_space),
            row["acts"],
            row["terminal"],
            row["rews"] if with_rews else None,
        )
        for i, row in enumerate(rows)
    ]
    _check_same_items(trajs, where)
    lengths = [len(traj) for traj in trajs]
    if with_infos and "infos" in dataset.column_names:
        rows = dataset.with_format(None)["infos"]
        return EpisodesWithInfos(trajs, infos.decode(rows, lengths, where))
    return EpisodesWithInfos(trajs, [[{} for _ in range(n)] for n in lengths])


def save(
    path: AnyPath,
    trajectories: Sequence[Trajectory],
    *,
    infos: Infos | None = None,
    observation_space: gym.Space[Any] | None = None,
) -> None:
    """Write ``trajectories`` (and their per-step ``infos``, see :func:`to_dataset`) to the directory ``path``.

    ``imitation``'s datasets format; with ``observation_space`` a ``Dict`` of ``Box`` entries (a Dict env's
    ``env.unflattened_observation_space``), ``obs`` in the dict layout (see the module docstring). Atomic:
    the dataset is written to a temporary sibling directory and renamed into place, so an error never
    leaves a half-written dataset or loses one already at ``path``. An existing ``path`` is replaced only
    if it is itself a saved dataset.
    """
    path = Path(path)
    if path.exists() and not _is_saved_dataset(path):
        raise ExistingPathError(f"{path} exists and is not a saved trajectory dataset; refusing to overwrite it")
    dataset = _to_dataset(trajectories, infos, str(path), observation_space)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with _quiet():
            dataset.save_to_disk(str(tmp))
        _write_legacy_feature_types(tmp)
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


def load(path: AnyPath, *, observation_space: gym.Space[Any] | None = None) -> list[Trajectory | TrajectoryWithRew]:
    """Read trajectories saved by :func:`save`, by ``imitation``'s ``serialize.save``, or its older ``.npz``.

    Gives :class:`TrajectoryWithRew` when rewards were saved, else :class:`Trajectory`. Anything
    that does not hold valid trajectories (missing, incomplete, corrupt, empty, inconsistent
    lengths, non-numeric or non-finite data) raises :class:`InputError` naming ``path``. A ``path``
    that does not exist but reads ``org/name`` is a Hugging Face Hub dataset repo (:mod:`.hub`).
    Observations in the dict layout come back flattened: entries in sorted key order, or in the order of
    ``observation_space`` when it is a ``Dict`` (keys and shapes checked against it).
    """
    return _load(path, with_infos=False, observation_space=observation_space).trajectories


def load_with_infos(
    path: AnyPath, *, observation_space: gym.Space[Any] | None = None
) -> EpisodesWithInfos[Trajectory | TrajectoryWithRew]:
    """:func:`load`, with each step's info dict (empty dicts where none were saved)."""
    return _load(path, with_infos=True, observation_space=observation_space)


def _load(
    path: AnyPath, *, with_infos: bool, observation_space: gym.Space[Any] | None = None
) -> EpisodesWithInfos[Trajectory | TrajectoryWithRew]:
    opened = _open_dataset(path)
    if opened is None:
        return _load_npz(Path(path), with_infos)
    dataset, where = opened
    return _from_dataset(dataset, where, with_infos=with_infos, observation_space=observation_space)


def _open_dataset(path: AnyPath) -> tuple[datasets.Dataset, str] | None:
    """The dataset at ``path`` (a directory or a Hub repo id) and its name for messages; ``None`` for a file."""
    spec, path = os.fspath(path), Path(path)
    if not path.exists():
        if not hub.is_repo_id(spec):
            raise MissingPathError(f"no trajectories at {path}: the path does not exist")
        snapshot = hub.dataset_snapshot(spec)
        if _is_saved_dataset(snapshot):
            return _read_directory(snapshot), str(snapshot)
        return hub.read_parquet(snapshot, spec), spec
    if path.is_dir():
        return _read_directory(path), str(path)
    if not path.is_file():  # opening a named pipe would wait for a writer
        raise InputError(f"{path} is neither a datasets directory nor an .npz file")
    return None


def load_with_rewards(path: AnyPath, *, observation_space: gym.Space[Any] | None = None) -> list[TrajectoryWithRew]:
    """:func:`load`, requiring rewards."""
    trajs = load(path, observation_space=observation_space)
    without = [i for i, traj in enumerate(trajs) if not isinstance(traj, TrajectoryWithRew)]
    if without:
        raise InputError(f"expected trajectories with rewards in {path}, but trajectory {without[0]} has none")
    return trajs  # type: ignore[return-value]


def _read_directory(path: Path) -> datasets.Dataset:
    _check_complete(path)
    try:
        dataset = datasets.load_from_disk(str(path))
    # datasets trusts its metadata: a corrupt file surfaces as whatever its parsing code trips on.
    except (pa.ArrowException, DatasetsError, OSError, ValueError, LookupError, TypeError, AttributeError) as e:
        raise InputError(f"{path} is not a readable Hugging Face datasets directory ({_reason(e)})") from e
    if not isinstance(dataset, datasets.Dataset):
        raise InputError(
            f"expected {path} to hold a datasets.Dataset, got a {type(dataset).__name__} "
            f"with splits {list(dataset)}; load it yourself and pass one split to from_dataset"
        )
    return dataset


def _load_npz(path: Path, with_infos: bool) -> EpisodesWithInfos[Trajectory | TrajectoryWithRew]:
    """``imitation``'s ``.npz`` (<= 0.3): episodes concatenated, split at ``indices`` (len = n_traj - 1).

    Infos come from ``infos_json`` (one JSON string per step, written by ``convert.save_npz``) where it
    exists; ``imitation``'s pickled ``infos`` is never unpickled.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or _reason(e)}") from e
    # numpy would try to unpickle anything without the .npz (zip) or .npy magic; allow_pickle=False
    # makes that an error, refused here first with the reason.
    if not magic.startswith(_ZIP_MAGIC) and magic != _NPY_MAGIC:
        raise InputError(
            f"{path} is neither a datasets directory nor an .npz file. imitation's older pickle format is not "
            "supported (unpickling can run arbitrary code): convert it with imitation's convert_trajs script"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as e:
        raise InputError(f"{path} is not a readable .npz file ({_reason(e)})") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(f"{path} is neither a datasets directory nor an imitation .npz file")
    with archive:
        missing = [k for k in (*REQUIRED_COLUMNS, "indices") if k not in archive.files]
        if missing:
            raise InputError(f"{path} is missing required array(s) {missing}: found {archive.files}")
        # infos is never unpickled: imitation pickled it, and unpickling can run arbitrary code.
        optional = ["rews", *(["infos_json"] if with_infos else [])]
        names = [*REQUIRED_COLUMNS, "indices", *(name for name in optional if name in archive.files)]
        arrays = {name: _read_npz_array(path, archive, name) for name in names}
        pickled_infos_empty = "infos" not in archive.files or _pickled_infos_empty(archive)
    obs, acts, terminal, indices = arrays["obs"], arrays["acts"], arrays["terminal"], arrays["indices"]
    rews = arrays.get("rews")
    for name, x in (("obs", obs), ("acts", acts), ("terminal", terminal), ("indices", indices), ("rews", rews)):
        if x is not None and x.ndim == 0:
            raise InputError(f"{path}: {name} is a scalar, expected one row per step (or per trajectory)")
    n_traj, n_steps = len(terminal), len(acts)
    if n_traj == 0:
        raise InputError(f"{path} holds no trajectories (its terminal array is empty)")
    splits = _split_points(path, indices, n_traj, n_steps)
    if len(obs) != n_steps + n_traj:
        raise InputError(
            f"{path} is inconsistent: obs has {len(obs)} rows, expected len(acts) + number of trajectories "
            f"= {n_steps} + {n_traj} = {n_steps + n_traj} (each trajectory has one more observation than actions)"
        )
    if rews is not None and len(rews) != n_steps:
        raise InputError(f"{path} is inconsistent: rews has {len(rews)} rows, expected len(acts) = {n_steps}")
    # Each episode has one more obs than acts: shift the split points by the episode index.
    obs_pieces = np.split(obs, splits + np.arange(n_traj - 1) + 1)
    acts_pieces, rews_pieces = np.split(acts, splits), None if rews is None else np.split(rews, splits)
    trajs = [
        _trajectory(
            f"{path}: trajectory {i}",
            obs_pieces[i],
            acts_pieces[i],
            terminal[i],
            None if rews_pieces is None else rews_pieces[i],
        )
        for i in range(n_traj)
    ]
    lengths = [len(traj) for traj in trajs]
    if with_infos and "infos_json" in arrays:
        strings = arrays["infos_json"]
        if strings.dtype.kind != "U" or strings.shape != (n_steps,):
            raise InputError(
                f"{path}: infos_json has dtype {strings.dtype} and shape {strings.shape}, "
                f"expected one string per step ({n_steps},)"
            )
        rows = [piece.tolist() for piece in np.split(strings, splits)]
        return EpisodesWithInfos(trajs, infos.decode(rows, lengths, str(path)))
    if with_infos and not pickled_infos_empty:
        warnings.warn(
            f"{path}: its infos are pickled (imitation's .npz) and are not read, since unpickling can run "
            "arbitrary code; they load as empty dicts",
            UserWarning,
            stacklevel=4,
        )
    return EpisodesWithInfos(trajs, [[{} for _ in range(n)] for n in lengths])


def _pickled_infos_empty(archive: np.lib.npyio.NpzFile) -> bool:
    """Whether the ``infos`` member holds only empty dicts, read from its pickle opcodes (never unpickled)."""
    try:
        if archive.zip is None:  # closed
            return False
        with archive.zip.open("infos.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                np.lib.format.read_array_header_2_0(f)
            else:
                return False
            return infos.pickled_dicts_are_empty(f.read())
    except (*_NPZ_ERRORS, KeyError):
        return False


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip's directory end
_NPY_MAGIC = b"\x93NUMPY"

# What opening or reading a damaged .npz raises: zipfile's BadZipFile, NotImplementedError (an unknown
# compression or zip version) and RuntimeError (an encrypted member), zlib.error, numpy's ValueError
# and EOFError (a bad or short .npy), and MemoryError for a header that declares a huge array.
_NPZ_ERRORS = (ValueError, OSError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error, MemoryError)


def _read_npz_array(path: Path, archive: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    try:
        return archive[name]
    except _NPZ_ERRORS as e:  # an object array is refused (ValueError) too: reading it would unpickle
        raise InputError(f"{path}: cannot read its {name} array ({_reason(e)})") from e


def _split_points(path: Path, indices: np.ndarray, n_traj: int, n_steps: int) -> np.ndarray:
    """``indices`` as int64 split points of ``acts``, or :class:`InputError` naming what is wrong."""
    if indices.ndim != 1 or len(indices) != n_traj - 1:
        raise InputError(
            f"{path} is inconsistent: indices has shape {indices.shape}, expected ({n_traj - 1},) "
            f"(one split point between each of the {n_traj} trajectories in terminal)"
        )
    # imitation writes np.cumsum of the lengths, which is a float array when there is one trajectory.
    integral = indices.dtype.kind in "iu" or (
        indices.dtype.kind == "f" and bool(np.all(np.isfinite(indices) & (indices == np.round(indices))))
    )
    if not integral:
        raise InputError(f"{path}: indices has dtype {indices.dtype}, expected integer split points")
    splits = indices.astype(np.int64)
    if len(splits) and (splits[0] < 0 or splits[-1] > n_steps or bool(np.any(np.diff(splits) < 0))):
        raise InputError(
            f"{path} is inconsistent: indices must be non-decreasing split points in [0, len(acts) = {n_steps}], "
            f"got {splits.tolist()[:10]}{' ...' if len(splits) > 10 else ''}"
        )
    return splits


def _trajectory(
    where: str, obs: object, acts: object, terminal: object, rews: object | None
) -> Trajectory | TrajectoryWithRew:
    """One trajectory from stored arrays, or :class:`InputError` prefixed with ``where``."""
    o, a, term = _tensor(where, "obs", obs), _tensor(where, "acts", acts), _flag(where, terminal)
    r = None if rews is None else _tensor(where, "rews", rews).to(torch.float32)
    if r is not None and r.ndim != 1:
        raise InputError(f"{where}: rews has shape {tuple(r.shape)}, expected (len(acts),)")
    try:  # the constructors check the lengths
        if r is None:
            traj: Trajectory | TrajectoryWithRew = Trajectory(obs=o, acts=a, terminal=term)
        else:
            traj = TrajectoryWithRew(obs=o, acts=a, terminal=term, rews=r)
    except InputError as e:
        raise InputError(f"{where}: {e}") from e
    _check_finite(where, traj)
    return traj


def _stored_dtype(feature: Any) -> np.dtype[Any] | None:
    """The numpy dtype of a column's innermost values (``uint8`` for image frames), or None if not a number."""
    while not isinstance(feature, datasets.Value):
        feature = getattr(feature, "feature", None)
        if feature is None:
            return None
    try:
        return np.dtype(feature.dtype)
    except TypeError:
        return None


def _as_stored(x: Any, dtype: np.dtype[Any] | None) -> Any:
    """``x`` in the column's own integer dtype: ``datasets`` hands nested integer lists back as int64, which
    would make every uint8 frame eight bytes."""
    if dtype is None or dtype.kind not in "iu" or not isinstance(x, np.ndarray) or x.dtype == dtype:
        return x
    return x.astype(dtype) if x.dtype.kind in "iu" else x


def _tensor(where: str, name: str, x: object) -> torch.Tensor:
    """A stored array as a tensor of numbers or booleans with a time axis, or :class:`InputError`."""
    try:
        array = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise InputError(f"{where}: {name} is not a rectangular array ({_reason(e)})") from e
    if array.dtype.kind not in "biuf":
        ragged = " (rows of different lengths, or values that are not numbers)" if array.dtype == object else ""
        raise InputError(f"{where}: {name} has dtype {array.dtype}{ragged}, expected numbers or booleans")
    if array.ndim == 0:
        raise InputError(f"{where}: {name} is a scalar, expected one row per step")
    # torch reads native byte order only; an .npz written on another machine may hold big-endian arrays.
    return torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("=")))


def _flag(where: str, x: object) -> bool:
    """A stored ``terminal`` value: a boolean (or 0/1) scalar."""
    array = np.asarray(x)
    if array.ndim != 0 or array.dtype.kind not in "biu" or array.item() not in (0, 1):
        raise InputError(f"{where}: terminal is {_preview(array)}, expected a boolean")
    return bool(array)


def _encode_infos(trajectories: Sequence[Trajectory], given: Infos | None, where: str) -> list[list[str]]:
    lengths = [len(traj) for traj in trajectories]
    if given is None:
        return [["{}"] * n for n in lengths]  # jsonpickle.encode({}), as imitation writes for infos=None
    return infos.encode(given, lengths, where)


def _check_same_items(trajs: Sequence[Trajectory], where: str) -> None:
    mismatch = item_mismatch(trajs)
    if mismatch is not None:
        raise InputError(f"{where}: {mismatch}")


_ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow IPC end-of-stream marker: written when a shard is closed


def _check_complete(path: Path) -> None:
    """Refuse a datasets directory that an interrupted save or copy left incomplete, or whose metadata is corrupt.

    ``save_to_disk`` writes the data shards first and ``state.json`` / ``dataset_info.json`` last, and
    closes every shard with Arrow's end-of-stream marker. A missing file or marker means the writer
    did not finish; without this check a shard cut between record batches loads with rows missing.
    """
    if (path / "dataset_dict.json").is_file():
        _read_json_object(path / "dataset_dict.json")
        return  # a DatasetDict: load() explains that it wants one split
    missing = [name for name in ("state.json", "dataset_info.json") if not (path / name).is_file()]
    if missing:
        raise InputError(
            f"{path} is not a Hugging Face datasets directory (written by save_to_disk): it has no "
            f"{' or '.join(missing)}, so it is something else or a save that did not finish"
        )
    _read_json_object(path / "dataset_info.json")
    state = _read_json_object(path / "state.json")
    files = state.get("_data_files")
    if not isinstance(files, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("filename"), str) for entry in files
    ):
        raise InputError(f"{path / 'state.json'} is corrupt: _data_files is not a list of {{'filename': ...}}")
    if not files:  # save_to_disk writes no data file only for a dataset without rows
        raise InputError(f"{path} holds no trajectories: its state.json lists no data files")
    for name in (entry["filename"] for entry in files):
        if not name or Path(name).name != name:  # datasets writes bare file names; anything else points elsewhere
            raise InputError(f"{path / 'state.json'} is corrupt: data file {name!r} is not a file name")
        shard = path / name
        if not shard.is_file():
            raise InputError(f"{path} is incomplete: its data file {name} is missing")
        try:
            with open(shard, "rb") as f:
                f.seek(max(shard.stat().st_size - len(_ARROW_EOS), 0))
                complete = f.read() == _ARROW_EOS
        except OSError as e:
            raise InputError(f"cannot read {shard}: {e.strerror or _reason(e)}") from e
        if not complete:
            raise InputError(
                f"{path} is incomplete: its data file {name} is truncated (no Arrow end-of-stream marker), "
                "so the save or copy that wrote it did not finish"
            )


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{path} is corrupt: not readable JSON ({_reason(e)})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path} is corrupt: expected a JSON object, got {type(data).__name__}")
    return data


def _check_finite(where: str, traj: Trajectory) -> None:
    for name in ("obs", "acts", "rews"):
        x = getattr(traj, name, None)
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            for what, bad in (("NaN", torch.isnan(x)), ("inf", torch.isinf(x))):
                if bool(bad.any()):
                    raise InputError(f"{where}: {name} contains {what} ({int(bad.sum())} values)")


def _check_no_nan(trajectories: Sequence[Trajectory]) -> None:
    for i, traj in enumerate(trajectories):
        _check_finite(f"trajectory {i}", traj)


def _reason(e: BaseException) -> str:
    """A library's exception as a short clause for a message: its type and first line, at most 200 characters."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _preview(x: np.ndarray) -> str:
    text = repr(x.item()) if x.ndim == 0 else np.array2string(x, threshold=5)
    return f"{text} (dtype {x.dtype})" if len(text) <= 60 else f"an array of shape {x.shape} (dtype {x.dtype})"


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _legacy_feature_types(features: Any) -> Any:
    """``features`` (as JSON) with every ``List`` of a typed feature spelled ``Sequence``, as ``datasets`` < 4
    spells it and ``datasets`` >= 4 still reads. A ``List`` of a struct stays: ``Sequence`` of a dict meant a
    dict of lists there."""
    if isinstance(features, list):
        return [_legacy_feature_types(f) for f in features]
    if not isinstance(features, dict):
        return features
    out = {k: _legacy_feature_types(v) for k, v in features.items()}
    if out.get("_type") == "List" and isinstance(out.get("feature"), dict) and "_type" in out["feature"]:
        out["_type"] = "Sequence"
    return out


def _write_legacy_feature_types(directory: Path) -> None:
    """Rewrite a ``save_to_disk`` directory's feature types (``dataset_info.json`` and each Arrow file's schema
    metadata) in the spelling ``datasets`` 2.x reads, so that ``imitation``'s ``serialize.load`` with its pinned
    ``datasets`` reads what we write. The data is not touched: both spellings describe the same Arrow types."""
    info = directory / "dataset_info.json"
    meta = json.loads(info.read_text())
    meta["features"] = _legacy_feature_types(meta.get("features"))
    info.write_text(json.dumps(meta, indent=2))
    for arrow in sorted(directory.glob("*.arrow")):
        with pa.memory_map(str(arrow)) as source:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            stored = (schema.metadata or {}).get(b"huggingface")
            hf = json.loads(stored) if stored is not None else {}
            if "features" not in hf.get("info", {}):
                continue
            hf["info"]["features"] = _legacy_feature_types(hf["info"]["features"])
            schema = schema.with_metadata({**schema.metadata, b"huggingface": json.dumps(hf).encode()})
            rewritten = arrow.with_name(arrow.name + ".legacy")
            with pa.OSFile(str(rewritten), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
        os.replace(rewritten, arrow)


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


__all__ = [
    "ExistingPathError",
    "MissingPathError",
    "from_dataset",
    "from_dataset_with_infos",
    "has_dict_layout",
    "load",
    "load_with_infos",
    "load_with_rewards",
    "save",
    "stored_observation_space",
    "to_dataset",
]
