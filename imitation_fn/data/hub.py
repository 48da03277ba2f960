"""Demonstrations and experts named by a Hugging Face Hub repo id, as ``imitation`` names them.

Wherever a path to demonstrations or a policy is taken (``serialize.load``, ``load_policy``, so
``--demos``, ``--expert``, ``--policy``), an argument of the form ``org/name`` that is **not an
existing path** is a Hub repo id:

- a dataset repo (``imitation``'s ``load_rollouts_from_huggingface``: ``HumanCompatibleAI/ppo-CartPole-v1``,
  pushed with ``datasets.Dataset.push_to_hub``: parquet files under ``data/``, or a ``save_to_disk``
  directory uploaded as is);
- a model repo in ``huggingface_sb3``'s naming, ``{org}/{algo}-{env}`` with ``env``'s ``/`` written
  ``-`` (``HumanCompatibleAI/ppo-seals-CartPole-v0``), holding the SB3 zip ``{algo}-{env}.zip``.

They are fetched with ``huggingface_hub`` into its cache (``HF_HOME`` / ``HF_HUB_CACHE``). With
``HF_HUB_OFFLINE=1``, or when the Hub cannot be reached, only the cache is used. Paths that end in a
file suffix this package reads (``.npz``, ``.zip``, ...) are never taken for repo ids.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import datasets
import huggingface_hub
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import InMemoryTable
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from imitation_fn.core.errors import InputError

# huggingface_hub's repo-name rule, with the owner required (imitation's repos always have one).
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".npz", ".zip", ".safetensors", ".json", ".pkl", ".arrow", ".parquet")


class MissingPathError(InputError, FileNotFoundError):
    """A path (or Hub repo id) that names nothing: an :class:`InputError`, and a ``FileNotFoundError``."""


def is_repo_id(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` is to be looked up on the Hub: ``org/name``, not an existing path, not a file name."""
    text = os.fspath(spec)
    return (
        bool(_REPO_ID.match(text))
        and len(text) <= 96
        and "--" not in text
        and ".." not in text
        and not text.endswith((".", "-", *_FILE_SUFFIXES))
        and not Path(text).exists()
    )


def dataset_snapshot(repo_id: str, what: str = "trajectories") -> Path:
    """The local snapshot directory of the dataset repo ``repo_id`` (downloaded, or from the cache).

    Raises :class:`MissingPathError` (``no {what} at {repo_id}: ...``) when it is neither on the Hub
    nor in the cache.
    """
    try:
        folder = _fetch(huggingface_hub.snapshot_download, repo_id, repo_type="dataset", allow_patterns=_DATA_FILES)
    except _HUB_ERRORS as e:
        raise MissingPathError(
            f"no {what} at {repo_id}: not a file or directory, and not a Hugging Face dataset in the cache/hub "
            f"({_why(e)})"
        ) from e
    return Path(folder)


def read_parquet(snapshot: Path, where: str) -> datasets.Dataset:
    """The ``train`` split (or the only one) of a ``push_to_hub`` snapshot as a ``datasets.Dataset``.

    Read with pyarrow straight from the snapshot (no copy into the ``datasets`` cache); the features
    ``push_to_hub`` stored in the parquet schema come back with it.
    """
    files = sorted(snapshot.glob("data/train-*.parquet")) or sorted(snapshot.rglob("*.parquet"))
    if not files:
        raise InputError(f"{where}: the dataset repo holds no parquet files (expected data/train-*.parquet)")
    splits = {f.name.split("-", 1)[0] for f in files}
    if len(splits) > 1:
        raise InputError(f"{where}: the dataset repo has splits {sorted(splits)} and no 'train' split; pass one")
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files])
        return datasets.Dataset(InMemoryTable(table))
    except (pa.ArrowException, OSError, ValueError, TypeError) as e:
        raise InputError(f"{where}: cannot read its parquet files ({type(e).__name__}: {e})") from e


def sb3_zip(repo_id: str) -> Path:
    """The SB3 zip of the model repo ``repo_id`` (``huggingface_sb3`` naming), downloaded or from the cache.

    Raises :class:`MissingPathError` when the repo or its ``{name}.zip`` is neither on the Hub nor cached.
    """
    filename = f"{repo_id.split('/')[1]}.zip"
    try:
        return Path(_fetch(huggingface_hub.hf_hub_download, repo_id, filename=filename))
    except _HUB_ERRORS as e:
        raise MissingPathError(
            f"no policy at {repo_id}: not a file or directory, and not a Hugging Face model in the cache/hub "
            f"holding {filename} ({_why(e)}; huggingface_sb3 naming: org/algo-env holds algo-env.zip)"
        ) from e


_DATA_FILES = ["*.parquet", "*.arrow", "*.json", "README.md"]
# What huggingface_hub raises for a repo, file or revision it cannot find (online or in the cache), for
# the Hub refusing access, for a malformed id (HFValidationError is a ValueError) and for I/O errors.
_HUB_ERRORS = (OSError, ValueError, EntryNotFoundError)


def _offline() -> bool:
    """``HF_HUB_OFFLINE``, as huggingface_hub read it at import or as the environment says now."""
    now = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or now


def _fetch(download: Any, repo_id: str, **kwargs: Any) -> str:
    """``download(repo_id, ...)``; from the cache alone when offline or when the Hub cannot be reached.

    (huggingface_hub itself falls back to its cache on most connection errors; this covers the rest.)
    """
    if _offline():
        return str(download(repo_id, local_files_only=True, **kwargs))
    try:
        return str(download(repo_id, **kwargs))
    except (ConnectionError, TimeoutError):
        return str(download(repo_id, local_files_only=True, **kwargs))


def _why(e: BaseException) -> str:
    if isinstance(e, LocalEntryNotFoundError):
        where = huggingface_hub.constants.HF_HUB_CACHE
        how = "offline (HF_HUB_OFFLINE is set)" if _offline() else "the Hub is unreachable"
        return f"{how} and not in the cache {where}"
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["MissingPathError", "dataset_snapshot", "is_repo_id", "read_parquet", "sb3_zip"]
