"""Output normalisation of a reward net: ``imitation``'s ``NormalizedRewardNet`` with ``RunningNorm``.

The running mean and variance of the rewards are a :class:`~imitation_fn.nn.normalize.RunningMeanStd`
state (``mean, var, count``: 0-d tensors), updated only when asked:

    norm = normalize.init()                                  # count 0, mean 0, var 1 (RunningNorm)
    rews = net.apply(params, obs, acts, next_obs, dones)
    norm, rews_n = normalize.apply_and_update(norm, rews)   # predict_processed(update_stats=True)
    rews_n = normalize.apply(norm, rews)                     # predict_processed(update_stats=False)

``(r - mean) / sqrt(var + 1e-5)``, no clipping; the statistics merge with Chan et al.'s parallel
update, so streaming batches gives the population mean and variance of their concatenation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imitation_fn.core import checks
from imitation_fn.nn import normalize as nn_normalize
from imitation_fn.nn.normalize import RunningMeanStd

EPS = 1e-5  # RunningNorm's eps


def init(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> RunningMeanStd:
    """Fresh statistics: ``count = 0`` (the first batch's moments replace mean 0, var 1 entirely)."""
    return nn_normalize.init((), count=0.0, dtype=dtype, device=device)


def update(state: RunningMeanStd, rews: Tensor, mask: Tensor | None = None) -> RunningMeanStd:
    """Merge the rewards ``rews: (N,)`` (only the rows where ``mask: (N,)`` is set, if given)."""
    checks.assert_rank(rews, 1, name="rews")
    return nn_normalize.update(state, rews, mask)


def apply(state: RunningMeanStd, rews: Tensor) -> Tensor:
    """``(rews - mean) / sqrt(var + 1e-5)``, ``(N,)``; the statistics are not changed."""
    return nn_normalize.normalize(state, rews, clip=None, eps=EPS)


def apply_and_update(state: RunningMeanStd, rews: Tensor, mask: Tensor | None = None) -> tuple[RunningMeanStd, Tensor]:
    """Normalise with the current statistics, *then* merge the batch (``NormalizedRewardNet``'s order)."""
    return update(state, rews, mask), apply(state, rews)


__all__ = ["EPS", "RunningMeanStd", "apply", "apply_and_update", "init", "update"]
