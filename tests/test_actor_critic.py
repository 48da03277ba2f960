"""The actor-critic policy: the params contract, SB3's initialisation, and its distributions."""

import math

import gymnasium as gym
import pytest
import torch
from torch.func import vmap

from imitation_fn.core import checks, random, tree
from imitation_fn.policies import actor_critic as ac

OBS = gym.spaces.Box(-1.0, 1.0, (3, 2))  # flattened to 6 inputs
DISCRETE = gym.spaces.Discrete(4)
BOX = gym.spaces.Box(-2.0, 2.0, (2,))


def _shapes(mlp: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in mlp.items()}


def _linear_layers(mlp: dict[str, torch.Tensor], x: torch.Tensor, final_tanh: bool = False) -> torch.Tensor:
    """The MLP written out with matrix products (nn.Linear's layout: weight (out, in))."""
    n = len(mlp) // 2
    for i in range(n):
        x = x @ mlp[f"layers.{i}.weight"].T + mlp[f"layers.{i}.bias"]
        if i < n - 1 or final_tanh:
            x = torch.tanh(x)
    return x


def test_params_follow_the_shared_contract() -> None:
    params = ac.init(random.key(0), OBS, DISCRETE)
    assert set(params) == {"pi", "vf"}
    assert _shapes(params["pi"]) == {
        "layers.0.weight": (64, 6),
        "layers.0.bias": (64,),
        "layers.1.weight": (64, 64),
        "layers.1.bias": (64,),
        "layers.2.weight": (4, 64),
        "layers.2.bias": (4,),
    }
    assert _shapes(params["vf"])["layers.2.weight"] == (1, 64)

    box = ac.init(random.key(0), OBS, BOX, net_arch={"pi": (32,), "vf": (16, 8)})
    assert set(box) == {"pi", "vf", "log_std"}
    assert [v.shape for v in box["pi"].values()] == [(32, 6), (32,), (2, 32), (2,)]
    assert [v.shape for v in box["vf"].values()] == [(16, 6), (16,), (8, 16), (8,), (1, 8), (1,)]
    torch.testing.assert_close(box["log_std"], torch.zeros(2))

    shared = ac.init(random.key(0), OBS, DISCRETE, net_arch=(32, 16), shared=True)
    assert set(shared) == {"shared", "pi", "vf"}
    assert _shapes(shared["shared"])["layers.1.weight"] == (16, 32)
    assert _shapes(shared["pi"]) == {"layers.0.weight": (4, 16), "layers.0.bias": (4,)}
    assert _shapes(shared["vf"]) == {"layers.0.weight": (1, 16), "layers.0.bias": (1,)}
    with pytest.raises(ValueError, match="shared=True"):
        ac.init(random.key(0), OBS, DISCRETE, net_arch={"pi": (8,)}, shared=True)
    with pytest.raises(TypeError, match="unsupported action space"):
        ac.init(random.key(0), OBS, gym.spaces.MultiBinary(3))


def test_initialisation_is_sb3s_orthogonal_scheme() -> None:
    params = ac.init(random.key(1), OBS, DISCRETE)
    for name, gain in [("pi", 0.01), ("vf", 1.0)]:
        w_hidden = params[name]["layers.1.weight"]
        torch.testing.assert_close(w_hidden @ w_hidden.T, 2.0 * torch.eye(64), atol=1e-5, rtol=0)
        w_out = params[name]["layers.2.weight"]  # (out, 64): rows orthogonal with norm `gain`
        torch.testing.assert_close(w_out @ w_out.T, gain**2 * torch.eye(w_out.shape[0]), atol=1e-6, rtol=1e-5)
        assert all(float(b.abs().max()) == 0 for k, b in params[name].items() if k.endswith("bias"))
    # Separate networks are drawn from separate keys.
    assert not torch.allclose(params["pi"]["layers.0.weight"], params["vf"]["layers.0.weight"])


@pytest.mark.parametrize("space", [DISCRETE, BOX], ids=["discrete", "box"])
def test_evaluate_actions_matches_torch_distributions(space: gym.Space) -> None:
    params = ac.init(random.key(2), OBS, space)
    if "log_std" in params:
        params["log_std"] = torch.tensor([-0.3, 0.5])
        # The action head has gain 0.01: make the means matter.
        params["pi"]["layers.2.weight"] = params["pi"]["layers.2.weight"] * 100
    obs = random.normal(random.key(3), (10, 3, 2))
    x = obs.flatten(1)
    out = _linear_layers(params["pi"], x)
    if isinstance(space, gym.spaces.Discrete):
        dist = torch.distributions.Categorical(logits=out)
        acts = random.randint(random.key(4), (10,), 0, 4)
    else:
        dist = torch.distributions.Independent(torch.distributions.Normal(out, params["log_std"].exp()), 1)
        acts = 3.0 * random.normal(random.key(4), (10, 2))  # unclipped samples may leave the box
    values, log_prob, entropy = ac.evaluate_actions(params, obs, acts)
    torch.testing.assert_close(values, _linear_layers(params["vf"], x).squeeze(-1))
    torch.testing.assert_close(log_prob, dist.log_prob(acts))
    torch.testing.assert_close(entropy, dist.entropy())
    torch.testing.assert_close(ac.log_prob(params, obs, acts), log_prob)
    torch.testing.assert_close(ac.entropy(params, obs), entropy)
    torch.testing.assert_close(ac.value(params, obs), values)
    mode = ac.act(params, obs, random.key(5), deterministic=True)
    torch.testing.assert_close(mode, out.argmax(-1) if isinstance(space, gym.spaces.Discrete) else out)


def test_shared_trunk_feeds_both_heads() -> None:
    params = ac.init(random.key(2), OBS, DISCRETE, net_arch=(8,), shared=True)
    obs = random.normal(random.key(3), (5, 3, 2))
    h = _linear_layers(params["shared"], obs.flatten(1), final_tanh=True)
    dist, values = ac.forward(params, obs)
    torch.testing.assert_close(dist.logits, _linear_layers(params["pi"], h))
    torch.testing.assert_close(values, _linear_layers(params["vf"], h).squeeze(-1))


def test_samples_follow_the_distribution_and_box_actions_are_clipped_only_for_the_env() -> None:
    params = ac.init(random.key(0), OBS, DISCRETE)
    params["pi"]["layers.2.bias"] = torch.tensor([0.0, 1.0, -1.0, 0.5])  # probabilities set by the bias
    obs = torch.zeros(1, 3, 2)
    dist = ac.distribution(params, obs)
    noise = ac.noise(params, random.key(1), (20_000, 1))
    counts = torch.bincount(ac.sample(dist, noise).flatten(), minlength=4) / 20_000
    torch.testing.assert_close(counts, dist.probs[0], atol=0.015, rtol=0)

    box = ac.init(random.key(0), OBS, BOX)
    box["log_std"] = torch.full((2,), math.log(3.0))
    noise = ac.noise(box, random.key(2), (4096, 1))
    acts = ac.sample(ac.distribution(box, obs), noise).squeeze(1)  # (4096, 2), mean ~0, std 3
    torch.testing.assert_close(acts.std(0), torch.full((2,), 3.0), atol=0.15, rtol=0)
    assert float(acts.abs().max()) > 2.0  # the policy's samples are not clipped...
    clipped = ac.clip_action(acts, ac.action_bounds(BOX))
    assert float(clipped.abs().max()) == 2.0  # ...what the env gets is
    torch.testing.assert_close(clipped, acts.clamp(-2.0, 2.0))
    assert ac.action_bounds(DISCRETE) is None
    assert ac.clip_action(acts, None) is acts


def test_init_under_vmap_equals_a_loop() -> None:
    keys = torch.stack([random.key(s) for s in range(3)])
    batched = vmap(lambda k: ac.init(k, OBS, BOX))(keys)
    for i in range(3):
        checks.assert_trees_allclose(tree.index(batched, i), ac.init(keys[i], OBS, BOX), rtol=0, atol=0)
