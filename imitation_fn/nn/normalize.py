"""Running mean/variance normalisation as pure functions (SB3's ``RunningMeanStd`` / ``VecNormalize``).

    norm = normalize.init(obs_shape)                      # count starts at 1e-4, as SB3
    norm, obs_n = normalize.update_and_normalize(norm, obs)   # obs: (batch, *obs_shape)

Statistics merge with Chan et al.'s parallel update, so streaming chunks gives the moments of
their concatenation (plus the ``count`` pseudo-observations of mean 0, variance 1 that ``init``
starts from). ``imitation``'s ``RunningNorm`` is ``init(shape, count=0.0)`` with
``normalize(..., eps=1e-5, clip=None)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from imitation_fn.core import struct


class RunningMeanStd(struct.PyTreeNode):
    """Running statistics of ``shape``-shaped observations: ``mean, var: shape``, ``count: ()``."""

    mean: Tensor
    var: Tensor
    count: Tensor


def init(
    shape: Sequence[int] = (),
    *,
    count: float = 1e-4,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> RunningMeanStd:
    """Zero mean, unit variance, weighted as ``count`` observations (SB3's ``epsilon=1e-4``)."""
    shape = tuple(shape)
    return RunningMeanStd(
        mean=torch.zeros(shape, dtype=dtype, device=device),
        var=torch.ones(shape, dtype=dtype, device=device),
        count=torch.tensor(count, dtype=dtype, device=device),
    )


def update_from_moments(state: RunningMeanStd, mean: Tensor, var: Tensor, count: Tensor | float) -> RunningMeanStd:
    """Merge a batch summarised by its ``mean``, population ``var`` and ``count`` (Chan et al.)."""
    if isinstance(count, Tensor):
        count = count.to(state.count.dtype)
    else:
        count = torch.tensor(count, dtype=state.count.dtype, device=state.count.device)
    total = state.count + count
    # A zero total (count=0 state, fully masked batch) keeps the old statistics instead of 0/0.
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    delta = mean - state.mean
    new_mean = state.mean + delta * (count / safe_total)
    m2 = state.var * state.count + var * count + delta.square() * (state.count * count / safe_total)
    new_var = torch.where(total > 0, m2 / safe_total, state.var)
    return RunningMeanStd(mean=new_mean, var=new_var, count=total)


def update(state: RunningMeanStd, batch: Tensor, mask: Tensor | None = None) -> RunningMeanStd:
    """Merge ``batch: (*lead, *shape)``; every leading axis is a batch axis.

    ``mask: (*lead,)`` (bool or 0/1) keeps only the marked rows, so padded fixed-shape batches
    need no data-dependent indexing.
    """
    n_lead = batch.ndim - state.mean.ndim
    if n_lead < 1 or batch.shape[n_lead:] != state.mean.shape:
        raise ValueError(
            f"update: batch has shape {tuple(batch.shape)}, expected (batch, ..., *{tuple(state.mean.shape)})"
        )
    dims = tuple(range(n_lead))
    batch = batch.to(state.mean.dtype)
    if mask is None:
        return update_from_moments(
            state, batch.mean(dim=dims), batch.var(dim=dims, correction=0), float(math.prod(batch.shape[:n_lead]))
        )
    if mask.shape != batch.shape[:n_lead]:
        raise ValueError(f"update: mask has shape {tuple(mask.shape)}, expected {tuple(batch.shape[:n_lead])}")
    w = mask.to(state.mean.dtype).reshape(*mask.shape, *([1] * state.mean.ndim))
    count = mask.to(state.mean.dtype).sum()
    safe = torch.where(count > 0, count, torch.ones_like(count))
    mean = (w * batch).sum(dim=dims) / safe
    var = (w * (batch - mean).square()).sum(dim=dims) / safe
    return update_from_moments(state, mean, var, count)


def std(state: RunningMeanStd, eps: float = 1e-8) -> Tensor:
    """``sqrt(var + eps)``, the scale ``normalize`` divides by."""
    return torch.sqrt(state.var + eps)


def normalize(state: RunningMeanStd, x: Tensor, *, clip: float | None = 10.0, eps: float = 1e-8) -> Tensor:
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` (no clipping when ``clip`` is None)."""
    y = (x - state.mean) / std(state, eps)
    return y if clip is None else y.clamp(-clip, clip)


def denormalize(state: RunningMeanStd, y: Tensor, *, eps: float = 1e-8) -> Tensor:
    """The inverse of ``normalize`` (exact where ``normalize`` did not clip)."""
    return y * std(state, eps) + state.mean


def update_and_normalize(
    state: RunningMeanStd, x: Tensor, *, clip: float | None = 10.0, eps: float = 1e-8, mask: Tensor | None = None
) -> tuple[RunningMeanStd, Tensor]:
    """Update with the batch ``x``, then normalise it with the new statistics (``VecNormalize``'s order)."""
    state = update(state, x, mask)
    return state, normalize(state, x, clip=clip, eps=eps)


__all__ = [
    "RunningMeanStd",
    "denormalize",
    "init",
    "normalize",
    "std",
    "update",
    "update_and_normalize",
    "update_from_moments",
]
