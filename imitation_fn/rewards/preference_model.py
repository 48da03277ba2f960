"""The Bradley–Terry preference model over a reward net, its loss, and the reward trainer, as pure functions.

``imitation``'s ``PreferenceModel``, ``ActiveSelectionFragmenter``, ``CrossEntropyRewardLoss``,
``LpRegularizer`` / ``WeightDecayRegularizer`` with ``IntervalParamScaler``, ``BasicRewardTrainer`` /
``EnsembleTrainer``, and the (normalised) reward the agent trains on:

    p = preference_model.probability(rews1, rews2, noise_prob, discount_factor, threshold)   # P(σ¹ ≻ σ²)
    frags, metrics = preference_model.active_fragments(cfg, net, params, key, pool, n_pairs)  # ensembles only
    loss, metrics = preference_model.cross_entropy_loss(params, net, frags, prefs, cfg)
    ts = preference_model.TrainState(params, preference_model.init_optimizer(params, lr, wd), lam, key)
    net = preference_model.make_net(cfg, observation_space, action_space)      # a BasicRewardNet or an ensemble
    ts, metrics = preference_model.train(cfg, net, ts, dataset, n_items)     # the epochs over a dataset
    rews = preference_model.agent_reward(net, normalize, (params, norm), obs, acts, next_obs, dones)

``P(σ¹ ≻ σ²) = noise/2 + (1 - noise) / (1 + exp(clip(R² - R¹, ±threshold)))`` with ``Rⁱ = Σ_t γ^t r(σⁱ_t)``.
Shapes: fragments ``(pairs, 2, L, ...)``, ensemble rewards ``(members, pairs, 2, L)``. ``cfg`` is any object
with the hyperparameters named in :class:`NetConfig`, :class:`ModelConfig` / :class:`ActiveSelectionConfig` /
:class:`TrainerConfig` (``preference_comparisons.Config`` is one).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import optim, random, struct, tree
from imitation_fn.data.fragments import Pool, discounted_return, random_fragments, select_most_uncertain
from imitation_fn.data.preferences import Fragments, PreferenceDataset
from imitation_fn.nn.cnn import is_image_space
from imitation_fn.nn.normalize import RunningMeanStd
from imitation_fn.rewards import normalize as reward_normalize
from imitation_fn.rewards.cnn import CnnRewardNet
from imitation_fn.rewards.ensemble import RewardEnsemble
from imitation_fn.rewards.nets import BasicRewardNet

Metrics = dict[str, Tensor]


class NetConfig(Protocol):
    """The reward net's shape: a ``BasicRewardNet`` of these inputs, or an ensemble of ``ensemble_size`` of them."""

    @property
    def reward_hid_sizes(self) -> tuple[int, ...]: ...
    @property
    def reward_use_state(self) -> bool: ...
    @property
    def reward_use_action(self) -> bool: ...
    @property
    def reward_use_next_state(self) -> bool: ...
    @property
    def reward_use_done(self) -> bool: ...
    @property
    def ensemble_size(self) -> int | None: ...


class ModelConfig(Protocol):
    """The preference model's hyperparameters."""

    @property
    def noise_prob(self) -> float: ...  # assumed probability that a label is uniformly random
    @property
    def discount_factor(self) -> float: ...  # of the predicted fragment returns
    @property
    def threshold(self) -> float: ...  # clip of the predicted return difference, in log space


class ActiveSelectionConfig(ModelConfig, Protocol):
    """What :func:`active_fragments` reads besides the model."""

    @property
    def fragment_length(self) -> int: ...
    @property
    def fragment_sample_factor(self) -> float: ...  # candidates drawn per pair kept
    @property
    def uncertainty_on(self) -> str: ...  # "logit", "probability" or "label": see variance_estimate


class TrainerConfig(ModelConfig, Protocol):
    """What :func:`train` reads besides the model (see ``preference_comparisons.Config`` for each one's meaning)."""

    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def minibatch_size(self) -> int | None: ...
    @property
    def ensemble_size(self) -> int | None: ...
    @property
    def regularizer(self) -> str: ...  # "none", "lp" or "weight_decay"
    @property
    def regularizer_p(self) -> int: ...
    @property
    def lambda_updater(self) -> str: ...  # "none" or "interval"
    @property
    def scaling_factor(self) -> float: ...
    @property
    def tolerable_interval(self) -> tuple[float, float]: ...
    @property
    def val_split(self) -> float | None: ...


# ---------------------------------------------------------------------------------------------------------------------
# The preference model (Bradley–Terry)
# ---------------------------------------------------------------------------------------------------------------------


def make_net(cfg: NetConfig, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> Any:
    """The reward net ``cfg`` describes: a ``BasicRewardNet`` (a ``CnnRewardNet`` on images, the hidden sizes as
    channels), or a ``RewardEnsemble`` of them."""
    uses = (cfg.reward_use_state, cfg.reward_use_action, cfg.reward_use_next_state, cfg.reward_use_done)
    member: BasicRewardNet | CnnRewardNet
    if is_image_space(observation_space):
        member = CnnRewardNet(
            observation_space, action_space, *uses, hwc_format=False, hid_channels=cfg.reward_hid_sizes
        )
    else:
        member = BasicRewardNet(observation_space, action_space, *uses, hid_sizes=cfg.reward_hid_sizes)
    return member if cfg.ensemble_size is None else RewardEnsemble(member, cfg.ensemble_size)


def preference_logits(rews1: Tensor, rews2: Tensor, discount_factor: float, threshold: float) -> Tensor:
    """``clip(R¹ - R²)``: the Bradley–Terry logit that fragment 1 is preferred; rewards ``(..., L)``."""
    diff = discounted_return(rews2, discount_factor) - discounted_return(rews1, discount_factor)
    return -diff.clamp(-threshold, threshold)


def log_probabilities(logit: Tensor, noise_prob: float) -> tuple[Tensor, Tensor]:
    """``(log P(1 ≻ 2), log P(2 ≻ 1))`` under label noise, computed stably from the logit."""
    lp1, lp2 = torch.nn.functional.logsigmoid(logit), torch.nn.functional.logsigmoid(-logit)
    if noise_prob == 0.0:
        return lp1, lp2
    half = torch.full_like(logit, math.log(noise_prob / 2))
    keep = math.log1p(-noise_prob) if noise_prob < 1.0 else -math.inf
    return torch.logaddexp(half, keep + lp1), torch.logaddexp(half, keep + lp2)


def probability(
    rews1: Tensor, rews2: Tensor, noise_prob: float = 0.0, discount_factor: float = 1.0, threshold: float = 50.0
) -> Tensor:
    """``imitation``'s ``PreferenceModel.probability``: P(fragment 1 ≻ fragment 2) from rewards ``(..., L)``."""
    p = torch.sigmoid(preference_logits(rews1, rews2, discount_factor, threshold))
    return noise_prob * 0.5 + (1.0 - noise_prob) * p


def binary_cross_entropy(lp1: Tensor, lp2: Tensor, prefs: Tensor) -> Tensor:
    """``torch.nn.functional.binary_cross_entropy`` from log-probabilities (logs clamped at -100, as torch does)."""
    return -(prefs * lp1.clamp(min=-100) + (1 - prefs) * lp2.clamp(min=-100)).mean(-1)


def fragment_rewards(net: Any, params: Any, fragments: Fragments) -> Tensor:
    """Predicted rewards ``(pairs, 2, L)``, or ``(members, pairs, 2, L)`` for a :class:`RewardEnsemble`."""
    shape = fragments.rews.shape
    flat = fragments.transitions()
    if isinstance(net, RewardEnsemble):
        return net.apply_all(params, *flat).reshape(-1, *shape)
    return net.apply(params, *flat).reshape(shape)


def variance_estimate(
    member_rews: Tensor,
    uncertainty_on: str = "logit",
    noise_prob: float = 0.0,
    discount_factor: float = 1.0,
    threshold: float = 50.0,
) -> Tensor:
    """``ActiveSelectionFragmenter.variance_estimate`` of every pair: ``(members, pairs, 2, L) -> (pairs,)``.

    ``logit``: unbiased variance over members of the (undiscounted) return difference; ``probability``:
    population variance of the preference probability; ``label``: ``p̂(1 - p̂)`` of the members' votes.
    """
    if uncertainty_on == "logit":
        returns = member_rews.sum(-1)
        return (returns[:, :, 0] - returns[:, :, 1]).var(0, correction=1)
    probs = probability(member_rews[:, :, 0], member_rews[:, :, 1], noise_prob, discount_factor, threshold)
    if uncertainty_on == "probability":
        return probs.var(0, correction=0)
    if uncertainty_on == "label":
        p_hat = (probs > 0.5).to(torch.float32).mean(0)
        return p_hat * (1 - p_hat)
    raise ValueError(f"uncertainty_on={uncertainty_on!r} not supported; use 'logit', 'probability' or 'label'")


def active_fragments(
    cfg: ActiveSelectionConfig, net: Any, params: Any, key: random.Key, pool: Pool, num_pairs: int
) -> tuple[Fragments, Metrics]:
    """``ActiveSelectionFragmenter``: of ``fragment_sample_factor * num_pairs`` random pairs, the ``num_pairs`` the
    ensemble ``net`` disagrees on most (:func:`variance_estimate`). Metrics: the mean variance of those kept
    (``active/variance_selected``) and of all candidates (``active/variance_all``). Pure; ``num_pairs`` is static."""
    n_sample = int(cfg.fragment_sample_factor * num_pairs)
    frags = random_fragments(key, pool, cfg.fragment_length, max(n_sample, num_pairs))
    var = variance_estimate(
        fragment_rewards(net, params, frags), cfg.uncertainty_on, cfg.noise_prob, cfg.discount_factor, cfg.threshold
    )
    metrics = {
        "active/variance_selected": var.sort(descending=True).values[:num_pairs].mean(),
        "active/variance_all": var.mean(),
    }
    return select_most_uncertain(frags, var, num_pairs), metrics


# ---------------------------------------------------------------------------------------------------------------------
# The loss and the regularisers
# ---------------------------------------------------------------------------------------------------------------------


def cross_entropy_loss(
    params: Any, net: Any, fragments: Fragments, prefs: Tensor, cfg: ModelConfig, boot: Tensor | None = None
) -> tuple[Tensor, Metrics]:
    """``CrossEntropyRewardLoss``: BCE of the model's P(1 ≻ 2) against ``prefs``; metrics accuracy, gt_reward_loss.

    For an ensemble the loss is the sum over members, member ``m`` seeing the bootstrap ``boot[m]``
    (``(members, pairs)`` indices into the batch; ``EnsembleTrainer``), and the metrics are member means.
    """
    pred = fragment_rewards(net, params, fragments)  # (pairs, 2, L) or (M, pairs, 2, L)
    if boot is not None:
        pred = torch.gather(pred, 1, boot.reshape(*boot.shape, 1, 1).expand(*boot.shape, *pred.shape[2:]))
        targets = prefs[boot]  # (M, pairs)
        true = fragments.rews[boot]  # (M, pairs, 2, L)
    else:
        targets, true = prefs, fragments.rews
    logit = preference_logits(pred[..., 0, :], pred[..., 1, :], cfg.discount_factor, cfg.threshold)
    lp1, lp2 = log_probabilities(logit, cfg.noise_prob)
    loss = binary_cross_entropy(lp1, lp2, targets)
    gt1, gt2 = log_probabilities(
        preference_logits(true[..., 0, :], true[..., 1, :], cfg.discount_factor, cfg.threshold), cfg.noise_prob
    )
    accuracy = ((lp1 > math.log(0.5)) == (targets > 0.5)).to(torch.float32).mean(-1)
    metrics = {
        "loss": loss.mean(),
        "accuracy": accuracy.mean(),
        "gt_reward_loss": binary_cross_entropy(gt1, gt2, targets).mean(),
    }
    if boot is not None:
        metrics["loss_std"] = loss.std()
        loss = loss.sum()
        metrics["loss"] = loss
    return loss, metrics


def lp_penalty(params: Any, p: int) -> Tensor:
    """``LpRegularizer``'s penalty before λ: ``Σ_params ‖θ‖ₚᵖ``."""
    return torch.stack([torch.linalg.vector_norm(x, ord=p) ** p for x in tree.leaves(params)]).sum()


def interval_param_scaler(
    lambda_: Tensor,
    train_loss: Tensor,
    val_loss: Tensor,
    scaling_factor: float,
    tolerable_interval: tuple[float, float],
) -> Tensor:
    """``IntervalParamScaler``: λ(1 + s) if val/train > high, λ(1 - s) if < low, else λ (pure, 0/0 keeps λ)."""
    eps = float(np.finfo(float).eps)
    ratio = val_loss / torch.where(train_loss < eps, torch.ones_like(train_loss), train_loss)
    up = torch.where(train_loss < eps, val_loss >= eps, ratio > tolerable_interval[1])
    down = (train_loss >= eps) & (ratio < tolerable_interval[0])
    return torch.where(up, lambda_ * (1 + scaling_factor), torch.where(down, lambda_ * (1 - scaling_factor), lambda_))


# ---------------------------------------------------------------------------------------------------------------------
# The reward trainer
# ---------------------------------------------------------------------------------------------------------------------


class TrainState(struct.PyTreeNode):
    """What the reward trainer changes."""

    params: Any  # the net's params (leaves (members, ...) for an ensemble)
    opt_state: Any  # from init_optimizer: AdamW's state with lr and weight decay as 0-d tensors (sweepable)
    reg_lambda: Tensor  # () float32: regularisation strength (moved by the interval scaler)
    key: random.Key


def init_optimizer(params: Any, learning_rate: float, weight_decay: float) -> Any:
    """The AdamW state :func:`train` steps, holding ``learning_rate`` and ``weight_decay`` as 0-d tensors."""
    return optim.inject_hyperparams(optim.adamw)(learning_rate=learning_rate, weight_decay=weight_decay).init(params)


@functools.cache
def _optimizer() -> optim.GradientTransformation:
    # inject_hyperparams keeps lr and weight decay in the state (set by init_optimizer), so update uses placeholders.
    return optim.inject_hyperparams(optim.adamw)(learning_rate=0.0, weight_decay=0.0)


def _objective(
    params: Any,
    net: Any,
    cfg: TrainerConfig,
    reg_lambda: Tensor,
    frags: Fragments,
    prefs: Tensor,
    scale: float,
    boot: Tensor | None,
) -> tuple[Tensor, Metrics]:
    loss, metrics = cross_entropy_loss(params, net, frags, prefs, cfg, boot)
    total = loss * scale
    if cfg.regularizer == "lp":
        total = total + reg_lambda * lp_penalty(params, cfg.regularizer_p)
    return total, metrics


def _take(x: Tensor, idx: Tensor) -> Tensor:
    return x[idx]


def _eval_loss(cfg: ModelConfig, net: Any, dataset: PreferenceDataset, params: Any, idx: Tensor) -> Tensor:
    """Mean loss over the pairs ``idx`` (ensembles: summed over members, no bootstrap)."""
    frags = tree.map(lambda x: x[idx], dataset.fragments)
    loss, _ = cross_entropy_loss(params, net, frags, dataset.preferences[idx], cfg)
    return loss.sum() if loss.ndim else loss


def train(
    cfg: TrainerConfig,
    net: Any,
    state: TrainState,
    dataset: PreferenceDataset,
    n_items: int,
    epoch_multiplier: float = 1.0,
) -> tuple[TrainState, Metrics]:
    """``BasicRewardTrainer`` / ``EnsembleTrainer``: ``round(epochs * multiplier)`` epochs over the first ``n_items``.

    Minibatches of ``minibatch_size`` pairs; gradients (each weighted by ``len(minibatch) / batch_size``)
    accumulate until ``batch_size`` pairs, then one AdamW step (and one for a leftover). The weight-decay
    regulariser shrinks the params after every minibatch; with an updater, ``val_split`` of the data is
    held out and λ is rescaled after each epoch from the mean validation / train losses. Returns the last
    epoch's mean metrics (``imitation``'s ``reward/final/train``). Pure; ``n_items`` is static.
    """
    epochs = round(cfg.epochs * epoch_multiplier)
    if epochs < 1:
        raise ValueError(
            f"reward trainer: epochs * epoch_multiplier = {cfg.epochs * epoch_multiplier} rounds to 0 epochs"
        )
    if n_items < 1:
        raise ValueError("reward trainer: the dataset is empty")
    mb = cfg.minibatch_size or cfg.batch_size
    key, k_split, k_epochs, k_boot = random.split(state.key, 4)
    use_val = cfg.lambda_updater != "none"
    if use_val:
        n_val = max(1, int(cfg.val_split * n_items))  # type: ignore[operator]
        n_train = n_items - n_val
        if n_train < 1:
            raise ValueError(
                "Not enough data samples to split into training and validation, or the validation split is too "
                "large/small. Make sure you've generated enough initial preference data. You can adjust this "
                "through initial_comparison_frac in PreferenceComparisons."
            )
        perm = random.permutation(k_split, n_items)
        train_idx, val_idx = perm[:n_train], perm[n_train:]
    else:
        n_train, train_idx, val_idx = n_items, torch.arange(n_items, device=state.key.device), None
    members = cfg.ensemble_size
    grad_fn = torch.func.grad(_objective, has_aux=True)
    opt = _optimizer()
    params, opt_state, lam = state.params, state.opt_state, state.reg_lambda
    history: list[Metrics] = []
    step = 0
    for epoch in range(epochs):
        order = train_idx[random.permutation(random.fold_in(k_epochs, epoch), n_train)]
        acc_grads, acc = None, 0
        history = []
        train_sum = torch.zeros((), device=state.key.device)
        for start in range(0, n_train, mb):
            idx = order[start : start + mb]
            n = idx.shape[0]
            frags = tree.map(functools.partial(_take, idx=idx), dataset.fragments)
            prefs = dataset.preferences[idx]
            boot = None
            if members is not None:
                boot = random.randint(random.fold_in(k_boot, step), (members, n), 0, n)
            step += 1
            grads, metrics = grad_fn(params, net, cfg, lam, frags, prefs, n / cfg.batch_size, boot)
            history.append(metrics)
            train_sum = train_sum + metrics["loss"] * n
            acc_grads = grads if acc_grads is None else tree.map(torch.add, acc_grads, grads)
            acc += n
            if cfg.regularizer == "weight_decay":
                factor = 1.0 - lam * opt_state.hyperparams["learning_rate"]
                params = tree.map(functools.partial(torch.mul, other=factor), params)
            if acc >= cfg.batch_size:
                updates, opt_state = opt.update(acc_grads, opt_state, params)
                params, acc_grads, acc = optim.apply_updates(params, updates), None, 0
        if acc_grads is not None:
            updates, opt_state = opt.update(acc_grads, opt_state, params)
            params = optim.apply_updates(params, updates)
        if use_val:
            val_loss = _eval_loss(cfg, net, dataset, params, val_idx)  # type: ignore[arg-type]
            lam = interval_param_scaler(lam, train_sum / n_train, val_loss, cfg.scaling_factor, cfg.tolerable_interval)
    out = {k: torch.stack([m[k] for m in history]).mean() for k in history[0]}
    out["regularization_lambda"] = lam
    return TrainState(params=params, opt_state=opt_state, reg_lambda=lam, key=key), out


# ---------------------------------------------------------------------------------------------------------------------
# The reward the agent trains on
# ---------------------------------------------------------------------------------------------------------------------


def agent_reward(
    net: Any,
    normalize: bool,
    params: tuple[Any, RunningMeanStd],
    obs: Tensor,
    acts: Tensor,
    next_obs: Tensor,
    dones: Tensor,
) -> Tensor:
    """The learned reward ``(N,)`` (an ensemble's mean), normalised (``NormalizedRewardNet``) if ``normalize``.

    Its tensors are passed in, ``params = (reward_params, reward_norm)``, so
    ``functools.partial(agent_reward, net, normalize)`` is a ``sac.ParamRewardFn``: the same function for
    every round, and the compiled agent step does not recompile when the reward is retrained.
    """
    reward_params, norm = params
    rews = net.apply(reward_params, obs, acts, next_obs, dones).to(torch.float32)
    return reward_normalize.apply(norm, rews) if normalize else rews


__all__ = [
    "ActiveSelectionConfig",
    "Metrics",
    "ModelConfig",
    "NetConfig",
    "TrainState",
    "TrainerConfig",
    "active_fragments",
    "agent_reward",
    "binary_cross_entropy",
    "cross_entropy_loss",
    "fragment_rewards",
    "init_optimizer",
    "interval_param_scaler",
    "log_probabilities",
    "lp_penalty",
    "make_net",
    "preference_logits",
    "probability",
    "train",
    "variance_estimate",
]
