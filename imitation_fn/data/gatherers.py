"""Preference gatherers: label pairs of fragments. ``imitation``'s ``SyntheticGatherer`` as a pure function.

The synthetic gatherer is the Bradley–Terry preference model on the fragments' true (discounted)
returns at a temperature; its labels are what a perfectly consistent, Boltzmann-rational human would
give, so it ``vmap``-s over seeds with the rest of a round:

    prefs, entropy = gatherers.synthetic_preferences(key, frags.rews, temperature=1.0)   # (pairs,), ()

A human front end is any host-side ``Fragments -> (pairs,)`` function (see
``imitation_fn.train.preference_comparisons.PreferenceGatherer``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from imitation_fn.core import random
from imitation_fn.data.fragments import discounted_return


def synthetic_preferences(
    key: random.Key,
    rews: Tensor,
    temperature: float = 1.0,
    discount_factor: float = 1.0,
    sample: bool = True,
    threshold: float = 50.0,
) -> tuple[Tensor, Tensor]:
    """``SyntheticGatherer``: labels ``(pairs,)`` from true rewards ``rews: (pairs, 2, L)``, and the mean entropy.

    ``P = 1 / (1 + exp(clip((R² - R¹) / temperature, ±threshold)))``; labels are Bernoulli(P) draws when
    ``sample``, else P. Temperature 0 gives ``(sign(R¹ - R²) + 1) / 2`` (0.5 for ties).
    """
    r1 = discounted_return(rews[:, 0], discount_factor)
    r2 = discounted_return(rews[:, 1], discount_factor)
    if temperature == 0.0:
        return (torch.sign(r1 - r2) + 1) / 2, torch.zeros(())
    p = 1.0 / (1.0 + torch.exp(((r2 - r1) / temperature).clamp(-threshold, threshold)))
    entropy = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)).mean()
    if sample:
        return random.bernoulli(key, p).to(torch.float32), entropy
    return p.to(torch.float32), entropy


__all__ = ["synthetic_preferences"]
