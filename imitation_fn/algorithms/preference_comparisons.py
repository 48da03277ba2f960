"""Preference comparisons (Christiano et al., 2017): learn a reward from pairwise preferences between fragments.

Each round (``imitation``'s ``PreferenceComparisons.train``): sample trajectories from the agent (or a
fixed dataset), cut them into fragment pairs (random, or actively selected by ensemble disagreement),
label the pairs (synthetically from the true return, or by a human), push them into a bounded
dataset, fit the reward net to the labels with the Bradley–Terry cross-entropy, then train the agent
on the learned, normalised reward. Every piece of state is one pytree, so a whole round — synthetic
labelling included — is ``vmap``-ed over seeds on the torch environments:

    rounds = preference_comparisons.plan(cfg, env)                # static: pairs, epochs, agent calls
    state = preference_comparisons.init(cfg, key, env)
    for rnd in rounds:
        state, metrics = preference_comparisons.iteration(state, env, pool_env(rnd), rnd)
    # with a human gatherer: state, frags = collect(...); prefs = gatherer(frags); update(state, frags, prefs, ...)

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
from typing import Any, Literal

import gymnasium as gym
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
from imitation_fn.envs.base import Env, PolicyFn, RewardFn
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
# State
# ---------------------------------------------------------------------------------------------------------------------


class State(struct.PyTreeNode):
    """Everything that changes, as tensors (batched over seeds under vmap), plus the static config and net."""

    reward_params: Any  # the net's params (leaves (members, ...) for an ensemble)
    reward_opt: Any  # AdamW state (preference_model.init_optimizer): lr and weight decay as 0-d tensors
    reward_norm: RunningMeanStd  # output statistics of the agent's (normalised) reward
    reg_lambda: Tensor  # () float32: regularisation strength (moved by the interval scaler)
    dataset: PreferenceDataset
    agent: Any  # the RL algorithm's State ({} for a fixed trajectory dataset: no agent)
    key: random.Key
    round: Tensor  # () int64: rounds completed
    sample_steps: Tensor  # () int64: env steps spent sampling trajectories for fragments
    cfg: Config = struct.field(static=True)
    net: Any = struct.field(static=True)  # rewards.BasicRewardNet or rewards.RewardEnsemble


Metrics = dict[str, Tensor]


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
# The rounds' static sizes, and the initial state
# ---------------------------------------------------------------------------------------------------------------------


def plan(cfg: Config, horizon: int | None = None) -> list[Round]:
    """The rounds' static sizes (:func:`query_schedule.plan`); ``horizon``: steps per sampled trajectory."""
    return query_schedule.plan(cfg, agent_trainer.steps_per_call(cfg.agent, cfg.agent_cfg()), horizon)


def init(
    cfg: Config, key: random.Key, env: Env | None = None, *, spaces: tuple[gym.Space[Any], gym.Space[Any]] | None = None
) -> State:
    """A fresh state: reward net and optimiser, an empty dataset, and the agent on ``env``.

    Without ``env`` (a fixed trajectory dataset: no agent), pass ``spaces=(observation_space, action_space)``.
    """
    if env is None and spaces is None:
        raise ValueError("preference_comparisons.init: give the agent's env, or spaces= for a trajectory dataset")
    obs_space, act_space = (env.observation_space, env.action_space) if env is not None else spaces  # type: ignore[misc]
    k_net, k_agent, k_state = random.split(key, 3)
    net = preference_model.make_net(cfg, obs_space, act_space)
    params = net.init(k_net)
    capacity = cfg.comparison_queue_size or cfg.total_comparisons
    agent: Any = {}  # an empty pytree node, not None: vmap outputs must be tensors or containers
    if env is not None:
        agent = agent_trainer.init_agent(cfg.agent, cfg.agent_cfg(), k_agent, env, cfg.total_timesteps)
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
# One round: collect (fragments to label) and update (push, reward, agent)
# ---------------------------------------------------------------------------------------------------------------------


def collect_keys(state: State) -> tuple[State, random.Key, random.Key]:
    """``(state, k_pool, k_frag)``: the keys :func:`collect` samples trajectories and cuts fragments with."""
    key, k_pool, k_frag = random.split(state.key, 3)
    return state.replace(key=key), k_pool, k_frag


def collect(state: State, source: Env | Pool, rnd: Round) -> tuple[State, Fragments, Metrics]:
    """Sample trajectories (``source``: an env of ``rnd.pool_envs`` sub-envs, or a fixed :class:`Pool`) and cut
    ``rnd.num_pairs`` fragment pairs (random, or the most uncertain of ``fragment_sample_factor`` times as many).
    Pure for torch envs. Returns the fragments to be labelled."""
    state, k_pool, k_frag = collect_keys(state)
    metrics: Metrics = {}
    if isinstance(source, Pool):
        pool = source
    else:
        pool, metrics = sample_pool(state, source, rnd.pool_steps, k_pool)
        state = state.replace(sample_steps=state.sample_steps + source.n_envs * rnd.pool_steps)
    return fragments_from(state, pool, k_frag, rnd, metrics)


def fragments_from(
    state: State, pool: Pool, k_frag: random.Key, rnd: Round, metrics: Metrics | None = None
) -> tuple[State, Fragments, Metrics]:
    """The fragmenter part of :func:`collect`: ``rnd.num_pairs`` pairs cut from ``pool`` with ``k_frag``. Pure."""
    metrics = dict(metrics or {})
    if state.cfg.fragmenter == "active":
        frags, m = preference_model.active_fragments(
            state.cfg, state.net, state.reward_params, k_frag, pool, rnd.num_pairs
        )
        metrics.update(m)
    else:
        frags = random_fragments(k_frag, pool, state.cfg.fragment_length, rnd.num_pairs)
    return state, frags, metrics


def gather(state: State, fragments: Fragments) -> tuple[State, Tensor, Metrics]:
    """The synthetic gatherer on ``fragments``' true rewards. Pure."""
    cfg = state.cfg
    key, k = random.split(state.key)
    prefs, entropy = synthetic_preferences(
        k,
        fragments.rews,
        cfg.gatherer_temperature,
        cfg.gatherer_discount_factor,
        cfg.gatherer_sample,
        cfg.gatherer_threshold,
    )
    return state.replace(key=key), prefs, {"preferences/entropy": entropy}


def update(state: State, fragments: Fragments, prefs: Tensor, rnd: Round, env: Env | None) -> tuple[State, Metrics]:
    """Push the labelled pairs, train the reward model, refresh the reward statistics, train the agent. Pure."""
    if len(fragments) > 0:
        state = state.replace(dataset=preferences.push(state.dataset, fragments, prefs))
    metrics: Metrics = {}
    if rnd.dataset_size > 0:
        state, m = train_reward(state, rnd.dataset_size, rnd.epoch_multiplier)
        metrics.update({f"reward/{k}": v for k, v in m.items()})
    if len(fragments) > 0:
        # NormalizedRewardNet's running statistics, fed with the new reward of the freshest on-policy transitions.
        new_rews = raw_reward_fn(state)(*fragments.transitions())
        state = state.replace(reward_norm=rewards.normalize.update(state.reward_norm, new_rews))
    if state.cfg.agent == "sac" and state.cfg.relabel_replay and agent_trainer.has_agent(state.agent):
        # The replay buffer's stored rewards follow the retrained reward (imitation keeps the stale ones).
        state = state.replace(agent=agent_trainer.relabel_replay(state.agent, reward_fn(state)))
    if env is not None:
        state, m = train_agent(state, env, rnd.agent_calls)
        metrics.update(m)
    return state.replace(round=state.round + 1), metrics


def iteration_from_pool(
    state: State, pool: Pool, k_frag: random.Key, rnd: Round, env: Env | None, metrics: Metrics | None = None
) -> tuple[State, Metrics]:
    """The rest of a round once trajectories are sampled (by :func:`agent_trainer.batched_sample_pool`): fragments,
    labels, update. Pure."""
    state, frags, m1 = fragments_from(state, pool, k_frag, rnd, metrics)
    state, prefs, m2 = gather(state, frags)
    state, m3 = update(state, frags, prefs, rnd, env)
    return state, {**m1, **m2, **m3}


def iteration(state: State, env: Env | None, source: Env | Pool, rnd: Round) -> tuple[State, Metrics]:
    """One whole round with synthetic labels: :func:`collect`, :func:`gather`, :func:`update`. Pure; vmap it."""
    state, frags, m1 = collect(state, source, rnd)
    state, prefs, m2 = gather(state, frags)
    state, m3 = update(state, frags, prefs, rnd, env)
    return state, {**m1, **m2, **m3}


def policy(state: State, deterministic: bool = True) -> PolicyFn:
    """The trained agent's policy (deterministic by default, for evaluation)."""
    return AGENTS[state.cfg.agent].policy(state.agent, deterministic=deterministic)


def reward(state: State) -> RewardFn:
    """The learned reward (unnormalised), as ``(obs, acts, next_obs, dones) -> (N,)``."""
    return raw_reward_fn(state)


__all__ = [
    "Config",
    "Metrics",
    "Pool",
    "Round",
    "State",
    "agent_reward",
    "check_fragment_supply",
    "collect",
    "collect_keys",
    "cross_entropy_loss",
    "exploration",
    "fragment_rewards",
    "fragments_from",
    "gather",
    "init",
    "iteration",
    "iteration_from_pool",
    "lp_penalty",
    "plan",
    "policy",
    "pool_from_trajectories",
    "random_fragments",
    "raw_reward_fn",
    "reward",
    "reward_fn",
    "sample_pool",
    "synthetic_preferences",
    "train_agent",
    "train_reward",
    "update",
    "variance_estimate",
]
