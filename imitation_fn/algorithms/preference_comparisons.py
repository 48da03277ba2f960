"""Preference comparisons (Christiano et al., 2017): learn a reward from pairwise preferences between fragments.

Each round (``imitation``'s ``PreferenceComparisons.train``): sample trajectories from the agent (or a
fixed dataset), cut them into fragment pairs (random, or actively selected by ensemble disagreement),
label the pairs (synthetically from the true return, or by a human), push them into a bounded
dataset, fit the reward net to the labels with the Bradley–Terry cross-entropy, then train the agent
on the learned, normalised reward. Every piece of state is one pytree, so a whole round — synthetic
labelling included — is ``vmap``-ed over seeds on the torch environments:

    task = Task(env=envs.make("Pendulum-v1", n_envs=cfg.agent_cfg().n_envs))   # or Task(spaces=..., demos=trajs)
    state = preference_comparisons.init(cfg, key, task)
    for rnd in preference_comparisons.task_plan(cfg, task):     # host-side: each round has its own sizes
        state, batch = preference_comparisons.collect_round(state, task, rnd)   # fragments, synthetic labels
        state, metrics = preference_comparisons.update(state, batch)            # dataset, reward, then agent
    # human labels: state, frags, m = fragments(state, task, rnd); update(state, Batch(frags, prefs, m, rnd, task.env))

``collect(state, task)`` is ``collect_round`` for the round ``state.round`` counts (one seed at a time).
The building blocks live below this module: the query schedule in :mod:`imitation_fn.data.query_schedule`, the
fragmenter in :mod:`imitation_fn.data.fragments`, the synthetic gatherer in :mod:`imitation_fn.data.gatherers`,
the preference model, active selection, the loss, the reward trainer and the reward the agent trains on in
:mod:`imitation_fn.rewards.preference_model`, and the agent (sampling with exploration, training on the learned
reward, over one seed or a stack of them) in :mod:`imitation_fn.rl.agent_trainer`; the names ``imitation`` users
know from this module (``random_fragments``, ``synthetic_preferences``, ``cross_entropy_loss``, ...) are
re-exported here. Shapes: fragments ``(pairs, 2, L, ...)``, ensemble rewards ``(members, pairs, 2, L)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from torch import Tensor

from imitation_fn import rewards
from imitation_fn.core import random, struct
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data import preferences, query_schedule
from imitation_fn.data.fragments import Pool, check_fragment_supply, pool_from_trajectories, random_fragments
from imitation_fn.data.gatherers import synthetic_preferences
from imitation_fn.data.preferences import Fragments, PreferenceDataset
from imitation_fn.data.query_schedule import Round
from imitation_fn.data.types import TrajectoryWithRew
from imitation_fn.envs.base import Env, PolicyFn, RewardFn
from imitation_fn.envs.task import Task
from imitation_fn.nn.normalize import RunningMeanStd
from imitation_fn.rewards import preference_model
from imitation_fn.rewards.preference_model import (
    agent_reward,
    cross_entropy_loss,
    fragment_rewards,
    lp_penalty,
    variance_estimate,
)
from imitation_fn.rl import agent_trainer
from imitation_fn.rl.agent_trainer import AGENTS


class Config(BaseConfig):
    """Every hyperparameter; defaults are ``imitation``'s (``PreferenceComparisons``, ``RandomFragmenter``,
    ``SyntheticGatherer``, ``PreferenceModel``, ``BasicRewardTrainer``, ``AgentTrainer``)."""

    # --- the outer loop
    total_timesteps: NonNegativeInt = 1_000_000
    """Agent env steps in all (``train``'s argument; split over the ``num_iterations + 1`` rounds)."""
    total_comparisons: PositiveInt = 5_000
    """Preference queries in all (``train``'s argument)."""
    num_iterations: PositiveInt = 5
    """Rounds after the initial one; each gathers comparisons, trains the reward, then the agent."""
    initial_comparison_frac: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of ``total_comparisons`` gathered in the initial round, from the untrained agent."""
    initial_epoch_multiplier: PositiveFloat = 200.0
    """The initial round trains the reward model this many times longer."""
    query_schedule: Literal["constant", "hyperbolic", "inverse_quadratic"] = "hyperbolic"
    """How the remaining comparisons are spread over the rounds (weights at ``linspace(0, 1)``)."""
    comparison_queue_size: PositiveInt | None = None
    """Most comparisons kept (FIFO); None keeps all (the dataset then holds ``total_comparisons``)."""
    fragment_length: PositiveInt = 100
    """Steps per fragment."""
    transition_oversampling: PositiveFloat = 1.0
    """Sample this many times the ``2 * pairs * fragment_length`` transitions the fragments need."""
    allow_variable_horizon: bool = False
    """Accept episodes that end at different times (they leak reward information: see imitation's docs)."""
    # --- trajectories (AgentTrainer)
    exploration_frac: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of the sampled trajectories generated with the exploration wrapper."""
    switch_prob: float = Field(default=0.5, ge=0.0, le=1.0)
    """Exploration: probability of re-drawing the acting policy at each step."""
    random_prob: float = Field(default=0.5, ge=0.0, le=1.0)
    """Exploration: probability that a re-draw picks the random policy."""
    # --- fragmenter
    fragmenter: Literal["random", "active"] = "random"
    """``random`` (RandomFragmenter) or ``active`` (ActiveSelectionFragmenter; needs an ensemble)."""
    warning_threshold: NonNegativeInt = 10
    """Warn when fewer than this many times the needed transitions are available (0: never)."""
    fragment_sample_factor: PositiveFloat = 2.0
    """Active selection: sample this many times the pairs, keep the most uncertain."""
    uncertainty_on: Literal["logit", "probability", "label"] = "logit"
    """Active selection: the ensemble variance of the return difference, the probability or the label."""
    # --- synthetic gatherer
    gatherer_temperature: NonNegativeFloat = 1.0
    """Softmax temperature of the synthetic labels (0: deterministic, ties give 0.5)."""
    gatherer_discount_factor: float = Field(default=1.0, ge=0.0, le=1.0)
    """Discount of the true fragment returns."""
    gatherer_sample: bool = True
    """Labels are Bernoulli samples (True) or the probabilities themselves (False)."""
    gatherer_threshold: PositiveFloat = 50.0
    """Clip of the (tempered) return difference, in log space."""
    # --- preference model and reward net
    noise_prob: float = Field(default=0.0, ge=0.0, le=1.0)
    """Assumed probability that a label is uniformly random."""
    discount_factor: float = Field(default=1.0, ge=0.0, le=1.0)
    """Discount of the predicted fragment returns."""
    threshold: PositiveFloat = 50.0
    """Clip of the predicted return difference, in log space."""
    reward_hid_sizes: tuple[PositiveInt, ...] = (32, 32)
    """Hidden layers of the ``BasicRewardNet``."""
    reward_use_state: bool = True
    reward_use_action: bool = True
    reward_use_next_state: bool = False
    reward_use_done: bool = False
    ensemble_size: int | None = Field(default=None, ge=2)
    """Members of a reward ensemble (each trained on its own bootstrap); None: a single net."""
    normalize_reward: bool = True
    """Train the agent on the reward normalised by running statistics (``NormalizedRewardNet``)."""
    # --- reward trainer
    epochs: PositiveInt = 1
    """Passes over the dataset per round (times ``initial_epoch_multiplier`` in the first)."""
    batch_size: PositiveInt = 32
    """Pairs per optimiser step."""
    minibatch_size: PositiveInt | None = None
    """Pairs per gradient evaluation; gradients accumulate up to ``batch_size``. None: ``batch_size``."""
    lr: PositiveFloat = 1e-3
    """AdamW learning rate (a tensor in the optimiser state: sweepable)."""
    weight_decay: NonNegativeFloat = 0.01
    """AdamW's decoupled weight decay (``imitation`` uses ``torch.optim.AdamW``'s default, 0.01)."""
    regularizer: Literal["none", "lp", "weight_decay"] = "none"
    """``imitation.regularization``'s ``LpRegularizer`` (adds λΣ‖θ‖ₚᵖ) or ``WeightDecayRegularizer``
    (θ ← θ(1 - λ·lr) after each minibatch)."""
    regularizer_lambda: NonNegativeFloat = 0.0
    """Initial regularisation strength λ."""
    regularizer_p: PositiveInt = 2
    """``p`` of the Lp regulariser."""
    lambda_updater: Literal["none", "interval"] = "none"
    """``interval``: ``IntervalParamScaler`` scales λ by the validation/train loss ratio after each epoch."""
    scaling_factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    """``IntervalParamScaler``: λ ← λ(1 ± scaling_factor)."""
    tolerable_interval: tuple[NonNegativeFloat, NonNegativeFloat] = (0.9, 1.1)
    """``IntervalParamScaler``: val/train ratios in this interval leave λ unchanged."""
    val_split: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Share of the dataset held out for the λ updater (required by, and only with, an updater)."""
    # --- the agent
    agent: Literal["ppo", "sac"] = "ppo"
    """The RL algorithm trained on the learned reward."""
    agent_config: dict[str, Any] = Field(default_factory=dict)
    """Fields of the agent's Config (``ppo.Config`` / ``sac.Config``)."""
    relabel_replay: bool = True
    """Off-policy agents: relabel the replay buffer with the current reward each round (imitation keeps
    the stale rewards of the reward net that was current when a transition was collected)."""

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.minibatch_size is not None and self.batch_size % self.minibatch_size != 0:
            raise ValueError(f"batch_size={self.batch_size} must be a multiple of minibatch_size={self.minibatch_size}")
        if self.fragmenter == "active" and self.ensemble_size is None:
            raise ValueError("fragmenter='active' needs a reward ensemble: set ensemble_size >= 2")
        lo, hi = self.tolerable_interval
        if not lo < hi:
            raise ValueError(f"tolerable_interval must be (low, high) with low < high, got {self.tolerable_interval}")
        has_updater = self.lambda_updater != "none"
        if self.regularizer == "none" and (has_updater or self.regularizer_lambda > 0 or self.val_split is not None):
            raise ValueError(
                "regularizer_lambda, lambda_updater and val_split need a regularizer ('lp' or 'weight_decay')"
            )
        if self.regularizer != "none" and not has_updater and self.regularizer_lambda == 0.0:
            raise ValueError("a regularizer without lambda_updater needs regularizer_lambda > 0 (else it does nothing)")
        if has_updater and self.val_split is None:
            raise ValueError(
                "lambda_updater='interval' needs val_split: the updater compares validation and train loss"
            )
        if not has_updater and self.val_split is not None:
            raise ValueError("val_split without lambda_updater wastes data: set lambda_updater='interval'")
        try:
            AGENTS[self.agent].Config(**self.agent_config)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise ValueError(f"agent_config is not a valid {self.agent} config ({problems})") from None
        return self

    def agent_cfg(self) -> Any:
        return AGENTS[self.agent].Config(**self.agent_config)


# ---------------------------------------------------------------------------------------------------------------------
# State, the rounds' static sizes, and a round's batch
# ---------------------------------------------------------------------------------------------------------------------


class State(struct.PyTreeNode):
    """Everything that changes, as tensors (batched over seeds under vmap), plus the static config and net."""

    reward_params: Any  # the net's params (leaves (members, ...) for an ensemble)
    reward_opt: Any  # AdamW state (preference_model.init_optimizer): lr and weight decay as 0-d tensors
    reward_norm: RunningMeanStd  # output statistics of the agent's (normalised) reward
    reg_lambda: Tensor  # () float32: regularisation strength (moved by the interval scaler)
    dataset: PreferenceDataset
    agent: Any  # the RL algorithm's State ({} without an agent: vmap outputs must be tensors or containers)
    key: random.Key
    round: Tensor  # () int64: rounds completed
    sample_steps: Tensor  # () int64: env steps spent sampling trajectories for fragments
    cfg: Config = struct.field(static=True)
    net: Any = struct.field(static=True)  # rewards.BasicRewardNet or rewards.RewardEnsemble


Metrics = dict[str, Tensor]


def plan(cfg: Config, horizon: int | None = None) -> list[Round]:
    """The rounds' static sizes (:func:`query_schedule.plan`); ``horizon``: steps per sampled trajectory."""
    return query_schedule.plan(cfg, agent_trainer.steps_per_call(cfg.agent, cfg.agent_cfg()), horizon)


def task_plan(cfg: Config, task: Task) -> list[Round]:
    """:func:`plan` on ``task``: the agent samples whole episodes of its env (a dataset has no horizon)."""
    return plan(cfg, task.env.max_episode_steps if task.env is not None and task.demos is None else None)


class Batch(struct.PyTreeNode):
    """One round's labelled pairs: what :func:`collect` gathers and :func:`update` learns from."""

    fragments: Fragments  # leaves (pairs, 2, L, ...)
    prefs: Tensor  # (pairs,) probability that the first fragment is preferred (0, 1, 0.5 a tie)
    metrics: Metrics  # of the sampling, the fragmenter and the gatherer: update passes them on
    rnd: Round = struct.field(static=True)
    env: Env | None = struct.field(static=True, default=None)  # where update trains the agent (None: it does not)


# ---------------------------------------------------------------------------------------------------------------------
# The reward: training it, and the functions the agent and users get
# ---------------------------------------------------------------------------------------------------------------------


def train_reward(state: State, n_items: int, epoch_multiplier: float = 1.0) -> tuple[State, Metrics]:
    """``BasicRewardTrainer`` / ``EnsembleTrainer`` on ``state``'s dataset: :func:`preference_model.train`.

    ``round(epochs * epoch_multiplier)`` epochs over the first ``n_items`` pairs; returns the last epoch's mean
    metrics (``imitation``'s ``reward/final/train``). Pure; ``n_items`` is static.
    """
    trainer = preference_model.TrainState(
        params=state.reward_params, opt_state=state.reward_opt, reg_lambda=state.reg_lambda, key=state.key
    )
    trainer, metrics = preference_model.train(state.cfg, state.net, trainer, state.dataset, n_items, epoch_multiplier)
    new = state.replace(
        reward_params=trainer.params, reward_opt=trainer.opt_state, reg_lambda=trainer.reg_lambda, key=trainer.key
    )
    return new, metrics


def raw_reward_fn(state: State) -> RewardFn:
    """The learned reward ``(obs, acts, next_obs, dones) -> (N,)`` (an ensemble's mean), unnormalised."""
    net, params = state.net, state.reward_params
    return lambda obs, acts, next_obs, dones: net.apply(params, obs, acts, next_obs, dones).to(torch.float32)


def reward_fn(state: State) -> RewardFn:
    """The reward the agent trains on: :func:`raw_reward_fn`, normalised by ``state.reward_norm`` if configured."""
    return functools.partial(
        agent_reward, state.net, state.cfg.normalize_reward, (state.reward_params, state.reward_norm)
    )


# ---------------------------------------------------------------------------------------------------------------------
# The initial state
# ---------------------------------------------------------------------------------------------------------------------


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """A fresh state: reward net and optimiser, an empty dataset, and the agent on ``task.env``.

    There is no agent when the task has no env or holds ``demos`` (fragments are then cut from that fixed
    trajectory dataset); the task's spaces shape the reward net. ``task.total``, when set, is the run's budget
    in rounds and must be the query schedule's ``num_iterations + 1``.
    """
    if task.total is not None and task.total != cfg.num_iterations + 1:
        raise ValueError(
            f"preference_comparisons: a run is num_iterations + 1 = {cfg.num_iterations + 1} rounds, but the task's "
            f"total (the budget, counted in rounds) is {task.total}"
        )
    k_net, k_agent, k_state = random.split(key, 3)
    obs_space, act_space = task.observation_space, task.action_space
    net = preference_model.make_net(cfg, obs_space, act_space)
    params = net.init(k_net)
    capacity = cfg.comparison_queue_size or cfg.total_comparisons
    agent: Any = {}
    if task.env is not None and task.demos is None:
        agent = agent_trainer.init_agent(cfg.agent, cfg.agent_cfg(), k_agent, task.env, cfg.total_timesteps)
    return State(
        reward_params=params,
        reward_opt=preference_model.init_optimizer(params, cfg.lr, cfg.weight_decay),
        reward_norm=rewards.normalize.init(),
        reg_lambda=torch.tensor(float(cfg.regularizer_lambda)),
        dataset=preferences.init(capacity, preferences.example_fragments(obs_space, act_space, cfg.fragment_length)),
        agent=agent,
        key=k_state,
        round=torch.zeros((), dtype=torch.int64),
        sample_steps=torch.zeros((), dtype=torch.int64),
        cfg=cfg,
        net=net,
    )


# ---------------------------------------------------------------------------------------------------------------------
# The agent (imitation's AgentTrainer: imitation_fn.rl.agent_trainer) on this state
# ---------------------------------------------------------------------------------------------------------------------


def exploration(cfg: Config) -> agent_trainer.Exploration:
    """The exploration wrapper's settings from ``cfg``."""
    return agent_trainer.Exploration(cfg.exploration_frac, cfg.random_prob, cfg.switch_prob)


def sample_pool(state: State, env: Env, n_steps: int, key: random.Key) -> tuple[Pool, Metrics]:
    """Trajectories of ``state``'s agent: ``env.n_envs`` streams of ``n_steps`` from reset, the last
    ``round(exploration_frac * n_envs)`` through the exploration wrapper (:func:`agent_trainer.sample_pool`). Pure."""
    return agent_trainer.sample_pool(state.agent, state.cfg.agent, env, n_steps, key, exploration(state.cfg))


def train_agent(state: State, env: Env, n_calls: int) -> tuple[State, Metrics]:
    """``n_calls`` agent ``collect`` + ``update`` steps on the (normalised) learned reward. Pure for torch envs."""
    agent, metrics = agent_trainer.train_agent(state.agent, state.cfg.agent, env, reward_fn(state), n_calls)
    return state.replace(agent=agent), metrics


# ---------------------------------------------------------------------------------------------------------------------
# Collect: a round's fragment pairs and their labels
# ---------------------------------------------------------------------------------------------------------------------


def round_keys(state: State, key: random.Key | None = None) -> tuple[State, random.Key, random.Key]:
    """``(state, k_pool, k_frag)``: a round's keys for sampling trajectories and cutting fragments, split from
    ``key``, or (None) from the state's stream, which then advances."""
    if key is not None:
        k_pool, k_frag = random.split(key)
        return state, k_pool, k_frag
    key, k_pool, k_frag = random.split(state.key, 3)
    return state.replace(key=key), k_pool, k_frag


def cut(state: State, pool: Pool, rnd: Round, key: random.Key) -> tuple[Fragments, Metrics]:
    """``rnd.num_pairs`` pairs cut from ``pool``: random, or the most uncertain of ``fragment_sample_factor`` times
    as many (active selection). Pure."""
    if state.cfg.fragmenter == "active":
        return preference_model.active_fragments(state.cfg, state.net, state.reward_params, key, pool, rnd.num_pairs)
    return random_fragments(key, pool, state.cfg.fragment_length, rnd.num_pairs), {}


def fragments(state: State, task: Task, rnd: Round, key: random.Key | None = None) -> tuple[State, Fragments, Metrics]:
    """The round's pairs, to be labelled: cut from ``task.demos``, or from trajectories the agent samples in
    ``rnd.pool_envs`` copies of ``task.env`` (``rnd.pool_steps`` steps each, from reset). Pure for torch envs."""
    state, k_pool, k_frag = round_keys(state, key)
    metrics: Metrics = {}
    if task.demos is not None:
        pool = pool_from_trajectories(cast(Sequence[TrajectoryWithRew], task.demos), state.cfg.fragment_length)
    else:
        assert task.env is not None, "preference_comparisons: the task has neither demos nor an env to sample"
        pool, metrics = sample_pool(state, agent_trainer.env_copies(task.env, rnd.pool_envs), rnd.pool_steps, k_pool)
        state = state.replace(sample_steps=state.sample_steps + rnd.pool_envs * rnd.pool_steps)
    frags, m = cut(state, pool, rnd, k_frag)
    return state, frags, {**metrics, **m}


def label(state: State, frags: Fragments, key: random.Key | None = None) -> tuple[State, Tensor, Metrics]:
    """The synthetic gatherer on ``frags``' true rewards (``key`` None: from the state's stream). Pure."""
    cfg = state.cfg
    if key is None:
        new_key, key = random.split(state.key)
        state = state.replace(key=new_key)
    prefs, entropy = synthetic_preferences(
        key,
        frags.rews,
        cfg.gatherer_temperature,
        cfg.gatherer_discount_factor,
        cfg.gatherer_sample,
        cfg.gatherer_threshold,
    )
    return state, prefs, {"preferences/entropy": entropy}


def collect_round(state: State, task: Task, rnd: Round, key: random.Key | None = None) -> tuple[State, Batch]:
    """Round ``rnd``'s :func:`fragments`, synthetically :func:`label`-led. Pure for torch envs; vmap it."""
    k_frag, k_label = (None, None) if key is None else random.split(key)
    state, frags, m1 = fragments(state, task, rnd, k_frag)
    state, prefs, m2 = label(state, frags, k_label)
    env = task.env if agent_trainer.has_agent(state.agent) else None
    return state, Batch(fragments=frags, prefs=prefs, metrics={**m1, **m2}, rnd=rnd, env=env)


def collect(state: State, task: Task, key: random.Key | None = None) -> tuple[State, Batch]:
    """:func:`collect_round` of the round ``state.round`` counts, read on the host: one seed at a time, outside
    ``vmap`` (the sizes of a round are static; a batched step looks its round up once for all seeds)."""
    return collect_round(state, task, task_plan(state.cfg, task)[int(state.round)], key)


# ---------------------------------------------------------------------------------------------------------------------
# Update: the dataset and the reward, then the agent
# ---------------------------------------------------------------------------------------------------------------------


def learn_reward(state: State, batch: Batch) -> tuple[State, Metrics]:
    """Push the batch's labelled pairs, train the reward model, refresh the reward statistics. Pure.

    Metrics: the batch's, then ``reward/…``. Counts the round as done (the agent then trains on the new reward).
    """
    rnd, frags = batch.rnd, batch.fragments
    if len(frags) > 0:
        state = state.replace(dataset=preferences.push(state.dataset, frags, batch.prefs))
    metrics = dict(batch.metrics)
    if rnd.dataset_size > 0:
        state, m = train_reward(state, rnd.dataset_size, rnd.epoch_multiplier)
        metrics.update({f"reward/{k}": v for k, v in m.items()})
    if len(frags) > 0:
        # NormalizedRewardNet's running statistics, fed with the new reward of the freshest on-policy transitions.
        new_rews = raw_reward_fn(state)(*frags.transitions())
        state = state.replace(reward_norm=rewards.normalize.update(state.reward_norm, new_rews))
    if state.cfg.agent == "sac" and state.cfg.relabel_replay and agent_trainer.has_agent(state.agent):
        # The replay buffer's stored rewards follow the retrained reward (imitation keeps the stale ones).
        state = state.replace(agent=agent_trainer.relabel_replay(state.agent, reward_fn(state)))
    return state.replace(round=state.round + 1), metrics


def update(state: State, batch: Batch) -> tuple[State, Metrics]:
    """:func:`learn_reward`, then ``batch.rnd.agent_calls`` agent steps in ``batch.env`` on the new reward. Pure."""
    state, metrics = learn_reward(state, batch)
    if batch.env is not None:
        state, m = train_agent(state, batch.env, batch.rnd.agent_calls)
        metrics.update(m)
    return state, metrics


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The trained agent's policy (deterministic by default, for evaluation)."""
    return AGENTS[state.cfg.agent].policy(state.agent, deterministic=deterministic)


def reward(state: State) -> RewardFn:
    """The learned reward (unnormalised), as ``(obs, acts, next_obs, dones) -> (N,)``."""
    return raw_reward_fn(state)


__all__ = [
    "Batch",
    "Config",
    "Metrics",
    "Pool",
    "Round",
    "State",
    "agent_reward",
    "check_fragment_supply",
    "collect",
    "collect_round",
    "cross_entropy_loss",
    "cut",
    "exploration",
    "fragment_rewards",
    "fragments",
    "init",
    "label",
    "learn_reward",
    "lp_penalty",
    "plan",
    "policy",
    "pool_from_trajectories",
    "random_fragments",
    "raw_reward_fn",
    "reward",
    "reward_fn",
    "round_keys",
    "sample_pool",
    "synthetic_preferences",
    "task_plan",
    "train_agent",
    "train_reward",
    "update",
    "variance_estimate",
]
