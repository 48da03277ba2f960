"""Multi-layer perceptrons as pure functions of a flat parameter dict.

Parameters are a plain ``dict[str, Tensor]`` with ``torch.nn.Linear``'s layout, so safetensors
saves them as they are and an ``nn.Sequential`` of ``Linear`` layers can load them:

    "layers.0.weight": (h1, in)    "layers.0.bias": (h1,)
    ...
    "layers.{L-1}.weight": (out, h_{L-1})    "layers.{L-1}.bias": (out,)

    params = mlp_init(key, [4, 64, 64, 2], output_gain=0.01)   # SB3's action head
    logits = mlp_apply(params, obs)                             # (..., 4) -> (..., 2)

``mlp_init`` is a pure function of its key, so ``torch.func.vmap(mlp_init)`` over N keys
gives the same parameters as N separate calls, stacked.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import Tensor

from imitation_fn.core import random

Params = dict[str, Tensor]
Activation = str | Callable[[Tensor], Tensor]
Init = Literal["orthogonal", "torch_default"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": F.relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,
    "identity": lambda x: x,
}


def get_activation(activation: Activation) -> Callable[[Tensor], Tensor]:
    """The activation function for a name in ``ACTIVATIONS`` (a callable passes through)."""
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        names = ", ".join(repr(n) for n in ACTIVATIONS)
        raise ValueError(f"unknown activation {activation!r}; expected one of {names}") from None


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Draw (and QR) in float32/float64, then cast: half-precision draws and QR are poor or missing.
    return torch.float64 if dtype == torch.float64 else torch.float32


def orthogonal(
    key: random.Key, shape: tuple[int, int], gain: float = 1.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """An orthogonal ``(rows, cols)`` matrix scaled by ``gain``, as ``torch.nn.init.orthogonal_``.

    The smaller dimension is orthonormal: ``W @ W.T == gain**2 * I`` when ``rows <= cols``,
    ``W.T @ W == gain**2 * I`` otherwise. QR of a Gaussian matrix with the signs of ``diag(R)``
    folded into ``Q`` (without that correction ``Q`` is not Haar-distributed).
    """
    rows, cols = shape
    a = random.normal(key, (max(rows, cols), min(rows, cols)), dtype=_work_dtype(dtype))
    q, r = torch.linalg.qr(a)  # q: (max, min), orthonormal columns
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    if rows < cols:
        q = q.transpose(-2, -1)
    # LAPACK returns Q column-major; make it contiguous so safetensors can save it as is.
    return (gain * q).to(dtype).contiguous()


def _num_layers(params: Params) -> int:
    """The number of layers, from the static dict keys; checks that the structure is complete."""
    n = 0
    while f"layers.{n}.weight" in params:
        n += 1
    expected = {f"layers.{i}.{p}" for i in range(n) for p in ("weight", "bias")}
    if n == 0 or set(params) != expected:
        raise ValueError(f"mlp params must have keys layers.{{0..L-1}}.{{weight,bias}}; got {sorted(params)}")
    return n


def mlp_init(
    key: random.Key,
    sizes: Sequence[int],
    *,
    hidden_gain: float = math.sqrt(2.0),
    output_gain: float = 1.0,
    init: Init = "orthogonal",
    dtype: torch.dtype = torch.float32,
) -> Params:
    """Parameters of an MLP with layer widths ``sizes = [in, h1, ..., out]``.

    ``init="orthogonal"`` is Stable-Baselines3's scheme: orthogonal weights with gain
    ``hidden_gain`` (sqrt 2) on hidden layers and ``output_gain`` on the last layer (SB3 uses 0.01
    for action heads, 1 for value heads), zero biases. ``init="torch_default"`` is
    ``nn.Linear``'s default, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases; it
    ignores the gains. Tensors are created on ``key.device``.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp_init needs sizes [in, ..., out] with at least two entries; got {sizes}")
    if init not in ("orthogonal", "torch_default"):
        raise ValueError(f"unknown init {init!r}; expected 'orthogonal' or 'torch_default'")
    n_layers = len(sizes) - 1
    keys = random.split(key, n_layers)
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        if init == "orthogonal":
            gain = output_gain if i == n_layers - 1 else hidden_gain
            weight = orthogonal(keys[i], (fan_out, fan_in), gain=gain, dtype=dtype)
            # zeros_like of the weight, not torch.zeros: under vmap the bias is then batched (a real
            # contiguous tensor per seed), not an unbatched zero broadcast with stride 0.
            bias = torch.zeros_like(weight[:, 0])
        else:
            k_w, k_b = random.split(keys[i])
            bound = 1.0 / math.sqrt(fan_in)
            weight = random.uniform(k_w, (fan_out, fan_in), _work_dtype(dtype), -bound, bound).to(dtype)
            bias = random.uniform(k_b, (fan_out,), _work_dtype(dtype), -bound, bound).to(dtype)
        params[f"layers.{i}.weight"] = weight
        params[f"layers.{i}.bias"] = bias
    return params


def mlp_apply(params: Params, x: Tensor, activation: Activation = "tanh", *, activate_final: bool = False) -> Tensor:
    """Apply the MLP: ``x: (..., in) -> (..., out)``.

    ``activation`` (a name in ``ACTIVATIONS`` or a callable) goes between layers, and after the
    last one only if ``activate_final`` (for a trunk that feeds separate heads).
    """
    act = get_activation(activation)
    n_layers = _num_layers(params)
    for i in range(n_layers):
        x = F.linear(x, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
        if i < n_layers - 1 or activate_final:
            x = act(x)
    return x


def mlp_sizes(params: Params) -> list[int]:
    """The layer widths ``[in, h1, ..., out]`` of an MLP's parameters (per example under vmap)."""
    n_layers = _num_layers(params)
    weights = [params[f"layers.{i}.weight"] for i in range(n_layers)]
    return [weights[0].shape[-1], *(w.shape[-2] for w in weights)]


def param_count(params: Any) -> int:
    """Total number of scalars in a pytree of tensors."""
    return sum(x.numel() for x in pytree.tree_leaves(params) if isinstance(x, Tensor))


def l2_norm(params: Any) -> Tensor:
    """Half the sum of squared entries of every tensor, 0-d: ``imitation``'s BC ``l2_norm``.

    ``imitation`` computes ``sum(th.sum(th.square(w)) for w in policy.parameters()) / 2``, and
    adds ``l2_weight * l2_norm`` to the BC loss.
    """
    leaves = [x for x in pytree.tree_leaves(params) if isinstance(x, Tensor)]
    if not leaves:
        raise ValueError("l2_norm of a pytree with no tensors")
    return sum((torch.sum(torch.square(x)) for x in leaves[1:]), torch.sum(torch.square(leaves[0]))) / 2


__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Init",
    "Params",
    "get_activation",
    "l2_norm",
    "mlp_apply",
    "mlp_init",
    "mlp_sizes",
    "orthogonal",
    "param_count",
]
