"""Tests for imitation_fn.data.buffer: ring overwrite, saturation, uniform sampling, vmap over seeds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from imitation_fn.core import checks, random, tree
from imitation_fn.data import buffer
from imitation_fn.data.types import Transitions


def make_batch(start: int, n: int) -> Transitions:
    """Items numbered ``start .. start + n - 1``: every field encodes the item's number."""
    ids = torch.arange(start, start + n)
    obs = ids[:, None].to(torch.float32) * torch.ones(n, 3)
    return Transitions(obs=obs, acts=ids, next_obs=obs + 0.5, dones=ids % 2 == 0)


EXAMPLE = tree.index(make_batch(0, 1), 0)


def test_init_is_empty_with_item_shapes_and_dtypes() -> None:
    buf = buffer.init(4, EXAMPLE)
    checks.assert_shape(buf.storage.obs, (4, 3), "obs")
    checks.assert_shape(buf.storage.acts, (4,), "acts")
    assert buf.storage.acts.dtype == torch.int64 and buf.storage.dones.dtype == torch.bool
    assert buf.size.dtype == buf.insert_pos.dtype == torch.int64 and buf.size.shape == ()
    assert int(buf.size) == int(buf.insert_pos) == 0 and buf.capacity == 4
    assert not bool(buffer.valid_mask(buf).any())
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        buffer.init(0, EXAMPLE)


def test_ring_overwrites_the_oldest_items_in_order() -> None:
    buf = buffer.add(buffer.init(5, EXAMPLE), make_batch(0, 3))
    assert buf.storage.acts.tolist() == [0, 1, 2, 0, 0] and int(buf.size) == 3 and int(buf.insert_pos) == 3
    buf = buffer.add(buf, make_batch(3, 4))  # 3, 4 fill slots 3, 4; 5, 6 overwrite the oldest, 0 and 1
    assert buf.storage.acts.tolist() == [5, 6, 2, 3, 4] and int(buf.size) == 5 and int(buf.insert_pos) == 2
    assert buffer.contents(buf).acts.tolist() == [2, 3, 4, 5, 6]  # oldest first
    # Every field of a Transitions item moved together.
    torch.testing.assert_close(buf.storage.obs[:, 0], buf.storage.acts.to(torch.float32))
    assert torch.equal(buf.storage.dones, buf.storage.acts % 2 == 0)
    buf = buffer.add(buf, make_batch(7, 5))  # exactly capacity: replaces everything, position unchanged
    assert buffer.contents(buf).acts.tolist() == [7, 8, 9, 10, 11] and int(buf.insert_pos) == 2


def test_add_is_pure() -> None:
    empty = buffer.init(3, EXAMPLE)
    one = buffer.add(empty, make_batch(10, 2))
    buffer.add(one, make_batch(20, 3))
    assert int(empty.size) == 0 and bool((empty.storage.acts == 0).all())
    assert one.storage.acts.tolist() == [10, 11, 0] and int(one.size) == 2


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 7), sizes=st.lists(st.integers(1, 7), min_size=1, max_size=8))
def test_matches_a_fifo_model(capacity: int, sizes: list[int]) -> None:
    buf, added = buffer.init(capacity, EXAMPLE), 0
    for n in sizes:
        n = min(n, capacity)
        buf = buffer.add(buf, make_batch(added, n))
        added += n
        assert int(buf.size) == min(added, capacity)
        assert int(buf.insert_pos) == added % capacity
        size = int(buf.size)
        assert buffer.contents(buf).acts[:size].tolist() == list(range(added - size, added))
        assert buffer.valid_mask(buf).tolist() == [i < size for i in range(capacity)]


def test_sample_is_uniform_over_filled_slots_only() -> None:
    buf = buffer.add(buffer.init(100, EXAMPLE), make_batch(0, 10))  # slots 10..99 are empty (zeros)
    batch = buffer.sample(buf, random.key(0), 5000)
    checks.assert_shape(batch.obs, (5000, 3), "obs")
    assert int(batch.acts.min()) >= 0 and int(batch.acts.max()) <= 9
    counts = torch.bincount(batch.acts, minlength=10)
    assert bool((counts > 400).all()) and bool((counts < 600).all()), counts  # 500 each; 4.5 sigma bounds
    # The 10 filled slots were drawn, not slot 0 standing in for empty ones.
    torch.testing.assert_close(batch.obs[:, 0], batch.acts.to(torch.float32))
    # After wrapping, every item is the newest 100: never anything older than item 50.
    buf = buffer.add(buffer.add(buf, make_batch(10, 90)), make_batch(100, 50))
    assert int(buffer.sample(buf, random.key(1), 2000).acts.min()) >= 50


def test_sample_is_deterministic_in_its_key() -> None:
    buf = buffer.add(buffer.init(50, EXAMPLE), make_batch(0, 50))
    a, b, c = (buffer.sample(buf, random.key(k), 20) for k in (3, 3, 4))
    assert tree.allclose(a, b) and not torch.equal(a.acts, c.acts)


def test_sample_from_empty_buffer_is_shape_valid() -> None:
    batch = buffer.sample(buffer.init(8, EXAMPLE), random.key(0), 6)
    checks.assert_shape(batch.obs, (6, 3), "obs")
    assert bool((batch.acts == 0).all())


def test_add_validates_the_batch_statically() -> None:
    buf = buffer.init(4, EXAMPLE)
    with pytest.raises(ValueError, match="batch of 5 items is larger than the buffer's capacity 4"):
        buffer.add(buf, make_batch(0, 5))
    bad = make_batch(0, 2)
    with pytest.raises(ValueError, match=r"batch\.obs has item shape \(2,\), the buffer stores \(3,\)"):
        buffer.add(buf, bad.replace(obs=bad.obs[:, :2]))
    with pytest.raises(ValueError, match=r"batch\.acts has dtype torch\.int32, the buffer stores torch\.int64"):
        buffer.add(buf, bad.replace(acts=bad.acts.to(torch.int32)))
    with pytest.raises(ValueError, match=r"batch\.dones has shape \(3,\), expected a leading batch axis of 2"):
        buffer.add(buf, bad.replace(dones=torch.zeros(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="batch structure differs"):
        buffer.add(buf, {"obs": bad.obs})


def test_vmap_over_seeds_equals_loop() -> None:
    # Buffers at different fill levels (and so different insert positions) per seed.
    n_seeds, capacity = 3, 6
    bufs = [buffer.add(buffer.init(capacity, EXAMPLE), make_batch(100 * s, 2 + 2 * s)) for s in range(n_seeds)]
    batches = [make_batch(1000 + 10 * s, 3) for s in range(n_seeds)]
    keys = random.split(random.key(0), n_seeds)

    def step(buf: buffer.ReplayBuffer, batch: Transitions, key: Tensor) -> tuple[buffer.ReplayBuffer, Transitions]:
        buf = buffer.add(buf, batch)
        return buf, buffer.sample(buf, key, 16)

    new_bufs, samples = torch.func.vmap(step)(tree.stack(bufs), tree.stack(batches), keys)
    for s in range(n_seeds):
        want_buf, want_sample = step(bufs[s], batches[s], keys[s])
        checks.assert_trees_allclose(tree.index(new_bufs, s), want_buf, rtol=0, atol=0, name=f"buffer {s}")
        checks.assert_trees_allclose(tree.index(samples, s), want_sample, rtol=0, atol=0, name=f"sample {s}")
    assert new_bufs.size.tolist() == [5, 6, 6] and new_bufs.insert_pos.tolist() == [5, 1, 3]
    # Masked statistics over whole buffers work under vmap too.
    means = torch.func.vmap(lambda b: (buffer.contents(b).obs[:, 0] * buffer.valid_mask(b)).sum() / b.size)(new_bufs)
    for s in range(n_seeds):
        one = tree.index(new_bufs, s)
        torch.testing.assert_close(means[s], buffer.contents(one).obs[: int(one.size), 0].mean())


def test_init_and_add_inside_vmap() -> None:
    keys = random.split(random.key(1), 4)

    def fill(key: torch.Tensor) -> buffer.ReplayBuffer:
        batch = make_batch(0, 5)
        batch = batch.replace(obs=batch.obs + random.normal(key, (5, 3)))  # seed-dependent data
        buf = buffer.init(4, EXAMPLE)  # unbatched example: storage starts shared, becomes per-seed
        return buffer.add(buffer.add(buf, tree.index(batch, slice(0, 3))), tree.index(batch, slice(3, 5)))

    bufs = torch.func.vmap(fill)(keys)
    checks.assert_tree_shape_prefix(bufs.storage, (4, 4), "storage")
    for s in range(4):
        checks.assert_trees_allclose(tree.index(bufs, s), fill(keys[s]), rtol=0, atol=0, name=f"seed {s}")
    assert not torch.equal(bufs.storage.obs[0], bufs.storage.obs[1])


def test_add_donated_equals_vmapped_add_and_writes_in_place() -> None:
    """Over stacked buffers (a vmapped init's expanded storage first), through the ring's wrap-around."""
    example = {"obs": torch.zeros(3), "done": torch.zeros((), dtype=torch.bool)}
    donated = expected = torch.func.vmap(lambda _: buffer.init(10, example))(torch.zeros(2))
    for i in range(4):  # 4 x 4 items into 10 slots: wraps
        batch = {"obs": torch.randn(2, 4, 3), "done": torch.rand(2, 4) > 0.5}
        expected = torch.func.vmap(buffer.add)(expected, batch)
        storage = donated.storage["obs"]
        donated = buffer.add_donated(donated, batch)
        assert tree.allclose(donated, expected, rtol=0, atol=0)
        if i > 0:  # after the first call the storage is one block of its own, written in place
            assert donated.storage["obs"].data_ptr() == storage.data_ptr()
