"""Trajectories and transitions as pytrees of tensors — ``imitation``'s data types.

Tensors only: ``infos`` (arbitrary Python dicts) are kept beside the tensor tree, in the
dataset files, never inside it, so every type here passes through ``vmap`` and ``torch.compile``.
"""

from __future__ import annotations

from torch import Tensor

from imitation_fn.core import struct


class Trajectory(struct.PyTreeNode):
    """One episode. ``obs`` has one more row than ``acts`` (it includes the last observation)."""

    obs: Tensor  # (T + 1, *obs_shape)
    acts: Tensor  # (T, *act_shape)
    terminal: bool = struct.field(static=True)  # ended in a terminal state (not truncated)

    def __len__(self) -> int:
        return int(self.acts.shape[0])


class TrajectoryWithRew(Trajectory):
    """An episode with its environment rewards."""

    rews: Tensor  # (T,) float32


class Transitions(struct.PyTreeNode):
    """A flat batch of transitions, the unit that BC, the discriminators and reward nets consume."""

    obs: Tensor  # (N, *obs_shape)
    acts: Tensor  # (N, *act_shape)
    next_obs: Tensor  # (N, *obs_shape)
    dones: Tensor  # (N,) bool: next_obs ends its episode

    def __len__(self) -> int:
        return int(self.obs.shape[0])


__all__ = ["Trajectory", "TrajectoryWithRew", "Transitions"]
