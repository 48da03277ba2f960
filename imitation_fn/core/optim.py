"""Optimisers as pure gradient transformations, in the shape of optax, written in torch.

A :class:`GradientTransformation` is a pair of pure functions over pytrees of tensors::

    opt = optim.adam(3e-4)
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optim.apply_updates(params, updates)

States are frozen pytree dataclasses holding only tensors (``count`` is an int64 0-d tensor), so
``torch.func.vmap`` batches them over seeds and ``torch.func.grad`` differentiates through them.
No ``torch.optim``, no in-place ops, no ``_foreach_*``, no Python branching on tensor values.

Hyperparameters may be Python floats, 0-d tensors or schedules (``count -> value``). To sweep one,
wrap the factory with :func:`inject_hyperparams`: numeric hyperparameters then live in the state as
0-d tensors, and vmapping ``update`` over stacked states with different values sweeps them.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from imitation_fn.core import struct
from imitation_fn.core import tree as tree_lib

Params = Any  # a pytree of tensors
Updates = Any  # a pytree of tensors with the structure of Params
OptState = Any  # a pytree of tensors
Schedule = Callable[[Tensor], Tensor]
ScalarOrSchedule = float | Tensor | Schedule


# ---------------------------------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------------------------------


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(self, updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(updates, state, params=None) -> (updates, state)``, both pure."""

    init: TransformInitFn
    update: TransformUpdateFn


class EmptyState(struct.PyTreeNode):
    """State of a stateless transformation (no leaves)."""


class ScaleByScheduleState(struct.PyTreeNode):
    count: Tensor  # () int64: number of updates applied so far


class TraceState(struct.PyTreeNode):
    trace: Updates  # momentum buffer, same structure and dtypes as params


class ScaleByAdamState(struct.PyTreeNode):
    count: Tensor  # () int64
    mu: Updates  # first moment, same structure and dtypes as params
    nu: Updates  # second moment, same structure and dtypes as params


class InjectHyperparamsState(struct.PyTreeNode):
    count: Tensor  # () int64: where schedules are evaluated
    hyperparams: dict[str, Tensor]  # 0-d tensors: the values the last (or next, after init) update uses
    inner_state: OptState


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def _device(tree: Any) -> torch.device | None:
    leaves = tree_lib.leaves(tree)
    return leaves[0].device if leaves else None


def _zero_count(params: Params) -> Tensor:
    return torch.zeros((), dtype=torch.int64, device=_device(params))


def _float_dtype(tree: Any) -> torch.dtype:
    """The widest floating dtype among the leaves (the default dtype for an empty tree)."""
    dtype = None
    for leaf in tree_lib.leaves(tree):
        if leaf.is_floating_point():
            dtype = leaf.dtype if dtype is None else torch.promote_types(dtype, leaf.dtype)
    return torch.get_default_dtype() if dtype is None else dtype


def _sum_of_squares(tree: Any) -> Tensor:
    leaves = tree_lib.leaves(tree)
    if not leaves:
        return torch.zeros(())
    return sum(leaf.square().sum() for leaf in leaves)


def global_norm(tree: Any) -> Tensor:
    """``sqrt(sum of squares of every element of every leaf)``, a 0-d tensor."""
    return torch.sqrt(_sum_of_squares(tree))


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf-wise, keeping each param's dtype."""
    return tree_lib.map(lambda p, u: (p + u).to(p.dtype), params, updates)


# ---------------------------------------------------------------------------------------------------------------------
# Schedules: count (int64 0-d tensor) -> value (0-d tensor of the default float dtype)
# ---------------------------------------------------------------------------------------------------------------------


def constant_schedule(value: float | Tensor) -> Schedule:
    """``count -> value``."""

    def schedule(count: Tensor) -> Tensor:
        return torch.as_tensor(value, dtype=torch.get_default_dtype(), device=count.device)

    return schedule


def linear_schedule(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """Constant ``init_value`` until ``transition_begin``, then linear to ``end_value`` over ``transition_steps``."""
    if transition_steps <= 0:
        warnings.warn("linear_schedule: transition_steps <= 0, returning a constant schedule", stacklevel=2)
        return constant_schedule(init_value)
    if transition_begin < 0:
        warnings.warn("linear_schedule: transition_begin < 0, using 0", stacklevel=2)
        transition_begin = 0

    def schedule(count: Tensor) -> Tensor:
        t = torch.clamp(count.to(torch.get_default_dtype()) - transition_begin, 0, transition_steps)
        frac = 1 - t / transition_steps
        return (init_value - end_value) * frac + end_value

    return schedule


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Schedule:
    """``init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * t / decay_steps))) ** exponent + alpha)``, ``t`` capped."""
    if decay_steps <= 0:
        raise ValueError(f"cosine_decay_schedule: decay_steps must be positive, got {decay_steps}")

    def schedule(count: Tensor) -> Tensor:
        t = torch.clamp(count.to(torch.get_default_dtype()), max=decay_steps)
        cosine = 0.5 * (1 + torch.cos(math.pi * t / decay_steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


# ---------------------------------------------------------------------------------------------------------------------
# Transformations
# ---------------------------------------------------------------------------------------------------------------------


def identity() -> GradientTransformation:
    """Leave updates unchanged."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        del params
        return updates, state

    return GradientTransformation(init, update)


def scale(step_size: float | Tensor) -> GradientTransformation:
    """Multiply updates by ``step_size``."""

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        del params
        return tree_lib.map(lambda u: step_size * u, updates), state

    return GradientTransformation(identity().init, update)


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply updates by ``step_size_fn(count)``, ``count`` = updates applied before this one."""

    def init(params: Params) -> ScaleByScheduleState:
        return ScaleByScheduleState(count=_zero_count(params))

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        del params
        step_size = step_size_fn(state.count)
        updates = tree_lib.map(lambda u: step_size * u, updates)
        return updates, ScaleByScheduleState(count=state.count + 1)

    return GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True) -> GradientTransformation:
    """Multiply updates by ``-learning_rate`` (``+learning_rate`` if not ``flip_sign``); a schedule is followed."""
    sign = -1.0 if flip_sign else 1.0
    if callable(learning_rate):
        schedule = learning_rate
        return scale_by_schedule(lambda count: sign * schedule(count))
    return scale(sign * learning_rate)


def add_decayed_weights(weight_decay: float | Tensor = 0.0) -> GradientTransformation:
    """``updates + weight_decay * params`` (decoupled weight decay when placed before the learning rate)."""

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        if params is None:
            raise ValueError("add_decayed_weights: update needs params")
        return tree_lib.map(lambda u, p: u + weight_decay * p, updates, params), state

    return GradientTransformation(identity().init, update)


def trace(decay: float | Tensor, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``t = updates + decay * t``; emit ``t``, or ``updates + decay * t`` with ``nesterov``.

    With ``scale_by_learning_rate`` after it, this is ``torch.optim.SGD(momentum=decay, dampening=0)``.
    """

    def init(params: Params) -> TraceState:
        return TraceState(trace=tree_lib.map(torch.zeros_like, params))

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        del params
        new_trace = tree_lib.map(lambda g, t: g + decay * t, updates, state.trace)
        updates = tree_lib.map(lambda g, t: g + decay * t, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(trace=new_trace)

    return GradientTransformation(init, update)


def scale_by_adam(
    b1: float | Tensor = 0.9, b2: float | Tensor = 0.999, eps: float | Tensor = 1e-8, eps_root: float | Tensor = 0.0
) -> GradientTransformation:
    """Adam's preconditioning: ``m_hat / (sqrt(v_hat + eps_root) + eps)`` with bias-corrected moments.

    With ``eps_root=0`` this is torch.optim.Adam's formula (``eps`` added after the square root).
    Moments have the params' dtypes; the bias correction ``1 - b ** count`` is computed from the
    state's count as a tensor.
    """

    def init(params: Params) -> ScaleByAdamState:
        mu = tree_lib.map(torch.zeros_like, params)
        nu = tree_lib.map(torch.zeros_like, params)
        return ScaleByAdamState(count=_zero_count(params), mu=mu, nu=nu)

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        del params
        # Scalars are computed once, not per leaf: eager, each op costs more than its arithmetic.
        c1, c2 = 1 - b1, 1 - b2
        mu = tree_lib.map(lambda g, m: b1 * m + c1 * g, updates, state.mu)
        nu = tree_lib.map(lambda g, v: b2 * v + c2 * g.square(), updates, state.nu)
        count = state.count + 1
        # Computed once in the widest dtype; a 0-d tensor does not widen the leaves it multiplies.
        t = count.to(_float_dtype(updates))
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        if isinstance(eps_root, int | float) and eps_root == 0:  # torch.optim.Adam's case: skip adding zeros
            updates = tree_lib.map(lambda m, v: (m / bc1) / (torch.sqrt(v / bc2) + eps), mu, nu)
        else:
            updates = tree_lib.map(lambda m, v: (m / bc1) / (torch.sqrt(v / bc2 + eps_root) + eps), mu, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init, update)


def clip_by_global_norm(max_norm: float | Tensor) -> GradientTransformation:
    """Rescale updates to global norm ``max_norm`` when their norm exceeds it; smaller updates pass unchanged."""

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        del params
        sum_sq = _sum_of_squares(updates)
        # The where leaves small updates bit-for-bit untouched; the clamp keeps sqrt away from 0 in the
        # untaken branch, so gradients through a zero update stay finite.
        too_big = sum_sq > max_norm**2
        factor = torch.where(too_big, max_norm / torch.sqrt(torch.clamp(sum_sq, min=max_norm**2)), 1.0)
        return tree_lib.map(lambda u: u * factor, updates), state

    return GradientTransformation(identity().init, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` in order; the state is the tuple of their states."""

    def init(params: Params) -> tuple[OptState, ...]:
        return tuple(t.init(params) for t in transforms)

    def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        if len(state) != len(transforms):
            raise ValueError(f"chain: expected a state of {len(transforms)} transforms, got {len(state)}")
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


# ---------------------------------------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------------------------------------


def sgd(
    learning_rate: ScalarOrSchedule, momentum: float | Tensor = 0.0, nesterov: bool = False
) -> GradientTransformation:
    """Stochastic gradient descent, as ``torch.optim.SGD(lr, momentum, nesterov=nesterov, dampening=0)``.

    A Python ``momentum`` of 0 (and no ``nesterov``) adds no momentum buffer to the state.
    """
    if isinstance(momentum, int | float) and momentum == 0 and not nesterov:
        return chain(identity(), scale_by_learning_rate(learning_rate))
    return chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float | Tensor = 0.9,
    b2: float | Tensor = 0.999,
    eps: float | Tensor = 1e-8,
    eps_root: float | Tensor = 0.0,
) -> GradientTransformation:
    """Adam, as ``torch.optim.Adam(lr, betas=(b1, b2), eps=eps)``."""
    return chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float | Tensor = 0.9,
    b2: float | Tensor = 0.999,
    eps: float | Tensor = 1e-8,
    weight_decay: float | Tensor = 1e-4,
    eps_root: float | Tensor = 0.0,
) -> GradientTransformation:
    """Adam with decoupled weight decay, as ``torch.optim.AdamW(lr, betas, eps, weight_decay)``.

    ``weight_decay`` defaults to optax's 1e-4 (torch's default is 1e-2). The decay is scaled by the
    learning rate, as in both libraries: ``p <- p - lr * (adam_update + weight_decay * p)``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Sweepable hyperparameters
# ---------------------------------------------------------------------------------------------------------------------


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | tuple[str, ...] = (),
    hyperparam_dtype: torch.dtype | None = None,
) -> Callable[..., GradientTransformation]:
    """Wrap an optimiser factory so that its numeric hyperparameters live in the state.

        opt = inject_hyperparams(adam)(learning_rate=1e-3)
        state = opt.init(params)             # state.hyperparams["learning_rate"] is a 0-d tensor
        states = tree.stack([inject_hyperparams(adam)(learning_rate=lr).init(params) for lr in lrs])
        vmap(opt.update)(grads, states, params)   # one sweep over the learning rates

    Every argument of ``inner_factory`` (defaults included) that is a float, int or tensor becomes a
    0-d float tensor of ``hyperparam_dtype`` (default dtype if None) in ``state.hyperparams`` and is
    read back from the state at each update, so editing or batching the state changes it. A callable
    argument is a schedule, evaluated at the state's count; its current value is recorded in
    ``hyperparams``. Booleans, None, names in ``static_args`` and anything else stay Python constants.
    """
    static_names = (static_args,) if isinstance(static_args, str) else tuple(static_args)
    signature = inspect.signature(inner_factory)

    def wrapped(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        other: dict[str, Any] = {}
        schedules: dict[str, Schedule] = {}
        numeric: dict[str, float | Tensor] = {}
        for name, value in bound.arguments.items():
            if name in static_names or isinstance(value, bool) or value is None:
                other[name] = value
            elif callable(value):
                schedules[name] = value
            elif isinstance(value, int | float | Tensor):
                numeric[name] = value
            else:
                other[name] = value
        dtype = hyperparam_dtype or torch.get_default_dtype()

        def as_hyperparam(value: float | Tensor, device: torch.device | None) -> Tensor:
            return torch.as_tensor(value, dtype=dtype, device=device)

        def scheduled(count: Tensor) -> dict[str, Tensor]:
            return {name: as_hyperparam(fn(count), count.device) for name, fn in schedules.items()}

        def init(params: Params) -> InjectHyperparamsState:
            count = _zero_count(params)
            hyperparams = {name: as_hyperparam(v, count.device) for name, v in numeric.items()}
            hyperparams.update(scheduled(count))
            inner_state = inner_factory(**other, **hyperparams).init(params)
            return InjectHyperparamsState(count=count, hyperparams=hyperparams, inner_state=inner_state)

        def update(updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
            hyperparams = dict(state.hyperparams)
            hyperparams.update(scheduled(state.count))
            updates, inner_state = inner_factory(**other, **hyperparams).update(updates, state.inner_state, params)
            new_state = InjectHyperparamsState(count=state.count + 1, hyperparams=hyperparams, inner_state=inner_state)
            return updates, new_state

        return GradientTransformation(init, update)

    return wrapped


__all__ = [
    "EmptyState",
    "GradientTransformation",
    "InjectHyperparamsState",
    "OptState",
    "Params",
    "ScalarOrSchedule",
    "ScaleByAdamState",
    "ScaleByScheduleState",
    "Schedule",
    "TraceState",
    "Updates",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "constant_schedule",
    "cosine_decay_schedule",
    "global_norm",
    "identity",
    "inject_hyperparams",
    "linear_schedule",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "sgd",
    "trace",
]
