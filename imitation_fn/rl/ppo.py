"""Proximal Policy Optimisation (Schulman et al., 2017), as Stable-Baselines3 implements it, in pure functions.

    task = Task(env=envs.make("CartPole-v1", n_envs=cfg.n_envs))
    state = ppo.init(cfg, key, task)
    for _ in range(n_iterations):
        state, rollout = ppo.collect(state, task)   # n_steps × n_envs transitions, pure for torch envs
        state, metrics = ppo.update(state, rollout)  # GAE, then n_epochs of shuffled clipped-surrogate SGD
    actions = ppo.policy(state)(obs, key)

``collect`` and ``update`` are pure for torch environments, so ``vmap`` of either trains many seeds
(and many ``lr`` / ``ent_coef`` / ``clip_range`` ... values: they are 0-d tensors in ``State``) at once;
seed ``i`` draws only from its own key, so its result does not depend on the size of the sweep.
``collect`` also runs a host-side :class:`~imitation_fn.envs.gym.GymEnv` (not under ``vmap``).

Differences from SB3, all deliberate: randomness comes from explicit keys; minibatches have a fixed
size (``n_steps * n_envs // batch_size`` of them per epoch, the remainder of the shuffled buffer is
skipped that epoch); the ``target_kl`` early stop masks the remaining minibatch steps instead of
breaking out of the loop; observation statistics (``normalize_obs``) are frozen during a rollout and
updated from it in ``update`` (Brax's scheme; SB3's ``VecNormalize`` updates them every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt, model_validator
from torch import Tensor

from imitation_fn.core import optim, random, struct, tree
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data import rollout as rollout_lib
from imitation_fn.envs.base import Env, PolicyFn, RewardFn, TimeStep
from imitation_fn.envs.task import Task
from imitation_fn.nn import normalize
from imitation_fn.nn.normalize import RunningMeanStd
from imitation_fn.policies import actor_critic

Metrics = dict[str, Tensor]


class Config(BaseConfig):
    """PPO hyperparameters. Defaults: SB3's ``PPO`` (with 8 environments, as ``imitation``'s scripts use)."""

    n_envs: PositiveInt = 8
    """Parallel environments; ``init`` checks that the env has this many."""
    n_steps: PositiveInt = 2048
    """Steps per environment per rollout: a rollout holds ``n_steps * n_envs`` transitions."""
    batch_size: PositiveInt = 64
    """Minibatch size (at most ``n_steps * n_envs``)."""
    n_epochs: PositiveInt = 10
    """Passes over the rollout per update."""
    lr: PositiveFloat = 3e-4
    """Adam learning rate (0-d tensor in the state: sweepable)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """``linear`` anneals the learning rate to 0 over ``init``'s ``total_timesteps`` (CleanRL's ``anneal_lr``)."""
    adam_eps: PositiveFloat = 1e-5
    """Adam's epsilon (SB3 and CleanRL use 1e-5 for PPO)."""
    gamma: float = Field(default=0.99, ge=0.0, le=1.0)
    """Discount factor."""
    gae_lambda: float = Field(default=0.95, ge=0.0, le=1.0)
    """GAE's bias/variance trade-off (1: Monte Carlo returns, 0: one-step TD)."""
    clip_range: PositiveFloat = 0.2
    """Clipping of the probability ratio in the surrogate objective."""
    clip_range_vf: PositiveFloat | None = None
    """Clip value predictions to ``old ± clip_range_vf`` (SB3's value clipping); None: no clipping."""
    normalize_advantage: bool = True
    """Standardise advantages within each minibatch."""
    ent_coef: float = Field(default=0.0, ge=0.0)
    """Weight of the entropy bonus."""
    vf_coef: float = Field(default=0.5, ge=0.0)
    """Weight of the value loss (mean squared error, as SB3)."""
    max_grad_norm: PositiveFloat = 0.5
    """Clip gradients to this global norm."""
    target_kl: PositiveFloat | None = None
    """Stop the update's remaining minibatch steps once approx KL exceeds ``1.5 * target_kl``; None: never."""
    net_arch: tuple[PositiveInt, ...] | dict[Literal["pi", "vf"], tuple[PositiveInt, ...]] = (64, 64)
    """Hidden layers: one tuple for both networks, or ``{"pi": ..., "vf": ...}``."""
    shared_network: bool = False
    """Share a trunk of ``net_arch`` layers between the policy and value heads (SB3's default: separate)."""
    activation: str = "tanh"
    """Activation between hidden layers."""
    normalize_obs: bool = False
    """Normalise observations with running statistics (SB3's ``VecNormalize(norm_reward=False)``, clip 10)."""
    normalize_reward: bool = False
    """Divide the rewards trained on by the running std of each env's discounted return, clipped to ±10 (SB3's
    ``VecNormalize(norm_reward=True)``, statistics updated once per rollout); for rewards of unknown scale."""

    @model_validator(mode="after")
    def _check_sizes(self) -> Config:
        if self.batch_size > self.n_steps * self.n_envs:
            rollout = self.n_steps * self.n_envs
            raise ValueError(f"batch_size={self.batch_size} is larger than a rollout (n_steps * n_envs = {rollout})")
        if self.shared_network and (isinstance(self.net_arch, Mapping) or not self.net_arch):
            raise ValueError("shared_network=True needs net_arch as a non-empty tuple of layer sizes")
        return self

    @property
    def n_minibatches(self) -> int:
        """Minibatch steps per epoch."""
        return self.n_steps * self.n_envs // self.batch_size


class State(struct.PyTreeNode):
    """Tensors (batched under vmap) plus the structure (static: equal across a sweep)."""

    params: actor_critic.Params
    opt_state: optim.ScaleByAdamState
    obs_norm: RunningMeanStd  # statistics the policy normalises with (unused unless normalize_obs)
    return_norm: RunningMeanStd  # () statistics of the discounted returns (unused unless normalize_reward)
    discounted: Tensor  # (n_envs,): each env's discounted return so far (unused unless normalize_reward)
    timestep: TimeStep | None  # where the next collect continues; None is allowed in update
    key: random.Key
    timesteps: Tensor  # int64 (): environment steps collected
    n_updates: Tensor  # int64 (): calls to update
    # Sweepable hyperparameters, 0-d float tensors; inf stands for "None" (no clipping, no early stop).
    lr: Tensor
    lr_horizon: Tensor  # timesteps over which a linear schedule reaches 0 (inf: constant)
    gamma: Tensor
    gae_lambda: Tensor
    clip_range: Tensor
    clip_range_vf: Tensor
    ent_coef: Tensor
    vf_coef: Tensor
    max_grad_norm: Tensor
    target_kl: Tensor
    n_steps: int = struct.field(static=True)
    n_envs: int = struct.field(static=True)
    n_epochs: int = struct.field(static=True)
    batch_size: int = struct.field(static=True)
    normalize_advantage: bool = struct.field(static=True)
    normalize_obs: bool = struct.field(static=True)
    normalize_reward: bool = struct.field(static=True)
    activation: str = struct.field(static=True)
    adam_eps: float = struct.field(static=True)
    obs_shape: tuple[int, ...] = struct.field(static=True)
    action_bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = struct.field(static=True)

    @property
    def n_minibatches(self) -> int:
        return self.n_steps * self.n_envs // self.batch_size


class Rollout(rollout_lib.Rollout):
    """What ``collect`` returns: a :class:`~imitation_fn.data.rollout.Rollout` plus what PPO needs.

    ``acts`` are the policy's samples, for ``Box`` actions *before* clipping (SB3's rollout buffer);
    ``actor_critic.clip_action(acts, state.action_bounds)`` is what the environment received. ``rews``
    are the rewards trained on (``reward_fn``'s when given), ``env_rews`` the environment's.
    """

    env_rews: Tensor  # (n_steps, n_envs) float32
    log_probs: Tensor  # (n_steps, n_envs): log π(acts | obs) under the collecting params
    values: Tensor  # (n_steps, n_envs): V(obs) under the collecting params


class TrainBatch(struct.PyTreeNode):
    """A rollout flattened to ``n_steps * n_envs`` rows, with GAE's advantages and returns."""

    obs: Tensor  # (N, *obs_shape), normalised as the policy saw it
    acts: Tensor  # (N, *act_shape)
    log_probs: Tensor  # (N,)
    values: Tensor  # (N,)
    advantages: Tensor  # (N,)
    returns: Tensor  # (N,) advantages + values: the value target


class Progress(struct.PyTreeNode):
    """The carry of one update's minibatch loop: early-stop flag and sums of SB3's logged metrics."""

    key: random.Key  # shuffles the epochs
    lr: Tensor  # () the learning rate of this update
    t: Tensor  # int64 (): minibatch steps visited
    stopped: Tensor  # bool (): target_kl was exceeded; no further gradient steps
    n: Tensor  # (): minibatches whose losses were computed (SB3 logs those, the stopping one included)
    sums: dict[str, Tensor]  # policy_gradient_loss, value_loss, entropy_loss, clip_fraction
    kl_sum: Tensor  # () approx_kl summed over the last epoch entered (SB3 logs that epoch's mean)
    kl_n: Tensor  # ()
    loss: Tensor  # () the last computed minibatch loss
    n_epochs: Tensor  # int64 (): epochs entered (SB3's n_updates increment)


# ---------------------------------------------------------------------------------------------------------------------
# init / collect
# ---------------------------------------------------------------------------------------------------------------------


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """A fresh state: actor-critic params from ``key``, Adam at step 0, ``task.env`` reset (so ``collect`` can start).

    A host env (``env.host``: gymnasium's) is not reset here (``init`` runs under ``vmap``): its timestep stays
    ``None``, and the loop steps it from outside (:func:`ppo_batched.host_collect`).

    ``task.total`` (the run's env steps) is needed only for ``lr_schedule="linear"`` (the schedule's horizon).
    """
    task.require("env", who="ppo.init")
    env, total_timesteps = task.env, task.total
    assert env is not None
    if env.n_envs != cfg.n_envs:
        raise ValueError(f"ppo.init: the env has n_envs={env.n_envs} but cfg.n_envs={cfg.n_envs}")
    if cfg.lr_schedule == "linear" and total_timesteps is None:
        raise ValueError("ppo.init: lr_schedule='linear' needs total_timesteps (the horizon of the schedule)")
    k_params, k_reset, k_state = random.split(key, 3)
    arch = cfg.net_arch
    net_arch: actor_critic.NetArch = arch if isinstance(arch, tuple) else {str(k): v for k, v in arch.items()}
    params = actor_critic.init(k_params, env.observation_space, env.action_space, net_arch, cfg.shared_network)
    obs_shape = tuple(env.observation_space.shape or ())
    horizon = float(total_timesteps) if cfg.lr_schedule == "linear" and total_timesteps else math.inf

    def scalar(x: float | None) -> Tensor:
        return torch.tensor(math.inf if x is None else float(x))

    return State(
        params=params,
        opt_state=_adam(cfg.adam_eps).init(params),
        obs_norm=normalize.init(obs_shape),
        return_norm=normalize.init(()),
        discounted=torch.zeros(cfg.n_envs),
        timestep=None if env.host else env.reset(k_reset),  # a host env cannot reset under vmap: its caller resets it
        key=k_state,
        timesteps=torch.zeros((), dtype=torch.int64),
        n_updates=torch.zeros((), dtype=torch.int64),
        lr=scalar(cfg.lr),
        lr_horizon=scalar(horizon),
        gamma=scalar(cfg.gamma),
        gae_lambda=scalar(cfg.gae_lambda),
        clip_range=scalar(cfg.clip_range),
        clip_range_vf=scalar(cfg.clip_range_vf),
        ent_coef=scalar(cfg.ent_coef),
        vf_coef=scalar(cfg.vf_coef),
        max_grad_norm=scalar(cfg.max_grad_norm),
        target_kl=scalar(cfg.target_kl),
        n_steps=cfg.n_steps,
        n_envs=cfg.n_envs,
        n_epochs=cfg.n_epochs,
        batch_size=cfg.batch_size,
        normalize_advantage=cfg.normalize_advantage,
        normalize_obs=cfg.normalize_obs,
        normalize_reward=cfg.normalize_reward,
        activation=cfg.activation,
        adam_eps=cfg.adam_eps,
        obs_shape=obs_shape,
        action_bounds=actor_critic.action_bounds(env.action_space),
    )


def _adam(eps: float) -> optim.GradientTransformation:
    # Rebuilt per call (two closures): torch.compile warns about functools.cache-wrapped functions.
    return optim.scale_by_adam(eps=eps)


def _normalize(state: State, obs: Tensor) -> Tensor:
    return normalize.normalize(state.obs_norm, obs.to(torch.float32)) if state.normalize_obs else obs


def collect(state: State, task: Task, key: random.Key | None = None) -> tuple[State, Rollout]:
    """:func:`collect_env` on ``task.env``, rewarded by ``task.reward_fn`` when the task has one."""
    assert task.env is not None, "ppo.collect: the task has no env"
    return collect_env(state, task.env, key, task.reward_fn)


def collect_env(
    state: State, env: Env, key: random.Key | None = None, reward_fn: RewardFn | None = None
) -> tuple[State, Rollout]:
    """Run the current policy for ``n_steps`` steps in each of ``env``'s ``n_envs`` environments.

    Pure for torch environments (``vmap`` it over states); also runs a host-side ``GymEnv``. Continues
    from ``state.timestep``. Randomness comes from ``key``, or from ``state.key`` (which then advances).
    ``reward_fn(obs, acts, next_obs, dones)``, called once on the flattened rollout with the actions the
    env received and ``dones = terminated | truncated``, replaces the environment's rewards.
    For many seeds at once, :func:`ppo_batched.batched_collect` is ``vmap(collect)`` with an optionally compiled step.
    """
    _check_collect(state, env)
    state, noise, env_keys = collect_begin(state, key)
    timestep, steps = _timestep(state), []
    for t in range(state.n_steps):
        timestep, record = collect_step(state, env, timestep, noise[t], env_keys[t])
        steps.append(record)
    return collect_end(state, timestep, tree.map(lambda *xs: torch.stack(xs), *steps), reward_fn)


class StepRecord(struct.PyTreeNode):
    """One step of every env, as ``collect_step`` records it (a leading ``n_steps`` axis once stacked)."""

    obs: Tensor  # (n_envs, *obs_shape)
    acts: Tensor  # (n_envs, *act_shape): the sample, before clipping
    env_rews: Tensor  # (n_envs,)
    terminated: Tensor  # (n_envs,) bool
    truncated: Tensor  # (n_envs,) bool
    next_obs: Tensor  # (n_envs, *obs_shape): the state the step reached (pre auto-reset)
    log_probs: Tensor  # (n_envs,)
    values: Tensor  # (n_envs,)


def _timestep(state: State) -> TimeStep:
    assert state.timestep is not None  # _check_collect's
    return state.timestep


def _check_collect(state: State, env: Env) -> None:
    if state.timestep is None:
        raise ValueError(
            "ppo.collect: state.timestep is None (init leaves a host env unreset; ppo_batched.host_collect steps it "
            "for the loop); put env.reset(key) there first"
        )
    if env.n_envs != state.n_envs:
        raise ValueError(f"ppo.collect: the env has n_envs={env.n_envs} but the state was built for {state.n_envs}")


def collect_begin(state: State, key: random.Key | None) -> tuple[State, Tensor, Tensor]:
    """``(state, noise (n_steps, n_envs, ...), env_keys (n_steps, 2))``: a whole rollout's randomness at once."""
    if key is None:
        keys = random.split(state.key)
        state, key = state.replace(key=keys[0]), keys[1]
    noise_key, env_key = random.split(key)
    noise = actor_critic.noise(state.params, noise_key, (state.n_steps, state.n_envs))
    return state, noise, random.split(env_key, state.n_steps)


def collect_step(
    state: State, env: Env, timestep: TimeStep, noise: Tensor, key: random.Key
) -> tuple[TimeStep, StepRecord]:
    """Act in every env from ``timestep`` with ``state``'s policy and pre-drawn ``noise``; step the env with ``key``.

    The unit that :func:`ppo_batched.batched_collect` compiles: a policy forward pass plus one fused env step.
    """
    action, log_prob, value = act(state, timestep.obs, noise)
    nxt = env.step(timestep.env_state, actor_critic.clip_action(action, state.action_bounds), key)
    return nxt, step_record(timestep, nxt, action, log_prob, value)


def act(state: State, obs: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(action, log π(action | obs), V(obs))`` of the policy on ``obs: (n_envs, ...)`` with pre-drawn ``noise``.

    The action is the sample before clipping; ``actor_critic.clip_action(action, state.action_bounds)`` is what
    the environment receives.
    """
    dist, value = actor_critic.forward(state.params, _normalize(state, obs), state.activation)
    action = actor_critic.sample(dist, noise)
    return action, dist.log_prob(action), value


def step_record(timestep: TimeStep, nxt: TimeStep, action: Tensor, log_prob: Tensor, value: Tensor) -> StepRecord:
    """What a rollout keeps of the step from ``timestep`` to ``nxt`` taken with ``action``."""
    return StepRecord(
        obs=timestep.obs,
        acts=action,
        env_rews=nxt.reward,
        terminated=nxt.terminated,
        truncated=nxt.truncated,
        next_obs=nxt.final_obs,
        log_probs=log_prob,
        values=value,
    )


def collect_end(
    state: State, timestep: TimeStep | None, steps: StepRecord, reward_fn: RewardFn | None = None
) -> tuple[State, Rollout]:
    """The rollout from ``steps`` (stacked ``(n_steps, n_envs, ...)``), rewards replaced by ``reward_fn`` if given.

    ``timestep`` is where the next collect continues (``None`` for host envs, whose timestep the caller keeps).
    """
    rollout = Rollout(
        obs=steps.obs,
        acts=steps.acts,
        rews=steps.env_rews.to(torch.float32),
        terminated=steps.terminated,
        truncated=steps.truncated,
        next_obs=steps.next_obs,
        env_rews=steps.env_rews,
        log_probs=steps.log_probs,
        values=steps.values,
    )
    state = state.replace(timestep=timestep, timesteps=state.timesteps + state.n_steps * state.n_envs)
    return state, rollout if reward_fn is None else relabel(state, rollout, reward_fn)


def relabel(state: State, rollout: Rollout, reward_fn: RewardFn) -> Rollout:
    """``rollout`` with ``rews`` from ``reward_fn(obs, acts, next_obs, dones)``, called once on the flattened
    steps with the actions the env received and ``dones = terminated | truncated``."""
    rews = reward_fn(
        rollout.obs.flatten(0, 1),
        actor_critic.clip_action(rollout.acts.flatten(0, 1), state.action_bounds),
        rollout.next_obs.flatten(0, 1),
        (rollout.terminated | rollout.truncated).flatten(0, 1),
    ).reshape(rollout.env_rews.shape)
    return rollout.replace(rews=rews.to(torch.float32))


# ---------------------------------------------------------------------------------------------------------------------
# The math: GAE and the clipped surrogate loss
# ---------------------------------------------------------------------------------------------------------------------


def gae(
    rews: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: Tensor | float,
    gae_lambda: Tensor | float,
) -> Tensor:
    """Generalised advantage estimates ``(n_steps, n_envs)``, every input ``(n_steps, n_envs)``.

    ``next_values[t] = V(next_obs[t])``, the state the step reached (before any auto-reset).
    ``δ_t = r_t + γ V(s'_t) (1 - terminated_t) - V(s_t)``: a terminal state is worth 0, a truncated
    episode is bootstrapped from its true last state. ``A_t = δ_t + γλ (1 - done_t) A_{t+1}``: the
    recursion never crosses an episode boundary, terminated or truncated.
    """
    not_terminated = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - dones.to(values.dtype)
    deltas = rews + gamma * next_values * not_terminated - values
    advantage = torch.zeros_like(values[0])
    advantages = []
    for t in reversed(range(values.shape[0])):
        advantage = deltas[t] + gamma * gae_lambda * not_done[t] * advantage
        advantages.append(advantage)
    return torch.stack(advantages[::-1])


def loss(params: actor_critic.Params, state: State, mb: TrainBatch) -> tuple[Tensor, Metrics]:
    """SB3's PPO loss on a minibatch: ``policy_loss + ent_coef * entropy_loss + vf_coef * value_loss``."""
    values, log_prob, entropy = actor_critic.evaluate_actions(params, mb.obs, mb.acts, state.activation)
    advantages = mb.advantages
    if state.normalize_advantage and advantages.shape[0] > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = log_prob - mb.log_probs
    ratio = torch.exp(log_ratio)
    surrogate = torch.min(
        advantages * ratio, advantages * torch.clamp(ratio, 1.0 - state.clip_range, 1.0 + state.clip_range)
    )
    policy_loss = -surrogate.mean()
    clipped = mb.values + torch.clamp(values - mb.values, -state.clip_range_vf, state.clip_range_vf)
    values_pred = torch.where(torch.isfinite(state.clip_range_vf), clipped, values)
    value_loss = (mb.returns - values_pred).square().mean()
    entropy_loss = -entropy.mean()
    total = policy_loss + state.ent_coef * entropy_loss + state.vf_coef * value_loss
    metrics = {
        "policy_gradient_loss": policy_loss,
        "value_loss": value_loss,
        "entropy_loss": entropy_loss,
        "clip_fraction": ((ratio - 1.0).abs() > state.clip_range).to(ratio.dtype).mean(),
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),  # Schulman's k3 estimator, as SB3 and CleanRL
        "loss": total,
    }
    return total, tree.map(torch.detach, metrics)


# ---------------------------------------------------------------------------------------------------------------------
# update = prepare, then n_epochs × n_minibatches minibatch steps, then finish
# ---------------------------------------------------------------------------------------------------------------------


def prepare(state: State, rollout: Rollout) -> tuple[State, TrainBatch, Progress]:
    """Advantages and returns of a rollout collected with ``state.params``, flattened; the loop's carry.

    Advances the state's key, update counter and (with ``normalize_obs``) observation statistics.
    """
    n = state.n_steps * state.n_envs
    if tuple(rollout.rews.shape) != (state.n_steps, state.n_envs):
        raise ValueError(
            f"ppo.update: rollout has rews of shape {tuple(rollout.rews.shape)}, "
            f"expected (n_steps, n_envs) = ({state.n_steps}, {state.n_envs})"
        )
    obs = _normalize(state, rollout.obs).flatten(0, 1)
    next_obs = _normalize(state, rollout.next_obs).flatten(0, 1)
    next_values = actor_critic.value(state.params, next_obs, state.activation).reshape(rollout.values.shape)
    rews = rollout.rews
    if state.normalize_reward:
        state, rews = scale_rewards(state, rollout.rews, rollout.dones)
    advantages = gae(
        rews, rollout.values, next_values, rollout.terminated, rollout.dones, state.gamma, state.gae_lambda
    )
    data = TrainBatch(
        obs=obs,
        acts=rollout.acts.flatten(0, 1),
        log_probs=rollout.log_probs.flatten(0, 1),
        values=rollout.values.flatten(0, 1),
        advantages=advantages.flatten(0, 1),
        returns=(advantages + rollout.values).flatten(0, 1),
    )
    keys = random.split(state.key)
    # The learning rate of this update: a linear schedule by the timesteps collected before this rollout.
    progress_done = (state.timesteps - n).to(state.lr.dtype) / state.lr_horizon
    zero = torch.zeros_like(state.lr)
    carry = Progress(
        key=keys[1],
        lr=state.lr * torch.clamp(1.0 - progress_done, min=0.0),
        t=torch.zeros_like(state.timesteps),
        stopped=torch.zeros_like(state.timesteps, dtype=torch.bool),
        n=zero,
        sums={k: zero for k in ("policy_gradient_loss", "value_loss", "entropy_loss", "clip_fraction")},
        kl_sum=zero,
        kl_n=zero,
        loss=zero,
        n_epochs=torch.zeros_like(state.timesteps),
    )
    obs_norm = normalize.update(state.obs_norm, rollout.obs) if state.normalize_obs else state.obs_norm
    state = state.replace(key=keys[0], n_updates=state.n_updates + 1, obs_norm=obs_norm)
    return state, data, carry


def scale_rewards(state: State, rews: Tensor, dones: Tensor) -> tuple[State, Tensor]:
    """``rews: (n_steps, n_envs)`` divided by the running std of the discounted returns and clipped to ±10, and
    the state with those statistics and each env's return updated (SB3's ``VecNormalize`` reward scaling)."""
    discounted, returns = state.discounted, []
    for t in range(rews.shape[0]):
        discounted = discounted * state.gamma + rews[t]
        returns.append(discounted)
        discounted = torch.where(dones[t], torch.zeros_like(discounted), discounted)
    return_norm = normalize.update(state.return_norm, torch.stack(returns).flatten())
    scaled = torch.clamp(rews / torch.sqrt(return_norm.var + 1e-8), -10.0, 10.0)
    return state.replace(return_norm=return_norm, discounted=discounted), scaled


def minibatch_indices(carry: Progress, epoch: int | Tensor, n: int, batch_size: int) -> Tensor:
    """``(n // batch_size, batch_size)`` indices into the ``n`` rows: epoch ``epoch``'s shuffled minibatches."""
    perm = random.permutation(random.fold_in(carry.key, epoch), n)
    n_mb = n // batch_size
    return perm[: n_mb * batch_size].reshape(n_mb, batch_size)


def minibatch_step(state: State, carry: Progress, data: TrainBatch, idx: Tensor) -> tuple[State, Progress]:
    """One clipped-surrogate gradient step on rows ``idx: (batch_size,)`` of ``data``, unless stopped by target_kl.

    As SB3: the minibatch's KL is measured before its step; once it exceeds ``1.5 * target_kl`` this
    and every later step of the update leave params and optimiser untouched (masked, not skipped).
    """
    mb = tree.map(lambda x: x[idx], data)
    grads, m = torch.func.grad(loss, has_aux=True)(state.params, state, mb)
    grads, _ = optim.clip_by_global_norm(state.max_grad_norm).update(grads, optim.EmptyState())
    updates, opt_state = _adam(state.adam_eps).update(grads, state.opt_state)
    params = tree.map(lambda p, u: p - carry.lr * u, state.params, updates)

    running = ~carry.stopped  # this minibatch's losses are computed (and logged)
    stopped = carry.stopped | (m["approx_kl"] > 1.5 * state.target_kl)
    step = ~stopped

    def keep(new: Any, old: Any) -> Any:
        return tree.map(lambda a, b: torch.where(step, a, b), new, old)

    state = state.replace(params=keep(params, state.params), opt_state=keep(opt_state, state.opt_state))
    first = carry.t % state.n_minibatches == 0  # first minibatch of an epoch: SB3 resets its KL list
    on = running.to(carry.n.dtype)
    reset = (first & running).to(carry.n.dtype)
    carry = carry.replace(
        t=carry.t + 1,
        stopped=stopped,
        n=carry.n + on,
        sums={k: v + on * m[k] for k, v in carry.sums.items()},
        kl_sum=carry.kl_sum * (1 - reset) + on * m["approx_kl"],
        kl_n=carry.kl_n * (1 - reset) + on,
        loss=torch.where(running, m["loss"], carry.loss),
        n_epochs=carry.n_epochs + (first & running).to(carry.n_epochs.dtype),
    )
    return state, carry


def finish(state: State, carry: Progress, data: TrainBatch) -> tuple[State, Metrics]:
    """The metrics SB3 logs after an update (``train/...``)."""
    var_returns = data.returns.var(correction=0)
    explained = 1.0 - (data.returns - data.values).var(correction=0) / var_returns
    metrics = {k: v / carry.n for k, v in carry.sums.items()}
    metrics.update(
        approx_kl=carry.kl_sum / carry.kl_n,
        loss=carry.loss,
        explained_variance=torch.where(var_returns == 0, torch.nan, explained),
        learning_rate=carry.lr,
        clip_range=state.clip_range,
        n_epochs=carry.n_epochs.to(carry.n.dtype),
        early_stop=carry.stopped.to(carry.n.dtype),
    )
    if "log_std" in state.params:
        metrics["std"] = state.params["log_std"].exp().mean()
    return state, metrics


def epoch_indices(state: State, carry: Progress, epoch: int | Tensor) -> Tensor:
    """:func:`minibatch_indices` of an update's rollout for epoch ``epoch`` (an int, or an int64 0-d tensor)."""
    return minibatch_indices(carry, epoch, state.n_steps * state.n_envs, state.batch_size)


def all_indices(state: State, carry: Progress) -> Tensor:
    """Every minibatch of an update in the order the steps take them: ``(n_epochs * n_minibatches, batch_size)``."""
    epochs = torch.arange(state.n_epochs, device=state.key.device)
    return torch.func.vmap(epoch_indices, in_dims=(None, None, 0))(state, carry, epochs).flatten(0, 1)


StepFn = Callable[[State, Progress, TrainBatch, Tensor], tuple[State, Progress]]


def steps_in_python(
    step_fn: StepFn, state: State, carry: Progress, data: TrainBatch, idx: Tensor
) -> tuple[State, Progress]:
    """``step_fn`` on each minibatch ``idx[i]`` in turn: the eager loop."""
    for i in range(idx.shape[0]):
        state, carry = step_fn(state, carry, data, idx[i])
    return state, carry


def _run(
    state: State,
    rollout: Rollout,
    prepare_fn: Callable[..., Any],
    step_fn: StepFn,
    finish_fn: Callable[..., Any],
    indices_fn: Callable[..., Tensor],
    repeat: Callable[..., tuple[State, Progress]] = steps_in_python,
) -> tuple[State, Metrics]:
    """The update, for one state or (with vmapped pieces) a stack of them: prepare, every minibatch step, finish.

    ``repeat`` runs the steps: a Python loop eagerly, a ``while_loop`` under ``torch.compile``.
    """
    state, data, carry = prepare_fn(state, rollout)
    state, carry = repeat(step_fn, state, carry, data, indices_fn(state, carry))
    return finish_fn(state, carry, data)


def update(state: State, batch: Rollout) -> tuple[State, Metrics]:
    """One PPO update on a rollout just collected with ``state.params``: GAE, then ``n_epochs`` of minibatch SGD.

    Pure: ``vmap(update)`` over stacked states and rollouts trains a sweep; :func:`ppo_batched.batched_update` is
    the same update over stacked states, its steps in a ``while_loop`` when compiled.
    """
    return _run(state, batch, prepare, minibatch_step, finish, all_indices)


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The policy as ``(obs, key) -> actions`` for the env (normalised observations, clipped ``Box`` actions)."""

    def policy_fn(obs: Tensor, key: random.Key) -> Tensor:
        action = actor_critic.act(
            state.params, _normalize(state, obs), key, deterministic=deterministic, activation=state.activation
        )
        return actor_critic.clip_action(action, state.action_bounds)

    return policy_fn


__all__ = [
    "Config",
    "Metrics",
    "Progress",
    "RewardFn",
    "Rollout",
    "State",
    "StepFn",
    "StepRecord",
    "TrainBatch",
    "act",
    "all_indices",
    "collect",
    "collect_begin",
    "collect_end",
    "collect_step",
    "epoch_indices",
    "finish",
    "gae",
    "init",
    "loss",
    "minibatch_indices",
    "minibatch_step",
    "policy",
    "prepare",
    "relabel",
    "step_record",
    "steps_in_python",
    "update",
]
