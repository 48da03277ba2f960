"""Planning on a known tabular MDP: finite-horizon soft value iteration and occupancy measures (Ziebart 2010).

    V, Q, pi = mce_partition_fh(mdp)                      # soft-optimal policy of the MDP's reward
    D_t, D = mce_occupancy_measures(mdp, pi=pi)           # its state visitation frequencies
    sp = sparse_transitions(mdp)                          # host-side, once: the non-zeros of the dynamics
    V, Q, pi = mce_partition_fh(mdp, transitions=sp)      # the same numbers, planning through gathers
    expected_return(mdp, pi)                              # its exact expected episode return

The solvers are plain tensor functions: differentiable, and vmappable over rewards, policies and MDPs. Given
``transitions=sparse_transitions(mdp)`` they plan through the K non-zeros of each row of the dynamics (gathers)
instead of dense products: the same numbers, O(S·A·K) instead of O(S·A·S) per step. MCE IRL
(:mod:`imitation_fn.algorithms.mce_irl`) is built on them, and re-exports them under ``imitation``'s names.

Difference from ``imitation``: the default policy of :func:`mce_occupancy_measures` is soft-optimal at the given
``discount`` (``imitation`` plans it undiscounted).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from imitation_fn.core import checks, struct
from imitation_fn.envs.tabular import TabularMDP

Discount = float | Tensor


def check_discount(discount: Discount) -> None:
    """Raise ``ValueError`` for a Python-number discount outside [0, 1] (a tensor may be traced: not checked)."""
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
# that is the plain layout; a caller that solves many rewards at once (mce_irl.batched_update) puts the seed axis
# innermost, so that the exps and logs of the soft backup are vector instructions over seeds and every sparse
# gather loads a contiguous row of seeds (vmap would put the seed axis first and vectorise over the 4 actions, or
# over nothing). soft_value_iteration and visitation take that layout directly; the public solvers are B = ().


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


def soft_value_iteration(
    mdp: TabularMDP, r: Tensor, discount: Discount, transitions: SparseTransitions | None
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`mce_partition_fh` with batch axes last and no argument checks: ``r: (S, A, *B)`` (or ``(S, 1, *B)``),
    ``discount`` scalar or ``(*B)`` -> ``V (H, S, *B)``, ``Q`` and ``pi (H, S, A, *B)``."""
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


def visitation(
    mdp: TabularMDP, pi: Tensor, discount: Discount, transitions: SparseTransitions | None
) -> tuple[Tensor, Tensor]:
    """:func:`mce_occupancy_measures` of a given policy with batch axes last and no argument checks:
    ``pi: (H, S, A, *B)``, ``discount`` scalar or ``(*B)`` -> ``D_t: (H + 1, S, *B)`` and ``D: (S, *B)``."""
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
    check_discount(discount)
    return soft_value_iteration(mdp, _state_action_reward(mdp, reward), discount, transitions)


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
    check_discount(discount)
    if pi is None:
        _, _, pi = mce_partition_fh(mdp, reward=reward, discount=discount, transitions=transitions)
    checks.assert_shape(pi, (mdp.horizon, mdp.n_states, mdp.n_actions), name="pi")
    return visitation(mdp, pi, discount, transitions)


def expected_return(mdp: TabularMDP, pi: Tensor, reward: Tensor | None = None) -> Tensor:
    """Exact expected undiscounted episode return of ``pi: (H, S, A)`` under ``reward`` (default: the MDP's).

    ``Σ_{t<H} Σ_{s,a} D_t(s) π_t(a | s) r(s, a)``: what a ``TabularEnv`` pays over its ``H`` steps, 0-d.
    """
    d_t, _ = mce_occupancy_measures(mdp, pi=pi)
    r = _state_action_reward(mdp, reward)
    return (d_t[:-1].unsqueeze(-1) * pi.to(r.dtype) * r).sum()


__all__ = [
    "Discount",
    "SparseTransitions",
    "check_discount",
    "expected_return",
    "mce_occupancy_measures",
    "mce_partition_fh",
    "soft_value_iteration",
    "sparse_transitions",
    "visitation",
]
