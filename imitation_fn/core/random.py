"""Explicit, counter-based random keys in pure torch — ``jax.random`` for ``torch.func``.

A key is an ``int64`` tensor of shape ``(2,)`` holding two 32-bit words. Every draw is a pure
function of its key: Threefry-2x32 (20 rounds; Salmon et al., 2011) hashes the key with a counter,
using only adds, rotations and xors on ``int64`` tensors masked to 32 bits. So draws

- work inside ``torch.func.vmap`` with the default ``randomness='error'`` (the key is just data),
- give seed ``i`` the same numbers alone or inside a sweep of any size, on any run or device,
- never touch torch's global generator.

    key = random.key(0)
    k_init, k_data = random.split(key)
    x = random.normal(k_data, (3, 4))

Never reuse a key for two draws you want independent: ``split`` or ``fold_in`` it first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch._C._functorch as functorch_c
from torch import Tensor

_MASK = 0xFFFFFFFF
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA

Key = Tensor  # int64, shape (2,)
Shape = int | Sequence[int]


def _shape(shape: Shape) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _rotl(x: Tensor, r: int) -> Tensor:
    """Rotate 32-bit words left (``>>`` on int32 is arithmetic: mask off the copied sign bits)."""
    return (x << r) | ((x >> (32 - r)) & ((1 << r) - 1))


def _threefry_rounds(key: Key, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """Threefry-2x32's 20 rounds on int32 words (as bit patterns: adds wrap modulo 2**32 like the cipher's)."""
    k0, k1 = key[..., 0].to(torch.int32), key[..., 1].to(torch.int32)
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = x0.to(torch.int32) + ks[0]
    x1 = x1.to(torch.int32) + ks[1]
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + (block + 1)
    return x0, x1


# The cipher as one registered op whose kernel is the Python function above, registered as a composite: the
# compiler's autograd tracing (and vmap, through the batched key) expands it into its ~150 integer ops, which
# inductor fuses as before, while Dynamo records ONE call rather than interpreting every op. Draws dominate the
# graphs of small-network steps, so this cuts the tracing every process pays before its first compiled call.
_LIB = torch.library.Library("imitation_fn", "DEF")
_LIB.define("threefry_rounds(Tensor key, Tensor x0, Tensor x1) -> (Tensor, Tensor)")
for _dispatch_key in ("CompositeImplicitAutograd", "FuncTorchBatched"):
    _LIB.impl("threefry_rounds", _threefry_rounds, _dispatch_key)


_traced_rounds = torch.ops.imitation_fn.threefry_rounds


# Eager on the CPU, the same rounds in numpy: ~150 torch ops cost ~1 ms of dispatch (more under vmap) for
# microseconds of arithmetic, so draws would dominate small-network steps. A second op runs them on the host
# arrays, with a batching rule that calls it once for every seed of a vmap. Compiled code and other devices keep
# the composite op above, which inductor fuses. Tests check the two bit for bit.
_LIB.define("threefry_rounds_host(Tensor key, Tensor x0, Tensor x1) -> (Tensor, Tensor)")


def _host_kernel(key: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    shape = torch.broadcast_shapes(key.shape[:-1], x0.shape, x1.shape)
    k = key.numpy().astype(np.uint32)  # int64 words in [0, 2**32): their low 32 bits, as .to(int32) takes
    k0, k1 = k[..., 0], k[..., 1]
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(_PARITY))
    with np.errstate(over="ignore"):  # uint32 adds wrap modulo 2**32, as the cipher's
        y0 = x0.numpy().astype(np.uint32) + ks[0]
        y1 = x1.numpy().astype(np.uint32) + ks[1]
        for block in range(5):
            for r in _ROTATIONS[block % 2]:
                y0 = y0 + y1
                y1 = ((y1 << np.uint32(r)) | (y1 >> np.uint32(32 - r))) ^ y0
            y0 = y0 + ks[(block + 1) % 3]
            y1 = y1 + ks[(block + 2) % 3] + np.uint32(block + 1)
    out0, out1 = (np.array(np.broadcast_to(y, shape), dtype=np.uint32, order="C").view(np.int32) for y in (y0, y1))
    return torch.from_numpy(out0), torch.from_numpy(out1)


def _host_batching_rule(key: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """vmap's rule: the seed axis of each input in front (size 1 where unbatched), the logical shapes
    right-aligned behind it, then one kernel call broadcasts over all seeds."""
    level = functorch_c.maybe_current_level()
    assert level is not None, "threefry_rounds_host: the batching rule runs inside vmap only"

    def physical(t: Tensor) -> Tensor:
        value, bdim = functorch_c._unwrap_batched(t, level) if functorch_c.is_batchedtensor(t) else (t, None)
        return value.movedim(bdim, 0) if bdim is not None else value.unsqueeze(0)

    key, x0, x1 = physical(key), physical(x0), physical(x1)
    rank = max(key.dim() - 2, x0.dim() - 1, x1.dim() - 1)
    key = key.reshape(key.shape[0], *(1,) * (rank + 2 - key.dim()), *key.shape[1:])
    x0 = x0.reshape(x0.shape[0], *(1,) * (rank + 1 - x0.dim()), *x0.shape[1:])
    x1 = x1.reshape(x1.shape[0], *(1,) * (rank + 1 - x1.dim()), *x1.shape[1:])
    with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.FuncTorchBatched)):
        y0, y1 = _host_rounds(key, x0, x1)
    return functorch_c._add_batch_dim(y0, 0, level), functorch_c._add_batch_dim(y1, 0, level)


_LIB.impl("threefry_rounds_host", _host_kernel, "CPU")
_LIB.impl("threefry_rounds_host", _host_batching_rule, "FuncTorchBatched")
_host_rounds = torch.ops.imitation_fn.threefry_rounds_host


def _rounds(key: Key, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    if key.device.type == "cpu" and not torch.compiler.is_compiling():
        return _host_rounds(key, x0, x1)
    return _traced_rounds(key, x0, x1)


def threefry2x32(key: Key, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """The Threefry-2x32 block cipher: encrypt counter words ``(x0, x1)`` under ``key``.

    Words in and out are int64 in ``[0, 2**32)``. The rounds run on int32, whose adds wrap modulo
    2**32 like the cipher's: twice the SIMD lanes of int64 and no masking after every add.
    """
    y0, y1 = _rounds(key, x0, x1)
    return y0.to(torch.int64) & _MASK, y1.to(torch.int64) & _MASK


def key(seed: int | Tensor, device: torch.device | str | None = None) -> Key:
    """A key from an integer seed (a Python int, or an integer tensor for vmapped seeds), on ``device``
    (default: the seed tensor's device, or the CPU)."""
    if device is None:
        device = seed.device if isinstance(seed, Tensor) else "cpu"
    seed = torch.as_tensor(seed, dtype=torch.int64, device=device)
    return torch.stack([(seed >> 32) & _MASK, seed & _MASK], dim=-1)


def _bits32(key: Key, n: int) -> Tensor:
    """``n`` random 32-bit words as int32 bit patterns (what float draws use: 16 SIMD lanes, not 8)."""
    half = (n + 1) // 2
    counter = torch.arange(half, dtype=torch.int64, device=key.device)
    y0, y1 = _rounds(key, counter, counter + half)
    return torch.cat([y0, y1], dim=-1)[..., :n]


def bits(key: Key, n: int) -> Tensor:
    """``n`` random 32-bit words (as int64 in ``[0, 2**32)``), a pure function of ``key``."""
    return _bits32(key, n).to(torch.int64) & _MASK


def split(key: Key, num: int = 2) -> Tensor:
    """``num`` new independent keys, shape ``(num, 2)``."""
    return bits(key, 2 * num).reshape(*key.shape[:-1], num, 2)


def fold_in(key: Key, data: int | Tensor) -> Key:
    """A new key from ``key`` and an integer (e.g. a step counter, possibly a tensor)."""
    data = torch.as_tensor(data, dtype=torch.int64, device=key.device) & _MASK
    y0, y1 = threefry2x32(key, torch.zeros_like(data), data)
    return torch.stack([y0, y1], dim=-1)


def _words(key: Key, shape: tuple[int, ...]) -> Tensor:
    """One random word per element of ``shape``, int32 (``>>`` on it copies the sign bit: mask after it)."""
    return _bits32(key, math.prod(shape)).reshape(shape)


def randbits63(key: Key, shape: Shape) -> Tensor:
    """Non-negative random int64 of 63 bits."""
    w = _words(key, (*_shape(shape), 2)).to(torch.int64) & _MASK
    return (w[..., 0] << 31) | (w[..., 1] >> 1)


def uniform(
    key: Key,
    shape: Shape = (),
    dtype: torch.dtype = torch.float32,
    minval: float | Tensor = 0.0,
    maxval: float | Tensor = 1.0,
) -> Tensor:
    """Uniform floats in ``[minval, maxval)``."""
    shape = _shape(shape)
    if dtype == torch.float64:
        u = (randbits63(key, shape) >> 10).to(dtype) * 2.0**-53
    else:
        u = ((_words(key, shape) >> 8) & 0xFFFFFF).to(dtype) * 2.0**-24  # the top 24 bits
    return minval + u * (maxval - minval)


def _open_uniform(key: Key, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Uniform in the open interval (0, 1): safe for logs and inverse CDFs.

    One bit fewer than the mantissa holds, so ``k + 0.5`` is exact and the largest value is
    ``1 - 2**-(p+1)``, never a rounded-up 1.0 (which would make ``normal`` return inf).
    """
    if dtype == torch.float64:
        return ((randbits63(key, shape) >> 11).to(dtype) + 0.5) * 2.0**-52
    return (((_words(key, shape) >> 9) & 0x7FFFFF).to(dtype) + 0.5) * 2.0**-23


def normal(key: Key, shape: Shape = (), dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal samples (inverse-CDF transform of an open uniform)."""
    u = _open_uniform(key, _shape(shape), dtype)
    return math.sqrt(2.0) * torch.special.erfinv(2.0 * u - 1.0)


def gumbel(key: Key, shape: Shape = (), dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard Gumbel samples."""
    return -torch.log(-torch.log(_open_uniform(key, _shape(shape), dtype)))


def bernoulli(key: Key, p: float | Tensor = 0.5, shape: Shape | None = None) -> Tensor:
    """Booleans that are ``True`` with probability ``p`` (broadcast to ``shape``)."""
    p = torch.as_tensor(p, device=key.device)
    shape = p.shape if shape is None else _shape(shape)
    return uniform(key, shape, dtype=p.dtype if p.is_floating_point() else torch.float32) < p


def categorical(key: Key, logits: Tensor, shape: Shape | None = None) -> Tensor:
    """Indices drawn from ``softmax(logits)`` over the last axis (Gumbel-max).

    ``shape`` defaults to ``logits.shape[:-1]``; it must broadcast with it.
    """
    shape = logits.shape[:-1] if shape is None else _shape(shape)
    g = gumbel(key, (*shape, logits.shape[-1]), dtype=logits.dtype)
    return torch.argmax(logits + g, dim=-1)


def randint(key: Key, shape: Shape, low: int | Tensor, high: int | Tensor) -> Tensor:
    """Integers in ``[low, high)`` (63-bit words reduced modulo the span: bias < span / 2**63)."""
    span = torch.as_tensor(high, device=key.device) - torch.as_tensor(low, device=key.device)
    return low + torch.remainder(randbits63(key, shape), span)


def permutation(key: Key, n: int) -> Tensor:
    """A uniformly random permutation of ``range(n)``."""
    return torch.argsort(randbits63(key, n), stable=True)


__all__ = [
    "Key",
    "bernoulli",
    "bits",
    "categorical",
    "fold_in",
    "gumbel",
    "key",
    "normal",
    "permutation",
    "randbits63",
    "randint",
    "split",
    "threefry2x32",
    "uniform",
]
