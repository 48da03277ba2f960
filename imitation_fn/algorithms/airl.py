"""Adversarial Inverse Reinforcement Learning (Fu, Luo & Levine, 2018), as ``imitation``'s ``AIRL`` defines it.

The discriminator has AIRL's special form, with a potential-shaped reward net ``f``:

    f(s, a, s')  = g(s, a) + γ·(1 − done)·h(s') − h(s)           (g: the reward, h: the potential)
    D(s, a, s')  = exp f / (exp f + π(a|s))   ⇔   logit = f(s, a, s') − log π(a|s)
    loss         = BCE(logit, 1) on expert rows + BCE(logit, 0) on generated rows
    reward_train = f(s, a, s')        (what the PPO generator maximises, as imitation)
    reward_test  = g(s, a)            (the unshaped reward: AIRL's disentangled, transferable reward)

``log π`` is the current generator's, not differentiated. Rounds as in
:mod:`~imitation_fn.algorithms.adversarial`:

    task = Task(env=envs.make("seals/CartPole-v0", n_envs=cfg.gen.n_envs), demos=trajectories)
    state = airl.init(cfg, key, task)
    state, metrics = airl.update(*airl.collect(state, task))     # one round
    rews = airl.reward(state)(obs, acts, next_obs, dones)          # reward_test: the unshaped g
"""

from __future__ import annotations

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from imitation_fn.algorithms import adversarial
from imitation_fn.algorithms.adversarial import Batch, Metrics, policy
from imitation_fn.core import random, tree
from imitation_fn.data.types import Transitions
from imitation_fn.envs.base import RewardFn
from imitation_fn.envs.task import Task
from imitation_fn.nn.cnn import is_image_space
from imitation_fn.rewards.cnn import BasicPotentialCNN, CnnRewardNet
from imitation_fn.rewards.nets import BasicShapedRewardNet, Params, ShapedRewardNet


class Config(adversarial.Config):
    """AIRL: the shared adversarial settings plus the shaped reward net (imitation's ``BasicShapedRewardNet``)."""

    reward_hid_sizes: tuple[PositiveInt, ...] = (32,)
    """Hidden layers of the reward MLP ``g``."""
    potential_hid_sizes: tuple[PositiveInt, ...] = (32, 32)
    """Hidden layers of the potential MLP ``h``."""
    reward_activation: str = "relu"
    """Activation of both MLPs."""
    use_state: bool = True
    """Feed the observation to ``g``."""
    use_action: bool = True
    """Feed the action to ``g`` (one-hot when discrete)."""
    use_next_state: bool = False
    """Feed the next observation to ``g``."""
    use_done: bool = False
    """Feed the terminal flag to ``g``."""
    discount_factor: float | None = Field(default=None, ge=0.0, le=1.0)
    """The shaping discount γ in ``γ·h(s') − h(s)``; None: the generator's ``gen.gamma`` (imitation: 0.99 = PPO's),
    so that the shaping telescopes under the discount the generator optimises."""


class State(adversarial.State):
    pass


def logits(params: Params, state: State, batch: Transitions) -> Tensor:
    """``f(s, a, s') − log π(a|s)`` ``(B,)``: high for expert-like transitions."""
    net_params = adversarial.disc_net_params(state, params)  # input normalisation folded in
    f = state.net.apply(net_params, batch.obs, batch.acts, batch.next_obs, batch.dones)
    log_pi = adversarial.log_policy_act_prob(state, batch.obs, batch.acts).detach()
    return f - log_pi


def loss(
    params: Params, state: State, expert: Transitions, generated: Transitions, key: Tensor
) -> tuple[Tensor, Tensor]:
    """Binary cross-entropy of the AIRL logits (expert = 1). ``key`` is unused (the signature is shared)."""
    del key
    batch = tree.map(lambda e, g: torch.cat([e, g]), expert, generated)
    out = logits(params, state, batch)
    labels = adversarial.labels_expert_is_one(expert.obs.shape[0], generated.obs.shape[0], out)
    return adversarial.bce_with_logits(out, labels), out


def reward_train(state: State) -> RewardFn:
    """The generator's reward: the shaped ``f(s, a, s')``, ``(obs, acts, next_obs, dones) -> (N,)``."""
    net: ShapedRewardNet = state.net  # type: ignore[assignment]
    params = adversarial.disc_net_params(state, state.disc_params)
    return lambda obs, acts, next_obs, dones: net.apply(params, obs, acts, next_obs, dones)


def reward_test(state: State) -> RewardFn:
    """The unshaped reward ``g(s, a)`` (``imitation``'s ``reward_test``), to re-train a policy on."""
    net: ShapedRewardNet = state.net  # type: ignore[assignment]
    params = adversarial.disc_net_params(state, state.disc_params)
    return lambda obs, acts, next_obs, dones: net.unshaped(params, obs, acts, next_obs, dones)


def reward_net(cfg: Config, task: Task) -> ShapedRewardNet:
    """``f = g + γ·h(s') − h(s)`` for the task's spaces: CNNs on images (``imitation``'s ``CnnRewardNet`` and
    ``BasicPotentialCNN``, the hidden sizes as channels), else MLPs."""
    discount = cfg.gen.gamma if cfg.discount_factor is None else cfg.discount_factor
    if is_image_space(task.observation_space):
        obs_space, uses = task.observation_space, (cfg.use_state, cfg.use_action, cfg.use_next_state, cfg.use_done)
        base = CnnRewardNet(obs_space, task.action_space, *uses, hwc_format=False, hid_channels=cfg.reward_hid_sizes)
        return ShapedRewardNet(base, BasicPotentialCNN(obs_space, cfg.potential_hid_sizes, hwc_format=False), discount)
    return BasicShapedRewardNet(
        task.observation_space,
        task.action_space,
        reward_hid_sizes=cfg.reward_hid_sizes,
        potential_hid_sizes=cfg.potential_hid_sizes,
        use_state=cfg.use_state,
        use_action=cfg.use_action,
        use_next_state=cfg.use_next_state,
        use_done=cfg.use_done,
        discount_factor=discount,
        activation=cfg.reward_activation,
    )


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """A fresh generator (PPO on ``task.env``), shaped reward net and empty generator buffer, all from ``key``."""
    return State(**adversarial.init_fields(cfg, key, task, reward_net(cfg, task)))


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
    """The learned reward to export: :func:`reward_test`, the unshaped ``g`` (AIRL's transferable reward)."""
    return reward_test(state)


__all__ = [
    "Batch",
    "Config",
    "State",
    "collect",
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
