"""Generative Adversarial Imitation Learning (Ho & Ermon, 2016), as ``imitation``'s ``GAIL`` defines it.

The discriminator is a reward net read as logits, ``D(s, a) = sigmoid(logit(s, a))`` = P(expert):

    loss   = BCE(logit, 1) on expert rows + BCE(logit, 0) on generated rows   [+ λ·gradient penalty]
    reward = −log(1 − D(s, a)) = softplus(logit(s, a))                        (training and test reward)

with the discriminator's observations standardised by running statistics (``normalize_disc_inputs``), trained
against a PPO generator, one round at a time (see :mod:`~imitation_fn.algorithms.adversarial`):

    task = Task(env=envs.make("seals/CartPole-v0", n_envs=cfg.gen.n_envs), demos=trajectories)
    state = gail.init(cfg, key, task)
    state, batch = gail.collect(state, task)           # a generator rollout on the learned reward + the expert's data
    state, metrics = gail.update(state, batch)         # PPO update, then the discriminator steps: one round
    actions = gail.policy(state)(obs, key)
    rewards = gail.reward(state)(obs, acts, next_obs, dones)

Everything is pure for torch environments: ``vmap`` over stacked states trains many seeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor

from imitation_fn.algorithms import adversarial
from imitation_fn.algorithms.adversarial import Batch, Metrics, policy
from imitation_fn.core import random, struct, tree
from imitation_fn.data.types import Transitions
from imitation_fn.envs.base import RewardFn
from imitation_fn.envs.task import Task
from imitation_fn.nn.cnn import is_image_space
from imitation_fn.rewards.cnn import CnnRewardNet
from imitation_fn.rewards.nets import BasicRewardNet, Params


class Config(adversarial.Config):
    """GAIL: the shared adversarial settings plus the discriminator network (imitation's ``BasicRewardNet``)."""

    reward_hid_sizes: tuple[PositiveInt, ...] = (32, 32)
    """Hidden layers of the discriminator MLP."""
    reward_activation: str = "relu"
    """Activation of the discriminator MLP."""
    use_state: bool = True
    """Feed the observation to the discriminator."""
    use_action: bool = True
    """Feed the action (one-hot when discrete)."""
    use_next_state: bool = False
    """Feed the next observation."""
    use_done: bool = False
    """Feed the terminal flag."""
    grad_penalty: float = Field(default=0.0, ge=0.0)
    """Weight λ of the gradient penalty ``λ·E[(‖∇D(x̂)‖ − 1)²]`` on expert/generated interpolates (0: off)."""


class State(adversarial.State):
    grad_penalty: Tensor  # () λ, sweepable
    use_grad_penalty: bool = struct.field(static=True)  # grad_penalty > 0 at init: skip the double backward if not


def logits(params: Params, state: State, batch: Transitions) -> Tensor:
    """Discriminator logits ``(B,)``, high for expert-like transitions: the reward net's output."""
    net_params = adversarial.disc_net_params(state, params)  # input normalisation folded in
    return state.net.apply(net_params, batch.obs, batch.acts, batch.next_obs, batch.dones)


def gradient_penalty(params: Params, state: State, expert: Transitions, generated: Transitions, key: Tensor) -> Tensor:
    """``E[(‖∇_x̂ logit(x̂)‖ − 1)²]`` at ``x̂ = ε·x_E + (1 − ε)·x_G``, ``ε ~ U(0, 1)`` per row (Gulrajani et al.).

    ``x`` is the net's preprocessed input (observations, one-hot actions, next observations, dones).
    """
    xe = state.net.preprocess(expert.obs, expert.acts, expert.next_obs, expert.dones)
    xg = state.net.preprocess(generated.obs, generated.acts, generated.next_obs, generated.dones)
    eps = random.uniform(key, (xe[0].shape[0],))
    mixed = tuple(
        eps.reshape(-1, *[1] * (e.ndim - 1)) * e + (1 - eps.reshape(-1, *[1] * (e.ndim - 1))) * g
        for e, g in zip(xe, xg, strict=True)
    )
    net_params = adversarial.disc_net_params(state, params)
    grads = torch.func.grad(lambda x: state.net.forward(net_params, *x).sum())(mixed)
    norm = torch.sqrt(sum(g.reshape(g.shape[0], -1).square().sum(1) for g in grads) + 1e-12)
    return (norm - 1.0).square().mean()


def loss(
    params: Params, state: State, expert: Transitions, generated: Transitions, key: Tensor
) -> tuple[Tensor, Tensor]:
    """Binary cross-entropy of the logits (expert = 1), plus the gradient penalty when ``grad_penalty > 0``."""
    batch = tree.map(lambda e, g: torch.cat([e, g]), expert, generated)
    out = logits(params, state, batch)
    labels = adversarial.labels_expert_is_one(expert.obs.shape[0], generated.obs.shape[0], out)
    total = adversarial.bce_with_logits(out, labels)
    if state.use_grad_penalty:
        total = total + state.grad_penalty * gradient_penalty(params, state, expert, generated, key)
    return total, out


def reward_train(state: State) -> RewardFn:
    """The generator's reward ``−log(1 − D) = softplus(logit)``: ``(obs, acts, next_obs, dones) -> (N,)``."""
    params = adversarial.disc_net_params(state, state.disc_params)

    def reward_fn(obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor) -> Tensor:
        return F.softplus(state.net.apply(params, obs, acts, next_obs, dones))

    return reward_fn


reward_test = reward_train  # imitation's GAIL uses one reward for both


def reward_net(cfg: Config, task: Task) -> BasicRewardNet | CnnRewardNet:
    """The discriminator's network for the task's spaces: a CNN on images (``imitation``'s ``CnnRewardNet``
    with ``reward_hid_sizes`` as its channels), else an MLP."""
    uses = (cfg.use_state, cfg.use_action, cfg.use_next_state, cfg.use_done)
    if is_image_space(task.observation_space):
        return CnnRewardNet(
            task.observation_space, task.action_space, *uses, hwc_format=False, hid_channels=cfg.reward_hid_sizes
        )
    return BasicRewardNet(
        task.observation_space,
        task.action_space,
        cfg.use_state,
        cfg.use_action,
        cfg.use_next_state,
        cfg.use_done,
        hid_sizes=cfg.reward_hid_sizes,
        activation=cfg.reward_activation,
    )


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """A fresh generator (PPO on ``task.env``), discriminator and empty generator buffer, all from ``key``."""
    fields = adversarial.init_fields(cfg, key, task, reward_net(cfg, task))
    return State(**fields, grad_penalty=torch.tensor(cfg.grad_penalty), use_grad_penalty=cfg.grad_penalty > 0)


def collect(state: State, task: Task, key: random.Key | None = None) -> tuple[State, Batch]:
    """A generator rollout rewarded by :func:`reward_train` (normalised when ``normalize_reward``), and the expert's
    transitions."""
    return adversarial.collect(state, task, reward_train(state), key)


def update(state: State, batch: Batch) -> tuple[State, Metrics]:
    """The rest of a one-rollout round after :func:`collect`: PPO update, store, discriminator steps."""
    return adversarial.update(state, batch, loss)


def train_round(state: State, task: Task) -> tuple[State, Metrics]:
    """One whole round (``gen_train_timesteps`` of collect + PPO, then the discriminator). Pure: vmap it."""
    return adversarial.train_round(state, task, reward_train, loss)


def update_discriminator(state: State, demos: Transitions) -> tuple[State, Metrics]:
    """``n_disc_updates_per_round`` steps of :func:`loss` on expert vs buffered generated transitions."""
    return adversarial.update_discriminator(state, demos, loss)


def reward(state: State) -> RewardFn:
    """The learned reward to export: :func:`reward_train` (GAIL has one reward)."""
    return reward_train(state)


__all__ = [
    "Batch",
    "Config",
    "State",
    "collect",
    "gradient_penalty",
    "init",
    "logits",
    "loss",
    "policy",
    "reward",
    "reward_net",
    "reward_test",
    "reward_train",
    "train_round",
    "update",
    "update_discriminator",
]
