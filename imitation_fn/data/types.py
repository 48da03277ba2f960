"""Trajectories and transitions as pytrees of tensors — ``imitation``'s data types.

Tensors only: per-step ``infos`` (Python dicts) are kept beside the tensor tree, in
:class:`EpisodesWithInfos` and in the dataset files, never inside it, so every pytree here passes
through ``vmap`` and ``torch.compile`` (dicts as static pytree context would be neither hashable nor
cheap to compare).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

from torch import Tensor

from imitation_fn.core import struct
from imitation_fn.core.errors import InputError


class Trajectory(struct.PyTreeNode):
    """One episode. ``obs`` has one more row than ``acts`` (it includes the last observation).

    The constructor (and so ``.replace``) refuses fields of inconsistent lengths with
    :class:`InputError`, checking axis 0 as time. Pytree transforms (``vmap``, ``tree.map``,
    ``tree.stack``) rebuild trajectories without it, so batched or stacked ones pass through them
    unchecked; ``.replace`` is for single episodes.
    """

    obs: Tensor  # (T + 1, *obs_shape)
    acts: Tensor  # (T, *act_shape)
    terminal: bool = struct.field(static=True)  # ended in a terminal state (not truncated)

    def __post_init__(self) -> None:
        self._check_lengths()

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    def _check_lengths(self) -> None:
        """Raise :class:`InputError` unless every field's time axis (axis 0) agrees with ``acts``."""
        n = _rows(self, "acts")
        if n is not None:
            _expect_rows(self, "obs", n + 1, "len(acts) + 1")


class TrajectoryWithRew(Trajectory):
    """An episode with its environment rewards."""

    rews: Tensor  # (T,) float32

    def _check_lengths(self) -> None:
        super()._check_lengths()
        n = _rows(self, "acts")
        if n is not None:
            _expect_rows(self, "rews", n, "len(acts)")


class Transitions(struct.PyTreeNode):
    """A flat batch of transitions, the unit that BC, the discriminators and reward nets consume."""

    obs: Tensor  # (N, *obs_shape)
    acts: Tensor  # (N, *act_shape)
    next_obs: Tensor  # (N, *obs_shape)
    dones: Tensor  # (N,) bool: next_obs ends its episode

    def __len__(self) -> int:
        return int(self.obs.shape[0])


TrajT = TypeVar("TrajT", bound=Trajectory)


@dataclasses.dataclass(frozen=True)
class EpisodesWithInfos(Generic[TrajT]):
    """Trajectories and, beside them, their per-step infos: ``infos[i][t]`` is step ``t`` of trajectory ``i``.

    ``len(infos[i]) == len(trajectories[i])``; an environment without infos gives empty dicts.
    """

    trajectories: list[TrajT]
    infos: list[list[dict[str, Any]]]

    def __post_init__(self) -> None:
        if len(self.infos) != len(self.trajectories):
            raise InputError(f"EpisodesWithInfos: {len(self.trajectories)} trajectories but {len(self.infos)} infos")
        for i, (traj, infos) in enumerate(zip(self.trajectories, self.infos, strict=True)):
            if len(infos) != len(traj):
                raise InputError(f"EpisodesWithInfos: trajectory {i} has {len(traj)} steps but {len(infos)} infos")


def _rows(traj: Trajectory, name: str) -> int | None:
    """Length of field ``name``'s time axis; ``None`` where it cannot be checked.

    Placeholders that are not tensors (``()``, ``None``) and symbolic sizes under ``torch.compile``
    are let through: the check is for data, and must not add guards to a traced graph.
    """
    x = getattr(traj, name)
    if not isinstance(x, Tensor):
        return None
    if x.ndim == 0:
        raise InputError(f"{type(traj).__name__}: {name} is a scalar, expected a time axis of one row per step")
    n = x.shape[0]
    return n if isinstance(n, int) else None


def _expect_rows(traj: Trajectory, name: str, expected: int, formula: str) -> None:
    n = _rows(traj, name)
    if n is not None and n != expected:
        raise InputError(f"{type(traj).__name__}: {name} has {n} rows, expected {formula} = {expected}")


__all__ = ["EpisodesWithInfos", "Trajectory", "TrajectoryWithRew", "Transitions"]
