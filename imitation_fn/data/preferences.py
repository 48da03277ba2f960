"""Fragment pairs and a bounded preference dataset, as fixed-capacity pytrees.

``imitation``'s ``PreferenceDataset`` is a FIFO queue of ``(fragment 1, fragment 2, preference)``
with an optional ``max_size``; here it is a ring of ``capacity`` slots with a fill count, so
``push`` is pure and vmaps over seeds:

    data = preferences.init(capacity, preferences.example_fragments(obs_space, act_space, length))
    data = preferences.push(data, fragments, prefs)           # oldest pairs evicted once full
    preferences.save("prefs.safetensors", data); data = preferences.load("prefs.safetensors")

Slots ``0 .. size - 1`` hold data, so a trainer that knows ``size`` (the driver does: it is the same
for every seed) draws minibatches from ``permutation(size)`` without data-dependent shapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from imitation_fn.core import serialization, struct, tree
from imitation_fn.core.errors import InputError


class Fragments(struct.PyTreeNode):
    """Pairs of equal-length trajectory fragments: axis ``-2 - len(item)`` is the pair member (2).

    Leaves are ``(n_pairs, 2, fragment_length, ...)``; ``dones`` is True only at a fragment's last step
    when its episode terminated there (``imitation``'s ``flatten_trajectories`` of a terminal fragment);
    ``rews`` are the environment's rewards (zeros when unknown, e.g. for human-labelled data).
    """

    obs: Tensor  # (n_pairs, 2, L, *obs_shape)
    acts: Tensor  # (n_pairs, 2, L, *act_shape)
    next_obs: Tensor  # (n_pairs, 2, L, *obs_shape)
    dones: Tensor  # (n_pairs, 2, L) bool
    rews: Tensor  # (n_pairs, 2, L) float32

    def __len__(self) -> int:
        return int(self.rews.shape[0])

    @property
    def fragment_length(self) -> int:
        return int(self.rews.shape[-1])

    def transitions(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(obs, acts, next_obs, dones)`` with the pair axes flattened: leaves ``(n_pairs * 2 * L, ...)``."""
        obs, acts, next_obs, dones = (
            x.reshape(-1, *x.shape[3:]) for x in (self.obs, self.acts, self.next_obs, self.dones)
        )
        return obs, acts, next_obs, dones


class PreferenceDataset(struct.PyTreeNode):
    """Up to ``capacity`` comparisons; ``preferences[i]`` is P(fragment 1 of pair ``i`` is preferred)."""

    fragments: Fragments  # leaves (capacity, 2, L, ...)
    preferences: Tensor  # (capacity,) float32
    count: Tensor  # () int64: comparisons ever pushed (size = min(count, capacity))
    capacity: int = struct.field(static=True)

    @property
    def size(self) -> Tensor:
        """() int64: comparisons currently held."""
        return torch.clamp(self.count, max=self.capacity)


def example_fragments(
    observation_space: gym.Space[Any], action_space: gym.Space[Any], fragment_length: int
) -> Fragments:
    """One all-zero pair of fragments for these spaces (int64 actions for ``Discrete``): an example for :func:`init`."""
    obs_shape = tuple(observation_space.shape or ())
    act_shape = tuple(action_space.shape or ())
    act_dtype = torch.int64 if isinstance(action_space, gym.spaces.Discrete) else torch.float32
    obs = torch.zeros(1, 2, fragment_length, *obs_shape)
    return Fragments(
        obs=obs,
        acts=torch.zeros(1, 2, fragment_length, *act_shape, dtype=act_dtype),
        next_obs=obs.clone(),
        dones=torch.zeros(1, 2, fragment_length, dtype=torch.bool),
        rews=torch.zeros(1, 2, fragment_length),
    )


def init(capacity: int, example: Fragments) -> PreferenceDataset:
    """An empty dataset for pairs shaped like ``example`` (a batch of at least one pair). Pure."""
    if not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"preferences.init: capacity (max_size) must be a positive int, got {capacity!r}")
    frags = tree.map(lambda x: torch.zeros_like(x[:1]).expand(capacity, *x.shape[1:]).clone(), example)
    zero = torch.zeros((), dtype=torch.int64, device=example.rews.device)
    return PreferenceDataset(
        fragments=frags,
        preferences=torch.zeros(capacity, dtype=torch.float32, device=example.rews.device),
        count=zero,
        capacity=capacity,
    )


def push(dataset: PreferenceDataset, fragments: Fragments, preferences: Tensor) -> PreferenceDataset:
    """Add ``n`` pairs and their preferences ``(n,)``; the oldest pairs are evicted beyond ``capacity``.

    As ``imitation``'s ``push``: pushing more than ``capacity`` pairs keeps the last ``capacity`` of them.
    Shapes and dtypes are checked statically. Pure.
    """
    n = len(fragments)
    if tuple(preferences.shape) != (n,):
        raise ValueError(f"push: preferences have shape {tuple(preferences.shape)}, expected ({n},)")
    if not preferences.is_floating_point():
        raise ValueError(f"push: preferences must be floating point probabilities, got {preferences.dtype}")
    for (path, slot), x in zip(
        serialization.to_flat_dict(dataset.fragments).items(), tree.leaves(fragments), strict=True
    ):
        if x.shape[1:] != slot.shape[1:] or x.dtype != slot.dtype:
            raise ValueError(
                f"push: fragments{path} has item shape {tuple(x.shape[1:])} and dtype {x.dtype}, the dataset "
                f"stores {tuple(slot.shape[1:])} and {slot.dtype} (another fragment_length or space?)"
            )
    skip = max(0, n - dataset.capacity)  # static: only the newest `capacity` pairs can survive
    fragments = tree.map(lambda x: x[skip:], fragments)
    prefs = preferences[skip:].to(torch.float32)
    count = dataset.count + skip
    idx = torch.remainder(count + torch.arange(n - skip, device=count.device), dataset.capacity)
    return dataset.replace(
        fragments=tree.map(lambda slot, x: slot.index_put((idx,), x), dataset.fragments, fragments),
        preferences=dataset.preferences.index_put((idx,), prefs),
        count=count + (n - skip),
    )


def contents(dataset: PreferenceDataset) -> tuple[Fragments, Tensor]:
    """The held pairs oldest first, ``(fragments, preferences)`` with leading axis ``size`` (host-side)."""
    size = int(dataset.size)
    start = int(dataset.count - size) % dataset.capacity
    order = (start + torch.arange(size)) % dataset.capacity
    return tree.map(lambda x: x[order], dataset.fragments), dataset.preferences[order]


def save(path: str | Path, dataset: PreferenceDataset) -> None:
    """Write one (unbatched) dataset as safetensors, with its capacity in the header."""
    if dataset.count.ndim != 0:
        raise ValueError("preferences.save: got a batched dataset (one per seed); save each seed's separately")
    serialization.save(path, dataset, {"kind": "preference_dataset", "capacity": dataset.capacity})


def load(path: str | Path) -> PreferenceDataset:
    """Read a dataset written by :func:`save`; shapes and dtypes come from the file."""
    meta = serialization.load_metadata(path)
    if meta.get("kind") != "preference_dataset":
        raise InputError(f"{path} does not hold a preference dataset (metadata {json.dumps(meta)})")
    flat = serialization.load_flat(path)
    try:
        template = PreferenceDataset(
            fragments=Fragments(**{name: flat[f".fragments.{name}"] for name in Fragments.__dataclass_fields__}),
            preferences=flat[".preferences"],
            count=flat[".count"],
            capacity=int(meta["capacity"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path} is not a complete preference dataset (missing or bad entry {e})") from e
    return serialization.from_flat_dict(flat, template, what=str(path))


__all__ = ["Fragments", "PreferenceDataset", "contents", "example_fragments", "init", "load", "push", "save"]
