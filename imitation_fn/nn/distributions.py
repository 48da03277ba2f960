"""Action distributions as small pytree dataclasses, in the style of distrax.

A distribution is built from network outputs and is itself a pytree, so it can be returned from
a vmapped function. Sampling takes an explicit key from ``imitation_fn.core.random``.

    dist = Categorical(logits=mlp_apply(params, obs))        # logits: (batch, n)
    act, logp = dist.sample_and_log_prob(key)                # (batch,), (batch,)
    loss = -dist.log_prob(expert_acts).mean() - ent_weight * dist.entropy().mean()

Shapes: ``batch_shape`` is the shape of one log-probability; ``Categorical`` events are scalars
(int64 indices), Gaussian events are vectors over the last axis, whose log-densities are summed
over that axis as Stable-Baselines3 does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from imitation_fn.core import random, struct

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Distribution(Protocol):
    """What every distribution here provides."""

    def log_prob(self, x: Tensor) -> Tensor: ...

    def sample(self, key: random.Key, sample_shape: Sequence[int] = ()) -> Tensor: ...

    def sample_and_log_prob(self, key: random.Key, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]: ...

    def mode(self) -> Tensor: ...

    def entropy(self) -> Tensor: ...


class Categorical(struct.PyTreeNode):
    """A categorical distribution over the last axis of ``logits: (*batch, n)``; unnormalised logits are fine."""

    logits: Tensor

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[:-1]

    @property
    def log_probs(self) -> Tensor:
        """Normalised log-probabilities, ``(*batch, n)``."""
        return F.log_softmax(self.logits, dim=-1)

    @property
    def probs(self) -> Tensor:
        """Probabilities, ``(*batch, n)``."""
        return F.softmax(self.logits, dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-probability of indices ``x: (*batch,)`` (any integer or float dtype; broadcasts)."""
        log_probs = self.log_probs
        shape = torch.broadcast_shapes(log_probs.shape[:-1], x.shape)
        log_probs = log_probs.expand(*shape, log_probs.shape[-1])
        index = x.long().unsqueeze(-1).expand(*shape, 1)
        return torch.gather(log_probs, -1, index).squeeze(-1)

    def entropy(self) -> Tensor:
        """Entropy in nats, ``(*batch,)``; impossible actions (``-inf`` logits) contribute 0."""
        log_probs = self.log_probs
        # 0 * -inf would be nan: clamp as torch.distributions.Categorical does.
        log_probs = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)
        return -(log_probs.exp() * log_probs).sum(-1)

    def mode(self) -> Tensor:
        """The most likely index, ``(*batch,)`` int64."""
        return torch.argmax(self.logits, dim=-1)

    def sample(self, key: random.Key, sample_shape: Sequence[int] = ()) -> Tensor:
        """Indices of shape ``(*sample_shape, *batch)``, int64 (Gumbel-max)."""
        return random.categorical(key, self.logits, shape=(*sample_shape, *self.batch_shape))

    def sample_and_log_prob(self, key: random.Key, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        x = self.sample(key, sample_shape)
        return x, self.log_prob(x)


class DiagGaussian(struct.PyTreeNode):
    """A Gaussian with diagonal covariance over the last axis (SB3's ``DiagGaussianDistribution``).

    ``mean: (*batch, d)``; ``log_std`` broadcasts against it (SB3 keeps a state-independent
    ``log_std: (d,)`` parameter).
    """

    mean: Tensor
    log_std: Tensor

    @property
    def event_shape(self) -> torch.Size:
        return torch.broadcast_shapes(self.mean.shape, self.log_std.shape)

    @property
    def batch_shape(self) -> torch.Size:
        return self.event_shape[:-1]

    @property
    def std(self) -> Tensor:
        return self.log_std.exp()

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of ``x: (*batch, d)`` summed over ``d``, ``(*batch,)``."""
        z = (x - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)

    def entropy(self) -> Tensor:
        """Differential entropy summed over ``d``, ``(*batch,)``."""
        log_std = self.log_std.expand(self.event_shape)
        return (0.5 + _HALF_LOG_2PI + log_std).sum(-1)

    def mode(self) -> Tensor:
        return self.mean.expand(self.event_shape)

    def sample(self, key: random.Key, sample_shape: Sequence[int] = ()) -> Tensor:
        """Samples of shape ``(*sample_shape, *batch, d)``, reparameterised (differentiable)."""
        eps = random.normal(key, (*sample_shape, *self.event_shape), dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def sample_and_log_prob(self, key: random.Key, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        x = self.sample(key, sample_shape)
        return x, self.log_prob(x)


def _log1m_tanh_sq(u: Tensor) -> Tensor:
    """``log(1 - tanh(u)**2)``, stable for large ``|u|``: ``2 * (log 2 - u - softplus(-2u))``."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class TanhGaussian(struct.PyTreeNode):
    """``tanh(u)`` with ``u ~ DiagGaussian(mean, log_std)``: SAC's squashed Gaussian, in ``(-1, 1)^d``.

    Log-densities include the change-of-variables term ``-sum log(1 - tanh(u)**2)``. There is no
    closed-form entropy: estimate it with ``-sample_and_log_prob(key)[1]``.
    """

    mean: Tensor
    log_std: Tensor

    @property
    def base(self) -> DiagGaussian:
        """The Gaussian before the squashing."""
        return DiagGaussian(self.mean, self.log_std)

    @property
    def batch_shape(self) -> torch.Size:
        return self.base.batch_shape

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of ``x: (*batch, d)`` in ``(-1, 1)``, ``(*batch,)``.

        ``x`` is clipped to ``±(1 - eps)`` before ``atanh`` so actions on the boundary stay finite.
        Prefer ``sample_and_log_prob``, which uses the pre-squash value and is exact.
        """
        bound = 1.0 - torch.finfo(x.dtype).eps
        u = torch.atanh(x.clamp(-bound, bound))
        return self.base.log_prob(u) - _log1m_tanh_sq(u).sum(-1)

    def mode(self) -> Tensor:
        return torch.tanh(self.base.mode())

    def sample(self, key: random.Key, sample_shape: Sequence[int] = ()) -> Tensor:
        """Samples of shape ``(*sample_shape, *batch, d)``, reparameterised."""
        return torch.tanh(self.base.sample(key, sample_shape))

    def sample_and_log_prob(self, key: random.Key, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        u = self.base.sample(key, sample_shape)
        return torch.tanh(u), self.base.log_prob(u) - _log1m_tanh_sq(u).sum(-1)

    def entropy(self) -> Tensor:
        raise NotImplementedError(
            "TanhGaussian has no closed-form entropy; estimate it with -dist.sample_and_log_prob(key)[1]"
        )


__all__ = ["Categorical", "DiagGaussian", "Distribution", "TanhGaussian"]
