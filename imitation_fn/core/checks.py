"""chex-like assertions that read like specifications.

Static checks (shape, rank, dtype, tree structure) work everywhere, including inside ``vmap``
(where shapes are per-example) and ``torch.compile``. Value checks (``assert_finite``) need
concrete values, so they are skipped inside transforms: call them in drivers, loaders and tests.

    checks.assert_shape(obs, (batch, 4), name="obs")
    # AssertionError: assert_shape failed: obs has shape (3, 5), expected (3, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import Tensor


def in_transform(x: Tensor) -> bool:
    """True inside vmap/grad (wrapped tensors) or while torch.compile traces."""
    return torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(x)


def assert_shape(x: Tensor, expected: Sequence[int | None], name: str = "tensor") -> None:
    """``x.shape`` equals ``expected``; ``None`` entries match any size."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected, strict=True))
    if not ok:
        want = tuple("*" if e is None else e for e in expected)
        raise AssertionError(f"assert_shape failed: {name} has shape {shape}, expected {want}")


def assert_rank(x: Tensor, rank: int | set[int], name: str = "tensor") -> None:
    """``x.ndim`` equals ``rank`` (or is one of a set of ranks)."""
    ranks = {rank} if isinstance(rank, int) else rank
    if x.ndim not in ranks:
        raise AssertionError(
            f"assert_rank failed: {name} has rank {x.ndim} (shape {tuple(x.shape)}), expected {sorted(ranks)}"
        )


def assert_dtype(x: Tensor, dtype: torch.dtype | set[torch.dtype], name: str = "tensor") -> None:
    dtypes = {dtype} if isinstance(dtype, torch.dtype) else dtype
    if x.dtype not in dtypes:
        raise AssertionError(
            f"assert_dtype failed: {name} has dtype {x.dtype}, expected one of {sorted(map(str, dtypes))}"
        )


def assert_finite(tree: Any, name: str = "tree") -> None:
    """Every floating leaf is free of NaN and inf. A no-op inside vmap/grad/compile."""
    for path, x in pytree.tree_flatten_with_path(tree)[0]:
        if not isinstance(x, Tensor) or not x.is_floating_point() or in_transform(x):
            continue
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            where = pytree.keystr(path)
            raise AssertionError(
                f"assert_finite failed: {name}{where} has {int(bad.sum())} non-finite value(s) "
                f"out of {x.numel()} (shape {tuple(x.shape)})"
            )


def assert_tree_shape_prefix(tree: Any, prefix: Sequence[int], name: str = "tree") -> None:
    """Every leaf's shape starts with ``prefix`` (e.g. ``(n_seeds,)`` for stacked states)."""
    prefix = tuple(prefix)
    for path, x in pytree.tree_flatten_with_path(tree)[0]:
        if tuple(x.shape[: len(prefix)]) != prefix:
            raise AssertionError(
                f"assert_tree_shape_prefix failed: {name}{pytree.keystr(path)} has shape {tuple(x.shape)}, "
                f"expected a prefix {prefix}"
            )


def assert_trees_allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, name: str = "trees") -> None:
    """Same structure and every leaf pair allclose; names the first leaf that differs."""
    flat_a, spec_a = pytree.tree_flatten_with_path(a)
    flat_b, spec_b = pytree.tree_flatten_with_path(b)
    if spec_a != spec_b:
        raise AssertionError(f"assert_trees_allclose failed: {name} differ in structure:\n{spec_a}\nvs\n{spec_b}")
    for (path, x), (_, y) in zip(flat_a, flat_b, strict=True):
        where = f"{name}{pytree.keystr(path)}"
        if x.shape != y.shape:
            raise AssertionError(f"assert_trees_allclose failed: {where} shapes {tuple(x.shape)} vs {tuple(y.shape)}")
        if not torch.allclose(x.to(torch.float64), y.to(torch.float64), rtol=rtol, atol=atol):
            err = (x.to(torch.float64) - y.to(torch.float64)).abs().max()
            raise AssertionError(f"assert_trees_allclose failed: {where} max abs difference {float(err):.3g}")


__all__ = [
    "assert_dtype",
    "assert_finite",
    "assert_rank",
    "assert_shape",
    "assert_tree_shape_prefix",
    "assert_trees_allclose",
    "in_transform",
]
