"""Maximum causal entropy IRL on tabular MDPs (Ziebart 2010): ``imitation``'s ``MCEIRL``.

Soft value iteration gives the maximum-causal-entropy policy π_θ of a reward r_θ(s) = net_θ(obs(s)); its
state occupancy D_θ = Σ_{t=0..H} γ^t P(s_t = s) is compared with the demonstrations' D_E, and each step
descends the surrogate loss (D_θ − D_E) · r_θ with D_θ held fixed, as ``imitation`` does. Training stops
once ‖D_θ − D_E‖_∞ ≤ ``linf_eps`` or the gradient norm ≤ ``grad_l2_eps``.

That step is E_{D_θ}[∇r_θ] − E_{D_E}[∇r_θ]. The exact gradient of the demonstrations' negative
log-likelihood counts steps 0..H−1 only (the state reached at step H earns no reward in the backup; the tests
check this), but an occupancy measure does not separate step H, so ``imitation`` — and this module — include
it. The update is then not quite a gradient field, and whether Adam reaches ``linf_eps`` within ``max_iter``
depends on the initialisation (about 60% of seeds on ``imitation``'s test MDP at its defaults).

Differences from ``imitation``: the default policy of ``mce_occupancy_measures`` is soft-optimal at the given
``discount`` (``imitation`` plans it undiscounted, also inside training, while its final ``MCEIRL.policy``
uses the discount); an iteration that meets a stopping criterion takes no optimiser step, so the returned
state's occupancy is the one that met it.

    V, Q, pi = mce_partition_fh(mdp)                      # soft-optimal policy of the true reward
    D_t, D = mce_occupancy_measures(mdp, pi=pi)           # the demonstrations, as an occupancy measure
    state = mce_irl.init(cfg, key, mdp)
    state, metrics = mce_irl.update(state, mdp, D)        # one pure step: vmap it over seeds
    sp = mce_irl.sparse_transitions(mdp)                  # host-side, once: the non-zeros of the dynamics
    state, metrics = mce_irl.update(state, mdp, D, sp)    # the same step, planning through gathers
    result = training.mce_irl.train(cfg, mdp, D, seeds=range(16))  # host loop until every seed has converged

The solvers are plain tensor functions: differentiable, and vmappable over rewards, policies and MDPs. Given
``transitions=sparse_transitions(mdp)`` they plan through the K non-zeros of each row of the dynamics (gathers)
instead of dense products: the same numbers, O(S·A·K) instead of O(S·A·S) per step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor

from imitation_fn.core import checks, optim, random, struct, tree
from imitation_fn.core.config import Config as BaseConfig
from imitation_fn.data.types import Trajectory, Transitions
from imitation_fn.envs.tabular import TabularMDP
from imitation_fn.nn import mlp_apply, mlp_init
from imitation_fn.policies.tabular import TabularPolicy

Metrics = dict[str, Tensor]
Discount = float | Tensor
Demonstrations = Tensor | Transitions | Sequence[Trajectory]


# --------------------------------------------------------------------------------------------
# Tabular solvers (pure, differentiable, vmappable)
# --------------------------------------------------------------------------------------------


def _check_discount(discount: Discount) -> None:
    if isinstance(discount, int | float) and not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")


def _state_action_reward(mdp: TabularMDP, reward: Tensor | None) -> Tensor:
    """The reward as ``(S, 1)`` (state-only, broadcasts over actions) or ``(S, A)``, in the MDP's dtype."""
    r = mdp.reward_matrix if reward is None else reward
    dtype = mdp.transition_matrix.dtype
    if r.ndim == 1:
        return r.to(dtype).unsqueeze(-1)
    if r.ndim == 2:
        return r.to(dtype)
    if r.ndim == 3:  # r(s, a, s'): its expectation over s'
        return (mdp.transition_matrix * r.to(dtype)).sum(-1)
    raise ValueError(f"reward must have shape (S,), (S, A) or (S, A, S), got {tuple(r.shape)}")


class SparseTransitions(struct.PyTreeNode):
    """The dynamics of a :class:`TabularMDP` as padded lists of non-zeros (build with :func:`sparse_transitions`).

    Successors, for the Bellman backup: ``next_states: (S·A, K)`` int64 and ``probs: (S·A, K)``; row
    ``s·A + a`` holds ``T(· | s, a)`` as ``Σ_k probs[k] · onehot(next_states[k])``. Predecessors, for the
    occupancy step: ``prev_rows: (S, K_in)`` int64 (rows ``s·A + a``) and ``prev_probs: (S, K_in)``, column
    ``s'`` of the same matrix. Lists shorter than ``K`` (``K_in``) are padded with index 0 and probability 0,
    which is exact (a padded entry adds ``0 · x[0]``). Probabilities have the MDP's dtype. Leading batch axes,
    if any, match the MDP's (:func:`sparse_transitions` of a batch of MDPs), so the two vmap together.
    """

    next_states: Tensor
    probs: Tensor
    prev_rows: Tensor
    prev_probs: Tensor


def _nonzeros(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of ``(..., R, C)``: ``(indices, values)`` of its non-zeros in column order, padded to the most
    non-zeros of any row with index 0 and value 0, each ``(..., R, K)``. Host-side (K depends on the values)."""
    k = max(int((matrix != 0).sum(-1).max()), 1)
    # Stable sort on "is zero": each row's non-zeros first, in increasing column order, then the padding.
    order = torch.argsort((matrix == 0).to(torch.int8), dim=-1, stable=True)[..., :k]
    values = matrix.gather(-1, order)
    return torch.where(values != 0, order, torch.zeros_like(order)), values


def sparse_transitions(mdp: TabularMDP) -> SparseTransitions:
    """Host-side: the non-zeros of ``mdp.transition_matrix``, for the sparse solvers (``transitions=``).

    ``K`` is the most successors of any ``(s, a)``, ``K_in`` the most ``(s, a)`` pairs leading to any state.
    Both depend on the values (data-dependent shapes), so call this outside ``vmap``/``torch.compile``, once per
    MDP. A batch of MDPs (leading axes) gives one batch of padded lists (``K`` the maximum over the batch).
    CliffWorld 7×4 has ``K = 2``, ``K_in = 8`` of ``S·A = 112`` rows and ``S = 28`` states; seals' random MDPs
    ``K ≤ branch_factor``. The sparse solvers do ``O(S·A·K + S·K_in)`` work per step instead of ``O(S·A·S)``.
    """
    t_matrix = mdp.transition_matrix
    if t_matrix.ndim < 3 or t_matrix.shape[-3] != t_matrix.shape[-1]:
        raise ValueError(f"transition_matrix must have shape (..., S, A, S), got {tuple(t_matrix.shape)}")
    t_flat = t_matrix.reshape(*t_matrix.shape[:-3], mdp.n_states * mdp.n_actions, mdp.n_states)
    next_states, probs = _nonzeros(t_flat)
    prev_rows, prev_probs = _nonzeros(t_flat.transpose(-1, -2))
    return SparseTransitions(next_states, probs, prev_rows, prev_probs)


def _check_transitions(mdp: TabularMDP, transitions: SparseTransitions) -> None:
    """Static checks (shapes, dtypes): safe inside transforms. The values must come from ``mdp``."""
    rows, n_states = mdp.n_states * mdp.n_actions, mdp.n_states
    ns, pr = transitions.next_states, transitions.prev_rows
    if (
        ns.ndim != 2
        or ns.shape[0] != rows
        or pr.ndim != 2
        or pr.shape[0] != n_states
        or tuple(transitions.probs.shape) != tuple(ns.shape)
        or tuple(transitions.prev_probs.shape) != tuple(pr.shape)
        or ns.dtype != torch.int64
        or pr.dtype != torch.int64
    ):
        raise ValueError(
            f"transitions must be sparse_transitions(mdp) for an MDP with S·A = {rows} rows and S = {n_states} "
            f"states: got next_states {tuple(ns.shape)} {ns.dtype}, probs {tuple(transitions.probs.shape)}, "
            f"prev_rows {tuple(pr.shape)} {pr.dtype}, prev_probs {tuple(transitions.prev_probs.shape)}"
        )


# The solvers below carry any batch axes LAST: values (S, *B), Q and π (S, A, *B). Per seed (under vmap, B = ())
# that is the plain layout; batched_update solves all seeds at once with the seed axis innermost, so that the
# exps and logs of the soft backup are vector instructions over seeds and every sparse gather loads a contiguous
# row of seeds (vmap would put the seed axis first and vectorise over the 4 actions, or over nothing).


def _backup(mdp: TabularMDP, transitions: SparseTransitions | None) -> Callable[[Tensor], Tensor]:
    """``v: (S, *B) -> E[v(s') | s, a]: (S, A, *B)``, dense or sparse."""
    n_states, n_actions, dtype = mdp.n_states, mdp.n_actions, mdp.transition_matrix.dtype
    if transitions is None:
        # (S·A, S') @ V: vmapped over rewards (and discounts), every step is one GEMM against the shared
        # dynamics instead of a batch of matrix-vector products against per-seed copies of it.
        t_flat = mdp.transition_matrix.reshape(n_states * n_actions, n_states)
        return lambda v: (t_flat @ v.reshape(n_states, -1)).view(n_states, n_actions, *v.shape[1:])
    _check_transitions(mdp, transitions)
    ns, probs = transitions.next_states, transitions.probs.to(dtype)

    def backup(v: Tensor) -> Tensor:
        p = probs.view(*probs.shape, *(1,) * (v.ndim - 1))
        if torch.compiler.is_compiling():
            # One gather per successor slot (K of them): with several users, the compiler stores V once instead
            # of recomputing its log inside every gathered element.
            ev = sum(p[:, k] * v[ns[:, k]] for k in range(ns.shape[1]))
        else:  # eager: one (S·A, K) gather, fewer kernel launches
            ev = (p * v[ns]).sum(1)
        return ev.view(n_states, n_actions, *v.shape[1:])  # type: ignore[union-attr]

    return backup


def _forward(mdp: TabularMDP, transitions: SparseTransitions | None) -> Callable[[Tensor], Tensor]:
    """State-action mass ``w: (S, A, *B)`` -> next-state mass ``Σ_{s,a} w(s, a) T(· | s, a): (S, *B)``."""
    n_states, n_actions, dtype = mdp.n_states, mdp.n_actions, mdp.transition_matrix.dtype
    rows = n_states * n_actions
    if transitions is None:
        t_flat = mdp.transition_matrix.reshape(rows, n_states)
        return lambda w: (t_flat.mT @ w.reshape(rows, -1)).view(n_states, *w.shape[2:])
    _check_transitions(mdp, transitions)
    # A gather over each state's predecessors (no scatter-add: pure, and compiled it vectorises over seeds).
    prev, probs = transitions.prev_rows, transitions.prev_probs.to(dtype)

    def forward(w: Tensor) -> Tensor:
        w = w.reshape(rows, *w.shape[2:])
        p = probs.view(*probs.shape, *(1,) * (w.ndim - 1))
        if torch.compiler.is_compiling():  # as in _backup: K_in loads of contiguous rows of seeds, fused
            return sum(p[:, j] * w[prev[:, j]] for j in range(prev.shape[1]))  # type: ignore[return-value]
        return (p * w[prev]).sum(1)

    return forward


def _soft_value_iteration(
    mdp: TabularMDP, r: Tensor, discount: Discount, transitions: SparseTransitions | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``r: (S, A, *B)`` (or ``(S, 1, *B)``), ``discount`` scalar or ``(*B)`` -> ``V (H, S, *B)``, ``Q`` and
    ``pi (H, S, A, *B)``."""
    r = r.expand(mdp.n_states, mdp.n_actions, *r.shape[2:])
    backup = _backup(mdp, transitions)
    # Compiled, π_t reuses the exponentials of V_t's logsumexp: a vmapped float64 iteration is bound by exp.
    # Eager, one logsumexp per step and one exp at the end are fewer (per-op overhead bound) kernel launches.
    fused = torch.compiler.is_compiling()
    q = r
    qs, vs, pis = [], [], []
    for t in range(mdp.horizon):
        if fused:
            top = q.amax(1, keepdim=True)
            e = torch.exp(q - top)
            z = e.sum(1, keepdim=True)
            v = (top + torch.log(z)).squeeze(1)
            pis.append(e / z)
        else:
            v = torch.logsumexp(q, dim=1)
        qs.append(q)
        vs.append(v)
        if t < mdp.horizon - 1:
            q = r + discount * backup(v)
    q_all, v_all = torch.stack(qs[::-1]), torch.stack(vs[::-1])
    pi = torch.stack(pis[::-1]) if fused else torch.exp(q_all - v_all.unsqueeze(2))
    return v_all, q_all, pi


def _visitation(
    mdp: TabularMDP, pi: Tensor, discount: Discount, transitions: SparseTransitions | None
) -> tuple[Tensor, Tensor]:
    """``pi: (H, S, A, *B)``, ``discount`` scalar or ``(*B)`` -> ``D_t: (H + 1, S, *B)`` and ``D: (S, *B)``."""
    dtype = mdp.transition_matrix.dtype
    forward = _forward(mdp, transitions)
    batch = pi.shape[3:]
    pi = pi.to(dtype)
    d = mdp.initial_state_dist.to(dtype).view(-1, *(1,) * len(batch)).expand(mdp.n_states, *batch)
    ds = [d]
    for t in range(mdp.horizon):
        # D_{t+1}(s') = Σ_{s,a} D_t(s) π_t(a | s) T(s' | s, a)
        d = forward(d.unsqueeze(1) * pi[t])
        ds.append(d)
    d_t = torch.stack(ds)
    steps = torch.arange(mdp.horizon + 1, dtype=dtype, device=d_t.device).view(-1, *(1,) * len(batch))
    weights = torch.as_tensor(discount, dtype=dtype, device=d_t.device) ** steps  # (H + 1, *B); 0 ** 0 = 1
    return d_t, (weights.unsqueeze(1) * d_t).sum(0)


def mce_partition_fh(
    mdp: TabularMDP,
    *,
    reward: Tensor | None = None,
    discount: Discount = 1.0,
    transitions: SparseTransitions | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Finite-horizon soft Bellman backup: recurrences (9.1)–(9.3) of Ziebart (2010).

    ``reward``: ``(S,)`` (as ``imitation``), ``(S, A)`` or ``(S, A, S)``; default ``mdp.reward_matrix``.
    ``discount`` in [0, 1] (float or 0-d tensor). Returns ``V: (H, S)``, ``Q: (H, S, A)`` and the MCE policy
    ``pi: (H, S, A)`` with ``Q[H-1] = r``, ``Q[t] = r + γ T V[t+1]``, ``V[t] = logsumexp_a Q[t]``,
    ``pi[t] = exp(Q[t] − V[t])``. ``transitions``: ``sparse_transitions(mdp)`` to back up through the
    non-zeros only (the same result; faster when ``K ≪ S``); default: the dense ``transition_matrix``.
    """
    _check_discount(discount)
    return _soft_value_iteration(mdp, _state_action_reward(mdp, reward), discount, transitions)


def mce_occupancy_measures(
    mdp: TabularMDP,
    *,
    reward: Tensor | None = None,
    pi: Tensor | None = None,
    discount: Discount = 1.0,
    transitions: SparseTransitions | None = None,
) -> tuple[Tensor, Tensor]:
    """State visitation frequencies of ``pi`` (default: the soft-optimal policy of ``reward`` at ``discount``).

    Returns ``D_t: (H + 1, S)``, the probability of each state at steps ``0..H`` (``D_t[0]`` is the initial
    distribution), and ``D: (S,)`` = ``Σ_t γ^t D_t[t]``, the expected discounted number of visits
    (``Σ D = H + 1`` when ``γ = 1``). ``transitions``: as in :func:`mce_partition_fh`.
    """
    _check_discount(discount)
    if pi is None:
        _, _, pi = mce_partition_fh(mdp, reward=reward, discount=discount, transitions=transitions)
    checks.assert_shape(pi, (mdp.horizon, mdp.n_states, mdp.n_actions), name="pi")
    return _visitation(mdp, pi, discount, transitions)


def expected_return(mdp: TabularMDP, pi: Tensor, reward: Tensor | None = None) -> Tensor:
    """Exact expected undiscounted episode return of ``pi: (H, S, A)`` under ``reward`` (default: the MDP's).

    ``Σ_{t<H} Σ_{s,a} D_t(s) π_t(a | s) r(s, a)``: what a ``TabularEnv`` pays over its ``H`` steps, 0-d.
    """
    d_t, _ = mce_occupancy_measures(mdp, pi=pi)
    r = _state_action_reward(mdp, reward)
    return (d_t[:-1].unsqueeze(-1) * pi.to(r.dtype) * r).sum()


# --------------------------------------------------------------------------------------------
# Demonstrations -> occupancy measure (host-side)
# --------------------------------------------------------------------------------------------


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
    _check_discount(discount)
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
# The algorithm
# --------------------------------------------------------------------------------------------


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
    discount: Tensor  # 0-d, sweepable
    linf_eps: Tensor  # 0-d
    grad_l2_eps: Tensor  # 0-d
    activation: str = struct.field(static=True)
    optimizer: str = struct.field(static=True)


def _optimizer(name: str, lr: float = 0.0) -> optim.GradientTransformation:
    # inject_hyperparams keeps lr in the optimiser state: update reads it from there, not from this lr.
    factory = optim.adam if name == "adam" else optim.sgd
    return optim.inject_hyperparams(factory)(learning_rate=lr)


# Built once: update looks its optimiser up here (torch.compile would warn about a cached factory call).
_OPTIMIZERS = {name: _optimizer(name) for name in ("adam", "sgd")}


def init(cfg: Config, key: random.Key, mdp: TabularMDP) -> State:
    """A fresh state: reward-net parameters drawn from ``key`` for the MDP's ``observation_matrix``."""
    sizes = [mdp.obs_dim, *cfg.net_arch, 1]
    params = mlp_init(key, sizes, init=cfg.init, dtype=getattr(torch, cfg.dtype))
    device = key.device
    return State(
        params=params,
        opt_state=_optimizer(cfg.optimizer, cfg.lr).init(params),
        step=torch.zeros((), dtype=torch.int64, device=device),
        converged=torch.zeros((), dtype=torch.bool, device=device),
        discount=torch.tensor(cfg.discount, dtype=mdp.transition_matrix.dtype, device=device),
        linf_eps=torch.tensor(cfg.linf_eps, dtype=torch.float64, device=device),
        grad_l2_eps=torch.tensor(cfg.grad_l2_eps, dtype=torch.float64, device=device),
        activation=cfg.activation,
        optimizer=cfg.optimizer,
    )


def _reward_fn(params: dict[str, Tensor], obs: Tensor, activation: str) -> Tensor:
    return mlp_apply(params, obs, activation).squeeze(-1)


def reward(state: State) -> Callable[[Tensor], Tensor]:
    """The learned reward as ``obs (..., obs_dim) -> (...)``; of all states: ``reward(state)(observation_matrix)``."""
    return lambda obs: _reward_fn(state.params, obs.to(state.params["layers.0.weight"].dtype), state.activation)


def _obs(state: State, mdp: TabularMDP) -> Tensor:
    return mdp.observation_matrix.to(state.params["layers.0.weight"].dtype)


def update(
    state: State, mdp: TabularMDP, demo_om: Tensor, transitions: SparseTransitions | None = None
) -> tuple[State, Metrics]:
    """One MCE IRL iteration: soft VI and occupancy for the current reward, then one optimiser step.

    ``demo_om: (S,)`` is the demonstrations' occupancy (:func:`demo_occupancy`). ``transitions``: optionally
    ``sparse_transitions(mdp)``, for the sparse solvers (same result). Metrics are those of the reward before
    the step. Once a stopping criterion holds the step is not taken and ``converged`` is set; from then on the
    state is returned unchanged, so seeds of a vmapped sweep stop independently.
    """
    checks.assert_shape(demo_om, (mdp.n_states,), name="demo_om")
    obs = _obs(state, mdp)
    rew, reward_vjp = torch.func.vjp(lambda p: _reward_fn(p, obs, state.activation), state.params)[:2]
    _, _, pi = mce_partition_fh(mdp, reward=rew, discount=state.discount, transitions=transitions)
    _, visitations = mce_occupancy_measures(mdp, pi=pi, discount=state.discount, transitions=transitions)
    return _descend(state, rew, reward_vjp, visitations, demo_om)


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


def _batched_update(
    states: State, mdp: TabularMDP, demo_om: Tensor, transitions: SparseTransitions | None = None
) -> tuple[State, Metrics]:
    """``vmap(update)`` over the leading seed axis of ``states``, with the solvers run on all seeds at once."""
    checks.assert_shape(demo_om, (mdp.n_states,), name="demo_om")
    obs = _obs(states, mdp)
    rews = torch.func.vmap(lambda p: _reward_fn(p, obs, states.activation))(states.params)  # (n, S)
    # Seeds innermost (see _backup): rewards (S, 1, n), discounts (n,), occupancies (S, n).
    r = rews.to(mdp.transition_matrix.dtype).mT.unsqueeze(1)
    _, _, pi = _soft_value_iteration(mdp, r, states.discount, transitions)
    _, visitations = _visitation(mdp, pi, states.discount, transitions)

    def descend(state: State, d: Tensor) -> tuple[State, Metrics]:
        # The reward net's forward pass again, for its VJP (an MLP over S rows: cheap next to the solvers).
        rew, reward_vjp = torch.func.vjp(lambda p: _reward_fn(p, obs, state.activation), state.params)[:2]
        return _descend(state, rew, reward_vjp, d, demo_om)

    return torch.func.vmap(descend)(states, visitations.mT)


def policy(state: State, mdp: TabularMDP) -> TabularPolicy:
    """The soft-optimal policy of the learned reward (``imitation``'s ``MCEIRL.policy``)."""
    _, _, pi = mce_partition_fh(mdp, reward=reward(state)(mdp.observation_matrix), discount=state.discount)
    return TabularPolicy(pi)


def occupancy(state: State, mdp: TabularMDP) -> tuple[Tensor, Tensor]:
    """``(D_t, D)`` of the learned reward's soft-optimal policy (see :func:`mce_occupancy_measures`)."""
    return mce_occupancy_measures(mdp, pi=policy(state, mdp).pi, discount=state.discount)


# --------------------------------------------------------------------------------------------
# Batched (and compiled) update for many seeds
# --------------------------------------------------------------------------------------------


BatchedUpdate = Callable[..., tuple[State, Metrics]]  # (state, mdp, demo_om, transitions=None)


@functools.cache
def batched_update(compile: bool = False) -> BatchedUpdate:
    """``vmap(update)`` over a leading seed axis of the state (MDP, demonstrations and ``transitions`` shared),
    called as ``fn(states, mdp, demo_om, transitions=None)``, optionally under ``torch.compile`` (CPU: C++
    wrapper; compiling takes about a minute per variant, each call then < 1 ms).

    The same numbers as ``vmap(update)``, but the solvers run once on all seeds with the seed axis innermost.
    Compiled on CliffWorld with sparse planning, 16 seeds then cost ~1.9× one seed (dense: ~2.5×; the seed axis
    outermost, as vmap lays it out, ~3×): ``benchmarks/mce_irl.py``."""
    fn = _batched_update
    if not compile:
        return fn
    # On CPU the C++ wrapper calls the ~100 small kernels of one iteration without Python in between.
    options: dict[str, Any] | None = {"cpp_wrapper": True} if not torch.cuda.is_available() else None
    return torch.compile(fn, fullgraph=True, dynamic=False, options=options)


__all__ = [
    "Config",
    "SparseTransitions",
    "State",
    "batched_update",
    "demo_occupancy",
    "expected_return",
    "init",
    "mce_occupancy_measures",
    "mce_partition_fh",
    "occupancy",
    "policy",
    "reward",
    "sparse_transitions",
    "update",
]
