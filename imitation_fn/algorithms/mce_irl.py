"""Maximum causal entropy IRL on tabular MDPs (Ziebart 2010): ``imitation``'s ``MCEIRL``.

Soft value iteration gives the maximum-causal-entropy policy π_θ of a reward r_θ(s) = net_θ(obs(s)); its
state occupancy D_θ = Σ_{t=0..H} γ^t P(s_t = s) is compared with the demonstrations' D_E, and each step
descends the surrogate loss (D_θ − D_E) · r_θ with D_θ held fixed, as ``imitation`` does. Training stops
once ‖D_θ − D_E‖_∞ ≤ ``linf_eps`` or the gradient norm ≤ ``grad_l2_eps``.

That step is E_{D_θ}[∇r_θ] − E_{D_E}[∇r_θ]. The exact gradient of the demonstrations' negative
log-likelihood counts steps 0..H−1 only (the state reached at step H earns no reward in the backup; the tests
check this), but an occupancy measure does not separate step H, so ``imitation`` — and this module — include
it. The update is then not quite a gradient field, and whether Adam reaches ``linf_eps`` within ``max_iter``
depends on the initialisation: at ``imitation``'s defaults some seeds do not converge.

Differences from ``imitation``: training plans the policy at ``discount`` (``imitation`` plans it undiscounted
there, while its final ``MCEIRL.policy`` uses the discount); an iteration that meets a stopping criterion takes
no optimiser step, so the returned state's occupancy is the one that met it.

    V, Q, pi = mce_partition_fh(mdp)                      # soft-optimal policy of the true reward
    D_t, D = mce_occupancy_measures(mdp, pi=pi)           # the demonstrations, as an occupancy measure
    task = Task(mdp=mdp, demos=trajectories)              # or Transitions; None: the expert's exact occupancy
    state = mce_irl.init(cfg, key, task)                  # reward net, and the soft-optimal policy of its reward
    batch = mce_irl.make_batch(task, cfg.discount)        # host-side, once: D_E, the MDP (sparse if it pays)
    batch = mce_irl.make_batch(task, cfg.discount, demos=D)   # or an occupancy measure of your own
    state, metrics = mce_irl.update(state, batch)         # one pure step: vmap it over seeds
    mce_irl.policy(state), mce_irl.reward(state)          # the learned policy and reward

``imitation_fn.train.mce_irl`` trains many seeds at once through the training loop, until every seed has
converged.

The tabular solvers (``mce_partition_fh``, ``mce_occupancy_measures``, ``sparse_transitions``,
``expected_return``) live in :mod:`imitation_fn.rl.tabular`; they are importable from here too, under the
names ``imitation``'s users know.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor

from imitation_fn.core import checks, optim, random, struct, tree
from imitation_fn.core import compile as compile_lib
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.tabular import TabularMDP
from imitation_fn.envs.task import Task
from imitation_fn.nn import mlp_apply, mlp_init
from imitation_fn.policies.tabular import TabularPolicy
from imitation_fn.rl import tabular
from imitation_fn.rl.tabular import (
    SparseTransitions,
    expected_return,
    mce_occupancy_measures,
    mce_partition_fh,
    sparse_transitions,
)


class Config(BaseConfig):
    """MCE IRL hyperparameters. Defaults: ``imitation``'s ``MCEIRL`` with a ``BasicRewardNet`` reward."""

    net_arch: tuple[PositiveInt, ...] = (32, 32)
    """Hidden layer sizes of the reward MLP over observations (``()``: a linear reward)."""
    activation: str = "relu"
    """Activation between hidden layers (``BasicRewardNet``'s ReLU)."""
    init: Literal["torch_default", "orthogonal"] = "torch_default"
    """Reward-net initialisation (``torch_default`` is ``nn.Linear``'s, as ``imitation``)."""
    dtype: Literal["float32", "float64"] = "float32"
    """Reward-net precision. Adam turns rounding noise in gradients that are zero in exact arithmetic (e.g. the
    output bias: Σ(D_θ − D_E) = 0) into steps of size ~lr, so float32 runs diverge from each other at that level."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """Optimiser of the reward net (``imitation``'s default ``torch.optim.Adam``)."""
    lr: PositiveFloat = 1e-2
    """Learning rate (``imitation``'s default ``optimizer_kwargs={"lr": 1e-2}``)."""
    discount: float = Field(default=1.0, ge=0.0, le=1.0)
    """Discount of the occupancy measure and of soft value iteration."""
    linf_eps: NonNegativeFloat = 1e-3
    """Stop once the L∞ distance between the demonstrations' and the policy's occupancy is at most this."""
    grad_l2_eps: NonNegativeFloat = 1e-4
    """Stop once the L2 norm of the MCE IRL gradient is at most this."""
    max_iter: PositiveInt = 1000
    """Maximum number of iterations (``MCEIRL.train``'s default)."""
    log_interval: PositiveInt | None = 100
    """Log the metrics every this many iterations (None: never)."""


class State(struct.PyTreeNode):
    """Tensors (batched under vmap) plus structure (static: equal across a sweep)."""

    params: dict[str, Tensor]  # reward MLP: obs_dim -> *net_arch -> 1
    opt_state: Any  # holds lr as a 0-d tensor: sweepable
    step: Tensor  # int64 0-d: optimiser steps applied
    converged: Tensor  # bool 0-d: a stopping criterion held; later updates leave the state unchanged
    discount: Tensor  # 0-d (pi is planned at it: a state of another discount comes from init)
    linf_eps: Tensor  # 0-d
    grad_l2_eps: Tensor  # 0-d
    pi: Tensor  # (H, S, A): the soft-optimal policy of the current reward at `discount` (what update starts from)
    activation: str = struct.field(static=True)
    optimizer: str = struct.field(static=True)


Metrics = dict[str, Tensor]  # linf_delta, grad_norm, weight_norm, loss, converged: each 0-d


class Batch(struct.PyTreeNode):
    """What every update reads, the same each iteration: the demonstrations' occupancy and the MDP to plan in."""

    demo_om: Tensor  # (S,): see demo_occupancy
    mdp: TabularMDP
    transitions: SparseTransitions | None = None  # sparse_transitions(mdp): plan through gathers (same numbers)


# --------------------------------------------------------------------------------------------
# Demonstrations -> occupancy measure (host-side)
# --------------------------------------------------------------------------------------------


Demonstrations = Tensor | Transitions | Sequence[Trajectory]


def _states(mdp: TabularMDP, obs: Tensor, what: str) -> Tensor:
    """State indices ``(N,)`` of observations: integer states, or rows of ``mdp.observation_matrix``."""
    if not obs.is_floating_point():
        states = obs.reshape(obs.shape[0], -1)
        if states.shape[1] != 1:
            raise ValueError(f"{what}: integer observations must be state indices of shape (N,), got {obs.shape}")
        states = states[:, 0].to(torch.int64)
        if len(states) and (int(states.min()) < 0 or int(states.max()) >= mdp.n_states):
            raise ValueError(
                f"{what}: state indices must be in [0, {mdp.n_states}), got {states.min()}..{states.max()}"
            )
        return states
    table = mdp.observation_matrix.to(torch.float64)
    if obs.ndim != 2 or obs.shape[1] != table.shape[1]:
        raise ValueError(
            f"{what}: observations must be state indices (N,) or observation-matrix rows (N, {table.shape[1]}), "
            f"got shape {tuple(obs.shape)}"
        )
    if len(torch.unique(table, dim=0)) != len(table):
        raise ValueError(
            f"{what}: the MDP's observation rows are not unique, so observations do not identify states; "
            "record state indices (TabularEnv(..., expose_state=True))"
        )
    dist = torch.cdist(obs.to(torch.float64), table)  # (N, S)
    nearest, states = dist.min(-1)
    if len(states) and float(nearest.max()) > 1e-4:
        raise ValueError(f"{what}: an observation matches no row of the MDP's observation matrix")
    return states


def demo_occupancy(mdp: TabularMDP, demonstrations: Demonstrations, discount: float = 1.0) -> Tensor:
    """The demonstrations' state occupancy ``(S,)``, as ``imitation``'s ``MCEIRL.set_demonstrations``.

    - a tensor ``(S,)`` is already an occupancy measure (e.g. ``mce_occupancy_measures(...)[1]``);
    - trajectories (``obs`` of ``H + 1`` states each: state indices or observation rows) give
      ``mean over trajectories of Σ_t γ^t 1[s_t = s]``;
    - transitions count ``obs``, plus ``next_obs`` where ``dones`` (each episode's final state), scaled to
      sum to ``H + 1``; undiscounted only (transitions carry no time step). Transitions must mark episode
      ends: flattened from truncated episodes (``terminal=False``) they lack the final states.
    """
    tabular.check_discount(discount)
    n_states, horizon, dtype = mdp.n_states, mdp.horizon, mdp.transition_matrix.dtype
    if isinstance(demonstrations, Tensor):
        if tuple(demonstrations.shape) != (n_states,):
            raise ValueError(f"an occupancy measure must have shape ({n_states},), got {tuple(demonstrations.shape)}")
        return demonstrations.detach().to(dtype)
    if isinstance(demonstrations, Transitions):
        if discount != 1.0:
            raise ValueError(
                "Cannot compute a discounted occupancy measure from Transitions (they carry no time step): "
                "pass trajectories or an occupancy measure, or use discount=1"
            )
        if not bool(demonstrations.dones.any()):
            raise ValueError(
                "Transitions have no dones, so episodes' final states cannot be counted (a TabularEnv episode is "
                "a time-limit cut, and flatten_trajectories marks only terminal ones): pass the trajectories, "
                "or transitions with dones at episode ends"
            )
        states = _states(mdp, demonstrations.obs, "demonstrations.obs")
        finals = _states(mdp, demonstrations.next_obs[demonstrations.dones], "demonstrations.next_obs")
        counts = torch.bincount(torch.cat([states, finals]), minlength=n_states).to(torch.float64)
        return (counts * (horizon + 1) / counts.sum()).to(dtype)
    trajs = list(demonstrations) if isinstance(demonstrations, Iterable) else []
    if not trajs or not all(isinstance(t, Trajectory) for t in trajs):
        raise TypeError(
            "demonstrations must be an occupancy measure (S,), Transitions, or a non-empty sequence of Trajectory; "
            f"got {type(demonstrations).__name__}"
        )
    om = torch.zeros(n_states, dtype=torch.float64)
    weights = discount ** torch.arange(horizon + 1, dtype=torch.float64)
    for i, traj in enumerate(trajs):
        if len(traj) != horizon:
            raise ValueError(
                f"trajectory {i} has {len(traj)} steps; MCE IRL's occupancy measure needs episodes of exactly the "
                f"MDP's horizon ({horizon} steps, {horizon + 1} observations)"
            )
        om = om.index_add(0, _states(mdp, traj.obs, f"trajectory {i}"), weights)
    return (om / len(trajs)).to(dtype)


# --------------------------------------------------------------------------------------------
# The loss: the surrogate (D_θ − D_E) · r_θ, and its optimiser step
# --------------------------------------------------------------------------------------------


def _reward_fn(params: dict[str, Tensor], obs: Tensor, activation: str) -> Tensor:
    return mlp_apply(params, obs, activation).squeeze(-1)


def _descend(
    state: State, rew: Tensor, reward_vjp: Callable[[Tensor], tuple[Any]], visitations: Tensor, demo_om: Tensor
) -> tuple[State, Metrics]:
    """The rest of :func:`update`, given the reward ``(S,)``, its VJP and the policy's occupancy ``(S,)``."""
    # ∇ of the surrogate (D_θ − D_E) · r_θ with D_θ fixed: E_{D_θ}[∇r] − E_{D_E}[∇r].
    weights = (visitations - demo_om).to(rew.dtype)
    (grads,) = reward_vjp(weights)
    linf_delta = (demo_om - visitations).abs().max()
    grad_norm = optim.global_norm(grads)
    done = state.converged | (linf_delta <= state.linf_eps) | (grad_norm <= state.grad_l2_eps)

    updates, opt_state = _OPTIMIZERS[state.optimizer].update(grads, state.opt_state, state.params)
    params = optim.apply_updates(state.params, updates)
    keep = functools.partial(torch.where, done)  # where(done, old, new), leaf by leaf
    new_state = state.replace(
        params=tree.map(keep, state.params, params),
        opt_state=tree.map(keep, state.opt_state, opt_state),
        step=state.step + (~done).to(torch.int64),
        converged=done,
    )
    metrics = {
        "linf_delta": linf_delta,
        "grad_norm": grad_norm,
        "weight_norm": optim.global_norm(state.params),
        "loss": torch.dot(weights, rew),
        "converged": done.to(rew.dtype),
    }
    return new_state, metrics


# --------------------------------------------------------------------------------------------
# The algorithm: init, update, and the learned reward, policy and occupancy
# --------------------------------------------------------------------------------------------


def _optimizer(name: str, lr: float = 0.0) -> optim.GradientTransformation:
    # inject_hyperparams keeps lr in the optimiser state: update reads it from there, not from this lr.
    factory = optim.adam if name == "adam" else optim.sgd
    return optim.inject_hyperparams(factory)(learning_rate=lr)


# Built once: update looks its optimiser up here (torch.compile would warn about a cached factory call).
_OPTIMIZERS = {name: _optimizer(name) for name in ("adam", "sgd")}


def _obs(params: dict[str, Tensor], mdp: TabularMDP) -> Tensor:
    return mdp.observation_matrix.to(params["layers.0.weight"].dtype)


def init(cfg: Config, key: random.Key, task: Task) -> State:
    """A fresh state: reward-net parameters drawn from ``key`` for ``task.mdp``'s ``observation_matrix``, and the
    soft-optimal policy of that reward."""
    task.require("mdp", who="mce_irl.init")
    mdp = task.mdp
    assert mdp is not None
    sizes = [mdp.obs_dim, *cfg.net_arch, 1]
    params = mlp_init(key, sizes, init=cfg.init, dtype=getattr(torch, cfg.dtype))
    device = key.device
    discount = torch.tensor(cfg.discount, dtype=mdp.transition_matrix.dtype, device=device)
    _, _, pi = mce_partition_fh(mdp, reward=_reward_fn(params, _obs(params, mdp), cfg.activation), discount=discount)
    return State(
        params=params,
        opt_state=_optimizer(cfg.optimizer, cfg.lr).init(params),
        step=torch.zeros((), dtype=torch.int64, device=device),
        converged=torch.zeros((), dtype=torch.bool, device=device),
        discount=discount,
        linf_eps=torch.tensor(cfg.linf_eps, dtype=torch.float64, device=device),
        grad_l2_eps=torch.tensor(cfg.grad_l2_eps, dtype=torch.float64, device=device),
        pi=pi,
        activation=cfg.activation,
        optimizer=cfg.optimizer,
    )


def make_batch(task: Task, discount: float, sparse: bool | None = None, demos: Demonstrations | None = None) -> Batch:
    """The batch every update reads (host-side, once) for ``task.mdp``.

    The demonstrations' occupancy at ``discount`` (:func:`demo_occupancy`) of ``demos``, by default
    ``task.demos``; when both are None, the exact occupancy of the expert: the soft-optimal policy of the MDP's
    own reward. The MDP's :func:`sparse_transitions` come with it when ``sparse`` — by default (None) when every
    ``(s, a)`` has at most ``S / 4`` successors, where gathers beat dense products.
    """
    task.require("mdp", who="mce_irl")
    mdp = task.mdp
    assert mdp is not None
    mdp.validate()
    demos = demos if demos is not None else task.demos
    if demos is None:
        _, demo_om = mce_occupancy_measures(mdp, discount=discount)
    else:
        demo_om = demo_occupancy(mdp, demos, discount)
    transitions = sparse_transitions(mdp) if sparse is not False else None
    if sparse is None and transitions is not None and 4 * transitions.probs.shape[-1] > mdp.n_states:
        transitions = None
    return Batch(demo_om, mdp, transitions)


def update(state: State, batch: Batch) -> tuple[State, Metrics]:
    """One MCE IRL iteration: the occupancy of ``state.pi``, one optimiser step, then soft VI for the new reward.

    Metrics are those of the reward before the step. Once a stopping criterion holds the step is not taken and
    ``converged`` is set; from then on the state is returned unchanged, so seeds of a vmapped sweep stop
    independently.
    """
    mdp, transitions = batch.mdp, batch.transitions
    checks.assert_shape(batch.demo_om, (mdp.n_states,), name="demo_om")
    obs = _obs(state.params, mdp)
    _, visitations = mce_occupancy_measures(mdp, pi=state.pi, discount=state.discount, transitions=transitions)
    rew, reward_vjp = torch.func.vjp(lambda p: _reward_fn(p, obs, state.activation), state.params)[:2]
    new, metrics = _descend(state, rew, reward_vjp, visitations, batch.demo_om)
    new_rew = _reward_fn(new.params, obs, state.activation)
    _, _, pi = mce_partition_fh(mdp, reward=new_rew, discount=state.discount, transitions=transitions)
    return new.replace(pi=torch.where(new.converged, state.pi, pi)), metrics


def reward(state: State) -> Callable[..., Tensor]:
    """The learned reward of the observations alone, ``(obs (..., obs_dim), acts, next_obs, dones) -> (...)``;
    only ``obs`` is read. Of every state: ``reward(state)(mdp.observation_matrix)``."""

    def reward_fn(obs: Tensor, acts: Any = None, next_obs: Any = None, dones: Any = None) -> Tensor:
        return _reward_fn(state.params, obs.to(state.params["layers.0.weight"].dtype), state.activation)

    return reward_fn


def policy(state: State, deterministic: bool = False) -> TabularPolicy:
    """The soft-optimal policy of the learned reward (``imitation``'s ``MCEIRL.policy``), time-indexed: it acts in
    a ``TabularEnv`` through ``policies.tabular.rollout``. ``deterministic``: the most probable action at each
    ``(t, s)`` (its ``pi`` one-hot)."""
    if not deterministic:
        return TabularPolicy(state.pi)
    return TabularPolicy(torch.nn.functional.one_hot(state.pi.argmax(-1), state.pi.shape[-1]).to(state.pi.dtype))


def occupancy(state: State, mdp: TabularMDP) -> tuple[Tensor, Tensor]:
    """``(D_t, D)`` of the learned reward's soft-optimal policy (see :func:`mce_occupancy_measures`)."""
    return mce_occupancy_measures(mdp, pi=state.pi, discount=state.discount)


# --------------------------------------------------------------------------------------------
# Batched (and compiled) update for many seeds
# --------------------------------------------------------------------------------------------


def _batched_update(states: State, batch: Batch) -> tuple[State, Metrics]:
    """``vmap(update)`` over the leading seed axis of ``states``, with the solvers run on all seeds at once."""
    mdp, transitions = batch.mdp, batch.transitions
    checks.assert_shape(batch.demo_om, (mdp.n_states,), name="demo_om")
    obs = _obs(states.params, mdp)
    # Seeds innermost (see imitation_fn/rl/tabular.py): policies (H, S, A, n), discounts (n,), occupancies (S, n).
    _, visitations = tabular.visitation(mdp, states.pi.movedim(0, -1), states.discount, transitions)

    def descend(state: State, d: Tensor) -> tuple[State, Metrics]:
        rew, reward_vjp = torch.func.vjp(lambda p: _reward_fn(p, obs, state.activation), state.params)[:2]
        return _descend(state, rew, reward_vjp, d, batch.demo_om)

    new, metrics = torch.func.vmap(descend)(states, visitations.mT)
    rews = torch.func.vmap(lambda p: _reward_fn(p, obs, states.activation))(new.params)  # (n, S)
    _, _, pi = tabular.soft_value_iteration(
        mdp, rews.to(mdp.transition_matrix.dtype).mT.unsqueeze(1), states.discount, transitions
    )
    frozen = new.converged.view(-1, 1, 1, 1)
    return new.replace(pi=torch.where(frozen, states.pi, pi.movedim(-1, 0))), metrics


BatchedUpdate = Callable[[State, Batch], tuple[State, Metrics]]


@functools.cache
def batched_update(compile: bool = False) -> BatchedUpdate:
    """``vmap(update)`` over a leading seed axis of the state (the batch shared), optionally under
    ``torch.compile`` (CPU: C++ wrapper; compiling is slow, once per variant — dense or sparse, each MDP's
    shapes — and the calls fast).

    The same numbers as ``vmap(update)``, but the solvers run once on all seeds with the seed axis innermost,
    which vectorises them over seeds (timings: ``benchmarks/README.md``)."""
    fn = _batched_update
    if not compile:
        return fn
    # On CPU the C++ wrapper calls the ~100 small kernels of one iteration without Python in between.
    options: dict[str, Any] | None = {"cpp_wrapper": True} if not torch.cuda.is_available() else None
    return compile_lib.or_eager(fn, fullgraph=True, dynamic=False, options=options)


__all__ = [
    "Batch",
    "Config",
    "SparseTransitions",
    "State",
    "batched_update",
    "demo_occupancy",
    "expected_return",
    "init",
    "make_batch",
    "mce_occupancy_measures",
    "mce_partition_fh",
    "occupancy",
    "policy",
    "reward",
    "sparse_transitions",
    "update",
]
