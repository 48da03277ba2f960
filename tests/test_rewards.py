"""Reward nets: inputs and flags, one-hot and images, CNNs, shaping, normalisation, ensembles, vmap over seeds,
gradients, save/load and the reward functions that PPO trains on."""

import dataclasses
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from imitation_fn import envs, rewards
from imitation_fn.core import random, serialization, tree
from imitation_fn.core.errors import InputError
from imitation_fn.envs.task import Task
from imitation_fn.rewards import normalize
from imitation_fn.rl import ppo

OBS = gym.spaces.Box(-1.0, 1.0, (4,))
DISCRETE = gym.spaces.Discrete(3)
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (2,))
IMAGE_HWC = gym.spaces.Box(0, 255, (6, 5, 3), dtype=np.uint8)
IMAGE_CHW = gym.spaces.Box(0, 255, (3, 6, 5), dtype=np.uint8)
N = 7


def _transitions(key, obs_space=OBS, act_space=DISCRETE, n=N, done_every=3):
    """Raw transitions ``(obs, acts, next_obs, dones)`` for the spaces."""
    k = random.split(key, 3)

    def draw(kk, space):
        if isinstance(space, gym.spaces.Discrete):
            return random.randint(kk, (n,), int(space.start), int(space.start + space.n))
        if space.dtype == np.uint8:
            return random.randint(kk, (n, *space.shape), 0, 256).to(torch.uint8)
        return random.normal(kk, (n, *space.shape))

    dones = torch.arange(n) % done_every == done_every - 1
    return draw(k[0], obs_space), draw(k[1], act_space), draw(k[2], obs_space), dones


def _apply_in(net):
    return vmap(net.apply, in_dims=(0, None, None, None, None))


# ---------------------------------------------------------------------------------------------------------------------
# BasicRewardNet: defaults, flags, preprocessing
# ---------------------------------------------------------------------------------------------------------------------


def test_defaults_match_imitation() -> None:
    net = rewards.BasicRewardNet(OBS, DISCRETE)
    assert (net.use_state, net.use_action, net.use_next_state, net.use_done) == (True, True, False, False)
    assert net.hid_sizes == (32, 32) and net.activation == "relu" and net.init_scheme == "torch_default"
    params = net.init(random.key(0))
    assert params["mlp"]["layers.0.weight"].shape == (32, 4 + 3)  # state + one-hot action
    assert params["mlp"]["layers.2.weight"].shape == (1, 32)
    shaped = rewards.BasicShapedRewardNet(OBS, DISCRETE)
    assert shaped.base.hid_sizes == (32,) and shaped.potential.hid_sizes == (32, 32)
    assert shaped.discount_factor == 0.99
    out = net.apply(params, *_transitions(random.key(1)))
    assert out.shape == (N,) and out.dtype == torch.float32


def test_forward_is_an_nn_sequential_on_the_concatenated_inputs() -> None:
    net = rewards.BasicRewardNet(OBS, DISCRETE, use_next_state=True, use_done=True)
    params = net.init(random.key(0))
    obs, acts, nxt, dones = _transitions(random.key(1))
    # imitation's build_mlp: Linear, ReLU, Linear, ReLU, Linear on [s, one_hot(a), s', done].
    seq = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    for i, layer in enumerate([seq[0], seq[2], seq[4]]):
        layer.load_state_dict({p: params["mlp"][f"layers.{i}.{p}"] for p in ("weight", "bias")})
    x = torch.cat([obs, nn.functional.one_hot(acts, 3).float(), nxt, dones.float()[:, None]], dim=1)
    torch.testing.assert_close(net.apply(params, obs, acts, nxt, dones), seq(x).squeeze(-1))


FLAG_SETS = [f for f in itertools.product([False, True], repeat=4) if any(f)]


@pytest.mark.parametrize("act_space", [DISCRETE, BOX_ACT], ids=["discrete", "box"])
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: "".join("SANd"[i] if on else "-" for i, on in enumerate(f)))
def test_each_use_flag_changes_exactly_which_inputs_matter(flags, act_space) -> None:
    use_state, use_action, use_next_state, use_done = flags
    net = rewards.BasicRewardNet(OBS, act_space, use_state, use_action, use_next_state, use_done)
    params = net.init(random.key(0))
    obs, acts, nxt, dones = _transitions(random.key(1), act_space=act_space)
    base = net.apply(params, obs, acts, nxt, dones)
    perturbed_acts = (acts + 1) % 3 if isinstance(act_space, gym.spaces.Discrete) else acts + 0.5
    perturbations = {
        "state": ((obs + 0.5, acts, nxt, dones), use_state),
        "action": ((obs, perturbed_acts, nxt, dones), use_action),
        "next_state": ((obs, acts, nxt + 0.5, dones), use_next_state),
        "done": ((obs, acts, nxt, ~dones), use_done),
    }
    for name, (inputs, used) in perturbations.items():
        changed = (net.apply(params, *inputs) - base).abs() > 1e-6
        assert bool(changed.all()) if used else not bool(changed.any()), f"{name}: used={used}, changed={changed}"


def test_no_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one input"):
        rewards.BasicRewardNet(OBS, DISCRETE, use_state=False, use_action=False)


def test_discrete_inputs_are_one_hot() -> None:
    start3 = gym.spaces.Discrete(3, start=-1)
    states = gym.spaces.Discrete(5)  # a tabular MDP's observations
    obs, acts = torch.tensor([0, 4, 2]), torch.tensor([-1, 1, 0])
    p_obs, p_acts, p_nxt, p_done = rewards.preprocess(
        rewards.SpaceSpec.of(states), rewards.SpaceSpec.of(start3), obs, acts, obs, torch.tensor([True, False, True])
    )
    torch.testing.assert_close(p_obs, torch.eye(5)[obs])
    torch.testing.assert_close(p_acts, torch.eye(3)[acts + 1])
    torch.testing.assert_close(p_done, torch.tensor([1.0, 0.0, 1.0]))
    net = rewards.BasicRewardNet(states, start3)
    assert net.init(random.key(0))["mlp"]["layers.0.weight"].shape == (32, 5 + 3)
    # apply on raw integers == forward on the one-hot encoding
    params = net.init(random.key(0))
    torch.testing.assert_close(
        net.apply(params, obs, acts, obs, p_done.bool()), net.forward(params, p_obs, p_acts, p_nxt, p_done)
    )
    # numpy inputs, as imitation's predict takes them
    as_np = [x.numpy() for x in (obs, acts, obs, p_done.bool())]
    torch.testing.assert_close(net.apply(params, *as_np), net.forward(params, p_obs, p_acts, p_nxt, p_done))


def test_images_are_scaled_and_flattened_for_the_mlp() -> None:
    net = rewards.BasicRewardNet(IMAGE_HWC, DISCRETE, use_next_state=True)
    assert net.observation_space.is_image
    params = net.init(random.key(0))
    assert params["mlp"]["layers.0.weight"].shape == (32, 2 * 6 * 5 * 3 + 3)
    obs, acts, nxt, dones = _transitions(random.key(1), IMAGE_HWC)
    expected = net.forward(params, obs.float() / 255, torch.eye(3)[acts], nxt.float() / 255, dones.float())
    torch.testing.assert_close(net.apply(params, obs, acts, nxt, dones), expected)
    raw = rewards.BasicRewardNet(IMAGE_HWC, DISCRETE, use_next_state=True, normalize_images=False)
    expected = raw.forward(params, obs.float(), torch.eye(3)[acts], nxt.float(), dones.float())
    torch.testing.assert_close(raw.apply(params, obs, acts, nxt, dones), expected)


def test_shape_errors_are_clear() -> None:
    net = rewards.BasicRewardNet(OBS, DISCRETE)
    params = net.init(random.key(0))
    obs, acts, nxt, dones = _transitions(random.key(1))
    with pytest.raises(AssertionError, match=r"obs has shape \(7, 5\), expected \(7, 4\)"):
        net.apply(params, torch.zeros(N, 5), acts, nxt, dones)
    with pytest.raises(AssertionError, match="dones has shape"):
        net.apply(params, obs, acts, nxt, dones[:3])
    with pytest.raises(TypeError, match="Box and Discrete"):
        rewards.BasicRewardNet(gym.spaces.MultiBinary(3), DISCRETE)
    with pytest.raises(ValueError, match="unknown activation"):
        rewards.BasicRewardNet(OBS, DISCRETE, activation="nope")


# ---------------------------------------------------------------------------------------------------------------------
# CNN
# ---------------------------------------------------------------------------------------------------------------------


def _torch_cnn(params, in_channels, hid, out_size):
    """imitation's build_cnn as nn modules, loaded with our params."""
    layers: list[nn.Module] = []
    prev = in_channels
    for i, ch in enumerate(hid):
        conv = nn.Conv2d(prev, ch, 3, padding="same")
        conv.load_state_dict({"weight": params[f"conv{i}.weight"], "bias": params[f"conv{i}.bias"]})
        layers += [conv, nn.ReLU()]
        prev = ch
    dense = nn.Linear(prev, out_size)
    dense.load_state_dict({"weight": params["dense_final.weight"], "bias": params["dense_final.bias"]})
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), dense)


@pytest.mark.parametrize("use_action,use_done", [(True, False), (True, True), (False, True), (False, False)])
def test_cnn_reward_matches_imitations_output_selection(use_action, use_done) -> None:
    net = rewards.CnnRewardNet(
        IMAGE_HWC, DISCRETE, use_action=use_action, use_done=use_done, use_next_state=True, hid_channels=(4, 5)
    )
    params = net.init(random.key(0))
    out_size = (3 if use_action else 1) * (2 if use_done else 1)
    assert params["cnn"]["conv0.weight"].shape == (4, 6, 3, 3)  # s and s' stacked: 2 × 3 channels
    assert params["cnn"]["dense_final.weight"].shape == (out_size, 5)
    obs, acts, nxt, dones = _transitions(random.key(1), IMAGE_HWC)
    x = torch.cat([obs.float().permute(0, 3, 1, 2), nxt.float().permute(0, 3, 1, 2)], dim=1) / 255
    out = _torch_cnn(params["cnn"], 6, (4, 5), out_size)(x)
    col = torch.zeros(N, dtype=torch.long)
    if use_action:
        col = acts.clone()
    if use_done:
        col = col + dones.long() * (3 if use_action else 1)
    expected = out[torch.arange(N), col]
    torch.testing.assert_close(net.apply(params, obs, acts, nxt, dones), expected, atol=1e-6, rtol=1e-5)


def test_cnn_channels_last_and_first_agree() -> None:
    hwc = rewards.CnnRewardNet(IMAGE_HWC, DISCRETE, hid_channels=(4,))
    chw = rewards.CnnRewardNet(IMAGE_CHW, DISCRETE, hwc_format=False, hid_channels=(4,))
    params = hwc.init(random.key(0))
    assert tree.allclose(params, chw.init(random.key(0)))
    obs, acts, nxt, dones = _transitions(random.key(1), IMAGE_HWC)
    to_chw = lambda x: x.permute(0, 3, 1, 2).contiguous()  # noqa: E731
    torch.testing.assert_close(
        hwc.apply(params, obs, acts, nxt, dones), chw.apply(params, to_chw(obs), acts, to_chw(nxt), dones)
    )
    pot_hwc, pot_chw = rewards.BasicPotentialCNN(IMAGE_HWC, (4,)), rewards.BasicPotentialCNN(IMAGE_CHW, (4,), False)
    pp = pot_hwc.init(random.key(2))
    phi = pot_hwc.apply(pp, obs)
    assert phi.shape == (N,)
    torch.testing.assert_close(phi, pot_chw.apply(pp, to_chw(obs)))


def test_cnn_refuses_what_imitation_refuses() -> None:
    with pytest.raises(ValueError, match="requires image observations"):
        rewards.CnnRewardNet(OBS, DISCRETE)
    with pytest.raises(ValueError, match="requires image observations"):
        rewards.BasicPotentialCNN(gym.spaces.Box(0.0, 1.0, (6, 5, 3)), (4,))  # float images: not SB3 images
    with pytest.raises(ValueError, match="Discrete action spaces"):
        rewards.CnnRewardNet(IMAGE_HWC, BOX_ACT)
    with pytest.raises(ValueError, match="current or next state"):
        rewards.CnnRewardNet(IMAGE_HWC, DISCRETE, use_state=False)
    rewards.CnnRewardNet(IMAGE_HWC, BOX_ACT, use_action=False)  # Box actions are fine when not used


def test_shaped_cnn_net() -> None:
    base = rewards.CnnRewardNet(IMAGE_HWC, DISCRETE, hid_channels=(4,))
    net = rewards.ShapedRewardNet(base, rewards.BasicPotentialCNN(IMAGE_HWC, (4,)), 0.9)
    params = net.init(random.key(0))
    obs, acts, nxt, dones = _transitions(random.key(1), IMAGE_HWC)
    phi = lambda x: net.potential_values(params, x)  # noqa: E731
    expected = net.unshaped(params, obs, acts, nxt, dones) + 0.9 * (~dones) * phi(nxt) - phi(obs)
    torch.testing.assert_close(net.apply(params, obs, acts, nxt, dones), expected)


# ---------------------------------------------------------------------------------------------------------------------
# Shaping
# ---------------------------------------------------------------------------------------------------------------------


def test_shaping_formula_by_hand_with_done_masking() -> None:
    net = rewards.BasicShapedRewardNet(OBS, DISCRETE, discount_factor=0.9)
    params = net.init(random.key(0))
    obs, acts, nxt, dones = _transitions(random.key(1))
    assert bool(dones.any()) and not bool(dones.all())
    # Hand computation from the raw MLPs.
    x = torch.cat([obs, torch.eye(3)[acts]], dim=1)
    pb, pp = params["base"]["mlp"], params["potential"]["mlp"]
    r = torch.relu(x @ pb["layers.0.weight"].T + pb["layers.0.bias"]) @ pb["layers.1.weight"].T + pb["layers.1.bias"]

    def phi(s):
        h = torch.relu(s @ pp["layers.0.weight"].T + pp["layers.0.bias"])
        h = torch.relu(h @ pp["layers.1.weight"].T + pp["layers.1.bias"])
        return (h @ pp["layers.2.weight"].T + pp["layers.2.bias"]).squeeze(-1)

    expected = r.squeeze(-1) + 0.9 * (1 - dones.float()) * phi(nxt) - phi(obs)
    torch.testing.assert_close(net.apply(params, obs, acts, nxt, dones), expected)
    torch.testing.assert_close(net.unshaped(params, obs, acts, nxt, dones), r.squeeze(-1))
    # On done rows the next state's potential is masked: moving s' changes only the other rows.
    after = net.apply(params, obs, acts, nxt + 3.0, dones)
    before = net.apply(params, obs, acts, nxt, dones)
    torch.testing.assert_close(after[dones], before[dones])
    assert bool(((after - before).abs() > 1e-6)[~dones].all())


def test_shaped_net_refuses_mismatched_parts() -> None:
    base = rewards.BasicRewardNet(OBS, DISCRETE)
    with pytest.raises(ValueError, match="observation space"):
        rewards.ShapedRewardNet(base, rewards.BasicPotentialMLP(gym.spaces.Box(-1, 1, (3,))))
    with pytest.raises(ValueError, match="discount_factor"):
        rewards.ShapedRewardNet(base, rewards.BasicPotentialMLP(OBS), 1.5)


# ---------------------------------------------------------------------------------------------------------------------
# Output normalisation
# ---------------------------------------------------------------------------------------------------------------------


def test_normaliser_updates_only_when_asked_and_tracks_the_data() -> None:
    batches = [random.normal(random.key(i), (n,)) * (i + 1) + 3 * i for i, n in enumerate([5, 40, 13])]
    state = normalize.init()
    assert float(state.count) == 0.0
    normalize.apply(state, batches[0])
    assert tree.allclose(state, normalize.init())  # apply is pure: nothing changes
    # NormalizedRewardNet.predict_processed: normalise with the old statistics, then update.
    new_state, out = normalize.apply_and_update(state, batches[0])
    torch.testing.assert_close(out, (batches[0] - 0.0) / torch.sqrt(torch.tensor(1.0 + 1e-5)))
    for b in batches[1:]:
        new_state = normalize.update(new_state, b)
    data = torch.cat(batches)
    torch.testing.assert_close(new_state.mean, data.mean())
    torch.testing.assert_close(new_state.var, data.var(correction=0))
    assert float(new_state.count) == len(data)
    torch.testing.assert_close(
        normalize.apply(new_state, data), (data - data.mean()) / torch.sqrt(data.var(correction=0) + 1e-5)
    )
    # A mask keeps only the marked rows.
    mask = torch.arange(40) % 2 == 0
    masked = normalize.update(normalize.init(), batches[1], mask)
    torch.testing.assert_close(masked.mean, batches[1][mask].mean())
    torch.testing.assert_close(masked.var, batches[1][mask].var(correction=0))


# ---------------------------------------------------------------------------------------------------------------------
# Ensembles and AddSTD
# ---------------------------------------------------------------------------------------------------------------------


def test_ensemble_mean_and_var_match_a_loop_over_members() -> None:
    member = rewards.BasicRewardNet(OBS, BOX_ACT, use_next_state=True)
    ens = rewards.RewardEnsemble(member, num_members=4)
    params = ens.init(random.key(0))
    assert params["mlp"]["layers.0.weight"].shape == (4, 32, 10)
    data = _transitions(random.key(1), act_space=BOX_ACT)
    keys = random.split(random.key(0), 4)
    loop = torch.stack([member.apply(member.init(keys[i]), *data) for i in range(4)])
    torch.testing.assert_close(ens.apply_all(params, *data), loop, atol=1e-6, rtol=1e-5)
    mean, var = ens.moments(params, *data)
    torch.testing.assert_close(mean, loop.mean(0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(var, torch.tensor(np.var(loop.numpy(), axis=0, ddof=1)), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ens.apply(params, *data), mean)
    assert float(var.min()) > 0  # members differ


def test_add_std_is_mean_plus_k_std() -> None:
    ens = rewards.RewardEnsemble(rewards.BasicRewardNet(OBS, DISCRETE), num_members=3)
    params = ens.init(random.key(0))
    data = _transitions(random.key(1))
    mean, var = ens.moments(params, *data)
    conservative = rewards.AddSTDRewardWrapper(ens, default_alpha=-2.0)
    torch.testing.assert_close(conservative.apply(params, *data), mean - 2.0 * var.sqrt())
    torch.testing.assert_close(conservative.apply(params, *data, alpha=0.5), mean + 0.5 * var.sqrt())
    torch.testing.assert_close(rewards.AddSTDRewardWrapper(ens).apply(params, *data), mean)  # imitation: alpha 0
    with pytest.raises(TypeError, match="RewardEnsemble"):
        rewards.AddSTDRewardWrapper(rewards.BasicRewardNet(OBS, DISCRETE))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 members"):
        rewards.RewardEnsemble(rewards.BasicRewardNet(OBS, DISCRETE), num_members=1)


def test_ensemble_members_train_independently_under_one_grad() -> None:
    ens = rewards.RewardEnsemble(rewards.BasicRewardNet(OBS, DISCRETE), num_members=3)
    params = ens.init(random.key(0))
    pre = ens.preprocess(*_transitions(random.key(1)))
    g = grad(lambda p: ens.forward_all(p, *pre)[1].sum())(params)  # only member 1's output
    w = g["mlp"]["layers.0.weight"]
    assert float(w[1].abs().sum()) > 0 and float(w[0].abs().sum()) == 0 and float(w[2].abs().sum()) == 0


# ---------------------------------------------------------------------------------------------------------------------
# vmap over seeds and gradients
# ---------------------------------------------------------------------------------------------------------------------

NETS = {
    "basic": (rewards.BasicRewardNet(OBS, DISCRETE, use_done=True), OBS),
    "shaped": (rewards.BasicShapedRewardNet(OBS, BOX_ACT, use_next_state=True), OBS),
    "cnn": (rewards.CnnRewardNet(IMAGE_HWC, DISCRETE, hid_channels=(4,)), IMAGE_HWC),
    "ensemble": (rewards.RewardEnsemble(rewards.BasicRewardNet(OBS, DISCRETE), 3), OBS),
    "add_std": (
        rewards.AddSTDRewardWrapper(rewards.RewardEnsemble(rewards.BasicRewardNet(OBS, DISCRETE), 2), 1.0),
        OBS,
    ),
}


def _data_for(name: str):
    obs_space = NETS[name][1]
    return _transitions(random.key(1), obs_space, BOX_ACT if name == "shaped" else DISCRETE)


@pytest.mark.parametrize("name", list(NETS))
def test_vmap_over_seeds_equals_loop(name) -> None:
    net, _ = NETS[name]
    data = _data_for(name)
    keys = random.split(random.key(7), 3)
    stacked = vmap(net.init)(keys)
    looped = [net.init(keys[i]) for i in range(3)]
    assert tree.allclose(stacked, tree.stack(looped))
    batched = _apply_in(net)(stacked, *data)
    expected = torch.stack([net.apply(p, *data) for p in looped])
    assert batched.shape == (3, N)
    torch.testing.assert_close(batched, expected, atol=1e-6, rtol=1e-5)
    # Seed i alone, within 2 seeds, within 3 seeds: the same numbers.
    torch.testing.assert_close(_apply_in(net)(vmap(net.init)(keys[:2]), *data), expected[:2], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", list(NETS))
def test_gradients_flow_through_apply(name) -> None:
    net, _ = NETS[name]
    data = _data_for(name)
    params = net.init(random.key(0))

    def loss(p):
        return net.apply(p, *data).square().mean()

    g = grad(loss)(params)
    assert all(bool(torch.isfinite(x).all()) for x in tree.leaves(g))
    assert float(sum(x.abs().sum() for x in tree.leaves(g))) > 0
    # torch.func.grad agrees with autograd, and with a finite difference in float64.
    leaves, spec = tree.flatten(params)
    leaves = [x.detach().clone().requires_grad_() for x in leaves]
    loss(tree.unflatten(leaves, spec)).backward()
    for a, b in zip(tree.leaves(g), leaves, strict=True):
        torch.testing.assert_close(a, b.grad)
    p64 = tree.cast(params, torch.float64)
    g64 = grad(loss)(p64)
    name0 = next(iter(tree.leaves(p64)))
    bump = torch.zeros_like(name0)
    bump.view(-1)[0] = 1e-6
    leaves64, spec64 = tree.flatten(p64)
    plus = tree.unflatten([leaves64[0] + bump, *leaves64[1:]], spec64)
    minus = tree.unflatten([leaves64[0] - bump, *leaves64[1:]], spec64)
    fd = (loss(plus) - loss(minus)) / 2e-6
    torch.testing.assert_close(fd, tree.leaves(g64)[0].reshape(-1)[0], atol=1e-6, rtol=1e-4)


def test_per_seed_gradients_under_vmap_equal_the_loop() -> None:
    net = rewards.BasicShapedRewardNet(OBS, DISCRETE)
    data = _transitions(random.key(1))
    keys = random.split(random.key(2), 4)
    loss = lambda p: net.apply(p, *data).square().mean()  # noqa: E731
    batched = vmap(grad(loss))(vmap(net.init)(keys))
    looped = tree.stack([grad(loss)(net.init(keys[i])) for i in range(4)])
    assert tree.allclose(batched, looped, rtol=1e-4, atol=1e-6)


def test_gradient_with_respect_to_inputs_for_a_penalty() -> None:
    net = rewards.BasicRewardNet(OBS, DISCRETE)
    params = net.init(random.key(0))
    obs, acts, nxt, dones = net.preprocess(*_transitions(random.key(1)))
    g_obs = grad(lambda o: net.forward(params, o, acts, nxt, dones).sum())(obs)
    assert g_obs.shape == obs.shape and float(g_obs.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NETS))
def test_save_load_gives_the_same_rewards(name, tmp_path: Path) -> None:
    net, _ = NETS[name]
    data = _data_for(name)
    params = net.init(random.key(3))
    norm = normalize.update(normalize.init(), random.normal(random.key(4), (50,)) + 2.0)
    rewards.save(tmp_path / "r", net, params, norm, metadata={"algo": "test"})
    loaded = rewards.load(tmp_path / "r")
    assert loaded.net == net and loaded.metadata == {"algo": "test"}
    assert tree.allclose(loaded.params, params) and tree.allclose(loaded.norm_state, norm)
    torch.testing.assert_close(loaded.net.apply(loaded.params, *data), net.apply(params, *data))
    # The JSON is readable and names the net.
    desc = json.loads((tmp_path / "r" / "reward.json").read_text())
    assert desc["net"]["type"] == type(net).__name__ and desc["normalized"] is True


def test_save_to_a_file_pair_and_float64(tmp_path: Path) -> None:
    net = rewards.BasicShapedRewardNet(OBS, DISCRETE)
    params = tree.cast(net.init(random.key(0)), torch.float64)
    rewards.save(tmp_path / "airl.safetensors", net, params)
    assert (tmp_path / "airl.json").is_file()
    loaded = rewards.load(tmp_path / "airl.json")
    assert loaded.norm_state is None and loaded.params["base"]["mlp"]["layers.0.weight"].dtype == torch.float64
    data = _transitions(random.key(1))
    torch.testing.assert_close(loaded.net.apply(loaded.params, *data), net.apply(params, *data))


def test_load_refuses_mismatched_files(tmp_path: Path) -> None:
    small = rewards.BasicRewardNet(OBS, DISCRETE, hid_sizes=(8,))
    big = rewards.BasicRewardNet(OBS, DISCRETE, hid_sizes=(16,))
    rewards.save(tmp_path / "a", small, small.init(random.key(0)))
    rewards.save(tmp_path / "b", big, big.init(random.key(0)))
    # A params file that belongs to another spec.
    (tmp_path / "a" / "reward.safetensors").write_bytes((tmp_path / "b" / "reward.safetensors").read_bytes())
    with pytest.raises(InputError, match=r"changed after its weights were saved \(net.hid_sizes: \[16\] → \[8\]\)"):
        rewards.load(tmp_path / "a")
    # A safetensors file that is not a saved reward's.
    serialization.save(tmp_path / "b" / "reward.safetensors", {"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="not the params file of a saved reward"):
        rewards.load(tmp_path / "b")
    # A spec edited by hand whose header was made to agree, but whose tensors do not fit it.
    rewards.save(tmp_path / "c", small, small.init(random.key(0)))
    desc = json.loads((tmp_path / "c" / "reward.json").read_text())
    desc["net"]["hid_sizes"] = [9]
    (tmp_path / "c" / "reward.json").write_text(json.dumps(desc))
    tensors = serialization.load(tmp_path / "c" / "reward.safetensors", {"params": small.init(random.key(0))})
    serialization.save(
        tmp_path / "c" / "reward.safetensors", tensors, {"format": rewards.io.FORMAT, "net": desc["net"]}
    )
    with pytest.raises(ValueError, match=r"layers.0.weight.*shape \(8, 7\).*expected \(9, 7\)"):
        rewards.load(tmp_path / "c")
    # Not a reward at all, and nothing there.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "reward.json").write_text(json.dumps({"format": "imitation_fn.policy"}))
    (tmp_path / "d" / "reward.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not a saved reward net"):
        rewards.load(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="no saved reward"):
        rewards.load(tmp_path / "missing")


def test_save_refuses_params_of_another_net_before_writing(tmp_path: Path) -> None:
    net = rewards.BasicRewardNet(OBS, DISCRETE)
    other = rewards.BasicRewardNet(OBS, DISCRETE, use_next_state=True)
    with pytest.raises(ValueError, match=r"layers\.0\.weight"):
        rewards.save(tmp_path / "r", net, other.init(random.key(0)))
    assert not (tmp_path / "r").exists()


def test_spec_json_round_trips_every_field() -> None:
    for net, _ in NETS.values():
        assert rewards.net_from_json(json.loads(json.dumps(net.to_json()))) == net
    odd = rewards.CnnRewardNet(IMAGE_CHW, DISCRETE, hwc_format=False, stride=2, padding=1, activation="tanh")
    assert rewards.net_from_json(json.loads(json.dumps(odd.to_json()))) == odd
    with pytest.raises(ValueError, match="unknown reward net type"):
        rewards.net_from_json({"type": "Nope"})
    bad = rewards.BasicRewardNet(OBS, DISCRETE).to_json() | {"extra": 1}
    with pytest.raises(ValueError, match="invalid BasicRewardNet description"):
        rewards.net_from_json(bad)


# ---------------------------------------------------------------------------------------------------------------------
# load_reward kinds and training on a saved reward
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def saved_shaped(tmp_path: Path):
    net = rewards.BasicShapedRewardNet(OBS, DISCRETE)
    params = net.init(random.key(0))
    norm = normalize.update(normalize.init(), random.normal(random.key(1), (64,)) * 3 + 1)
    rewards.save(tmp_path / "shaped", net, params, norm)
    return tmp_path / "shaped", net, params, norm


def test_load_reward_kinds(saved_shaped, tmp_path: Path) -> None:
    path, net, params, norm = saved_shaped
    data = _transitions(random.key(2))
    shaped = net.apply(params, *data)
    expect = {
        "unnormalized": shaped,
        "shaped": shaped,
        "unshaped": net.unshaped(params, *data),
        "normalized": (shaped - norm.mean) / torch.sqrt(norm.var + 1e-5),
        "zero": torch.zeros(N),
    }
    for kind, want in expect.items():
        torch.testing.assert_close(rewards.load_reward(kind, path)(*data), want)
    for imitation_name, kind in rewards.io.IMITATION_KINDS.items():
        if kind in expect:
            torch.testing.assert_close(rewards.load_reward(imitation_name, path)(*data), expect[kind])
    assert rewards.load_reward("zero", None)(*data).shape == (N,)
    with pytest.raises(ValueError, match="unknown reward kind"):
        rewards.load_reward("bogus", path)
    with pytest.raises(ValueError, match="AddSTDRewardWrapper"):
        rewards.load_reward("std_added", path)
    # An unshaped net: 'shaped' is refused, 'unshaped' is the net itself, 'normalized' needs statistics.
    basic = rewards.BasicRewardNet(OBS, DISCRETE)
    bp = basic.init(random.key(5))
    rewards.save(tmp_path / "basic", basic, bp)
    with pytest.raises(ValueError, match="needs a ShapedRewardNet"):
        rewards.load_reward("shaped", tmp_path / "basic")
    torch.testing.assert_close(rewards.load_reward("unshaped", tmp_path / "basic")(*data), basic.apply(bp, *data))
    with pytest.raises(ValueError, match="without normalisation statistics"):
        rewards.load_reward("normalized", tmp_path / "basic")
    # std_added, with alpha overriding the saved default.
    ens = rewards.RewardEnsemble(basic, 3)
    ep = ens.init(random.key(6))
    rewards.save(tmp_path / "std", rewards.AddSTDRewardWrapper(ens, -1.0), ep)
    mean, var = ens.moments(ep, *data)
    torch.testing.assert_close(rewards.load_reward("std_added", tmp_path / "std")(*data), mean - var.sqrt())
    torch.testing.assert_close(
        rewards.load_reward("RewardNet_std_added", tmp_path / "std", alpha=2.0)(*data), mean + 2 * var.sqrt()
    )
    with pytest.raises(TypeError, match="alpha applies"):
        rewards.load_reward("unnormalized", path, alpha=1.0)


def test_load_reward_checks_the_environment(saved_shaped) -> None:
    path = saved_shaped[0]
    rewards.load_reward("normalized", path, SimpleNamespace(observation_space=OBS, action_space=DISCRETE))
    with pytest.raises(ValueError, match=r"action_space Discrete\(3\), but the environment has Discrete\(2\)"):
        rewards.load_reward("normalized", path, envs.make("CartPole-v1", n_envs=2))  # Discrete(2) actions
    with pytest.raises(ValueError, match="observation_space"):
        rewards.load_reward("unshaped", path, SimpleNamespace(observation_space=BOX_ACT, action_space=DISCRETE))


def test_reward_fn_plugs_into_vmapped_ppo_collect(tmp_path: Path) -> None:
    env = envs.make("CartPole-v1", n_envs=4)
    net = rewards.BasicRewardNet(env.observation_space, env.action_space, use_next_state=True, use_done=True)
    params = net.init(random.key(0))
    norm = normalize.update(normalize.init(), random.normal(random.key(1), (32,)))
    rewards.save(tmp_path / "r", net, params, norm)
    reward_fn = rewards.load_reward("normalized", tmp_path / "r", env)
    with pytest.raises(ValueError, match=r"observation_space Box\(shape=\(4,\)\).*environment has Box\(shape=\(3,\)\)"):
        rewards.load_reward("normalized", tmp_path / "r", envs.make("Pendulum-v1", n_envs=1))
    cfg = ppo.Config(n_envs=4, n_steps=8, batch_size=32)
    states = vmap(lambda k: ppo.init(cfg, k, Task(env=env)))(random.split(random.key(2), 2))
    _, rollout = vmap(lambda s: ppo.collect_env(s, env, reward_fn=reward_fn))(states)
    assert rollout.rews.shape == rollout.env_rews.shape == (2, 8, 4)
    for seed in tree.unstack(rollout):
        obs, acts, nxt, rews = (x.flatten(0, 1) for x in (seed.obs, seed.acts, seed.next_obs, seed.rews))
        dones = (seed.terminated | seed.truncated).flatten(0, 1)
        expected = normalize.apply(norm, net.apply(params, obs, acts, nxt, dones))
        torch.testing.assert_close(rews, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(rollout.rews, rollout.env_rews)


def test_specs_are_hashable_and_replaceable() -> None:
    net = rewards.BasicShapedRewardNet(OBS, DISCRETE)
    assert hash(net) == hash(rewards.BasicShapedRewardNet(OBS, DISCRETE))
    basic = rewards.BasicRewardNet(OBS, DISCRETE)
    assert dataclasses.replace(basic, use_done=True).use_done
    assert {net, basic, rewards.RewardEnsemble(basic, 2)}  # usable as cache keys
