"""The synthetic gatherer (imitation_fn.data.gatherers): Boltzmann-rational labels by hand and in frequency."""

import math

import pytest
import torch

from imitation_fn.core import random
from imitation_fn.data import gatherers


def test_synthetic_gatherer_probabilities_and_temperature_zero() -> None:
    rews = torch.tensor([[[1.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [3.0, 0.0]]])
    probs, entropy = gatherers.synthetic_preferences(random.key(0), rews, temperature=2.0, sample=False)
    expected = torch.tensor([1 / (1 + math.exp((1 - 2) / 2)), 0.5, 1 / (1 + math.exp(3 / 2))])
    torch.testing.assert_close(probs, expected)
    h = -(expected * expected.log() + (1 - expected) * (1 - expected).log()).mean()
    torch.testing.assert_close(entropy, h)
    zero, _ = gatherers.synthetic_preferences(random.key(0), rews, temperature=0.0)
    torch.testing.assert_close(zero, torch.tensor([1.0, 0.5, 0.0]))
    disc, _ = gatherers.synthetic_preferences(random.key(0), rews, discount_factor=0.5, sample=False)
    torch.testing.assert_close(disc, torch.sigmoid(torch.tensor([1.5 - 0.5, 0.0, -3.0])))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_synthetic_label_frequencies_follow_the_boltzmann_model(temperature: float) -> None:
    diffs = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
    rews = torch.stack([torch.stack([diffs, torch.zeros(5)], 1)[:, :, None]] * 1)[0]  # (5, 2, 1)
    n = 4000
    labels = torch.func.vmap(lambda k: gatherers.synthetic_preferences(k, rews, temperature)[0])(
        random.split(random.key(0), n)
    )
    model = torch.sigmoid(diffs / temperature)
    freq = labels.mean(0)
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    # Within 4.5 binomial standard errors of the model at every difference.
    se = torch.sqrt(model * (1 - model) / n)
    assert torch.all((freq - model).abs() < 4.5 * se + 1e-3), (freq, model)
