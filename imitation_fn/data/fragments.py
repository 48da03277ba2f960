"""Fragmenters: pairs of equal-length fragments cut from a padded pool of trajectories, as pure functions.

``imitation``'s ``RandomFragmenter`` (and the selection step of its ``ActiveSelectionFragmenter``) over a
:class:`Pool` — a fixed dataset of trajectories, or an agent's sampled sub-environment streams — with
fixed shapes, so sampling ``vmap``-s over seeds:

    pool = fragments.pool_from_trajectories(trajs, fragment_length=50)      # host-side, once
    fragments.check_fragment_supply([len(t) for t in trajs], 50, num_pairs, warning_threshold=10)
    frags = fragments.random_fragments(key, pool, fragment_length=50, num_pairs=64)   # leaves (64, 2, 50, ...)
    frags = fragments.select_most_uncertain(frags, variances, 16)                     # active selection

:func:`imitation_fn.data.utils.sample_fragments` is the host-side counterpart over Python lists.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from imitation_fn.core import random, struct, tree
from imitation_fn.data.preferences import Fragments
from imitation_fn.data.types import TrajectoryWithRew


def discounted_return(rews: Tensor, discount_factor: float | Tensor) -> Tensor:
    """``Σ_t γ^t r_t`` over the last axis (the fragment's steps)."""
    if isinstance(discount_factor, float) and discount_factor == 1.0:
        return rews.sum(-1)
    t = torch.arange(rews.shape[-1], device=rews.device, dtype=rews.dtype)
    return (torch.as_tensor(discount_factor, dtype=rews.dtype, device=rews.device) ** t * rews).sum(-1)


class Pool(struct.PyTreeNode):
    """Trajectories to cut fragments from, padded to ``T`` steps: leaves ``(N, T, ...)``.

    Row ``n`` is one trajectory (a dataset) or one sub-environment's stream (agent samples; episodes
    end where ``ends``). A window may not cross an episode end nor reach padding (``valid``).
    ``weight`` gives each row's windows their probability factor (``imitation`` picks a trajectory
    with probability ∝ its length, then a uniform start: ``len / (len - L + 1)`` per window).
    """

    obs: Tensor  # (N, T, *obs_shape)
    acts: Tensor  # (N, T, *act_shape)
    next_obs: Tensor  # (N, T, *obs_shape)
    rews: Tensor  # (N, T) float32: true rewards
    terminal: Tensor  # (N, T) bool: the episode terminated at this step (the reward net's ``done``)
    ends: Tensor  # (N, T) bool: the episode ended here (terminated or truncated)
    valid: Tensor  # (N, T) bool: not padding
    weight: Tensor  # (N,) float32


def pool_from_trajectories(trajectories: Sequence[TrajectoryWithRew], fragment_length: int) -> Pool:
    """A fixed dataset as a :class:`Pool` (host-side): one row per trajectory, zero-padded."""
    if not trajectories:
        raise ValueError("pool_from_trajectories: got no trajectories")
    t_max = max(len(t) for t in trajectories)

    def pad(x: Tensor) -> Tensor:
        return torch.cat([x, x.new_zeros((t_max - x.shape[0], *x.shape[1:]))])

    lengths = torch.tensor([len(t) for t in trajectories])
    steps = torch.arange(t_max)
    last = steps[None] == (lengths[:, None] - 1)
    terminal = torch.tensor([t.terminal for t in trajectories])[:, None] & last
    weight = torch.where(
        lengths >= fragment_length, lengths / (lengths - fragment_length + 1).clamp(min=1), torch.zeros(())
    ).to(torch.float32)
    return Pool(
        obs=torch.stack([pad(t.obs[:-1]) for t in trajectories]),
        acts=torch.stack([pad(t.acts) for t in trajectories]),
        next_obs=torch.stack([pad(t.obs[1:]) for t in trajectories]),
        rews=torch.stack([pad(t.rews.to(torch.float32)) for t in trajectories]),
        terminal=terminal,
        ends=last,
        valid=steps[None] < lengths[:, None],
        weight=weight,
    )


def check_fragment_supply(lengths: Sequence[int], fragment_length: int, num_pairs: int, warning_threshold: int) -> None:
    """``RandomFragmenter``'s host-side checks: raise if no trajectory is long enough, warn if transitions are few."""
    usable = [n for n in lengths if n >= fragment_length]
    if not usable:
        raise ValueError(f"No trajectories are long enough for the desired fragment length of {fragment_length}.")
    if len(usable) < len(lengths):
        warnings.warn(
            f"Discarded {len(lengths) - len(usable)} out of {len(lengths)} trajectories because they are shorter "
            f"than the desired length of {fragment_length}.",
            stacklevel=2,
        )
    needed, available = 2 * num_pairs * fragment_length, sum(usable)
    if available < needed:
        warnings.warn(
            "Fewer transitions available than needed for desired number of fragment pairs. "
            "Some transitions will appear multiple times.",
            stacklevel=2,
        )
    elif warning_threshold and available < warning_threshold * needed:
        warnings.warn(
            f"Samples will contain {needed} transitions in total and only {available} are available. "
            "Because we sample with replacement, a significant number of transitions are likely to appear "
            "multiple times.",
            stacklevel=2,
        )


def window_weights(pool: Pool, fragment_length: int) -> Tensor:
    """``(N, T - L + 1)``: the probability weight of each window start (0 where the window is not allowed)."""
    length = fragment_length
    n, t = pool.rews.shape
    if t < length:
        raise ValueError(f"trajectories have {t} steps, fewer than fragment_length={length}")
    zero = torch.zeros(n, 1, device=pool.rews.device)
    # A window [s, s + L) is allowed iff all its steps are valid and no episode ends before its last step.
    bad_step = torch.cat([zero, torch.cumsum((~pool.valid).to(torch.float32), 1)], 1)
    bad_end = torch.cat([zero, torch.cumsum(pool.ends.to(torch.float32), 1)], 1)
    starts = torch.arange(t - length + 1, device=pool.rews.device)
    invalid = bad_step[:, starts + length] - bad_step[:, starts]
    crossing = bad_end[:, starts + length - 1] - bad_end[:, starts]
    ok = (invalid == 0) & (crossing == 0)
    return torch.where(ok, pool.weight[:, None], torch.zeros((), device=ok.device))


def random_fragments(key: random.Key, pool: Pool, fragment_length: int, num_pairs: int) -> Fragments:
    """``RandomFragmenter``: ``2 * num_pairs`` windows drawn with replacement, paired in order. Pure.

    Inverse-CDF sampling over all allowed windows (``searchsorted``): fixed shapes under vmap. A pool
    without any allowed window gives meaningless fragments; :func:`check_fragment_supply` catches it first.
    """
    w = window_weights(pool, fragment_length)
    n_starts = w.shape[1]
    cdf = torch.cumsum(w.reshape(-1).to(torch.float64), 0)
    u = random.uniform(key, (2 * num_pairs,), torch.float64) * cdf[-1]
    flat = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[0] - 1)
    row, start = flat // n_starts, flat % n_starts
    t = start[:, None] + torch.arange(fragment_length, device=start.device)  # (2P, L)
    r = row[:, None].expand_as(t)

    def cut(x: Tensor) -> Tensor:
        y = x[r, t]  # (2P, L, ...)
        return y.reshape(num_pairs, 2, *y.shape[1:])

    return Fragments(
        obs=cut(pool.obs),
        acts=cut(pool.acts),
        next_obs=cut(pool.next_obs),
        dones=cut(pool.terminal),
        rews=cut(pool.rews),
    )


def select_most_uncertain(fragments: Fragments, variances: Tensor, num_pairs: int) -> Fragments:
    """``ActiveSelectionFragmenter``'s pick: the ``num_pairs`` pairs with the highest variance, highest first
    (ties: the earlier pair). ``variances: (pairs,)``, e.g. ``preference_model.variance_estimate``."""
    order = torch.argsort(variances, descending=True, stable=True)[:num_pairs]
    return tree.map(lambda x: x[order], fragments)


__all__ = [
    "Pool",
    "check_fragment_supply",
    "discounted_return",
    "pool_from_trajectories",
    "random_fragments",
    "select_most_uncertain",
    "window_weights",
]
