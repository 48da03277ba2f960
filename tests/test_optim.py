"""Tests for imitation_fn.core.optim: torch.optim parity, composition, schedules, vmap sweeps."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import Tensor

from imitation_fn.core import optim
from imitation_fn.core import tree as tree_lib

DTYPE = torch.float64
Params = dict[str, Tensor]


# ---------------------------------------------------------------------------------------------------------------------
# A small float64 regression problem
# ---------------------------------------------------------------------------------------------------------------------


def make_problem(seed: int = 0) -> tuple[Params, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = {
        "w1": torch.randn(3, 8, generator=g, dtype=DTYPE) * 0.5,
        "b1": torch.randn(8, generator=g, dtype=DTYPE) * 0.1,
        "w2": torch.randn(8, 1, generator=g, dtype=DTYPE) * 0.5,
        "b2": torch.zeros(1, dtype=DTYPE),
    }
    x = torch.randn(32, 3, generator=g, dtype=DTYPE)
    y = torch.sin(x.sum(-1, keepdim=True))
    return params, x, y


def loss_fn(params: Mapping[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    h = torch.tanh(x @ params["w1"] + params["b1"])
    return ((h @ params["w2"] + params["b2"] - y) ** 2).mean()


def run_ours(opt: optim.GradientTransformation, params: Params, x: Tensor, y: Tensor, steps: int) -> list[Params]:
    state = opt.init(params)
    history = []
    for _ in range(steps):
        grads = torch.func.grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        history.append(params)
    return history


def run_torch(
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], params: Params, x: Tensor, y: Tensor, steps: int
) -> list[Params]:
    torch_params = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    opt = make(list(torch_params.values()))
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(torch_params, x, y).backward()
        opt.step()
        history.append({k: v.detach().clone() for k, v in torch_params.items()})
    return history


def assert_close(a: Params, b: Params, atol: float = 1e-6) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0.0)  # reports the failing key


# ---------------------------------------------------------------------------------------------------------------------
# Parity with torch.optim, step for step
# ---------------------------------------------------------------------------------------------------------------------

PARITY_CASES = {
    "sgd": (optim.sgd(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (optim.sgd(0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "sgd_nesterov": (
        optim.sgd(0.05, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adam": (optim.adam(1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    "adam_betas_eps": (
        optim.adam(3e-2, b1=0.8, b2=0.95, eps=1e-4),
        lambda p: torch.optim.Adam(p, lr=3e-2, betas=(0.8, 0.95), eps=1e-4),
    ),
    "adamw": (
        optim.adamw(1e-2, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
    "adamw_as_chain": (
        optim.chain(optim.scale_by_adam(), optim.add_decayed_weights(0.3), optim.scale_by_learning_rate(2e-2)),
        lambda p: torch.optim.AdamW(p, lr=2e-2, weight_decay=0.3),
    ),
    "adam_tensor_lr": (optim.adam(torch.tensor(1e-2, dtype=DTYPE)), lambda p: torch.optim.Adam(p, lr=1e-2)),
}


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_matches_torch_optim_step_for_step(name: str) -> None:
    ours, theirs = PARITY_CASES[name]
    params, x, y = make_problem()
    steps = 50
    got = run_ours(ours, params, x, y, steps)
    want = run_torch(theirs, params, x, y, steps)
    for t in range(steps):
        assert_close(got[t], want[t], atol=1e-6)
    # The problem is not trivial: parameters moved far more than the tolerance.
    assert (got[-1]["w1"] - params["w1"]).abs().max() > 1e-2


def test_adamw_weight_decay_changes_trajectory() -> None:
    """Guards the parity test against a decay term that never takes effect."""
    params, x, y = make_problem()
    with_decay = run_ours(optim.adamw(1e-2, weight_decay=0.5), params, x, y, 5)[-1]
    without = run_ours(optim.adam(1e-2), params, x, y, 5)[-1]
    assert (with_decay["w1"] - without["w1"]).abs().max() > 1e-5


def test_state_dtypes_and_count() -> None:
    params = {"a": torch.ones(3, dtype=torch.float64), "b": torch.ones(2, 2, dtype=torch.float32)}
    opt = optim.adam(1e-3)
    state = opt.init(params)
    adam_state = state[0]
    assert isinstance(adam_state, optim.ScaleByAdamState)
    assert adam_state.count.dtype == torch.int64 and adam_state.count.shape == ()
    assert adam_state.mu["a"].dtype == torch.float64 and adam_state.nu["b"].dtype == torch.float32
    grads = tree_lib.map(torch.ones_like, params)
    updates, state = opt.update(grads, state, params)
    assert int(state[0].count) == 1
    assert updates["a"].dtype == torch.float64 and updates["b"].dtype == torch.float32
    # First Adam step with a constant gradient moves every coordinate by ~lr.
    torch.testing.assert_close(updates["b"], torch.full((2, 2), -1e-3), atol=1e-9, rtol=1e-5)


def test_update_does_not_modify_inputs() -> None:
    params, x, y = make_problem()
    opt = optim.chain(optim.clip_by_global_norm(0.1), optim.adamw(1e-2, weight_decay=0.1))
    state = opt.init(params)
    grads = torch.func.grad(loss_fn)(params, x, y)
    snapshot = tree_lib.map(torch.clone, (params, grads, state))
    for _ in range(2):
        _, new_state = opt.update(grads, state, params)
    assert tree_lib.allclose((params, grads, state), snapshot, rtol=0.0, atol=0.0)
    assert not tree_lib.allclose(new_state, state)


# ---------------------------------------------------------------------------------------------------------------------
# Clipping, composition
# ---------------------------------------------------------------------------------------------------------------------


@st.composite
def random_trees(draw: st.DrawFn) -> tuple[dict[str, Tensor], float]:
    shapes = draw(st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**31 - 1))
    magnitude = draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0, 1e3]))
    max_norm = draw(st.floats(0.01, 10.0))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    tree = {f"leaf{i}": torch.randn(tuple(s), generator=g, dtype=dtype) * magnitude for i, s in enumerate(shapes)}
    return tree, max_norm


@settings(max_examples=60, deadline=None)
@given(random_trees())
def test_clip_by_global_norm_property(case: tuple[dict[str, Tensor], float]) -> None:
    updates, max_norm = case
    clip = optim.clip_by_global_norm(max_norm)
    clipped, _ = clip.update(updates, clip.init(updates))
    rtol = 1e-12 if next(iter(updates.values())).dtype == torch.float64 else 1e-5
    norm = float(optim.global_norm(updates))
    expected_norm = math.sqrt(sum(float((v.double() ** 2).sum()) for v in updates.values()))
    assert math.isclose(norm, expected_norm, rel_tol=rtol)
    assert all(clipped[k].dtype == updates[k].dtype for k in updates)
    if norm <= max_norm:
        assert tree_lib.allclose(clipped, updates, rtol=0.0, atol=0.0)  # untouched, bit for bit
    else:
        assert math.isclose(float(optim.global_norm(clipped)), max_norm, rel_tol=rtol)
        factor = max_norm / norm
        for k in updates:
            torch.testing.assert_close(clipped[k], updates[k] * factor, rtol=rtol, atol=0.0)


def test_clip_by_global_norm_under_vmap_and_grad() -> None:
    clip = optim.clip_by_global_norm(1.0)
    batch = {"a": torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], dtype=DTYPE)}
    out = torch.func.vmap(lambda u: clip.update(u, optim.EmptyState())[0])(batch)
    torch.testing.assert_close(out["a"], torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], dtype=DTYPE))

    def clipped_sum(u: Tensor) -> Tensor:
        return clip.update({"a": u}, optim.EmptyState())[0]["a"].sum()

    for u in batch["a"]:
        assert torch.isfinite(torch.func.grad(clipped_sum)(u)).all()  # no NaN from 0/0 at a zero gradient


def test_chain_applies_in_order() -> None:
    g = {"a": torch.tensor([0.3, 0.4], dtype=DTYPE)}  # norm 0.5
    scale_then_clip = optim.chain(optim.scale(4.0), optim.clip_by_global_norm(1.0))
    clip_then_scale = optim.chain(optim.clip_by_global_norm(1.0), optim.scale(4.0))
    a, _ = scale_then_clip.update(g, scale_then_clip.init(g))
    b, _ = clip_then_scale.update(g, clip_then_scale.init(g))
    torch.testing.assert_close(a["a"], torch.tensor([0.6, 0.8], dtype=DTYPE))  # norm 2 clipped to 1
    torch.testing.assert_close(b["a"], torch.tensor([1.2, 1.6], dtype=DTYPE))  # 0.5 untouched, then x4

    adam_then_lr = optim.chain(optim.scale_by_adam(), optim.trace(0.5), optim.scale(-1.0))
    state = adam_then_lr.init(g)
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[0], optim.ScaleByAdamState) and isinstance(state[1], optim.TraceState)
    _, state = adam_then_lr.update(g, state)
    # The trace saw Adam's output (±1 on the first step), not the raw gradient.
    torch.testing.assert_close(state[1].trace["a"], torch.ones(2, dtype=DTYPE), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------------------------------


def at(schedule: optim.Schedule, step: int) -> float:
    value = schedule(torch.tensor(step, dtype=torch.int64))
    assert isinstance(value, Tensor) and value.shape == ()
    return float(value)


def test_constant_schedule() -> None:
    s = optim.constant_schedule(0.25)
    assert at(s, 0) == 0.25 and at(s, 10_000) == 0.25


def test_linear_schedule() -> None:
    s = optim.linear_schedule(init_value=1.0, end_value=0.1, transition_steps=10, transition_begin=5)
    for step, want in [(0, 1.0), (5, 1.0), (10, 0.55), (15, 0.1), (1000, 0.1)]:
        assert at(s, step) == pytest.approx(want, abs=1e-6), step
    rising = optim.linear_schedule(0.0, 2.0, transition_steps=4)
    assert [at(rising, i) for i in range(6)] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0])


def test_cosine_decay_schedule() -> None:
    s = optim.cosine_decay_schedule(init_value=2.0, decay_steps=100, alpha=0.1)
    assert at(s, 0) == pytest.approx(2.0)
    assert at(s, 50) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1))
    assert at(s, 25) == pytest.approx(2.0 * (0.9 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1))
    assert at(s, 100) == pytest.approx(0.2)
    assert at(s, 500) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="decay_steps"):
        optim.cosine_decay_schedule(1.0, 0)


def test_sgd_follows_schedule() -> None:
    schedule = optim.linear_schedule(1.0, 0.0, transition_steps=4)
    opt = optim.sgd(schedule)
    g = {"a": torch.ones(2, dtype=DTYPE)}
    state = opt.init(g)
    steps = []
    for _ in range(5):
        updates, state = opt.update(g, state)
        steps.append(float(updates["a"][0]))
    assert steps == pytest.approx([-1.0, -0.75, -0.5, -0.25, 0.0])


# ---------------------------------------------------------------------------------------------------------------------
# Transforms: vmap, grad, inject_hyperparams
# ---------------------------------------------------------------------------------------------------------------------


def make_step(opt: optim.GradientTransformation, x: Tensor, y: Tensor) -> Callable:
    def step(params: Params, state: optim.OptState) -> tuple[Params, optim.OptState]:
        grads = torch.func.grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


@pytest.mark.parametrize("make_opt", [optim.adam, optim.adamw, lambda lr: optim.sgd(lr, momentum=0.9, nesterov=True)])
def test_update_inside_vmap_with_tensor_lr(make_opt: Callable) -> None:
    """vmap(init/update) over 3 seeds' params equals the loop over seeds; the lr is a 0-d tensor."""
    _, x, y = make_problem()
    seeds = [make_problem(seed)[0] for seed in range(3)]
    opt = optim.chain(optim.clip_by_global_norm(1.0), make_opt(torch.tensor(1e-2, dtype=DTYPE)))
    step = make_step(opt, x, y)

    params = tree_lib.stack(seeds)
    state = torch.func.vmap(opt.init)(params)
    for _ in range(5):
        params, state = torch.func.vmap(step)(params, state)

    for i, p in enumerate(seeds):
        s = opt.init(p)
        for _ in range(5):
            p, s = step(p, s)
        assert tree_lib.allclose(tree_lib.index(params, i), p, rtol=0.0, atol=1e-12)
        assert tree_lib.allclose(tree_lib.index(state, i), s, rtol=0.0, atol=1e-12)


def test_inject_hyperparams_state() -> None:
    params = {"a": torch.zeros(2)}
    opt = optim.inject_hyperparams(optim.adam)(learning_rate=1e-3, b1=0.8)
    state = opt.init(params)
    assert isinstance(state, optim.InjectHyperparamsState)
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    for value in state.hyperparams.values():
        assert isinstance(value, Tensor) and value.shape == () and value.is_floating_point()
    assert float(state.hyperparams["b1"]) == pytest.approx(0.8)

    # Editing the state changes the optimiser: the lr is read from the state, not the closure.
    g = {"a": torch.ones(2)}
    state = state.replace(hyperparams={**state.hyperparams, "learning_rate": torch.tensor(0.5)})
    updates, _ = opt.update(g, state, params)
    torch.testing.assert_close(updates["a"], torch.full((2,), -0.5), rtol=1e-5, atol=0.0)

    # Booleans stay static; sgd's nesterov is not a hyperparameter tensor.
    sgd_state = optim.inject_hyperparams(optim.sgd)(0.1, momentum=0.9, nesterov=True).init(params)
    assert set(sgd_state.hyperparams) == {"learning_rate", "momentum"}


def test_inject_hyperparams_schedule() -> None:
    schedule = optim.linear_schedule(1.0, 0.0, transition_steps=4)
    opt = optim.inject_hyperparams(optim.sgd)(learning_rate=schedule)
    g = {"a": torch.ones(1)}
    state = opt.init(g)
    assert float(state.hyperparams["learning_rate"]) == 1.0
    seen = []
    for _ in range(3):
        updates, state = opt.update(g, state)
        seen.append((float(updates["a"][0]), float(state.hyperparams["learning_rate"])))
    assert [u for u, _ in seen] == pytest.approx([-1.0, -0.75, -0.5])
    assert [lr for _, lr in seen] == pytest.approx([1.0, 0.75, 0.5])
    assert int(state.count) == 3


@pytest.mark.parametrize("factory", [optim.adam, optim.adamw, optim.sgd])
def test_inject_hyperparams_vmap_sweep_equals_loop(factory: Callable) -> None:
    """Stack 4 states with different learning rates, vmap one update: each lane equals that lr run alone."""
    params, x, y = make_problem()
    lrs = [1e-3, 1e-2, 3e-2, 1e-1]
    inject = optim.inject_hyperparams(factory, hyperparam_dtype=DTYPE)
    opts = [inject(learning_rate=lr) for lr in lrs]
    step = make_step(opts[0], x, y)  # any of them: the lr is read from the state

    batch_params = tree_lib.stack([params] * len(lrs))
    batch_state = tree_lib.stack([opt.init(params) for opt in opts])
    for _ in range(10):
        batch_params, batch_state = torch.func.vmap(step)(batch_params, batch_state)

    finals = []
    for i, lr in enumerate(lrs):
        alone = run_ours(factory(lr), params, x, y, steps=10)[-1]  # the plain optimiser, float lr
        assert tree_lib.allclose(tree_lib.index(batch_params, i), alone, rtol=0.0, atol=1e-10)
        finals.append(alone)
    assert not tree_lib.allclose(finals[0], finals[-1])  # the sweep really varied something
    torch.testing.assert_close(batch_state.hyperparams["learning_rate"], torch.tensor(lrs, dtype=DTYPE))


def test_grad_through_update_wrt_learning_rate() -> None:
    """A meta-gradient: d loss(p - lr * g) / d lr = -g . grad loss(p - lr * g)."""
    params, x, y = make_problem()
    grads = torch.func.grad(loss_fn)(params, x, y)

    def after_one_step(lr: Tensor) -> Tensor:
        opt = optim.sgd(lr, momentum=0.9)
        updates, _ = opt.update(grads, opt.init(params), params)
        return loss_fn(optim.apply_updates(params, updates), x, y)

    lr = torch.tensor(0.1, dtype=DTYPE)
    got = torch.func.grad(after_one_step)(lr)
    new_params = tree_lib.map(lambda p, g: p - lr * g, params, grads)
    new_grads = torch.func.grad(loss_fn)(new_params, x, y)
    want = -sum((g * ng).sum() for g, ng in zip(grads.values(), new_grads.values(), strict=True))
    torch.testing.assert_close(got, want)


def test_global_norm_and_apply_updates() -> None:
    t = {"a": torch.tensor([3.0]), "b": [torch.tensor([[4.0]], dtype=DTYPE)]}
    assert float(optim.global_norm(t)) == pytest.approx(5.0)
    assert float(optim.global_norm({})) == 0.0
    p = {"a": torch.ones(2, dtype=torch.float32)}
    out = optim.apply_updates(p, {"a": torch.full((2,), 0.5, dtype=DTYPE)})
    assert out["a"].dtype == torch.float32 and torch.equal(out["a"], torch.full((2,), 1.5))
