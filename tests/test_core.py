"""struct, tree, random, checks and config: the functional core."""

import subprocess
import sys

import pytest
import torch
import torch.utils._pytree as pytree
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch.func import vmap

from imitation_fn.core import checks, random, serialization, struct, tree
from imitation_fn.core import compile as compile_lib
from imitation_fn.core.config import Config


class Point(struct.PyTreeNode):
    x: torch.Tensor
    y: torch.Tensor
    name: str = struct.field(static=True, default="p")


# --- struct -------------------------------------------------------------------------------------


def test_struct_is_frozen_pytree_with_static_context() -> None:
    p = Point(x=torch.ones(3), y=torch.zeros(3), name="a")
    leaves, spec = pytree.tree_flatten(p)
    assert len(leaves) == 2
    assert pytree.tree_unflatten(leaves, spec).name == "a"
    with pytest.raises(AttributeError):
        p.x = torch.zeros(3)  # type: ignore[misc]
    q = p.replace(x=torch.full((3,), 2.0))
    assert torch.equal(q.x, torch.full((3,), 2.0)) and torch.equal(p.x, torch.ones(3))


def test_struct_passes_through_vmap_grad_and_compile() -> None:
    p = Point(x=torch.arange(6.0).reshape(2, 3), y=torch.ones(2, 3), name="b")
    out = vmap(lambda p: p.replace(x=p.x * 2))(p)
    assert out.name == "b" and torch.equal(out.x, p.x * 2)
    g = torch.func.grad(lambda p: (p.x * p.y).sum())(p)
    assert isinstance(g, Point) and torch.equal(g.x, p.y)
    compiled = torch.compile(lambda p: p.replace(y=p.y + p.x), backend="eager")
    assert torch.equal(compiled(p).y, p.y + p.x)


# --- tree ---------------------------------------------------------------------------------------


def test_or_eager_answers_eagerly_once_compiling_fails() -> None:
    calls = {"backend": 0, "eager": 0}

    def broken_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> None:
        calls["backend"] += 1
        raise RuntimeError("no C++ compiler here")

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls["eager"] += 1
        return x * 2 + 1

    step = compile_lib.or_eager(fn, backend=broken_backend)
    with pytest.warns(UserWarning, match="torch.compile failed, running eagerly instead"):
        assert torch.equal(step(torch.arange(3.0)), torch.tensor([1.0, 3.0, 5.0]))
    assert step(torch.ones(2)).tolist() == [3.0, 3.0]  # no second attempt, no second warning
    assert calls["backend"] == 1


def test_or_eager_keeps_errors_that_are_not_compile_failures() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return x @ x  # a shape error, eager and compiled alike

    step = compile_lib.or_eager(fn, backend="eager")
    with pytest.raises(Exception, match=r"shape|size|dimension"):
        step(torch.ones(2, 3))


def test_tree_stack_unstack_index_allclose() -> None:
    ps = [Point(x=torch.full((2,), float(i)), y=torch.zeros(1)) for i in range(4)]
    stacked = tree.stack(ps)
    assert stacked.x.shape == (4, 2) and tree.size(stacked) == 4
    assert tree.allclose(tree.unstack(stacked)[2], ps[2])
    assert tree.allclose(tree.index(stacked, 3), ps[3])
    assert not tree.allclose(ps[0], ps[1])
    with pytest.raises(ValueError, match="empty"):
        tree.stack([])


# --- random -------------------------------------------------------------------------------------


def test_threefry_known_answers() -> None:
    # Random123's known-answer vectors for Threefry-2x32-20.
    cases = [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for k, (c0, c1), expected in cases:
        y0, y1 = random.threefry2x32(torch.tensor(k), torch.tensor(c0), torch.tensor(c1))
        assert (int(y0), int(y1)) == expected


def _with_traced_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "_host_rounds", random._traced_rounds)


@pytest.mark.parametrize(
    "draw",
    [
        lambda k: random.normal(k, (3, 4)),
        lambda k: random.normal(k, (), dtype=torch.float64),
        lambda k: random.split(k, 3),
        lambda k: random.fold_in(k, 7),
        lambda k: random.permutation(k, 10),
        lambda k: random.categorical(k, torch.zeros(5, 3)),
        lambda k: torch.func.vmap(lambda kk: random.uniform(kk, (2,)))(random.split(k, 4)),  # nested vmap
        lambda k: torch.func.vmap(random.fold_in, in_dims=(None, 0))(k, torch.arange(5)),  # an unbatched key
        lambda k: torch.func.grad(lambda w: (w * random.normal(k, (3,))).sum())(torch.ones(3)),  # under grad
    ],
)
def test_host_rounds_equal_the_traced_cipher_bit_for_bit(draw, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Eager CPU draws run the cipher in numpy (one op, batched over seeds); the composite op that compiled code
    and GPUs use gives the same bits, alone and under vmap."""
    keys = torch.stack([random.key(s) for s in (0, 1, 2**40 + 5, 2**63 - 1)])
    host = (draw(keys[0]), torch.func.vmap(draw)(keys))
    _with_traced_rounds(monkeypatch)
    traced = (draw(keys[0]), torch.func.vmap(draw)(keys))
    assert all(torch.equal(h, t) for h, t in zip(host, traced, strict=True))
    assert torch.equal(host[1][2], draw(keys[2]))


def test_host_rounds_broadcast_like_the_traced_cipher() -> None:
    gen = torch.Generator().manual_seed(0)
    for key_shape, x_shape in [((2,), ()), ((2,), (5,)), ((3, 2), (3,)), ((3, 2), (4, 3)), ((2,), (7, 1))]:
        key, x0, x1 = (torch.randint(0, 2**32, s, generator=gen) for s in (key_shape, x_shape, x_shape))
        host, traced = random._host_rounds(key, x0, x1), random._traced_rounds(key, x0, x1)
        assert all(torch.equal(h, t) and h.shape == t.shape for h, t in zip(host, traced, strict=True))


def test_threefry_compiled_equals_eager() -> None:
    # The rounds run on int32 and rely on adds wrapping modulo 2**32: the same words from inductor's C++ code.
    key = torch.tensor([0xFFFFFFFF, 0x80000001])
    compiled = torch.compile(lambda k: random.bits(k, 1001), dynamic=False)
    assert torch.equal(compiled(key), random.bits(key, 1001))
    assert int(random.bits(key, 1001).min()) >= 0 and int(random.bits(key, 1001).max()) > 2**31


def test_threefry_is_one_graph_node_for_dynamo_and_expands_for_vmap() -> None:
    # Dynamo records each cipher call as one op (compile time), which vmap and the compiler's tracing expand.
    calls: list[int] = []

    def count_nodes(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> torch.fx.GraphModule:
        calls.append(sum(node.op == "call_function" for node in gm.graph.nodes))
        return gm

    keys = random.split(random.key(3), 4)
    draw = torch.compile(lambda ks: torch.func.vmap(lambda k: random.uniform(k, (6, 5)))(ks), backend=count_nodes)
    assert torch.equal(draw(keys), torch.stack([random.uniform(k, (6, 5)) for k in keys]))
    assert calls and calls[0] < 30  # the 20 rounds alone are ~150 ops


def test_split_matches_jax_prngkey_split() -> None:
    # jax.random.split(jax.random.PRNGKey(0)) == [[4146024105, 967050713], [2718843009, 1272950319]]
    assert random.split(random.key(0)).tolist() == [[4146024105, 967050713], [2718843009, 1272950319]]


def test_random_reproducible_across_processes() -> None:
    code = "from imitation_fn.core import random; print(random.normal(random.key(7), (5,)).tolist())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == random.normal(random.key(7), (5,)).tolist()


def test_split_and_fold_in_give_distinct_keys() -> None:
    keys = random.split(random.key(3), 64)
    assert len({tuple(k.tolist()) for k in keys}) == 64
    folded = {tuple(random.fold_in(random.key(3), i).tolist()) for i in range(64)}
    assert len(folded) == 64
    a, b = (random.uniform(k, (10_000,)) for k in random.split(random.key(1)))
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.05


def test_moments_of_uniform_and_normal() -> None:
    u = random.uniform(random.key(0), (200_000,), dtype=torch.float64)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    z = random.normal(random.key(1), (200_000,))
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1.0) < 0.01
    assert torch.isfinite(z).all()
    bounded = random.uniform(random.key(2), (1000,), minval=-2.0, maxval=3.0)
    assert float(bounded.min()) >= -2.0 and float(bounded.max()) < 3.0


def test_categorical_frequencies_chi_square() -> None:
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 50_000
    draws = random.categorical(random.key(5), probs.log(), shape=(n,))
    counts = torch.bincount(draws, minlength=4).double()
    expected = probs.double() * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # 99.9th percentile of chi-square with 3 degrees of freedom


def test_bernoulli_randint_permutation() -> None:
    b = random.bernoulli(random.key(0), 0.3, (100_000,))
    assert b.dtype == torch.bool and abs(float(b.float().mean()) - 0.3) < 0.01
    r = random.randint(random.key(1), (10_000,), 3, 9)
    assert int(r.min()) == 3 and int(r.max()) == 8
    for n in (1, 7, 1000):
        assert torch.equal(random.permutation(random.key(n), n).sort().values, torch.arange(n))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**40), n=st.integers(1, 6))
def test_vmapped_draws_equal_single_draws(seed: int, n: int) -> None:
    """The sweep contract: seed i draws the same numbers alone or inside a vmap of any size."""
    keys = random.split(random.key(seed), n)

    def draw(k: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k1, k2, k3, k4 = random.split(k, 4)
        return (
            random.normal(k1, (3,)),
            random.categorical(k2, torch.zeros(5, 4)),
            random.permutation(k3, 9),
            random.fold_in(k4, 11),
        )

    batched = vmap(draw)(keys)
    for i in range(n):
        assert tree.allclose(tree.index(batched, i), draw(keys[i]), rtol=0, atol=0)


# --- checks -------------------------------------------------------------------------------------


def test_checks_messages_name_argument_and_shapes() -> None:
    with pytest.raises(AssertionError, match=r"obs has shape \(3, 5\), expected \(3, 4\)"):
        checks.assert_shape(torch.zeros(3, 5), (3, 4), name="obs")
    checks.assert_shape(torch.zeros(3, 5), (None, 5))
    with pytest.raises(AssertionError, match="rank 1"):
        checks.assert_rank(torch.zeros(3), 2, name="x")
    with pytest.raises(AssertionError, match="dtype"):
        checks.assert_dtype(torch.zeros(3), torch.int64)
    with pytest.raises(AssertionError, match=r"params\['w'\] has 1 non-finite"):
        checks.assert_finite({"w": torch.tensor([0.0, float("nan")])}, name="params")
    with pytest.raises(AssertionError, match="prefix"):
        checks.assert_tree_shape_prefix({"a": torch.zeros(2, 3)}, (3,))
    with pytest.raises(AssertionError, match=r"b\['k'\] max abs difference"):
        checks.assert_trees_allclose({"k": torch.zeros(2)}, {"k": torch.ones(2)}, name="b")


def test_assert_finite_is_silent_inside_vmap() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        checks.assert_finite(x)
        return x

    assert torch.isnan(vmap(f)(torch.tensor([[float("nan")]]))).all()


# --- config and serialization --------------------------------------------------------------------


class Toy(Config):
    lr: float = 1e-3
    sizes: tuple[int, ...] = (32, 32)


def test_config_frozen_forbids_extra_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = Toy(lr=0.1)
    with pytest.raises(ValidationError, match="extra"):
        Toy(lr=0.1, typo=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        cfg.lr = 0.2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="lr"):
        Toy(lr="fast")  # type: ignore[arg-type]
    cfg.save(tmp_path / "c.json")
    assert Toy.load(tmp_path / "c.json") == cfg


def test_serialization_round_trip_and_mismatch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = {"params": {"w": torch.randn(3, 2)}, "step": torch.tensor(4)}
    serialization.save(tmp_path / "s.safetensors", state, {"step": 4})
    loaded = serialization.load(tmp_path / "s.safetensors", state)
    assert tree.allclose(loaded, state, rtol=0, atol=0)
    assert serialization.load_metadata(tmp_path / "s.safetensors") == {"step": 4}
    with pytest.raises(ValueError, match="shape"):
        serialization.load(tmp_path / "s.safetensors", {"params": {"w": torch.zeros(2, 2)}, "step": torch.tensor(0)})
    with pytest.raises(ValueError, match="missing"):
        serialization.load(tmp_path / "s.safetensors", {"params": {"v": torch.zeros(3, 2)}, "step": torch.tensor(0)})


def test_extreme_random_words_give_finite_normals_and_gumbels(monkeypatch: pytest.MonkeyPatch) -> None:
    """All-ones and all-zeros words map strictly inside (0, 1): normal and gumbel stay finite."""
    for word in (2**32 - 1, 0):
        monkeypatch.setattr(random, "bits", lambda key, n, w=word: torch.full((n,), w, dtype=torch.int64))
        for dtype in (torch.float32, torch.float64):
            assert torch.isfinite(random.normal(random.key(0), (4,), dtype)).all()
            assert torch.isfinite(random.gumbel(random.key(0), (4,), dtype)).all()
