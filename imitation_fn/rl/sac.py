"""Soft Actor-Critic (Haarnoja et al., 2018) for continuous control, as pure functions over a State.

Stable-Baselines3's SAC step for step: twin Q critics with polyak-averaged targets, a tanh-squashed
Gaussian actor, automatic entropy tuning towards ``target_entropy = -dim(A)``, uniform random actions
before ``learning_starts``, and a replay buffer that stores the true next observation with
``done = terminated`` only, so time-limit truncations bootstrap. Actions are stored and fed to the
critics normalised to ``[-1, 1]``; the environment receives them rescaled to its Box bounds.

    task = Task(env=env)
    state = sac.init(cfg, key, task)
    for _ in range(n_iterations):
        state, batch = sac.collect(state, task)     # train_freq env steps of every sub-env
        state, metrics = sac.update(state, batch)   # into the buffer, then gradient_steps SAC steps
    actions = sac.policy(state)(obs, key)

Everything is a tensor in ``State`` (buffer, env state, RNG key, counters, gamma/tau/target entropy
and the learning rates), so ``vmap(collect)`` and ``vmap(update)`` train a sweep of seeds at once;
:mod:`imitation_fn.rl.sac_batched` is those two over stacked states, optionally compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor

from imitation_fn.core import optim, random, struct, tree
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data import buffer as replay
from imitation_fn.envs.base import Env, PolicyFn, RewardFn, TimeStep, mask
from imitation_fn.envs.task import Task
from imitation_fn.policies import sac as sac_policy

Metrics = dict[str, Tensor]
ParamRewardFn = Callable[[Any, Tensor, Tensor, Tensor, Tensor], Tensor]
"""``reward_fn(params, obs, acts, next_obs, dones) -> rews``: a learned reward with its parameters passed in."""


class Config(BaseConfig):
    """SAC hyperparameters; defaults are SB3's (``buffer_size`` excepted, see its note)."""

    n_envs: PositiveInt = 1
    """Parallel sub-environments; each ``collect`` step adds ``n_envs`` transitions."""
    buffer_size: PositiveInt = 100_000
    """Replay capacity per seed. SB3 uses 1e6; a pure ``add`` copies the buffer, so we cap it at 1e5
    (which also bounds memory for vmapped sweeps). Runs longer than this keep the newest 1e5 steps."""
    learning_starts: NonNegativeInt = 100
    """Env steps (all sub-envs counted) of uniform random actions before any gradient step."""
    batch_size: PositiveInt = 256
    """Minibatch size of each gradient step."""
    tau: float = Field(default=0.005, gt=0.0, le=1.0)
    """Polyak coefficient of the target critics: ``target <- (1 - tau) * target + tau * critic``."""
    gamma: float = Field(default=0.99, ge=0.0, le=1.0)
    """Discount factor."""
    train_freq: PositiveInt = 1
    """Env steps (of every sub-env) per ``collect``."""
    gradient_steps: PositiveInt = 1
    """Gradient steps per ``update``."""
    ent_coef: Literal["auto"] | PositiveFloat = "auto"
    """Entropy coefficient alpha: a fixed float, or ``"auto"`` to tune it (SB3's default)."""
    ent_coef_init: PositiveFloat = 1.0
    """Initial alpha for ``"auto"`` (SB3's ``"auto_<init>"``)."""
    target_entropy: Literal["auto"] | float = "auto"
    """Entropy target of automatic tuning; ``"auto"`` is ``-dim(A)``."""
    lr: PositiveFloat = 3e-4
    """Adam learning rate of actor, critics and alpha (0-d tensors in the optimiser states: sweepable)."""
    net_arch: tuple[PositiveInt, ...] = (256, 256)
    """Hidden layers of the actor trunk and of each critic."""
    activation: str = "relu"
    """Activation between hidden layers."""


class Item(struct.PyTreeNode):
    """One stored transition (leading axis ``n`` when batched)."""

    obs: Tensor  # (*obs_shape) float32
    acts: Tensor  # (act_dim,) float32, normalised to [-1, 1]
    rews: Tensor  # () float32
    next_obs: Tensor  # (*obs_shape) float32: the true next observation (pre auto-reset)
    dones: Tensor  # () float32: 1.0 only on termination; truncation bootstraps


class State(struct.PyTreeNode):
    """Tensors (batched under vmap) plus static structure (equal across a sweep)."""

    actor: dict[str, Any]
    critic: dict[str, Any]
    target_critic: dict[str, Any]
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    log_alpha: Tensor  # () float32: log of the entropy coefficient
    buffer: replay.ReplayBuffer
    timestep: TimeStep | None  # the env's current TimeStep (obs to act on next); None for a host env
    key: random.Key
    timesteps: Tensor  # () int64: transitions collected (SB3's num_timesteps)
    n_updates: Tensor  # () int64: gradient steps taken
    learning_starts: Tensor  # () int64
    gamma: Tensor  # () float32
    tau: Tensor  # () float32
    target_entropy: Tensor  # () float32
    action_low: tuple[float, ...] = struct.field(static=True)
    action_high: tuple[float, ...] = struct.field(static=True)
    batch_size: int = struct.field(static=True)
    train_freq: int = struct.field(static=True)
    gradient_steps: int = struct.field(static=True)
    auto_entropy: bool = struct.field(static=True)
    activation: str = struct.field(static=True)


_ADAM = optim.inject_hyperparams(optim.adam)
# ``inject_hyperparams`` keeps the learning rate in the optimiser state (set by ``init``) and reads it
# back at each update, so one placeholder-lr instance serves every update.
_OPT = _ADAM(learning_rate=0.0)


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """A fresh SAC state for ``task.env`` (which must have ``cfg.n_envs`` sub-environments and Box actions)."""
    task.require("env", who="sac.init")
    env = task.env
    assert env is not None
    if cfg.train_freq * cfg.n_envs > cfg.buffer_size:
        raise ValueError(
            f"sac.init: one collection ({cfg.train_freq} × {cfg.n_envs} transitions) does not fit a buffer of "
            f"buffer_size={cfg.buffer_size}"
        )
    if env.n_envs != cfg.n_envs:
        raise ValueError(f"sac.init: env has n_envs={env.n_envs}, config says n_envs={cfg.n_envs}")
    space = env.action_space
    low, high = space.low.reshape(-1).tolist(), space.high.reshape(-1).tolist()  # type: ignore[attr-defined]
    if not all(math.isfinite(x) for x in low + high):
        raise ValueError(f"sac.init: SAC squashes actions into the Box bounds, which must be finite; got {space}")
    k_actor, k_critic, k_reset, k_state = random.split(key, 4)
    actor = sac_policy.actor_init(k_actor, env.observation_space, space, cfg.net_arch)
    critic = sac_policy.critic_init(k_critic, env.observation_space, space, cfg.net_arch)
    timestep = None if env.host else env.reset(k_reset)  # a host env cannot reset under vmap: its caller resets it
    act_dim = len(low)
    obs_example = torch.zeros(env.observation_space.shape or ())
    example = Item(
        obs=obs_example, acts=torch.zeros(act_dim), rews=torch.zeros(()), next_obs=obs_example, dones=torch.zeros(())
    )
    auto = cfg.ent_coef == "auto"
    log_alpha = torch.log(torch.tensor(cfg.ent_coef_init if auto else float(cfg.ent_coef)))
    target_entropy = -float(act_dim) if cfg.target_entropy == "auto" else float(cfg.target_entropy)
    return State(
        actor=actor,
        critic=critic,
        target_critic=tree.map(torch.clone, critic),
        actor_opt=_ADAM(learning_rate=cfg.lr).init(actor),
        critic_opt=_ADAM(learning_rate=cfg.lr).init(critic),
        alpha_opt=_ADAM(learning_rate=cfg.lr).init(log_alpha),
        log_alpha=log_alpha,
        buffer=replay.init(cfg.buffer_size, example),
        timestep=timestep,
        key=k_state,
        timesteps=torch.zeros((), dtype=torch.int64),
        n_updates=torch.zeros((), dtype=torch.int64),
        learning_starts=torch.tensor(cfg.learning_starts, dtype=torch.int64),
        gamma=torch.tensor(cfg.gamma),
        tau=torch.tensor(cfg.tau),
        target_entropy=torch.tensor(target_entropy),
        action_low=tuple(low),
        action_high=tuple(high),
        batch_size=cfg.batch_size,
        train_freq=cfg.train_freq,
        gradient_steps=cfg.gradient_steps,
        auto_entropy=auto,
        activation=cfg.activation,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Acting
# ---------------------------------------------------------------------------------------------------------------------


def collect(state: State, task: Task, key: random.Key | None = None) -> tuple[State, Item]:
    """:func:`collect_env` on ``task.env``, rewarded by ``task.reward_fn`` when the task has one."""
    assert task.env is not None, "sac.collect: the task has no env"
    return collect_env(state, task.env, key, task.reward_fn)


def collect_env(
    state: State, env: Env, key: random.Key | None = None, reward_fn: RewardFn | None = None
) -> tuple[State, Item]:
    """Step every sub-env ``train_freq`` times with the current actor.

    Returns the new state and the transitions collected, ``(train_freq * n_envs, ...)``, step-major;
    :func:`update` adds them to the buffer and trains on minibatches drawn from it.

    Uniform random actions while ``timesteps < learning_starts`` (as SB3). ``key`` defaults to a
    split of ``state.key``. ``reward_fn(obs, acts, next_obs, dones) -> (n_envs,)`` replaces the env's
    rewards (``acts`` in env units, ``next_obs`` the true next observation, ``dones`` =
    terminated | truncated, as PPO's and ``imitation``'s reward wrappers pass them).
    Pure for torch envs.
    """
    timestep, collected = state.timestep, []
    if timestep is None:
        raise ValueError(
            "sac.collect: state.timestep is None (init leaves a host env unreset; sac_batched.host_collect steps it "
            "for the loop); put env.reset(key) there first"
        )
    state, key = collect_key(state, key)
    for i in range(state.train_freq):
        k_act, k_random, k_step = random.split(random.fold_in(key, i), 3)
        action, env_action = act(state, timestep.obs, state.timesteps + i * timestep.obs.shape[0], k_act, k_random)
        nxt = env.step(timestep.env_state, env_action, k_step)
        collected.append(transition(timestep.obs, action, env_action, nxt, reward_fn))
        timestep = nxt
    return collect_end(state, timestep, collected)


def collect_key(state: State, key: random.Key | None) -> tuple[State, random.Key]:
    """The key of one ``collect``: ``key``, or a split of ``state.key`` (which then advances)."""
    if key is not None:
        return state, key
    state_key, key = random.split(state.key)
    return state.replace(key=state_key), key


def act(state: State, obs: Tensor, timesteps: Tensor, k_act: random.Key, k_random: random.Key) -> tuple[Tensor, Tensor]:
    """``(action in [-1, 1], the action in env units)``: uniform random while ``timesteps < learning_starts``
    (SB3), a sample of the actor after."""
    policy_action = sac_policy.distribution(state.actor, obs, state.activation).sample(k_act)
    random_action = random.uniform(k_random, policy_action.shape, minval=-1.0, maxval=1.0)
    action = torch.where(timesteps < state.learning_starts, random_action, policy_action)
    return action, sac_policy.rescale(action, state.action_low, state.action_high)


def transition(obs: Tensor, action: Tensor, env_action: Tensor, nxt: TimeStep, reward_fn: RewardFn | None) -> Item:
    """The stored transition of the step from ``obs`` with ``action`` to ``nxt`` (``reward_fn``'s reward if given)."""
    rews = nxt.reward if reward_fn is None else reward_fn(obs, env_action, nxt.final_obs, nxt.done)
    return Item(
        obs=obs.to(torch.float32),
        acts=action,
        rews=rews.to(torch.float32),
        next_obs=nxt.final_obs.to(torch.float32),
        dones=mask(nxt.terminated).to(torch.float32),
    )


def collect_end(state: State, timestep: TimeStep | None, collected: list[Item]) -> tuple[State, Item]:
    """The state after a collection of ``collected`` steps (``timestep``: where the next continues; ``None`` for host
    envs, whose timestep the caller keeps) and the steps' transitions, step-major ``(train_freq * n_envs, ...)``."""
    batch = tree.map(lambda *xs: torch.cat(xs), *collected)
    return state.replace(timestep=timestep, timesteps=state.timesteps + batch.rews.shape[0]), batch


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The actor as ``(obs, key) -> actions`` in env units; ``tanh(mean)`` by default."""
    return lambda obs, key: sac_policy.act(
        state.actor,
        obs,
        key,
        deterministic=deterministic,
        low=state.action_low,
        high=state.action_high,
        activation=state.activation,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Losses and the update
# ---------------------------------------------------------------------------------------------------------------------


def td_target(state: State, batch: Item, alpha: Tensor, key: random.Key) -> Tensor:
    """``r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))``, ``a' ~ pi(s')``: ``(batch,)``."""
    next_action, next_log_prob = sac_policy.distribution(
        state.actor, batch.next_obs, state.activation
    ).sample_and_log_prob(key)
    next_q = sac_policy.critic_apply(state.target_critic, batch.next_obs, next_action, state.activation)
    next_v = next_q.min(dim=0).values - alpha * next_log_prob
    return batch.rews + (1.0 - batch.dones) * state.gamma * next_v


def critic_loss(critic: dict[str, Any], obs: Tensor, acts: Tensor, target: Tensor, activation: str) -> Tensor:
    """``0.5 * sum_i mean((Q_i(s, a) - target)^2)`` over both critics (SB3's)."""
    q = sac_policy.critic_apply(critic, obs, acts, activation)
    return 0.5 * ((q - target) ** 2).mean(dim=-1).sum()


def actor_loss(
    actor: dict[str, Any], critic: dict[str, Any], obs: Tensor, alpha: Tensor, key: random.Key, activation: str
) -> tuple[Tensor, Tensor]:
    """``mean(alpha * log pi(a|s) - min_i Q_i(s, a))``, ``a ~ pi`` reparameterised; also returns ``log pi``."""
    action, log_prob = sac_policy.distribution(actor, obs, activation).sample_and_log_prob(key)
    min_q = sac_policy.critic_apply(critic, obs, action, activation).min(dim=0).values
    return (alpha * log_prob - min_q).mean(), log_prob


def alpha_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: Tensor) -> Tensor:
    """SB3's ``-mean(log_alpha * (log pi + target_entropy))`` with ``log pi`` held fixed."""
    return -(log_alpha * (log_prob + target_entropy).detach()).mean()


def _gradient_step(state: State, key: random.Key) -> tuple[State, Metrics]:
    """One SAC gradient step: critics, then the actor (on the updated critics), then alpha, then the targets.

    As in SB3, all three losses use the alpha from before this step, and the actor's sample that
    drives alpha's loss is the one of the actor loss (drawn before the actor changes).
    """
    k_sample, k_pi, k_next = random.split(key, 3)
    batch = replay.sample(state.buffer, k_sample, state.batch_size)
    alpha = state.log_alpha.exp().detach()

    # Only ``critic`` is differentiated, so the target needs no stop-gradient.
    target = td_target(state, batch, alpha, k_next)
    c_grads, c_loss = torch.func.grad_and_value(critic_loss)(
        state.critic, batch.obs, batch.acts, target, state.activation
    )
    updates, critic_opt = _OPT.update(c_grads, state.critic_opt, state.critic)
    critic = optim.apply_updates(state.critic, updates)

    a_grads, (a_loss, log_prob) = torch.func.grad_and_value(actor_loss, has_aux=True)(
        state.actor, critic, batch.obs, alpha, k_pi, state.activation
    )
    updates, actor_opt = _OPT.update(a_grads, state.actor_opt, state.actor)
    actor = optim.apply_updates(state.actor, updates)

    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    if state.auto_entropy:  # static: fixed-alpha runs carry an unused optimiser state
        e_grad, e_loss = torch.func.grad_and_value(alpha_loss)(state.log_alpha, log_prob, state.target_entropy)
        updates, alpha_opt = _OPT.update(e_grad, state.alpha_opt, state.log_alpha)
        log_alpha = optim.apply_updates(state.log_alpha, updates)

    target_critic = tree.map(lambda t, c: (1.0 - state.tau) * t + state.tau * c, state.target_critic, critic)
    new = state.replace(
        actor=actor,
        critic=critic,
        target_critic=target_critic,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        alpha_opt=alpha_opt,
        log_alpha=log_alpha,
        n_updates=state.n_updates + 1,
    )
    metrics = {"actor_loss": a_loss, "critic_loss": c_loss, "ent_coef": alpha}
    if state.auto_entropy:
        metrics["ent_coef_loss"] = e_loss
    return new, metrics


_LEARNED = ("actor", "critic", "target_critic", "actor_opt", "critic_opt", "alpha_opt", "log_alpha", "n_updates")


def gradient_step(state: State, key: random.Key, g: int | Tensor) -> tuple[State, Metrics]:
    """Gradient step ``g`` of the ``update`` that starts from a state whose key was ``key``; not masked.

    The unit :func:`batched_update` compiles: ``g`` may be a tensor, so one compiled step serves every ``g``.
    """
    _, step_key = random.split(key)
    return _gradient_step(state, random.fold_in(step_key, g))


def update_end(state: State, new: State, history: list[Metrics]) -> tuple[State, Metrics]:
    """Finish ``update``: ``new``'s learned tensors where learning has started (``state``'s elsewhere), metrics."""
    state_key, _ = random.split(state.key)
    ready = state.timesteps > state.learning_starts  # () bool; data, so it may differ across vmapped seeds
    # Keep the old learned tensors where not ready: torch.where, not a Python branch on a tensor.
    learned = {
        name: tree.map(lambda n, o: torch.where(ready, n, o), getattr(new, name), getattr(state, name))
        for name in _LEARNED
    }
    state = state.replace(key=state_key, **learned)
    metrics = {name: torch.stack([m[name] for m in history]).mean() for name in history[0]}
    metrics["n_updates"] = state.n_updates
    return state, metrics


def update(state: State, batch: Item) -> tuple[State, Metrics]:
    """Add ``batch`` (what :func:`collect` returned) to the replay buffer, then :func:`learn` from the buffer."""
    return learn(store(state, batch))


def store(state: State, batch: Item) -> State:
    """``batch`` added to the replay buffer (the oldest items overwritten once it is full)."""
    return state.replace(buffer=replay.add(state.buffer, batch))


def learn(state: State) -> tuple[State, Metrics]:
    """``gradient_steps`` SAC steps on minibatches from the buffer; a no-op until ``timesteps > learning_starts``.

    Metrics (SB3's names) are means over the gradient steps; before learning starts they are computed
    but nothing is applied (``n_updates`` tells which). For many seeds, :func:`batched_update` is
    ``vmap(update)`` with optionally compiled pieces.
    """
    new, history = state, []
    for g in range(state.gradient_steps):
        new, metrics = gradient_step(new, state.key, g)
        history.append(metrics)
    return update_end(state, new, history)


__all__ = [
    "Config",
    "Item",
    "Metrics",
    "ParamRewardFn",
    "RewardFn",
    "State",
    "act",
    "actor_loss",
    "alpha_loss",
    "collect",
    "collect_end",
    "collect_env",
    "collect_key",
    "critic_loss",
    "gradient_step",
    "init",
    "learn",
    "policy",
    "store",
    "td_target",
    "transition",
    "update",
    "update_end",
]
