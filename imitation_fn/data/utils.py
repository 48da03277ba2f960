"""Trajectory utilities: flattening with rewards, discounted sums, concatenation, fragments, space checks.

:func:`discounted_sum` and :func:`concatenate_batches` are pure tensor functions (vmappable); the rest
work host-side on Python lists of variable-length episodes, like :mod:`imitation_fn.data.rollout`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random, tree
from imitation_fn.core.random import Key
from imitation_fn.data.rollout import flatten_trajectories
from imitation_fn.data.types import Trajectory, TrajectoryWithRew, Transitions

T = TypeVar("T")
TrajT = TypeVar("TrajT", bound=Trajectory)


class TransitionsWithRew(Transitions):
    """:class:`Transitions` with the environment reward of each one (``imitation``'s ``TransitionsWithRew``)."""

    rews: Tensor  # (N,) float32: received after taking acts[i] in obs[i]


# --------------------------------------------------------------------------------------------
# Pure
# --------------------------------------------------------------------------------------------


def discounted_sum(rews: Tensor, gamma: float | Tensor) -> Tensor:
    """``sum_t gamma**t * rews[..., t]`` over the LAST axis (time, first step undiscounted). Pure.

    ``rews: (..., T)`` gives ``(...)``; ``gamma`` is a float or a tensor broadcastable to ``(...)``
    (a 0-d tensor in a vmapped sweep). ``gamma=0`` gives ``rews[..., 0]`` and ``gamma=1`` the plain sum.
    ``imitation.data.rollout.discounted_sum`` documents the same but, for 2-D input, its code sums
    over axis 0; to reproduce that, pass ``rews.T``.
    """
    dtype = rews.dtype if rews.is_floating_point() else torch.get_default_dtype()
    steps = torch.arange(rews.shape[-1], dtype=dtype, device=rews.device)
    if isinstance(gamma, Tensor):
        powers = torch.pow(gamma.to(dtype).unsqueeze(-1), steps)  # 0 ** 0 == 1: gamma=0 keeps rews[..., 0]
    else:
        powers = torch.pow(torch.tensor(float(gamma), dtype=dtype, device=rews.device), steps)
    return (rews.to(dtype) * powers).sum(-1)


def concatenate_batches(batches: Sequence[T]) -> T:
    """Concatenate pytrees of tensors (e.g. :class:`Transitions`) along their leading axis."""
    if len(batches) == 0:
        raise ValueError("concatenate_batches: got an empty sequence")
    return tree.map(lambda *xs: torch.cat(xs), batches[0], *batches[1:])


# --------------------------------------------------------------------------------------------
# Host-side
# --------------------------------------------------------------------------------------------


def flatten_trajectories_with_rew(trajectories: Sequence[TrajectoryWithRew]) -> TransitionsWithRew:
    """:func:`~imitation_fn.data.rollout.flatten_trajectories`, keeping each transition's reward."""
    without = [i for i, traj in enumerate(trajectories) if not isinstance(traj, TrajectoryWithRew)]
    if without:
        raise ValueError(f"flatten_trajectories_with_rew: trajectory {without[0]} has no rewards")
    trans = flatten_trajectories(trajectories)
    rews = torch.cat([traj.rews for traj in trajectories])
    return TransitionsWithRew(obs=trans.obs, acts=trans.acts, next_obs=trans.next_obs, dones=trans.dones, rews=rews)


def item_mismatch(trajs: Sequence[Trajectory]) -> str | None:
    """Where the trajectories' observations or actions differ in item shape or dtype (they are batched
    together), or None when they all agree."""
    first = trajs[0]
    for i, traj in enumerate(trajs[1:], start=1):
        for name in ("obs", "acts"):
            want, got = getattr(first, name), getattr(traj, name)
            if got.shape[1:] != want.shape[1:] or got.dtype != want.dtype:
                return (
                    f"trajectory {i} {name} has item shape {tuple(got.shape[1:])} dtype {got.dtype}, "
                    f"trajectory 0 has {tuple(want.shape[1:])} dtype {want.dtype}"
                )
    return None


def concatenate(trajectory_lists: Sequence[Sequence[TrajT]]) -> list[TrajT]:
    """Join lists of trajectories (e.g. DAgger rounds, several demo files) into one list, in order.

    Raises if some have rewards and others not, or if observation/action shapes or dtypes differ.
    """
    trajs = list(itertools.chain.from_iterable(trajectory_lists))
    if not trajs:
        return trajs
    has_rews = [isinstance(traj, TrajectoryWithRew) for traj in trajs]
    if any(has_rews) and not all(has_rews):
        raise ValueError(f"concatenate: trajectory {has_rews.index(not has_rews[0])} differs in having rewards")
    mismatch = item_mismatch(trajs)
    if mismatch is not None:
        raise ValueError(f"concatenate: {mismatch}")
    return trajs


def _fragment(traj: TrajT, start: int, length: int) -> TrajT:
    """Steps ``start .. start + length`` of ``traj``: ``length`` actions, ``length + 1`` observations."""
    end = start + length
    changes: dict[str, Any] = {
        "obs": traj.obs[start : end + 1],
        "acts": traj.acts[start:end],
        # A fragment ends in a terminal state only if it ends where its terminal episode ends.
        "terminal": traj.terminal and end == len(traj),
    }
    if isinstance(traj, TrajectoryWithRew):
        changes["rews"] = traj.rews[start:end]
    return traj.replace(**changes)


def _long_enough(trajs: Sequence[TrajT], fragment_length: int, caller: str) -> list[TrajT]:
    if fragment_length < 1:
        raise ValueError(f"{caller}: fragment_length must be >= 1, got {fragment_length}")
    usable = [traj for traj in trajs if len(traj) >= fragment_length]
    if not usable:
        lengths = sorted({len(traj) for traj in trajs})
        raise ValueError(
            f"{caller}: no trajectories are long enough for the desired fragment length of {fragment_length} "
            f"(trajectory lengths: {lengths[:10]}{' ...' if len(lengths) > 10 else ''})"
        )
    if len(usable) < len(trajs):
        warnings.warn(
            f"{caller}: discarded {len(trajs) - len(usable)} out of {len(trajs)} trajectories because they are "
            f"shorter than the fragment length of {fragment_length}",
            stacklevel=3,
        )
    return usable


def split_into_fragments(
    trajectories: TrajT | Sequence[TrajT], fragment_length: int, *, stride: int | None = None
) -> list[TrajT]:
    """Cut episodes into fixed-length fragments: ``fragment_length`` steps, ``fragment_length + 1`` obs each.

    Fragments start at ``0, stride, 2 * stride, ...`` (default ``stride = fragment_length``: disjoint)
    and a tail shorter than ``fragment_length`` is dropped. A fragment is ``terminal`` only if it
    ends where a terminal episode ends (``imitation``'s ``RandomFragmenter`` convention).
    Episodes shorter than ``fragment_length`` are skipped with a warning; if all are, ``ValueError``.
    """
    trajs = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
    usable = _long_enough(trajs, fragment_length, "split_into_fragments")
    stride = fragment_length if stride is None else stride
    if stride < 1:
        raise ValueError(f"split_into_fragments: stride must be >= 1, got {stride}")
    return [
        _fragment(traj, start, fragment_length)
        for traj in usable
        for start in range(0, len(traj) - fragment_length + 1, stride)
    ]


def sample_fragments(
    key: Key, trajectories: Sequence[TrajT], fragment_length: int, num_fragments: int, *, warning_threshold: int = 10
) -> list[TrajT]:
    """``num_fragments`` random fragments, as ``imitation``'s ``RandomFragmenter`` draws them.

    With replacement: an episode is chosen with probability proportional to its length, then a
    start uniformly in ``[0, len - fragment_length]``. Episodes shorter than ``fragment_length`` are
    never used. Warns if the usable transitions are fewer than ``warning_threshold`` times
    ``num_fragments * fragment_length`` (many repeats); ``warning_threshold=0`` disables that.
    """
    usable = _long_enough(list(trajectories), fragment_length, "sample_fragments")
    lengths = torch.tensor([len(traj) for traj in usable], dtype=torch.float64)
    needed = num_fragments * fragment_length
    if lengths.sum() < needed:
        warnings.warn(
            "sample_fragments: fewer transitions available than needed for the desired number of fragments; "
            f"some transitions will appear multiple times ({int(lengths.sum())} available, {needed} needed)",
            stacklevel=2,
        )
    elif warning_threshold and lengths.sum() < warning_threshold * needed:
        warnings.warn(
            f"sample_fragments: only {int(lengths.sum())} transitions available for {needed} sampled ones "
            f"(less than warning_threshold={warning_threshold} times as many); some will repeat",
            stacklevel=2,
        )
    traj_key, start_key = random.split(key)
    which = random.categorical(traj_key, torch.log(lengths), (num_fragments,)).tolist()
    spans = torch.tensor([len(usable[i]) - fragment_length + 1 for i in which], dtype=torch.int64)
    starts = random.randint(start_key, (num_fragments,), 0, spans).tolist()
    return [_fragment(usable[i], s, fragment_length) for i, s in zip(which, starts, strict=True)]


def check_spaces(
    data: Sequence[Trajectory] | Transitions,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    *,
    strict_dtype: bool = False,
) -> None:
    """Raise ``ValueError`` naming the field when ``data`` does not fit an environment's spaces.

    Checks each observation's and action's shape against the space's shape, its dtype kind (float /
    integer / bool) against the space's dtype (exact dtype with ``strict_dtype``), and that discrete /
    binary values lie in range (``[start, start + n)``, ``{0, 1}``). ``data`` is a list of trajectories or a batch of
    :class:`Transitions`. Box bounds are not checked (datasets often exceed declared bounds).
    """
    if isinstance(data, Transitions):
        _check_field("obs", data.obs, observation_space, strict_dtype, "transitions")
        _check_field("next_obs", data.next_obs, observation_space, strict_dtype, "transitions")
        _check_field("acts", data.acts, action_space, strict_dtype, "transitions")
        return
    for i, traj in enumerate(data):
        _check_field("obs", traj.obs, observation_space, strict_dtype, f"trajectory {i}")
        _check_field("acts", traj.acts, action_space, strict_dtype, f"trajectory {i}")


def _space_shape_and_dtype(space: gym.Space[Any]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    if isinstance(space, gym.spaces.Discrete | gym.spaces.Box | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        assert space.shape is not None and space.dtype is not None
        return tuple(space.shape), np.dtype(space.dtype)
    raise ValueError(
        f"check_spaces: unsupported space {space}; Box, Discrete, MultiDiscrete and MultiBinary are supported "
        "(flatten Dict/Tuple observations first)"
    )


def _kind(dtype: torch.dtype | np.dtype[Any]) -> str:
    if isinstance(dtype, torch.dtype):
        return "bool" if dtype == torch.bool else "float" if dtype.is_floating_point else "integer"
    return "bool" if dtype == np.bool_ else "float" if np.issubdtype(dtype, np.floating) else "integer"


def _check_field(name: str, x: Tensor, space: gym.Space[Any], strict_dtype: bool, where: str) -> None:
    shape, np_dtype = _space_shape_and_dtype(space)
    space_name = "observation_space" if name in ("obs", "next_obs") else "action_space"
    if tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"check_spaces: {where} {name} has shape {tuple(x.shape)}, expected (n, *{shape}) from "
            f"{space_name} {space} (found item shape {tuple(x.shape[1:])}, expected {shape})"
        )
    want_dtype = torch.from_numpy(np.zeros(0, dtype=np_dtype)).dtype
    # MultiBinary's int8 and a bool dataset are the same data; other kinds must match.
    kinds_ok = _kind(x.dtype) == _kind(np_dtype) or (
        isinstance(space, gym.spaces.MultiBinary) and _kind(x.dtype) in ("bool", "integer")
    )
    if not kinds_ok or (strict_dtype and x.dtype != want_dtype):
        wanted = f"dtype {want_dtype}" if strict_dtype else f"a {_kind(np_dtype)} dtype (space dtype {want_dtype})"
        raise ValueError(
            f"check_spaces: {where} {name} has dtype {x.dtype}, expected {wanted} from {space_name} {space}"
        )
    if x.numel() > 0 and isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        if isinstance(space, gym.spaces.MultiBinary):
            low, high = torch.tensor(0, device=x.device), torch.tensor(2, device=x.device)
        else:
            n = space.nvec if isinstance(space, gym.spaces.MultiDiscrete) else space.n
            low = torch.as_tensor(np.asarray(space.start, dtype=np.int64), device=x.device)
            high = low + torch.as_tensor(np.asarray(n, dtype=np.int64), device=x.device)
        bad = (x.to(torch.int64) < low) | (x.to(torch.int64) >= high)
        if bool(bad.any()):
            value = x[bad][0].item()
            raise ValueError(
                f"check_spaces: {where} {name} has value {value} outside {space_name} {space} "
                f"({int(bad.sum())} of {x.numel()} values out of range)"
            )


__all__ = [
    "TransitionsWithRew",
    "check_spaces",
    "concatenate",
    "concatenate_batches",
    "discounted_sum",
    "flatten_trajectories_with_rew",
    "item_mismatch",
    "sample_fragments",
    "split_into_fragments",
]
