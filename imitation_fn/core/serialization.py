"""Pytrees of tensors ⇄ safetensors files.

A tree is saved as a flat ``{path: tensor}`` dict whose keys are the leaves' pytree paths (e.g.
``.params['pi']['layers.0.weight']``), so the file is readable by any safetensors reader. Loading
needs a *template* tree of the same structure (usually ``init(cfg, ...)``): the static parts of a
state come from the code and its config, the numbers from the file — no pickle anywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import safetensors.torch
import torch.utils._pytree as pytree
from torch import Tensor

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
        raise ValueError(
            f"{what} does not match the expected structure: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]} (was it saved with a different config?)"
        )
    leaves = []
    for path, ref in leaves_with_path:
        name = pytree.keystr(path)
        value = flat[name]
        if value.shape != ref.shape or value.dtype != ref.dtype:
            raise ValueError(
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


def load(path: str | Path, template: T) -> T:
    """Load a tree saved by :func:`save` into ``template``'s structure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no safetensors file at {path}")
    return from_flat_dict(safetensors.torch.load_file(path), template, what=str(path))


def load_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata dict written by :func:`save`."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta.get("imitation_fn", "{}"))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically (configs, driver state)."""
    target = Path(path)
    _atomic_write(target, lambda tmp: Path(tmp).write_text(text))


__all__ = ["from_flat_dict", "load", "load_metadata", "save", "to_flat_dict", "write_text_atomic"]
