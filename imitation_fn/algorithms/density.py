"""Density-based reward modelling: reward = log-density of the demonstrations at the visited point.

A non-parametric kernel density estimate of ``p(s)``, ``p(s, a)`` or ``p(s, s')`` over the
demonstrations (``imitation``'s ``DensityAlgorithm``), with scikit-learn ``KernelDensity``'s kernels
and normalisation, optional standardisation of the inputs (``StandardScaler``), one density for all
time steps or one per time step (``is_stationary=False``). A policy is then trained on
``r_t(s, a, s') = log p̂_t(·)`` with PPO (``cfg.rl``).

    state = density.init(cfg, key, Task(env=env, demos=trajectories, total=50_000))  # fits the density
    state, rollout = density.collect(state, task)   # PPO's rollout, rews relabelled with each step's time index
    state, metrics = density.update(state, rollout)
    rews = density.reward(state)(obs, acts, next_obs, dones, steps)      # pure, any batch size

    demos = density.demo_points(cfg, trajectories, obs_space, act_space)  # the model alone (host side),
    model = density.fit(cfg, demos)                       # pure: vmap over demo sets or bandwidths

``imitation_fn.train.density`` trains many seeds at once (one ``vmap``) through the training loop;
``test_policy`` reports ``rollout_stats`` under the true or the imitation reward, as ``imitation`` does.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import torch
from pydantic import PositiveFloat, field_validator
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.data.utils import check_spaces
from imitation_fn.envs.base import PolicyFn
from imitation_fn.envs.task import Task
from imitation_fn.policies import actor_critic
from imitation_fn.rl import ppo, ppo_batched

Kernel = Literal["gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"]
KERNELS: tuple[str, ...] = ("gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine")
OneHot = tuple[int, int] | None  # (n, start) of a Discrete space, or None for a Box (flattened as is)
_CHUNK_ELEMENTS = 1 << 21  # query × demo × feature elements per chunk: bounds memory for large rollouts


class DensityType(enum.Enum):
    """Input the density model is fitted on (``imitation``'s names; values are the CLI's spellings)."""

    STATE_DENSITY = "state"
    """Density on states ``s``."""
    STATE_ACTION_DENSITY = "state_action"
    """Density on ``(s, a)`` pairs (discrete actions one-hot)."""
    STATE_STATE_DENSITY = "state_state"
    """Density on ``(s, s')`` pairs."""


class Config(BaseConfig):
    """The density model. Defaults: ``imitation``'s ``DensityAlgorithm``."""

    density_type: DensityType = DensityType.STATE_ACTION_DENSITY
    """What the density is over: ``state``, ``state_action`` or ``state_state`` (imitation's names work too)."""
    kernel: Kernel = "gaussian"
    """Kernel of scikit-learn's ``KernelDensity``; gaussian and exponential are the best bets for training."""
    kernel_bandwidth: PositiveFloat | Literal["scott", "silverman"] = 0.5
    """Kernel bandwidth, or scikit-learn's rule of thumb (per density model, from its sample size)."""
    is_stationary: bool = True
    """One density for all time steps; False: one per time step (needs trajectories, not transitions)."""
    standardise_inputs: bool = True
    """Standardise features to zero mean, unit variance over the demonstrations (scikit-learn's StandardScaler)."""
    allow_variable_horizon: bool = False
    """Accept episodes of different lengths (demonstrations and training); they leak reward information."""
    rl: ppo.Config = ppo.Config()
    """The agent trained on the density reward: PPO's config."""

    @field_validator("density_type", mode="before")
    @classmethod
    def _imitation_names(cls, v: Any) -> Any:
        if isinstance(v, str) and v.upper() in DensityType.__members__:  # "STATE_ACTION_DENSITY"
            return DensityType[v.upper()]
        return v


class Demos(struct.PyTreeNode):
    """Featurised demonstration rows, grouped by density model: one group, or one per time step."""

    points: Tensor  # (n_models, max_points, d): row i of model t (time t when non-stationary)
    mask: Tensor  # (n_models, max_points) bool: real rows (later time steps have fewer when episodes differ)
    density_type: DensityType = struct.field(static=True)
    obs_onehot: OneHot = struct.field(static=True)
    act_onehot: OneHot = struct.field(static=True)


class DensityModel(struct.PyTreeNode):
    """A fitted kernel density estimate (one per time step when non-stationary): the learned reward."""

    points: Tensor  # (n_models, max_points, d) standardised demonstration rows (padding rows: 0)
    log_weights: Tensor  # (n_models, max_points): 0 for real rows, -inf for padding
    log_n: Tensor  # (n_models,) log of each model's number of rows
    bandwidth: Tensor  # (n_models,) sweepable
    mean: Tensor  # (d,) standardisation: x -> (x - mean) / scale (0 and 1 without it)
    scale: Tensor  # (d,)
    kernel: str = struct.field(static=True)
    is_stationary: bool = struct.field(static=True)
    density_type: DensityType = struct.field(static=True)
    obs_onehot: OneHot = struct.field(static=True)
    act_onehot: OneHot = struct.field(static=True)


class State(struct.PyTreeNode):
    """PPO's state plus the (fixed) density model and each environment's time step in its episode."""

    density: DensityModel
    rl: ppo.State
    ep_t: Tensor  # (n_envs,) int64: time step of each env's current observation in its episode


Metrics = dict[str, Tensor]  # PPO's, plus imitation_reward and true_reward: each rollout's mean reward


# ---------------------------------------------------------------------------------------------------------------------
# Kernel density estimation (scikit-learn's KernelDensity, exact: no tree approximation)
# ---------------------------------------------------------------------------------------------------------------------


def _log_volume(n: int) -> float:
    """log V_n, the volume of the unit n-ball."""
    return 0.5 * n * math.log(math.pi) - math.lgamma(0.5 * n + 1)


def _log_surface(n: int) -> float:
    """log S_n, the surface of the unit n-sphere (in R^(n+1))."""
    return math.log(2 * math.pi) + _log_volume(n - 1)


def log_kernel_factor(kernel: str, d: int) -> float:
    """log ∫ K(‖u‖) du over R^d for the unnormalised kernel at bandwidth 1 (scikit-learn's ``kernel_norm``)."""
    if kernel == "gaussian":
        return 0.5 * d * math.log(2 * math.pi)
    if kernel == "tophat":
        return _log_volume(d)
    if kernel == "epanechnikov":
        return _log_volume(d) + math.log(2.0 / (d + 2.0))
    if kernel == "exponential":
        return _log_surface(d - 1) + math.lgamma(d)
    if kernel == "linear":
        return _log_volume(d) - math.log(d + 1.0)
    if kernel == "cosine":
        # S_(d-1) ∫_0^1 cos(πr/2) r^(d-1) dr, the integral from cos's Taylor series (terms fall fast: a = π/2).
        # scikit-learn's recursion is this for odd d but wrong for even d (nan for d = 4, 8; off for 2, 6).
        a = math.pi / 2
        moment = sum((-1) ** k * a ** (2 * k) / (math.factorial(2 * k) * (d + 2 * k)) for k in range(40))
        return math.log(moment) + _log_surface(d - 1)
    raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")


def log_kernel(kernel: str, sq_dist: Tensor, h: Tensor) -> Tensor:
    """Unnormalised log K(dist / h) of squared distances; ``-inf`` outside a compact kernel's support (dist >= h)."""
    if kernel == "gaussian":
        return sq_dist * (-0.5 / h.square())  # no square root: the common case stays cheap
    u = sq_dist.sqrt() / h
    if kernel == "exponential":
        return -u
    inside = u < 1.0
    u = u.clamp(max=1.0)  # keeps the discarded branch finite
    if kernel == "tophat":
        value = torch.zeros_like(u)
    elif kernel == "epanechnikov":
        value = torch.log1p(-u.square())
    elif kernel == "linear":
        value = torch.log1p(-u)
    elif kernel == "cosine":
        value = torch.log(torch.cos(0.5 * math.pi * u))
    else:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    return torch.where(inside, value, -math.inf)


def kde_log_density(
    x: Tensor,
    points: Tensor,
    log_weights: Tensor,
    log_n: Tensor,
    bandwidth: Tensor,
    kernel: str,
    index: Tensor | None = None,
) -> Tensor:
    """``log p̂(x) = logsumexp_i log K(‖x - p_i‖ / h) - log n - log ∫K_h``: ``(M,)`` for ``x: (M, d)``.

    ``points: (n_models, P, d)`` with ``log_weights: (n_models, P)`` (0 or -inf), ``log_n`` and
    ``bandwidth: (n_models,)``; query ``m`` uses model ``index[m]`` (``None``: model 0 for every query).
    Equals ``KernelDensity(kernel=kernel, bandwidth=h).fit(p).score_samples(x)``. Pure; computed in
    chunks of queries so that a rollout of any size fits in memory.
    """
    m_total, d = x.shape
    n_points = points.shape[1]
    per_query = index is not None  # per-time models: each query gathers its own (P, d) rows
    chunk = max(1, min(m_total, _CHUNK_ELEMENTS // max(1, n_points * (d if per_query else 1))))
    log_factor = log_kernel_factor(kernel, d)
    # ‖x - p‖² = ‖x‖² + ‖p‖² - 2 x·p: one matrix product instead of a (queries, P, d) difference tensor.
    # Distances do not change under translation; centring first keeps the cancellation small.
    center = points.flatten(0, 1).mean(0)
    x, points = x - center, points - center
    sq_points = points.square().sum(-1)  # (n_models, P)
    out = []
    for start in range(0, m_total, chunk):
        xs = x[start : start + chunk]
        if index is None:
            pts, sq_p, lw, ln, h = points[0], sq_points[0], log_weights[0], log_n[0], bandwidth[0]
            cross, h_col = xs @ pts.T, h  # (m, P)
        else:
            idx = index[start : start + chunk]
            pts, sq_p, lw, ln, h = points[idx], sq_points[idx], log_weights[idx], log_n[idx], bandwidth[idx]
            cross, h_col = torch.einsum("md,mpd->mp", xs, pts), h[:, None]
        sq_dist = (xs.square().sum(-1, keepdim=True) + sq_p - 2 * cross).clamp(min=0)  # rounding can give < 0
        log_sum = torch.logsumexp(log_kernel(kernel, sq_dist, h_col) + lw, dim=-1)
        out.append(log_sum - ln - log_factor - d * torch.log(h))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------------------
# Features and fitting
# ---------------------------------------------------------------------------------------------------------------------


def _onehot_of(space: gym.Space[Any], what: str) -> OneHot:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), int(space.start)
    if isinstance(space, gym.spaces.Box):
        return None
    raise ValueError(f"density: unsupported {what} space {space}; Box and Discrete are supported")


def _flat(x: Tensor, onehot: OneHot, n_batch_dims: int, dtype: torch.dtype) -> Tensor:
    """gymnasium's ``flatten``: a Box's values as a vector, a Discrete value as a one-hot vector."""
    if onehot is None:
        return x.flatten(n_batch_dims).to(dtype)
    n, start = onehot
    # (x == arange) rather than F.one_hot: no data-dependent range check, so it works under vmap.
    return (x[..., None] - start == torch.arange(n, device=x.device)).to(dtype)


def features(
    density_type: DensityType,
    obs_onehot: OneHot,
    act_onehot: OneHot,
    obs: Tensor,
    acts: Tensor,
    next_obs: Tensor,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``(N, d)`` rows the density is over: ``s``, ``[s, a]`` or ``[s, s']``, flattened as gymnasium does."""
    s = _flat(obs, obs_onehot, 1, dtype)
    if density_type is DensityType.STATE_DENSITY:
        return s
    if density_type is DensityType.STATE_ACTION_DENSITY:
        return torch.cat([s, _flat(acts, act_onehot, 1, dtype)], dim=-1)
    return torch.cat([s, _flat(next_obs, obs_onehot, 1, dtype)], dim=-1)


def check_fixed_horizon(lengths: Sequence[int], allow_variable_horizon: bool, what: str) -> None:
    """``imitation``'s refusal of episodes of different lengths, unless ``allow_variable_horizon``."""
    if not allow_variable_horizon and len(set(lengths)) > 1:
        raise ValueError(
            f"density: {what} have different lengths ({sorted(set(lengths))[:5]}...). Variable-horizon episodes "
            "leak information about the reward through their termination and can seriously confound evaluation "
            "(https://imitation.readthedocs.io/en/latest/guide/variable_horizon.html); use a fixed-horizon "
            "environment (e.g. seals/CartPole-v0) or set allow_variable_horizon=True."
        )


def demo_points(
    cfg: Config,
    demonstrations: Sequence[Trajectory] | Transitions,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    dtype: torch.dtype = torch.float32,
) -> Demos:
    """Featurise demonstrations into the fixed-shape :class:`Demos` that :func:`fit` takes (host side).

    Trajectories give each row its time step (row ``i`` of model ``t`` is trajectory ``i`` at step ``t``
    when ``cfg.is_stationary`` is False); :class:`Transitions` have none, so only a stationary model fits them.
    """
    check_spaces(demonstrations, observation_space, action_space)
    obs_onehot, act_onehot = _onehot_of(observation_space, "observation"), _onehot_of(action_space, "action")

    def feats(obs: Tensor, acts: Tensor, next_obs: Tensor) -> Tensor:
        return features(cfg.density_type, obs_onehot, act_onehot, obs, acts, next_obs, dtype)

    if isinstance(demonstrations, Transitions):
        if not cfg.is_stationary:
            raise ValueError("density: a non-stationary model needs trajectories (with time steps), not Transitions")
        rows = [feats(demonstrations.obs, demonstrations.acts, demonstrations.next_obs)]
    else:
        trajs = list(demonstrations)
        if not trajs:
            raise ValueError("density: got no demonstrations")
        check_fixed_horizon([len(t) for t in trajs], cfg.allow_variable_horizon, "demonstrations")
        rows = [feats(t.obs[:-1], t.acts, t.obs[1:]) for t in trajs if len(t) > 0]
        if not cfg.is_stationary:  # rows[i][t] -> model t, point i
            n_models, n_traj = max(len(r) for r in rows), len(rows)
            points = torch.zeros(n_models, n_traj, rows[0].shape[1], dtype=dtype)
            mask = torch.zeros(n_models, n_traj, dtype=torch.bool)
            for i, r in enumerate(rows):
                points[: len(r), i] = r
                mask[: len(r), i] = True
            return Demos(points, mask, cfg.density_type, obs_onehot, act_onehot)
    points = torch.cat(rows)[None]
    if points.shape[1] == 0:
        raise ValueError("density: the demonstrations hold no transitions")
    return Demos(points, torch.ones(points.shape[:2], dtype=torch.bool), cfg.density_type, obs_onehot, act_onehot)


def fit(cfg: Config, demos: Demos, bandwidth: Tensor | float | None = None) -> DensityModel:
    """Fit the density model(s): standardise over all rows, then one KDE per model. Pure (vmap over ``demos``).

    ``bandwidth`` (0-d tensor or float) overrides ``cfg.kernel_bandwidth``, e.g. to sweep it under vmap.
    """
    points, mask = demos.points, demos.mask
    dtype = points.dtype
    w = mask.to(torch.float64)[..., None]  # scikit-learn's statistics use float64 accumulators
    n = w.sum((0, 1))  # (1,)
    x = points.to(torch.float64)
    mean = (w * x).sum((0, 1)) / n
    var = (w * (x - mean).square()).sum((0, 1)) / n
    if cfg.standardise_inputs:
        # StandardScaler: a feature constant up to rounding error keeps scale 1 (no division by ~0).
        eps = torch.finfo(torch.float64).eps
        constant = var <= n * eps * var + (n * mean * eps).square()
        scale = torch.where(constant, 1.0, var.sqrt())
    else:
        mean, scale = torch.zeros_like(mean), torch.ones_like(var)
    mean, scale = mean.to(dtype), scale.to(dtype)
    standardised = torch.where(mask[..., None], (points - mean) / scale, 0.0)
    counts = mask.sum(-1).to(dtype)  # (n_models,)
    d = points.shape[-1]
    if bandwidth is not None:
        h = torch.as_tensor(bandwidth, dtype=dtype).expand(counts.shape)
    elif cfg.kernel_bandwidth == "scott":
        h = counts ** (-1.0 / (d + 4))
    elif cfg.kernel_bandwidth == "silverman":
        h = (counts * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    else:
        h = torch.full_like(counts, float(cfg.kernel_bandwidth))
    return DensityModel(
        points=standardised,
        log_weights=torch.where(mask, 0.0, -math.inf).to(dtype),
        log_n=counts.log(),
        bandwidth=h,
        mean=mean,
        scale=scale,
        kernel=cfg.kernel,
        is_stationary=cfg.is_stationary,
        density_type=demos.density_type,
        obs_onehot=demos.obs_onehot,
        act_onehot=demos.act_onehot,
    )


def log_density(model: DensityModel, x: Tensor, steps: Tensor | None = None) -> Tensor:
    """``(N,)`` log-density of feature rows ``x: (N, d)`` (time steps ``steps: (N,)`` if non-stationary).

    A time step past the last demonstrated one uses the last step's density.
    """
    x = (x.to(model.points.dtype) - model.mean) / model.scale
    index = None
    if not model.is_stationary:
        if steps is None:
            raise ValueError("density: steps must be provided with non-stationary models")
        index = steps.clamp(0, model.points.shape[0] - 1)
    return kde_log_density(x, model.points, model.log_weights, model.log_n, model.bandwidth, model.kernel, index)


def reward_fn(model: DensityModel) -> Callable[..., Tensor]:
    """The learned reward ``(obs, acts, next_obs, dones, steps=None) -> rews (N,)`` float32: ``log p̂_t(·)``.

    ``steps: (N,)`` int, each row's time step in its episode, is needed only by a non-stationary model;
    a stationary model's reward is a ``ppo.collect_env(..., reward_fn=...)`` reward. Pure. Compact kernels
    (tophat, epanechnikov, linear, cosine) give ``-inf`` outside every demonstration's support.
    """

    def reward(obs: Tensor, acts: Tensor, next_obs: Tensor, dones: Tensor, steps: Tensor | None = None) -> Tensor:
        del dones  # as imitation: terminal transitions are not treated specially
        x = features(model.density_type, model.obs_onehot, model.act_onehot, obs, acts, next_obs, model.points.dtype)
        return log_density(model, x, steps).to(torch.float32)

    return reward


# ---------------------------------------------------------------------------------------------------------------------
# PPO on the density reward
# ---------------------------------------------------------------------------------------------------------------------


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """The density model fitted to ``task.demos`` next to PPO's fresh state (``ppo.init`` on ``task``).

    The fit does not depend on ``key``: under ``vmap`` over seeds it runs once, on unbatched tensors. The
    env is reset, so every episode is at t = 0.
    """
    task.require("env", "demos", who="density.init")
    env, demos = task.env, task.demos
    assert env is not None and demos is not None
    model = fit(cfg, demo_points(cfg, demos, env.observation_space, env.action_space))
    rl = ppo.init(cfg.rl, key, task)
    return State(density=model, rl=rl, ep_t=torch.zeros(env.n_envs, dtype=torch.int64))


def episode_steps(ep_t: Tensor, dones: Tensor) -> tuple[Tensor, Tensor]:
    """Time steps ``(n_steps, n_envs)`` of a rollout starting at ``ep_t: (n_envs,)``, and the next ``ep_t``."""
    steps = []
    t = ep_t
    for k in range(dones.shape[0]):
        steps.append(t)
        t = torch.where(dones[k], 0, t + 1)
    return torch.stack(steps), t


def collect(state: State, task: Task, key: random.Key | None = None) -> tuple[State, ppo.Rollout]:
    """``ppo.collect`` on ``task.env`` with ``rews`` replaced by the density reward (``env_rews`` keeps the true
    one). Pure."""
    assert task.env is not None, "density.collect: the task has no env"
    rl, rollout = ppo.collect_env(state.rl, task.env, key)
    return label(state.replace(rl=rl), rollout)


def label(state: State, rollout: ppo.Rollout) -> tuple[State, ppo.Rollout]:
    """``rollout`` (just collected by ``state.rl``) with ``rews`` replaced by the density reward. Pure."""
    rl = state.rl
    steps, ep_t = episode_steps(state.ep_t, rollout.dones)
    acts = actor_critic.clip_action(rollout.acts.flatten(0, 1), rl.action_bounds)  # what the env received
    rews = reward_fn(state.density)(
        rollout.obs.flatten(0, 1), acts, rollout.next_obs.flatten(0, 1), rollout.dones.flatten(0, 1), steps.flatten()
    )
    return state.replace(rl=rl, ep_t=ep_t), rollout.replace(rews=rews.reshape(rollout.rews.shape))


def _with_reward_metrics(metrics: Metrics, rollout: ppo.Rollout) -> Metrics:
    return {**metrics, "imitation_reward": rollout.rews.mean(), "true_reward": rollout.env_rews.mean()}


def update(state: State, batch: ppo.Rollout) -> tuple[State, Metrics]:
    """``ppo.update`` on a rollout from :func:`collect`; metrics add the mean imitation and true rewards."""
    rl, metrics = ppo.update(state.rl, batch)
    return state.replace(rl=rl), _with_reward_metrics(metrics, batch)


def batched_update(compile: bool = False) -> Callable[[State, ppo.Rollout], tuple[State, Metrics]]:
    """``vmap(update)`` over stacked states, with PPO's update optionally compiled (``ppo_batched.batched_update``)."""
    rl_update = ppo_batched.batched_update(compile)

    def run(states: State, rollouts: ppo.Rollout) -> tuple[State, Metrics]:
        rl, metrics = rl_update(states.rl, rollouts)
        return states.replace(rl=rl), torch.func.vmap(_with_reward_metrics)(metrics, rollouts)

    return run


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The trained policy ``(obs, key) -> actions``."""
    return ppo.policy(state.rl, deterministic)


def reward(state: State) -> Callable[..., Tensor]:
    """The learned reward: :func:`reward_fn` of the state's density model."""
    return reward_fn(state.density)


__all__ = [
    "KERNELS",
    "Config",
    "Demos",
    "DensityModel",
    "DensityType",
    "Kernel",
    "Metrics",
    "State",
    "batched_update",
    "check_fixed_horizon",
    "collect",
    "demo_points",
    "episode_steps",
    "features",
    "fit",
    "init",
    "kde_log_density",
    "label",
    "log_density",
    "log_kernel",
    "log_kernel_factor",
    "policy",
    "reward",
    "reward_fn",
    "update",
]
