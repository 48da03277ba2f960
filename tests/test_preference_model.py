"""The preference model (imitation_fn.rewards.preference_model): probabilities, loss, uncertainty, regularisers and
the agent's normalised reward by hand.

The reward trainer (``preference_model.train``) is tested through ``preference_comparisons.train_reward`` in
test_preference_comparisons.py.
"""

import dataclasses
import math

import gymnasium as gym
import pytest
import torch
from preference_setup import random_fragments

from imitation_fn import rewards
from imitation_fn.core import random
from imitation_fn.rewards import preference_model

OBS = gym.spaces.Box(-1.0, 1.0, (3,))
ACT = gym.spaces.Box(-2.0, 2.0, (1,))


@dataclasses.dataclass(frozen=True)
class Model:
    """A :class:`preference_model.ModelConfig` (``preference_comparisons.Config`` is another)."""

    noise_prob: float = 0.0
    discount_factor: float = 1.0
    threshold: float = 50.0


def test_preference_model_probability_by_hand() -> None:
    r1, r2 = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.5])
    # Discounted returns 1 + 0.9 * 2 = 2.8 and 0 + 0.9 * 0.5 = 0.45; noise mixes in a coin flip.
    expected = 0.2 * 0.5 + 0.8 / (1 + math.exp(0.45 - 2.8))
    torch.testing.assert_close(
        preference_model.probability(r1, r2, noise_prob=0.2, discount_factor=0.9), torch.tensor(expected)
    )
    torch.testing.assert_close(preference_model.probability(r1, r2), torch.tensor(1 / (1 + math.exp(0.5 - 3.0))))
    # The return difference is clipped at the threshold (in log space).
    big = preference_model.probability(torch.tensor([100.0]), torch.tensor([0.0]), threshold=5.0)
    torch.testing.assert_close(big, torch.tensor(1 / (1 + math.exp(-5.0))))
    # log_probabilities agree with the probabilities, under noise too.
    logit = preference_model.preference_logits(r1, r2, 0.9, 50.0)
    lp1, lp2 = preference_model.log_probabilities(logit, 0.2)
    torch.testing.assert_close(lp1.exp(), torch.tensor(expected))
    torch.testing.assert_close(lp2.exp(), torch.tensor(1 - expected))


def test_cross_entropy_loss_and_metrics_by_hand() -> None:
    cfg = Model(noise_prob=0.1, discount_factor=0.95)
    net = rewards.BasicRewardNet(OBS, ACT)
    params = net.init(random.key(0))
    frags = random_fragments(random.key(1))
    prefs = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.0])
    loss, m = preference_model.cross_entropy_loss(params, net, frags, prefs, cfg)
    r = net.apply(
        params,
        frags.obs.reshape(-1, 3),
        frags.acts.reshape(-1, 1),
        frags.next_obs.reshape(-1, 3),
        frags.dones.reshape(-1),
    ).reshape(8, 2, 5)
    p = preference_model.probability(r[:, 0], r[:, 1], 0.1, 0.95)
    torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy(p, prefs), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m["accuracy"], ((p > 0.5) == (prefs > 0.5)).float().mean())
    gt = preference_model.probability(frags.rews[:, 0], frags.rews[:, 1], 0.1, 0.95)
    torch.testing.assert_close(
        m["gt_reward_loss"], torch.nn.functional.binary_cross_entropy(gt, prefs), rtol=1e-5, atol=1e-6
    )


def test_variance_estimates_by_hand() -> None:
    # 3 members, 2 pairs, L = 2.
    rews = torch.tensor(
        [
            [[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
            [[[2.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [3.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]],
        ]
    )
    diffs = torch.tensor([[2.0, 1.0, -3.0], [0.0, 0.0, 1.0]])  # R1 - R2 per pair, per member
    torch.testing.assert_close(preference_model.variance_estimate(rews, "logit"), diffs.var(1, correction=1))
    p = torch.sigmoid(diffs)
    torch.testing.assert_close(preference_model.variance_estimate(rews, "probability"), p.var(1, correction=0))
    votes = (p > 0.5).float().mean(1)
    torch.testing.assert_close(preference_model.variance_estimate(rews, "label"), votes * (1 - votes))
    with pytest.raises(ValueError, match="not supported"):
        preference_model.variance_estimate(rews, "entropy")


def test_lp_penalty_and_interval_scaler_by_hand() -> None:
    params = {"a": torch.tensor([1.0, -2.0]), "b": torch.tensor([[3.0]])}
    torch.testing.assert_close(preference_model.lp_penalty(params, 2), torch.tensor(1.0 + 4.0 + 9.0))
    torch.testing.assert_close(preference_model.lp_penalty(params, 1), torch.tensor(6.0))
    lam, s, iv = torch.tensor(0.5), 0.1, (0.9, 1.1)

    def scale(train: float, val: float) -> float:
        return float(preference_model.interval_param_scaler(lam, torch.tensor(train), torch.tensor(val), s, iv))

    assert scale(1.0, 1.5) == pytest.approx(0.55)  # overfitting: more regularisation
    assert scale(1.0, 0.5) == pytest.approx(0.45)
    assert scale(1.0, 1.0) == pytest.approx(0.5)
    assert scale(0.0, 0.0) == pytest.approx(0.5)  # 0/0: unchanged
    assert scale(0.0, 1.0) == pytest.approx(0.55)  # infinite ratio


def test_agent_reward_is_the_net_normalised_by_its_statistics() -> None:
    net = rewards.BasicRewardNet(OBS, ACT)
    params = net.init(random.key(0))
    obs, acts, next_obs, dones = random_fragments(random.key(1)).transitions()
    raw = net.apply(params, obs, acts, next_obs, dones)
    norm = rewards.normalize.update(rewards.normalize.init(), raw)
    same = preference_model.agent_reward(net, False, (params, norm), obs, acts, next_obs, dones)
    torch.testing.assert_close(same, raw)
    normed = preference_model.agent_reward(net, True, (params, norm), obs, acts, next_obs, dones)
    torch.testing.assert_close(normed, (raw - raw.mean()) / torch.sqrt(raw.var(correction=0) + 1e-5))
