"""Pytrees of tensors ⇄ safetensors files.

A tree is saved as a flat ``{path: tensor}`` dict whose keys are the leaves' pytree paths (e.g.
``.params['pi']['layers.0.weight']``), so the file is readable by any safetensors reader. Loading
needs a *template* tree of the same structure (usually ``init(cfg, ...)``): the static parts of a
state come from the code and its config, the numbers from the file — no pickle anywhere.

Every reader raises :class:`~imitation_fn.core.errors.InputError` naming the file for a truncated or
corrupt file and for tensors that do not fit the template. :func:`fingerprint` ties a JSON config to
the weights saved beside it (the saver records it in the header; the loader recomputes it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import safetensors
import safetensors.torch
import torch.utils._pytree as pytree
from torch import Tensor

from imitation_fn.core.errors import InputError

T = TypeVar("T")


def to_flat_dict(tree: Any) -> dict[str, Tensor]:
    """``{pytree path: leaf}`` for every leaf."""
    return {pytree.keystr(path): leaf for path, leaf in pytree.tree_flatten_with_path(tree)[0]}


def from_flat_dict(flat: dict[str, Tensor], template: T, *, what: str = "file") -> T:
    """Rebuild ``template``'s structure from ``flat``; the keys, shapes and dtypes must match."""
    leaves_with_path, spec = pytree.tree_flatten_with_path(template)
    expected = {pytree.keystr(p) for p, _ in leaves_with_path}
    missing, unexpected = expected - flat.keys(), flat.keys() - expected
    if missing or unexpected:
        raise InputError(
            f"{what} does not match the expected structure: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]} (was it saved with a different config?)"
        )
    leaves = []
    for path, ref in leaves_with_path:
        name = pytree.keystr(path)
        value = flat[name]
        if value.shape != ref.shape or value.dtype != ref.dtype:
            raise InputError(
                f"{what}: {name} has shape {tuple(value.shape)} and dtype {value.dtype}, "
                f"expected {tuple(ref.shape)} and {ref.dtype} (was it saved with a different config?)"
            )
        leaves.append(value.to(ref.device))
    return pytree.tree_unflatten(leaves, spec)


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save(path: str | Path, tree: Any, metadata: dict[str, Any] | None = None) -> None:
    """Save a tree of tensors as safetensors, with JSON-encodable ``metadata`` in the header."""
    flat = {k: v.detach().contiguous().cpu() for k, v in to_flat_dict(tree).items()}
    meta = {"imitation_fn": json.dumps(metadata or {})}
    _atomic_write(Path(path), lambda tmp: safetensors.torch.save_file(flat, tmp, metadata=meta))


def _unreadable(path: Path, e: BaseException) -> InputError:
    return InputError(f"{path} is truncated or not a safetensors file ({e}); save it again, or copy it again in full")


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no safetensors file at {path}")


def load_flat(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file by name, without a template (readers that take shapes from the file)."""
    path = Path(path)
    _require_file(path)
    try:
        return safetensors.torch.load_file(path)
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        # SafetensorError covers a short, cut or garbled file; OSError a file the OS cannot map or read.
        raise _unreadable(path, e) from e


def load(path: str | Path, template: T) -> T:
    """Load a tree saved by :func:`save` into ``template``'s structure."""
    path = Path(path)
    return from_flat_dict(load_flat(path), template, what=str(path))


def load_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata dict written by :func:`save` (``{}`` for a safetensors file written by others)."""
    path = Path(path)
    _require_file(path)
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from e
    try:
        meta = json.loads(header.get("imitation_fn", "{}"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: the imitation_fn entry of its header is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise InputError(f"{path}: the imitation_fn entry of its header is not a JSON object")
    return meta


def fingerprint(obj: Any) -> str:
    """SHA-256 hex digest of ``obj`` as canonical JSON (sorted keys, compact separators).

    Equal JSON values give equal fingerprints whatever their key order or formatting, so a loader can
    recompute it from a JSON file and compare it with the one recorded beside the weights.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 3] + "..."


def json_changes(saved: Any, current: Any, limit: int = 3) -> list[str]:
    """``"key.path: old → new"`` for the first ``limit`` differences between two JSON values.

    Dicts are compared key by key; lists and scalars as a whole (``net_arch.pi: [64, 64] → [32, 64]``).
    """
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(a.keys() | b.keys()):
                name = f"{prefix}.{k}" if prefix else str(k)
                if k not in b:
                    out.append(f"{name}: {_short(a[k])} → (removed)")
                elif k not in a:
                    out.append(f"{name}: (absent) → {_short(b[k])}")
                else:
                    walk(a[k], b[k], name)
        elif a != b or type(a) is not type(b):
            out.append(f"{prefix or 'value'}: {_short(a)} → {_short(b)}")

    walk(saved, current, "")
    return out[:limit]


def read_json(path: str | Path) -> Any:
    """The JSON value in a text file; :class:`InputError` naming the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not a UTF-8 text file ({e})") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e})") from e


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically (configs, driver state)."""
    target = Path(path)
    _atomic_write(target, lambda tmp: Path(tmp).write_text(text))


__all__ = [
    "fingerprint",
    "from_flat_dict",
    "json_changes",
    "load",
    "load_flat",
    "load_metadata",
    "read_json",
    "save",
    "to_flat_dict",
    "write_text_atomic",
]
