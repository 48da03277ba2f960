"""Tests for imitation_fn.nn: MLPs, distributions, running normalisation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.torch import load_file, save_file
from torch import nn
from torch.func import grad, vmap

from imitation_fn.core import random, tree
from imitation_fn.nn import Categorical, DiagGaussian, TanhGaussian, l2_norm, mlp_apply, mlp_init, param_count
from imitation_fn.nn import normalize as rn
from imitation_fn.nn.mlp import ACTIVATIONS, mlp_sizes, orthogonal

SIZES = [3, 8, 5, 2]


# --------------------------------------------------------------------------- MLP


def test_mlp_init_shapes_and_zero_bias() -> None:
    params = mlp_init(random.key(0), SIZES)
    assert {k: tuple(v.shape) for k, v in params.items()} == {
        "layers.0.weight": (8, 3),
        "layers.0.bias": (8,),
        "layers.1.weight": (5, 8),
        "layers.1.bias": (5,),
        "layers.2.weight": (2, 5),
        "layers.2.bias": (2,),
    }
    assert all(v.dtype == torch.float32 for v in params.values())
    for i in range(3):
        assert torch.equal(params[f"layers.{i}.bias"], torch.zeros_like(params[f"layers.{i}.bias"]))
    assert mlp_sizes(params) == SIZES
    assert param_count(params) == 8 * 3 + 8 + 5 * 8 + 5 + 2 * 5 + 2


def test_mlp_apply_shapes() -> None:
    params = mlp_init(random.key(0), SIZES)
    assert mlp_apply(params, torch.ones(3)).shape == (2,)
    assert mlp_apply(params, torch.ones(7, 3)).shape == (7, 2)
    assert mlp_apply(params, torch.ones(4, 7, 3)).shape == (4, 7, 2)


def test_orthogonal_init_gains() -> None:
    params = mlp_init(random.key(1), SIZES, output_gain=0.01, dtype=torch.float64)
    w0, w1, w2 = (params[f"layers.{i}.weight"] for i in range(3))
    # (8, 3): more rows than columns, so the columns are orthonormal.
    torch.testing.assert_close(w0.T @ w0, 2.0 * torch.eye(3, dtype=torch.float64))
    # (5, 8) and (2, 5): more columns, so the rows are orthonormal.
    torch.testing.assert_close(w1 @ w1.T, 2.0 * torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(w2 @ w2.T, 1e-4 * torch.eye(2, dtype=torch.float64))


def test_orthogonal_is_sign_corrected() -> None:
    # Without folding sign(diag R) into Q, Householder QR makes Q[0, 0] = -|a00| / |a| almost always.
    ws = vmap(lambda k: orthogonal(k, (4, 4)))(random.split(random.key(2), 400))
    frac_positive = (ws[:, 0, 0] > 0).double().mean().item()
    assert 0.4 < frac_positive < 0.6
    torch.testing.assert_close(ws.mean(0), torch.zeros(4, 4), atol=0.1, rtol=0)


@pytest.mark.parametrize("init", ["orthogonal", "torch_default"])
def test_mlp_init_vmap_over_keys_equals_loop(init: str) -> None:
    keys = random.split(random.key(3), 5)
    batched = vmap(lambda k: mlp_init(k, SIZES, init=init))(keys)  # type: ignore[arg-type]
    looped = tree.stack([mlp_init(k, SIZES, init=init) for k in keys])  # type: ignore[arg-type]
    assert tree.allclose(batched, looped, atol=1e-6)


@pytest.mark.parametrize("init", ["orthogonal", "torch_default"])
def test_mlp_init_deterministic_in_key(init: str) -> None:
    a = mlp_init(random.key(4), SIZES, init=init)  # type: ignore[arg-type]
    b = mlp_init(random.key(4), SIZES, init=init)  # type: ignore[arg-type]
    c = mlp_init(random.key(5), SIZES, init=init)  # type: ignore[arg-type]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.allclose(a[k], c[k]) for k in a if k.endswith("weight"))
    # Layers get their own keys: equal-shaped layers are not copies of each other.
    d = mlp_init(random.key(4), [6, 6, 6, 6], init=init)  # type: ignore[arg-type]
    assert not torch.allclose(d["layers.0.weight"], d["layers.1.weight"])


def test_torch_default_init_matches_linear_bounds() -> None:
    params = mlp_init(random.key(6), [256, 512, 3], init="torch_default")
    bound = 1 / math.sqrt(256)
    w, b = params["layers.0.weight"], params["layers.0.bias"]
    assert w.abs().max() <= bound and b.abs().max() <= bound
    # U(-bound, bound) has variance bound**2 / 3 (nn.Linear's kaiming_uniform with a=sqrt(5)).
    ref = nn.Linear(256, 512).weight.detach()
    assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.02)
    assert ref.var().item() == pytest.approx(bound**2 / 3, rel=0.02)
    assert b.abs().min() > 0


@pytest.mark.parametrize("init", ["orthogonal", "torch_default"])
def test_params_save_with_safetensors(init: str, tmp_path: Path) -> None:
    single = mlp_init(random.key(0), SIZES, init=init)  # type: ignore[arg-type]
    swept = vmap(lambda k: mlp_init(k, SIZES, init=init))(random.split(random.key(0), 3))  # type: ignore[arg-type]
    for params in (single, swept):
        save_file(params, tmp_path / "params.safetensors")  # refuses non-contiguous or stride-0 tensors
        loaded = load_file(tmp_path / "params.safetensors")
        assert loaded.keys() == params.keys() and all(torch.equal(loaded[k], params[k]) for k in params)


def test_mlp_init_float64() -> None:
    params = mlp_init(random.key(0), SIZES, dtype=torch.float64)
    assert all(v.dtype == torch.float64 for v in params.values())


_TORCH_ACT = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_apply_matches_torch_sequential(activation: str) -> None:
    params = mlp_init(random.key(7), SIZES, init="torch_default")
    act = _TORCH_ACT[activation]
    seq = nn.Sequential(nn.Linear(3, 8), act(), nn.Linear(8, 5), act(), nn.Linear(5, 2))
    # Sequential numbers its modules 0..4 with activations in between; our layers are 0..2.
    seq.load_state_dict({f"{2 * i}.{p}": params[f"layers.{i}.{p}"] for i in range(3) for p in ("weight", "bias")})
    x = random.normal(random.key(8), (16, 3))
    with torch.no_grad():
        torch.testing.assert_close(mlp_apply(params, x, activation), seq(x))
        # imitation's BC: l2_norm = sum(th.sum(th.square(w)) for w in policy.parameters()) / 2
        imitation_l2 = sum(torch.sum(torch.square(w)) for w in seq.parameters()) / 2
    torch.testing.assert_close(l2_norm(params), imitation_l2)
    assert param_count(params) == sum(p.numel() for p in seq.parameters())


def test_mlp_apply_activate_final_and_callable() -> None:
    params = mlp_init(random.key(9), SIZES)
    x = random.normal(random.key(10), (4, 3))
    torch.testing.assert_close(mlp_apply(params, x, activate_final=True), torch.tanh(mlp_apply(params, x)))
    torch.testing.assert_close(mlp_apply(params, x, torch.relu), mlp_apply(params, x, "relu"))


def test_unknown_activation_error_lists_names() -> None:
    params = mlp_init(random.key(0), SIZES)
    with pytest.raises(ValueError, match="unknown activation 'sigmoidd'") as err:
        mlp_apply(params, torch.ones(3), "sigmoidd")
    for name in ACTIVATIONS:
        assert repr(name) in str(err.value)


def test_bad_params_and_sizes_raise() -> None:
    params = mlp_init(random.key(0), SIZES)
    with pytest.raises(ValueError, match="layers"):
        mlp_apply({k: v for k, v in params.items() if k != "layers.1.bias"}, torch.ones(3))
    with pytest.raises(ValueError, match="layers"):
        mlp_apply({}, torch.ones(3))
    with pytest.raises(ValueError, match="at least two"):
        mlp_init(random.key(0), [3])
    with pytest.raises(ValueError, match="unknown init"):
        mlp_init(random.key(0), SIZES, init="xavier")  # type: ignore[arg-type]


def test_mlp_apply_vmap_and_grad() -> None:
    params = vmap(lambda k: mlp_init(k, SIZES))(random.split(random.key(11), 3))
    x = random.normal(random.key(12), (3, 6, 3))
    looped = torch.stack([mlp_apply(tree.index(params, i), x[i]) for i in range(3)])
    torch.testing.assert_close(vmap(mlp_apply)(params, x), looped)

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return mlp_apply(p, x).square().mean() + 1e-3 * l2_norm(p)

    grads = vmap(grad(loss))(params, x)
    assert set(grads) == set(params)
    assert all(g.shape == params[k].shape and torch.isfinite(g).all() for k, g in grads.items())
    # The l2 term's gradient is 1e-3 * w (from the / 2): check it on a zero input, where only it acts.
    g0 = grad(loss)(tree.index(params, 0), torch.zeros(1, 3))
    torch.testing.assert_close(g0["layers.0.weight"], 1e-3 * params["layers.0.weight"][0])


# ------------------------------------------------------------------- distributions


def _logits() -> torch.Tensor:
    logits = random.normal(random.key(20), (6, 5)) * 2.0
    return logits.index_put((torch.tensor([0]), torch.tensor([1])), torch.tensor(-math.inf))


def test_categorical_matches_torch() -> None:
    logits = _logits()
    ours, ref = Categorical(logits), torch.distributions.Categorical(logits=logits)
    x = torch.tensor([0, 2, 4, 1, 3, 0])
    torch.testing.assert_close(ours.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    assert torch.isfinite(ours.entropy()).all()
    torch.testing.assert_close(ours.probs, ref.probs)
    assert torch.equal(ours.mode(), ref.probs.argmax(-1))
    assert ours.log_prob(torch.tensor([1] * 6))[0] == -math.inf
    # Float action labels (as stored in some datasets) and broadcasting over sample axes.
    torch.testing.assert_close(ours.log_prob(x.double()), ref.log_prob(x))
    xs = torch.stack([x, x.flip(0)])
    torch.testing.assert_close(ours.log_prob(xs), ref.log_prob(xs))


def test_categorical_sample_frequencies() -> None:
    logits = torch.tensor([0.0, 1.0, -1.0, 2.0])
    n = 40_000
    samples = Categorical(logits).sample(random.key(21), (n,))
    assert samples.shape == (n,) and samples.dtype == torch.int64
    counts = torch.bincount(samples, minlength=4).double()
    expected = n * torch.softmax(logits.double(), -1)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001
    # Batched logits: each row samples from its own distribution.
    rows = Categorical(torch.tensor([[0.0, -1e9], [-1e9, 0.0]])).sample(random.key(22), (100,))
    assert rows.shape == (100, 2)
    assert (rows[:, 0] == 0).all() and (rows[:, 1] == 1).all()


def test_categorical_under_vmap() -> None:
    logits = _logits()
    keys = random.split(random.key(23), 6)
    acts, logps = vmap(lambda lg, k: Categorical(lg).sample_and_log_prob(k))(logits, keys)
    for i in range(6):
        a, lp = Categorical(logits[i]).sample_and_log_prob(keys[i])
        assert torch.equal(acts[i], a)
        torch.testing.assert_close(logps[i], lp)
    assert torch.isfinite(logps).all()  # never samples the -inf action
    # A distribution is a pytree: it can be the output of vmap.
    dist = vmap(Categorical)(logits)
    assert isinstance(dist, Categorical) and torch.equal(dist.logits, logits)
    torch.testing.assert_close(vmap(lambda d: d.entropy())(dist), Categorical(logits).entropy())


def test_diag_gaussian_matches_torch() -> None:
    mean = random.normal(random.key(30), (7, 3))
    log_std = torch.tensor([-0.5, 0.0, 0.7])  # SB3: state-independent, broadcast over the batch
    x = random.normal(random.key(31), (7, 3)) * 2
    dist = DiagGaussian(mean, log_std)
    ref = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x).sum(-1))
    torch.testing.assert_close(dist.entropy(), ref.entropy().sum(-1))
    assert dist.entropy().shape == (7,)
    assert torch.equal(dist.mode(), mean)
    assert dist.batch_shape == (7,)


def test_diag_gaussian_sample_moments_and_reparameterisation() -> None:
    mean = torch.tensor([1.0, -2.0])
    log_std = torch.tensor([0.0, math.log(0.5)])
    samples = DiagGaussian(mean, log_std).sample(random.key(32), (20_000,))
    assert samples.shape == (20_000, 2)
    torch.testing.assert_close(samples.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(samples.std(0), log_std.exp(), atol=0.02, rtol=0)

    def f(m: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
        return DiagGaussian(m, ls).sample(random.key(33), (5,)).sum()

    g_mean = grad(f)(mean, log_std)
    torch.testing.assert_close(g_mean, torch.full((2,), 5.0))


def test_diag_gaussian_under_vmap() -> None:
    mean = random.normal(random.key(34), (4, 2))
    log_std = torch.zeros(4, 2)
    keys = random.split(random.key(35), 4)
    xs, lps = vmap(lambda m, s, k: DiagGaussian(m, s).sample_and_log_prob(k))(mean, log_std, keys)
    for i in range(4):
        x, lp = DiagGaussian(mean[i], log_std[i]).sample_and_log_prob(keys[i])
        torch.testing.assert_close(xs[i], x)
        torch.testing.assert_close(lps[i], lp)


def test_tanh_gaussian_change_of_variables() -> None:
    mean = torch.tensor([[0.3, -1.0], [2.0, 0.0]], dtype=torch.float64)
    log_std = torch.tensor([0.2, -0.4], dtype=torch.float64)
    u = torch.tensor([[0.1, -2.0], [1.5, 0.7]], dtype=torch.float64)
    dist = TanhGaussian(mean, log_std)
    # log p_Y(tanh u) = log p_U(u) - sum log |d tanh(u) / du|, computed naively.
    log_p_u = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    naive = log_p_u - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    torch.testing.assert_close(dist.log_prob(torch.tanh(u)), naive)
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    torch.testing.assert_close(dist.log_prob(torch.tanh(u)), ref.log_prob(torch.tanh(u)).sum(-1))
    torch.testing.assert_close(dist.mode(), torch.tanh(mean))


def test_tanh_gaussian_density_integrates_to_one() -> None:
    dist = TanhGaussian(torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64))
    y = torch.linspace(-1, 1, 200_001, dtype=torch.float64)[1:-1, None]
    density = dist.log_prob(y).exp()
    assert torch.trapezoid(density, y[:, 0]).item() == pytest.approx(1.0, abs=1e-4)


def test_tanh_gaussian_sample_and_log_prob() -> None:
    dist = TanhGaussian(torch.tensor([[0.0, 1.0]] * 3), torch.tensor([-0.3, 0.1]))
    y, lp = dist.sample_and_log_prob(random.key(40), (100,))
    assert y.shape == (100, 3, 2) and lp.shape == (100, 3)
    assert (y.abs() < 1).all()
    torch.testing.assert_close(y, dist.sample(random.key(40), (100,)))
    torch.testing.assert_close(lp, dist.log_prob(y), atol=1e-3, rtol=1e-4)
    # Far in the tails tanh(u) rounds to ±1, but the pre-squash log-prob stays finite.
    far = TanhGaussian(torch.tensor([20.0, -20.0]), torch.tensor([-2.0, -2.0]))
    y_far, lp_far = far.sample_and_log_prob(random.key(41))
    assert torch.isfinite(lp_far) and torch.isfinite(far.log_prob(y_far))
    with pytest.raises(NotImplementedError, match="sample_and_log_prob"):
        dist.entropy()


def test_tanh_gaussian_under_vmap() -> None:
    mean = random.normal(random.key(42), (4, 2))
    keys = random.split(random.key(43), 4)
    ys, lps = vmap(lambda m, k: TanhGaussian(m, torch.zeros(2)).sample_and_log_prob(k))(mean, keys)
    for i in range(4):
        y, lp = TanhGaussian(mean[i], torch.zeros(2)).sample_and_log_prob(keys[i])
        torch.testing.assert_close(ys[i], y)
        torch.testing.assert_close(lps[i], lp)


# ------------------------------------------------------------------- normalisation


class _SB3RunningMeanStd:
    """stable_baselines3.common.running_mean_std.RunningMeanStd, verbatim in numpy."""

    def __init__(self, epsilon: float = 1e-4, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, arr: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = np.mean(arr, axis=0), np.var(arr, axis=0), arr.shape[0]
        delta = batch_mean - self.mean
        tot_count = self.count + batch_count
        new_mean = self.mean + delta * batch_count / tot_count
        m_a = self.var * self.count
        m_b = batch_var * batch_count
        m_2 = m_a + m_b + np.square(delta) * self.count * batch_count / (self.count + batch_count)
        self.mean, self.var, self.count = new_mean, m_2 / tot_count, batch_count + self.count


def test_running_mean_std_matches_sb3() -> None:
    ref = _SB3RunningMeanStd(shape=(3,))
    state = rn.init((3,), dtype=torch.float64)
    assert state.count.item() == pytest.approx(1e-4)
    for i, n in enumerate([1, 5, 17, 2]):
        batch = random.normal(random.key(50 + i), (n, 3), dtype=torch.float64) * 3 + 1
        ref.update(batch.numpy())
        state = rn.update(state, batch)
        np.testing.assert_allclose(state.mean.numpy(), ref.mean, rtol=1e-12)
        np.testing.assert_allclose(state.var.numpy(), ref.var, rtol=1e-12)
        assert state.count.item() == pytest.approx(ref.count, rel=1e-12)
    # VecNormalize.normalize_obs: clip((obs - mean) / sqrt(var + 1e-8), -10, 10).
    x = np.array([[0.0, 1.0, 2.0], [1e3, -1e3, 0.5]])
    expected = np.clip((x - ref.mean) / np.sqrt(ref.var + 1e-8), -10, 10)
    np.testing.assert_allclose(rn.normalize(state, torch.from_numpy(x)).numpy(), expected, rtol=1e-12)
    assert rn.normalize(state, torch.from_numpy(x)).abs().max().item() == 10.0


_chunks = st.lists(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(2)), elements=st.floats(-100, 100)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=50, deadline=None)
@given(chunks=_chunks)
def test_streaming_updates_equal_moments_of_concatenation(chunks: list[np.ndarray]) -> None:
    data = np.concatenate(chunks)
    # With no pseudo-count the statistics are exactly the population moments of all data.
    state = rn.init((2,), count=0.0, dtype=torch.float64)
    for c in chunks:
        state = rn.update(state, torch.from_numpy(c))
    np.testing.assert_allclose(state.mean.numpy(), data.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(state.var.numpy(), data.var(0), rtol=1e-9, atol=1e-7)
    assert state.count.item() == len(data)
    # With SB3's pseudo-count, chunking still does not matter.
    streamed = rn.init((2,), dtype=torch.float64)
    for c in chunks:
        streamed = rn.update(streamed, torch.from_numpy(c))
    one_shot = rn.update(rn.init((2,), dtype=torch.float64), torch.from_numpy(data))
    assert tree.allclose(streamed, one_shot, rtol=1e-9, atol=1e-7)


def test_normalize_denormalize_round_trip() -> None:
    state = rn.update(rn.init((4,)), random.normal(random.key(60), (50, 4)) * 5 + 2)
    x = random.normal(random.key(61), (10, 4)) * 5 + 2
    y = rn.normalize(state, x, clip=None)
    torch.testing.assert_close(rn.denormalize(state, y), x)
    torch.testing.assert_close(y, (x - state.mean) / rn.std(state))
    new_state, y2 = rn.update_and_normalize(rn.init((4,)), x)
    assert tree.allclose(new_state, rn.update(rn.init((4,)), x))
    torch.testing.assert_close(y2, rn.normalize(new_state, x))
    # Normalising the data the statistics came from (count=0) standardises it.
    _, z = rn.update_and_normalize(rn.init((4,), count=0.0), x, clip=None)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, correction=0), torch.ones(4), atol=1e-4, rtol=0)


def test_update_leading_axes_and_mask() -> None:
    x = random.normal(random.key(62), (5, 3, 2))  # (T, n_envs, obs_dim)
    assert tree.allclose(rn.update(rn.init((2,)), x), rn.update(rn.init((2,)), x.reshape(15, 2)))
    flat = x.reshape(15, 2)
    mask = torch.arange(15) % 3 != 0
    masked = rn.update(rn.init((2,)), flat, mask=mask)
    subset = rn.update(rn.init((2,)), flat[mask])
    assert tree.allclose(masked, subset, atol=1e-6)
    # A fully masked batch changes nothing, even from a zero count (no 0/0).
    for count in (1e-4, 0.0):
        s0 = rn.init((2,), count=count)
        assert tree.allclose(rn.update(s0, flat, mask=torch.zeros(15, dtype=torch.bool)), s0)
    with pytest.raises(ValueError, match="batch has shape"):
        rn.update(rn.init((2,)), torch.ones(3))
    with pytest.raises(ValueError, match="batch has shape"):
        rn.update(rn.init((2,)), torch.ones(4, 3))
    with pytest.raises(ValueError, match="mask has shape"):
        rn.update(rn.init((2,)), flat, mask=torch.ones(14))


def test_normalize_under_vmap() -> None:
    batches = random.normal(random.key(63), (3, 8, 2)) * torch.tensor([1.0, 4.0])
    states = tree.stack([rn.init((2,)) for _ in range(3)])
    masks = torch.arange(8).expand(3, 8) < torch.tensor([[8], [5], [0]])
    new, ys = vmap(lambda s, b, m: rn.update_and_normalize(s, b, mask=m))(states, batches, masks)
    for i in range(3):
        s_i, y_i = rn.update_and_normalize(rn.init((2,)), batches[i], mask=masks[i])
        assert tree.allclose(tree.index(new, i), s_i, atol=1e-6)
        torch.testing.assert_close(ys[i], y_i)
    new2, ys2 = vmap(rn.update_and_normalize)(states, batches)
    s_1, y_1 = rn.update_and_normalize(rn.init((2,)), batches[1])
    assert tree.allclose(tree.index(new2, 1), s_1)
    torch.testing.assert_close(ys2[1], y_1)
