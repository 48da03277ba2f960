"""Adversarial imitation: the machinery GAIL and AIRL share (``imitation``'s ``AdversarialTrainer``).

A *round* of training, as ``AdversarialTrainer.train`` runs it, for every seed at once under ``vmap``:

    1. ``collect``: ``n_steps × n_envs`` generator (PPO) transitions, rewarded by the current discriminator;
    2. ``update_generator``: a PPO update on them, then they join the generator replay buffer
       (1–2 repeat ``gen_train_timesteps / (n_steps · n_envs)`` times);
    3. ``end_round``: ``n_disc_updates_per_round`` discriminator steps of binary cross-entropy on logits,
       ``demo_batch_size`` expert transitions (label 1) against as many from the buffer (label 0).

In the protocol's terms (:mod:`imitation_fn.algorithms.protocol`) ``collect`` returns a :class:`Batch`
(the rollout and the expert's transitions) and ``update`` is 2–3 on it, so with one rollout a round
(``imitation``'s default) ``update(*collect(state, task))`` is a round; :func:`train_round` runs any round.

The algorithm files supply what differs: the discriminator's loss (its logits) and the reward the
generator trains on. Everything here is pure for torch environments; host-side checks (the
variable-horizon guard) run only outside transforms, and the driver repeats them on its batched data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import gymnasium as gym
import torch
import torch.nn.functional as F
from pydantic import PositiveFloat, PositiveInt, model_validator
from torch import Tensor

from imitation_fn.core import optim, random, struct, tree
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.core.errors import InputError
from imitation_fn.data import buffer as buffer_lib
from imitation_fn.data import flatten_trajectories
from imitation_fn.data.buffer import ReplayBuffer
from imitation_fn.data.horizon import (
    VARIABLE_HORIZON_URL,
    check_demo_horizon,
    check_fixed_horizon,
    variable_horizon_error,
)
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.base import Env, PolicyFn, RewardFn
from imitation_fn.envs.host import HostEnvs
from imitation_fn.envs.task import Task
from imitation_fn.nn import normalize as nn_normalize
from imitation_fn.nn.cnn import is_image_space
from imitation_fn.policies import actor_critic
from imitation_fn.rewards import normalize as reward_norm
from imitation_fn.rewards.nets import BasicPotentialMLP, BasicRewardNet, Params, RewardNet, ShapedRewardNet
from imitation_fn.rl import ppo

Metrics = dict[str, Tensor]


class Config(BaseConfig):
    """Hyperparameters shared by GAIL and AIRL. Defaults: ``imitation``'s ``AdversarialTrainer`` where it has one."""

    gen: ppo.Config = ppo.Config()
    """The generator: PPO's config (``n_steps * n_envs`` transitions per rollout)."""
    demo_batch_size: PositiveInt = 2048
    """Expert transitions per discriminator step; the discriminator batch is twice this (as many generated)."""
    n_disc_updates_per_round: PositiveInt = 2
    """Discriminator steps after each round of generator training."""
    gen_train_timesteps: PositiveInt | None = None
    """Generator env steps per round, a multiple of ``n_steps * n_envs``; None: one rollout (imitation's default)."""
    gen_replay_buffer_capacity: PositiveInt | None = None
    """Generated transitions kept for the discriminator; None: ``gen_train_timesteps`` (only the latest round)."""
    disc_lr: PositiveFloat = 1e-3
    """The discriminator's Adam learning rate (imitation: torch's Adam default; 0-d tensor in the state)."""
    disc_adam_eps: PositiveFloat = 1e-8
    """The discriminator's Adam epsilon."""
    normalize_reward: bool = True
    """Standardise the generator's reward by running statistics (``NormalizedRewardNet`` with ``RunningNorm``)."""
    debug_use_ground_truth: bool = False
    """Train the generator on the environment's reward instead of the learned one (a sanity check of PPO)."""
    allow_variable_horizon: bool = False
    """Allow episodes of different lengths. Read imitation's variable-horizon guide before setting this."""
    normalize_disc_inputs: bool = True
    """Standardise the discriminator's observations by running statistics of its training batches
    (``imitation``'s ``normalize_input_layer=RunningNorm``); folded into the first layer's weights. Images
    are not standardised: the CNN reward nets scale pixels to [0, 1] themselves."""
    stagger_envs: bool = True
    """At init, spread the generator's envs evenly over the episode (see :func:`stagger`)."""

    @model_validator(mode="after")
    def _check_round(self) -> Config:
        rollout = self.rollout_size
        if self.gen_train_timesteps is not None and self.gen_train_timesteps % rollout:
            raise ValueError(
                f"gen_train_timesteps={self.gen_train_timesteps} is not a multiple of the generator's rollout "
                f"(gen.n_steps * gen.n_envs = {rollout})"
            )
        return self

    @property
    def rollout_size(self) -> int:
        """Transitions per generator rollout: ``gen.n_steps * gen.n_envs``."""
        return self.gen.n_steps * self.gen.n_envs

    @property
    def round_timesteps(self) -> int:
        """Generator env steps per round (``gen_train_timesteps`` resolved)."""
        return self.gen_train_timesteps or self.rollout_size

    @property
    def buffer_capacity(self) -> int:
        """Generated transitions the replay buffer holds (``gen_replay_buffer_capacity`` resolved)."""
        return self.gen_replay_buffer_capacity or self.round_timesteps


class State(struct.PyTreeNode):
    """Generator and discriminator of one seed (batched under vmap); the structure is static."""

    gen: ppo.State
    disc_params: Params  # the reward net's params: GAIL's discriminator, AIRL's f
    disc_opt_state: optim.ScaleByAdamState
    reward_norm: nn_normalize.RunningMeanStd  # statistics of the generator's raw reward (normalize_reward)
    disc_input_norm: nn_normalize.RunningMeanStd  # statistics of the discriminator's observations
    buffer: ReplayBuffer  # of Transitions: the latest generated samples
    key: random.Key
    rounds: Tensor  # int64 (): rounds completed
    disc_lr: Tensor  # () sweepable
    net: RewardNet = struct.field(static=True)
    demo_batch_size: int = struct.field(static=True)
    n_disc_updates_per_round: int = struct.field(static=True)
    n_gen_updates: int = struct.field(static=True)  # rollouts (PPO updates) per round
    normalize_reward: bool = struct.field(static=True)
    normalize_disc_inputs: bool = struct.field(static=True)
    debug_use_ground_truth: bool = struct.field(static=True)
    allow_variable_horizon: bool = struct.field(static=True)
    disc_adam_eps: float = struct.field(static=True)


class Batch(struct.PyTreeNode):
    """What ``update`` learns from: a generator rollout rewarded by the learned reward, and the expert's data."""

    rollout: ppo.Rollout  # (n_steps, n_envs): ``rews`` the learned reward's (see label), ``env_rews`` the env's
    demos: Transitions  # every expert transition; the same for all seeds (vmap broadcasts it without a copy)


S = TypeVar("S", bound=State)

LossFn = Callable[[Params, Any, Transitions, Transitions, random.Key], tuple[Tensor, Tensor]]
"""``loss(disc_params, state, expert, generated, key) -> (loss, logits)``; ``logits: (2B,)``, expert rows first."""


# ---------------------------------------------------------------------------------------------------------------------
# init
# ---------------------------------------------------------------------------------------------------------------------


def init_fields(cfg: Config, key: random.Key, task: Task, net: RewardNet) -> dict[str, Any]:
    """The shared fields of a fresh state (an algorithm's ``init`` adds its own and builds its State).

    The generator is ``ppo.init`` on ``task`` (``task.env``; ``task.total``, the run's env steps, is the
    horizon of a linear learning-rate schedule). The expert data is only checked here (``collect`` hands
    it on): it must hold at least ``demo_batch_size`` transitions.
    """
    task.require("env", who="adversarial.init")
    env = task.env
    assert env is not None
    n_demos = len(expert_transitions(task.demos)) if task.demos is not None else None
    if n_demos is not None and cfg.demo_batch_size > n_demos:
        raise InputError(
            f"adversarial.init: demo_batch_size={cfg.demo_batch_size} is larger than the {n_demos} expert "
            "transitions; lower it or give more demonstrations"
        )
    k_gen, k_disc, k_state, k_stagger = random.split(key, 4)
    gen = ppo.init(cfg.gen, k_gen, task)
    if cfg.stagger_envs and not env.host:  # a host env is staggered by the loop when it starts it
        gen = stagger(gen, env, k_stagger)
    params = net.init(k_disc)
    obs_shape = tuple(env.observation_space.shape or ())
    act_shape = tuple(env.action_space.shape or ())
    normalize_inputs = cfg.normalize_disc_inputs and not is_image_space(env.observation_space)
    if normalize_inputs:
        _check_normalizable(net)
    obs_dtype, act_dtype = (_dtype(space) for space in (env.observation_space, env.action_space))
    example = Transitions(  # one generated transition: the buffer's slot layout
        obs=torch.zeros(obs_shape, dtype=obs_dtype),
        acts=torch.zeros(act_shape, dtype=act_dtype),
        next_obs=torch.zeros(obs_shape, dtype=obs_dtype),
        dones=torch.zeros((), dtype=torch.bool),
    )
    return {
        "gen": gen,
        "disc_params": params,
        "disc_opt_state": optim.scale_by_adam(eps=cfg.disc_adam_eps).init(params),
        "reward_norm": reward_norm.init(),
        "disc_input_norm": nn_normalize.init((_obs_dim(net),), count=0.0),
        "buffer": buffer_lib.init(cfg.buffer_capacity, example),
        "key": k_state,
        "rounds": torch.zeros((), dtype=torch.int64),
        "disc_lr": torch.tensor(cfg.disc_lr),
        "net": net,
        "demo_batch_size": cfg.demo_batch_size,
        "n_disc_updates_per_round": cfg.n_disc_updates_per_round,
        "n_gen_updates": cfg.round_timesteps // cfg.rollout_size,
        "normalize_reward": cfg.normalize_reward,
        "normalize_disc_inputs": normalize_inputs,
        "debug_use_ground_truth": cfg.debug_use_ground_truth,
        "allow_variable_horizon": cfg.allow_variable_horizon,
        "disc_adam_eps": cfg.disc_adam_eps,
    }


def _dtype(space: gym.Space[Any]) -> torch.dtype:
    """How generated samples are buffered: images as the env's bytes (4x smaller), other boxes as float32."""
    if isinstance(space, gym.spaces.Discrete):
        return torch.int64
    return torch.uint8 if is_image_space(space) else torch.float32


def stagger_offsets(env: Env | HostEnvs, device: torch.device | str = "cpu") -> Tensor:
    """``(n_envs,)`` int64: env ``j`` starts ``j · max_episode_steps // n_envs`` steps into its first episode."""
    horizon = env.max_episode_steps or 0
    return torch.arange(env.n_envs, dtype=torch.int64, device=device) * horizon // env.n_envs


def stagger(gen: ppo.State, env: Env, key: random.Key) -> ppo.State:
    """Advance sub-env ``j`` of the generator by ``stagger_offsets(env)[j]`` steps of its initial policy.

    Batched envs reset together, so with a fixed horizon every sub-env is at the same phase of its
    episode forever: a rollout of ``n_steps < max_episode_steps`` then holds either the episodes'
    starts or none of them (on seals/CartPole-v0, 15 of 16 rollouts would hold only fallen poles and
    PPO would update on pure noise). Spread evenly, every rollout holds every phase. The burn-in steps
    (``stagger_offsets(env).sum()`` env steps, at most ``n_envs · max_episode_steps / 2``) are not trained
    on and not counted in ``gen.timesteps``; every episode still lasts the full horizon. Pure.
    """
    if gen.timestep is None:
        raise ValueError("adversarial.stagger: the generator state has no timestep; reset its env first")
    offsets = stagger_offsets(env, key.device)
    n = int(offsets.max()) if offsets.numel() else 0
    act_keys, step_keys = (random.split(k, max(n, 1)) for k in random.split(key))
    timestep, act = gen.timestep, ppo.policy(gen, deterministic=False)
    for t in range(n):
        nxt = env.step(timestep.env_state, act(timestep.obs, act_keys[t]), step_keys[t])
        timestep = _where_env(t < offsets, nxt, timestep)  # only envs still catching up to their phase move
    return gen.replace(timestep=timestep)


def _where_env(mask: Tensor, a: Any, b: Any) -> Any:
    """Per sub-env choice between two pytrees whose leaves lead with ``n_envs``; ``mask: (n_envs,)``."""
    return tree.map(lambda x, y: torch.where(mask.reshape(-1, *[1] * (x.ndim - 1)), x, y), a, b)


# ---------------------------------------------------------------------------------------------------------------------
# The generator: collect on the learned reward, PPO update, store
# ---------------------------------------------------------------------------------------------------------------------


def transitions(state: State, rollout: ppo.Rollout) -> Transitions:
    """A rollout as ``n_steps * n_envs`` transitions, with the actions the env received.

    ``dones`` is ``terminated``: the end of the MDP. A time-limit cut is not an MDP event, so a
    fixed-horizon task gives the reward net no signal about where an episode ends.
    """
    return Transitions(
        obs=rollout.obs.flatten(0, 1),
        acts=actor_critic.clip_action(rollout.acts.flatten(0, 1), state.gen.action_bounds),
        next_obs=rollout.next_obs.flatten(0, 1),
        dones=rollout.terminated.flatten(0, 1),
    )


def collect(state: S, task: Task, reward_fn: RewardFn, key: random.Key | None = None) -> tuple[S, Batch]:
    """One generator rollout (``ppo.collect`` on ``task.env``) whose ``rews`` are ``reward_fn``'s (see :func:`label`),
    with the expert's transitions (``task.demos``, flattened when they are trajectories)."""
    gen, rollout = ppo.collect(state.gen, task, key)
    state, rollout = label(state.replace(gen=gen), rollout, reward_fn)
    return state, Batch(rollout=rollout, demos=expert_transitions(task.demos))


def expert_transitions(demos: Sequence[Trajectory] | Transitions | None) -> Transitions:
    """The expert data as transitions, what the discriminator samples from (trajectories are flattened)."""
    if demos is None:
        raise ValueError("adversarial: the task has no demos (the expert's trajectories or transitions)")
    return demos if isinstance(demos, Transitions) else flatten_trajectories(demos)


def label(state: S, rollout: ppo.Rollout, reward_fn: RewardFn) -> tuple[S, ppo.Rollout]:
    """Replace a generator rollout's rewards by ``reward_fn``'s (the env's with ``debug_use_ground_truth``).

    With ``normalize_reward`` the rewards are standardised by the running statistics *before* this
    batch, then the statistics absorb it (``NormalizedRewardNet.predict_processed``). Outside
    transforms, raises if an episode terminated early and ``allow_variable_horizon`` is off.
    """
    check_fixed_horizon(rollout.terminated, state.allow_variable_horizon)
    if state.debug_use_ground_truth:
        return state, rollout
    batch = transitions(state, rollout)
    rews = reward_fn(batch.obs, batch.acts, batch.next_obs, batch.dones).detach()
    if state.normalize_reward:
        norm, rews = reward_norm.apply_and_update(state.reward_norm, rews)
        state = state.replace(reward_norm=norm)
    return state, rollout.replace(rews=rews.reshape(rollout.rews.shape).to(torch.float32))


def update_generator(state: S, rollout: ppo.Rollout) -> tuple[S, Metrics]:
    """PPO update on a rollout from :func:`collect`, then its transitions join the replay buffer."""
    gen, metrics = ppo.update(state.gen, rollout)
    return store(state.replace(gen=gen), rollout), generator_metrics(metrics, rollout)


def store(state: S, rollout: ppo.Rollout) -> S:
    """Add a rollout's transitions to the generator replay buffer (the oldest are overwritten)."""
    return state.replace(buffer=buffer_lib.add(state.buffer, transitions(state, rollout)))


def generator_metrics(ppo_metrics: Metrics, rollout: ppo.Rollout) -> Metrics:
    """PPO's metrics as ``gen/...`` plus the rollout's mean training and environment reward."""
    metrics = {f"gen/{k}": v for k, v in ppo_metrics.items()}
    metrics["gen/train_reward"] = rollout.rews.mean()
    metrics["gen/env_reward"] = rollout.env_rews.mean()
    metrics["gen/terminated"] = rollout.terminated.to(torch.float32).mean()  # > 0: variable horizon
    return metrics


# ---------------------------------------------------------------------------------------------------------------------
# The discriminator
# ---------------------------------------------------------------------------------------------------------------------


def bce_with_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean binary cross-entropy of ``logits: (B,)`` against ``labels: (B,)`` (1 = expert)."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def labels_expert_is_one(n_expert: int, n_gen: int, like: Tensor) -> Tensor:
    """``(n_expert + n_gen,)``: ones for the expert rows (first), zeros for the generated ones."""
    return torch.cat([like.new_ones(n_expert), like.new_zeros(n_gen)])


def disc_metrics(logits: Tensor, labels: Tensor, loss: Tensor) -> Metrics:
    """``imitation``'s ``compute_train_stats`` for logits ``(B,)`` (expert is high) and labels ``(B,)``."""
    expert_pred = logits >= 0  # imitation: generated iff logit < 0
    expert_true = labels > 0.5
    correct = (expert_pred == expert_true).to(logits.dtype)
    n = torch.tensor(float(labels.shape[0]), dtype=logits.dtype, device=logits.device)
    n_expert = expert_true.to(logits.dtype).sum()
    n_gen = n - n_expert
    return {
        "disc_loss": loss,
        "disc_acc": correct.mean(),
        "disc_acc_expert": (correct * expert_true).sum() / n_expert,  # NaN without expert rows, as imitation
        "disc_acc_gen": (correct * ~expert_true).sum() / torch.clamp(n_gen, min=1.0),
        "disc_entropy": torch.distributions.Bernoulli(logits=logits).entropy().mean(),
        "disc_proportion_expert_true": n_expert / n,
        "disc_proportion_expert_pred": expert_pred.to(logits.dtype).mean(),
        "n_expert": n_expert,
        "n_generated": n_gen,
    }


def sample_expert(demos: Transitions, key: random.Key, n: int) -> Transitions:
    """``n`` expert transitions, without replacement (imitation's shuffled loader) when ``n <= len(demos)``."""
    size = demos.obs.shape[0]
    idx = random.permutation(key, size)[:n] if n <= size else random.randint(key, (n,), 0, size)
    return tree.map(lambda x: x[idx], demos)


def disc_step(state: S, demos: Transitions, loss_fn: LossFn) -> tuple[S, Metrics]:
    """One Adam step of the discriminator on ``demo_batch_size`` expert and as many buffered generated rows."""
    k_next, k_expert, k_gen, k_loss = random.split(state.key, 4)
    expert = sample_expert(demos, k_expert, state.demo_batch_size)
    generated = buffer_lib.sample(state.buffer, k_gen, state.demo_batch_size)
    if state.normalize_disc_inputs:  # RunningNorm in training mode: absorb the batch, then normalise with it
        obs = torch.cat([expert.obs, generated.obs]).flatten(1).to(torch.float32)
        state = state.replace(disc_input_norm=nn_normalize.update(state.disc_input_norm, obs))

    def objective(params: Params) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        loss, logits = loss_fn(params, state, expert, generated, k_loss)
        return loss, (loss, logits)

    grads, (loss, logits) = torch.func.grad(objective, has_aux=True)(state.disc_params)
    updates, opt_state = optim.scale_by_adam(eps=state.disc_adam_eps).update(grads, state.disc_opt_state)
    params = tree.map(lambda p, u: p - state.disc_lr * u, state.disc_params, updates)
    labels = labels_expert_is_one(state.demo_batch_size, state.demo_batch_size, logits)
    metrics = disc_metrics(logits.detach(), labels, loss.detach())
    return state.replace(disc_params=params, disc_opt_state=opt_state, key=k_next), metrics


def update_discriminator(state: S, demos: Transitions, loss_fn: LossFn) -> tuple[S, Metrics]:
    """``n_disc_updates_per_round`` discriminator steps; metrics are their means (imitation's per-round means)."""
    history = []
    for _ in range(state.n_disc_updates_per_round):
        state, metrics = disc_step(state, demos, loss_fn)
        history.append(metrics)
    return state, tree.map(lambda *xs: torch.stack(xs).mean(), *history)


# ---------------------------------------------------------------------------------------------------------------------
# Input normalisation, folded into the first layer: (x − μ)/σ → W·diag(1/σ)·x + (b − W·μ/σ)
# ---------------------------------------------------------------------------------------------------------------------


def disc_net_params(state: State, params: Params) -> Params:
    """The params that ``state.net.apply`` runs on raw inputs: ``params`` with the input normalisation folded in.

    Exactly the discriminator that trains and rewards (and what is saved), so a saved reward net needs
    no normalisation layer of its own.
    """
    if not state.normalize_disc_inputs:
        return params
    norm = state.disc_input_norm
    return _fold_net(state.net, params, norm.mean, torch.sqrt(norm.var + reward_norm.EPS))


def _obs_dim(net: RewardNet) -> int:
    return net.observation_space.flat_dim


def _check_normalizable(net: RewardNet) -> None:
    inner = [net.base, net.potential] if isinstance(net, ShapedRewardNet) else [net]
    for part in inner:
        if not isinstance(part, BasicRewardNet | BasicPotentialMLP):
            raise ValueError(
                f"normalize_disc_inputs supports MLP reward nets (BasicRewardNet, BasicPotentialMLP), not "
                f"{type(part).__name__}; set normalize_disc_inputs=False"
            )


def _fold_net(net: RewardNet, params: Params, mean: Tensor, std: Tensor) -> Params:
    if isinstance(net, ShapedRewardNet):
        return {
            "base": _fold_net(net.base, params["base"], mean, std),
            "potential": {"mlp": _fold_first_layer(params["potential"]["mlp"], [(True, mean, std)])},
        }
    assert isinstance(net, BasicRewardNet)
    obs_dim, act_dim = net.observation_space.flat_dim, net.action_space.flat_dim
    ident = (torch.zeros_like(mean[:1]).expand(act_dim), torch.ones_like(std[:1]).expand(act_dim))
    blocks = []
    if net.use_state:
        blocks.append((True, mean, std))
    if net.use_action:
        blocks.append((False, *ident))
    if net.use_next_state:
        blocks.append((True, mean, std))
    if net.use_done:
        blocks.append((False, torch.zeros_like(mean[:1]), torch.ones_like(std[:1])))
    assert sum(b[1].shape[-1] for b in blocks) == net.in_size, (obs_dim, act_dim)
    return {"mlp": _fold_first_layer(params["mlp"], blocks)}


def _fold_first_layer(mlp: Params, blocks: Sequence[tuple[bool, Tensor, Tensor]]) -> Params:
    """``mlp`` whose first layer reads ``(x − mean) / std`` per column block (identity blocks: mean 0, std 1)."""
    mean = torch.cat([m for _, m, _ in blocks]).to(mlp["layers.0.weight"].dtype)
    std = torch.cat([s for _, _, s in blocks]).to(mlp["layers.0.weight"].dtype)
    w, b = mlp["layers.0.weight"], mlp["layers.0.bias"]  # (out, in), (out,)
    return {**mlp, "layers.0.weight": w / std, "layers.0.bias": b - w @ (mean / std)}


# ---------------------------------------------------------------------------------------------------------------------
# One round
# ---------------------------------------------------------------------------------------------------------------------


def update(state: S, batch: Batch, loss_fn: LossFn) -> tuple[S, Metrics]:
    """The rest of a one-rollout round after :func:`collect`: PPO update and store, then the discriminator steps.

    With several rollouts a round (``gen_train_timesteps``) the generator updates between them and the
    discriminator only after the last: use :func:`train_round`.
    """
    if state.n_gen_updates != 1:
        raise ValueError("update finishes a round of one rollout; with gen_train_timesteps > a rollout use train_round")
    state, gen_metrics = update_generator(state, batch.rollout)
    return end_round(state, batch.demos, loss_fn, gen_metrics)


def train_round(state: S, task: Task, reward_fn: Callable[[Any], RewardFn], loss_fn: LossFn) -> tuple[S, Metrics]:
    """A whole round: ``n_gen_updates`` × (collect, PPO update, store), then the discriminator steps.

    ``reward_fn(state)`` builds the generator's reward from the state before the round's discriminator
    steps (imitation's order). Pure for torch envs: ``vmap`` it over states (``task.demos`` shared).
    """
    history = []
    for _ in range(state.n_gen_updates):
        state, batch = collect(state, task, reward_fn(state))
        state, gen_metrics = update_generator(state, batch.rollout)
        history.append(gen_metrics)
    return end_round(state, batch.demos, loss_fn, mean_metrics(history))


def end_round(state: S, demos: Transitions, loss_fn: LossFn, gen_metrics: Metrics) -> tuple[S, Metrics]:
    """The discriminator steps that end a round, after its generator updates (``gen_metrics``: theirs)."""
    state, metrics = update_discriminator(state, demos, loss_fn)
    return state.replace(rounds=state.rounds + 1), {**metrics, **gen_metrics}


def mean_metrics(history: Sequence[Metrics]) -> Metrics:
    """The mean of each metric over a round's generator updates (along the first axis: also for stacked seeds)."""
    return tree.map(lambda *xs: torch.stack(xs).mean(0), *history)


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The generator's policy ``(obs, key) -> actions``."""
    return ppo.policy(state.gen, deterministic)


def log_policy_act_prob(state: State, obs: Tensor, acts: Tensor) -> Tensor:
    """``log π(acts | obs)`` ``(B,)`` under the current generator (its own observation normalisation)."""
    gen = state.gen
    x = nn_normalize.normalize(gen.obs_norm, obs.to(torch.float32)) if gen.normalize_obs else obs
    return actor_critic.log_prob(gen.params, x, acts, gen.activation)


# ---------------------------------------------------------------------------------------------------------------------
# The variable-horizon guard (host-side)
# ---------------------------------------------------------------------------------------------------------------------


__all__ = [
    "VARIABLE_HORIZON_URL",
    "Batch",
    "Config",
    "LossFn",
    "Metrics",
    "RewardFn",
    "State",
    "bce_with_logits",
    "check_demo_horizon",
    "check_fixed_horizon",
    "collect",
    "disc_metrics",
    "disc_net_params",
    "disc_step",
    "end_round",
    "expert_transitions",
    "generator_metrics",
    "init_fields",
    "label",
    "labels_expert_is_one",
    "log_policy_act_prob",
    "mean_metrics",
    "policy",
    "sample_expert",
    "stagger",
    "stagger_offsets",
    "store",
    "train_round",
    "transitions",
    "update",
    "update_discriminator",
    "update_generator",
    "variable_horizon_error",
]
