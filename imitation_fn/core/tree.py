"""Helpers over pytrees of tensors (torch's pytree registry, as seen by ``torch.func``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.utils._pytree as pytree
from torch import Tensor

T = TypeVar("T")

leaves = pytree.tree_leaves
flatten = pytree.tree_flatten
unflatten = pytree.tree_unflatten


def map(fn: Callable[..., Any], tree: T, *rest: Any) -> T:  # noqa: A001 - mirrors jax.tree.map
    """Apply ``fn`` leaf-wise over one or more trees of the same structure."""
    return pytree.tree_map(fn, tree, *rest)


def stack(trees: Sequence[T]) -> T:
    """Stack N trees of the same structure along a new leading axis (e.g. N seeds' states)."""
    if not trees:
        raise ValueError("stack: got an empty sequence of trees")
    return map(lambda *xs: torch.stack(xs), trees[0], *trees[1:])


def unstack(tree: T) -> list[T]:
    """Inverse of :func:`stack`: split the leading axis into a list of trees."""
    flat, spec = pytree.tree_flatten(tree)
    if not flat:
        raise ValueError("unstack: the tree has no leaves")
    n = flat[0].shape[0]
    return [pytree.tree_unflatten([x[i] for x in flat], spec) for i in range(n)]


def index(tree: T, i: int | Tensor | slice) -> T:
    """Take element ``i`` of the leading axis of every leaf (e.g. seed ``i`` of a sweep)."""
    return map(lambda x: x[i], tree)


def size(tree: Any) -> int:
    """Leading-axis length shared by every leaf; raises if they disagree."""
    sizes = {x.shape[0] for x in leaves(tree)}
    if len(sizes) != 1:
        raise ValueError(f"tree leaves disagree on leading axis length: {sorted(sizes)}")
    return sizes.pop()


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """True when both trees have the same structure and every leaf pair is allclose."""
    flat_a, spec_a = pytree.tree_flatten(a)
    flat_b, spec_b = pytree.tree_flatten(b)
    if spec_a != spec_b:
        return False
    return all(
        x.shape == y.shape and torch.allclose(x, y, rtol=rtol, atol=atol)
        if x.is_floating_point()
        else torch.equal(x, y)
        for x, y in zip(flat_a, flat_b, strict=True)
    )


def cast(tree: T, dtype: torch.dtype) -> T:
    """Cast every floating-point leaf to ``dtype``."""
    return map(lambda x: x.to(dtype) if x.is_floating_point() else x, tree)


def to(tree: T, device: torch.device | str) -> T:
    """Every tensor leaf on ``device`` (leaves already there are not copied; other leaves unchanged)."""
    return map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, tree)


def contiguous(tree: T) -> T:
    """Every leaf in row-major layout (a copy only where it is not).

    The same values in another layout (a broadcast, a transposed view) can take another kernel path and
    round differently; drivers keep states contiguous between steps so that a state loaded from a
    checkpoint continues exactly as the one that was saved.
    """
    return map(lambda x: x if x.is_contiguous() else x.contiguous(), tree)


__all__ = [
    "allclose",
    "cast",
    "contiguous",
    "flatten",
    "index",
    "leaves",
    "map",
    "size",
    "stack",
    "to",
    "unflatten",
    "unstack",
]
