"""A functional replay buffer: fixed-capacity ring storage as a pytree, in the shape of flashbax.

The buffer is data, not an object with methods: :func:`add` and :func:`sample` are pure functions
that return new values, so a sweep keeps one buffer per seed and ``torch.func.vmap`` batches
``add``/``sample`` over them like any other state.

    buf = buffer.init(capacity=10_000, example=tree.index(transitions, 0))  # ONE item, no batch axis
    buf = buffer.add(buf, transitions)  # a batch: every leaf has a leading axis n <= capacity
    batch = buffer.sample(buf, key, 256)

    # many seeds: stack the buffers (or vmap ``init``), then vmap ``add`` and ``sample``
    bufs = torch.func.vmap(buffer.add)(bufs, batches)
    samples = torch.func.vmap(lambda b, k: buffer.sample(b, k, 256))(bufs, keys)

Shapes never depend on how full the buffer is: ``size`` and ``insert_pos`` are 0-d ``int64``
tensors, writes go through ``index_put`` at computed ring positions, and reads through gathers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from imitation_fn.core import random, struct, tree
from imitation_fn.core.random import Key

Item = Any  # a pytree of tensors, e.g. Transitions


class ReplayBuffer(struct.PyTreeNode):
    """Ring storage of up to ``capacity`` items; the oldest item is overwritten first.

    Slots ``0 .. size - 1`` hold data; until the buffer first wraps around, slot ``i`` holds the
    ``i``-th item added. ``insert_pos`` is the slot the next item goes to (the oldest one once full).
    """

    storage: Item  # every leaf (capacity, *item_shape)
    insert_pos: Tensor  # () int64, in [0, capacity)
    size: Tensor  # () int64, in [0, capacity]: number of filled slots
    capacity: int = struct.field(static=True)


def init(capacity: int, example: Item) -> ReplayBuffer:
    """An empty buffer for items shaped like ``example``: ONE item, without a batch axis.

    Each leaf of ``example`` (shape ``item_shape``) becomes zeros of shape ``(capacity, *item_shape)``
    with its dtype and device. From a batch, pass one row: ``init(capacity, tree.index(batch, 0))``.
    Pure; inside ``vmap`` a batched ``example`` gives a batched buffer.
    """
    if not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"buffer.init: capacity must be a positive int, got {capacity!r}")
    leaves = tree.leaves(example)
    if not leaves:
        raise ValueError("buffer.init: example has no tensor leaves")
    # zeros_like keeps vmap's batching of ``example``; expand + clone makes one real slot per row.
    storage = tree.map(lambda x: torch.zeros_like(x).unsqueeze(0).expand(capacity, *x.shape).clone(), example)
    zero = torch.zeros((), dtype=torch.int64, device=leaves[0].device)
    return ReplayBuffer(storage=storage, insert_pos=zero, size=zero, capacity=capacity)


def add(buffer: ReplayBuffer, batch: Item) -> ReplayBuffer:
    """Write the ``n`` items of ``batch`` (every leaf ``(n, *item_shape)``) at the ring positions.

    Items go to slots ``(insert_pos + arange(n)) % capacity``, overwriting the oldest ones once full.
    ``n`` must be at most ``capacity`` (checked statically, as are the batch's structure, shapes
    and dtypes against the buffer). Pure: the input buffer is not modified.
    """
    n = _check_batch(buffer, batch)
    idx = torch.remainder(buffer.insert_pos + torch.arange(n, device=buffer.insert_pos.device), buffer.capacity)
    # Out-of-place index_put: n <= capacity makes the ring positions distinct, so no write races.
    storage = tree.map(lambda slot, x: slot.index_put((idx,), x), buffer.storage, batch)
    return buffer.replace(
        storage=storage,
        insert_pos=torch.remainder(buffer.insert_pos + n, buffer.capacity),
        size=torch.clamp(buffer.size + n, max=buffer.capacity),
    )


def add_donated(buffers: ReplayBuffer, batch: Item) -> ReplayBuffer:
    """``vmap(add)`` over buffers stacked over seeds, writing into their storage in place instead of copying it.

    For a training loop that drops the buffers it passes in (XLA's buffer donation): :func:`add` copies the whole
    storage on every call, ``O(capacity)``, which for a million-slot buffer costs more than a learning step. The
    input must not be read afterwards: its storage now holds the new items (its ``insert_pos`` and ``size`` do
    not). Leaves of ``batch``: ``(n_seeds, n, *item_shape)``. A storage that is not one block of its own (the
    expanded zeros a vmapped :func:`init` returns) is copied once first.
    """
    n = tree.leaves(batch)[0].shape[1]
    if n > buffers.capacity:
        raise ValueError(f"buffer.add_donated: batch of {n} items is larger than the capacity {buffers.capacity}")
    idx = torch.remainder(
        buffers.insert_pos[:, None] + torch.arange(n, device=buffers.insert_pos.device), buffers.capacity
    )
    rows = torch.arange(idx.shape[0], device=idx.device)[:, None]
    storage = tree.map(lambda slot: slot if slot.is_contiguous() else slot.contiguous(), buffers.storage)
    tree.map(lambda slot, x: slot.index_put_((rows, idx), x.to(slot.dtype)), storage, batch)
    return buffers.replace(
        storage=storage,
        insert_pos=torch.remainder(buffers.insert_pos + n, buffers.capacity),
        size=torch.clamp(buffers.size + n, max=buffers.capacity),
    )


def sample(buffer: ReplayBuffer, key: Key, n: int) -> Item:
    """``n`` items drawn uniformly with replacement from the filled slots; leaves ``(n, *item_shape)``.

    Indices are ``randint(key, (n,), 0, size)``, so no empty slot is ever drawn. On an EMPTY buffer
    (``size == 0``) every index is 0 and the result is the zero-initialised slot 0: shape-valid but
    meaningless; it cannot raise there because ``size`` is data (it may differ across vmapped seeds).
    Check ``buffer.size`` on the host before sampling if that can happen.
    """
    idx = random.randint(key, (n,), 0, torch.clamp(buffer.size, min=1))
    return tree.map(lambda slot: slot[idx], buffer.storage)


def contents(buffer: ReplayBuffer) -> Item:
    """Every slot, oldest item first; leaves ``(capacity, *item_shape)``. Pure.

    Rows ``0 .. size - 1`` are the stored items from oldest to newest; the rest are unfilled slots.
    Pair with :func:`valid_mask` for masked means over the whole buffer.
    """
    start = torch.remainder(buffer.insert_pos - buffer.size, buffer.capacity)  # the oldest item's slot
    order = torch.remainder(start + torch.arange(buffer.capacity, device=start.device), buffer.capacity)
    return tree.map(lambda slot: slot[order], buffer.storage)


def valid_mask(buffer: ReplayBuffer) -> Tensor:
    """``(capacity,)`` bool: which rows of :func:`contents` hold data (the first ``size``)."""
    return torch.arange(buffer.capacity, device=buffer.size.device) < buffer.size


def _check_batch(buffer: ReplayBuffer, batch: Item) -> int:
    """Static checks of ``batch`` against the buffer's storage; returns the batch length ``n``."""
    slots, slot_spec = pytree.tree_flatten_with_path(buffer.storage)
    items, item_spec = pytree.tree_flatten_with_path(batch)
    if slot_spec != item_spec:
        raise ValueError(f"buffer.add: batch structure differs from the buffer's:\n{item_spec}\nvs\n{slot_spec}")
    n = items[0][1].shape[0] if items[0][1].ndim > 0 else -1
    for (path, slot), (_, x) in zip(slots, items, strict=True):
        where = f"batch{pytree.keystr(path)}"
        if x.ndim == 0 or x.shape[0] != n:
            raise ValueError(f"buffer.add: {where} has shape {tuple(x.shape)}, expected a leading batch axis of {n}")
        if x.shape[1:] != slot.shape[1:]:
            raise ValueError(
                f"buffer.add: {where} has item shape {tuple(x.shape[1:])}, the buffer stores {tuple(slot.shape[1:])}"
            )
        if x.dtype != slot.dtype:
            raise ValueError(f"buffer.add: {where} has dtype {x.dtype}, the buffer stores {slot.dtype}")
    if n > buffer.capacity:
        raise ValueError(
            f"buffer.add: batch of {n} items is larger than the buffer's capacity {buffer.capacity}; "
            "add it in chunks or make the buffer larger"
        )
    return n


__all__ = ["ReplayBuffer", "add", "add_donated", "contents", "init", "sample", "valid_mask"]
