"""Exporting our policies as stable-baselines3 zips (``policies.export_sb3``, ``imitation-fn export-sb3``).

The contract, checked with the real SB3: ``PPO.load`` / ``SAC.load`` open the zip with no ``custom_objects``;
the loaded model's deterministic ``predict`` equals our policy's deterministic action on 1,000 observations;
``load_policy`` reads the zip back to the same params; and SB3 keeps training it after ``set_env``.
"""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.utils._pytree as pytree
from test_cli_commands import assert_exit, mentions, message, run_cli

from imitation_fn.core import random
from imitation_fn.nn import mlp_apply, mlp_init
from imitation_fn.nn.cnn import is_image_space, nature_cnn_apply
from imitation_fn.policies import actor_critic, export_sb3, load_policy, mlp, sac, save_policy
from imitation_fn.policies.io import LoadedPolicy
from imitation_fn.policies.layout import infer_net_arch
from imitation_fn.policies.sb3_export import SB3ExportError, vecnormalize_path

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO, SAC  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

EXPERTS = Path(__file__).parent / "data" / "experts"
CARTPOLE = gym.make("CartPole-v1")
PENDULUM = gym.make("Pendulum-v1")
IMAGES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # ALE/Pong-v5's frames, as SB3's CnnPolicy sees them
PONG_ACTIONS = gym.spaces.Discrete(6)
N_OBS = 1000


def observations(space: gym.Space[Any], n: int = N_OBS, seed: int = 0) -> np.ndarray:
    """``n`` samples of the observation space with its bounds cut to [-10, 10] (CartPole's ±3.4e38 velocity
    bounds would overflow float32 in the first layer, making both sides NaN). Images: uint8 noise, each
    channel at its own brightness (so that the CNN features vary from frame to frame)."""
    assert isinstance(space, gym.spaces.Box)
    if is_image_space(space):
        rng = np.random.default_rng(seed)
        scale = rng.random((n, *(1 if d != min(space.shape) else d for d in space.shape)))
        return (rng.integers(0, 256, (n, *space.shape)) * scale).astype(np.uint8)
    bounded = gym.spaces.Box(np.maximum(space.low, -10), np.minimum(space.high, 10), dtype=space.dtype)
    bounded.seed(seed)
    return np.stack([bounded.sample() for _ in range(n)])


def make_policy(case: str) -> LoadedPolicy:
    """A policy with random params from our init functions (non-default widths and activations)."""
    key = random.key(3)
    if case == "ppo-discrete":
        params = actor_critic.init(key, CARTPOLE.observation_space, CARTPOLE.action_space, {"pi": [64, 64], "vf": [32]})
        return LoadedPolicy(
            "actor_critic", params, CARTPOLE.observation_space, CARTPOLE.action_space, {"activation": "tanh"}
        )
    if case == "ppo-box":
        params = actor_critic.init(key, PENDULUM.observation_space, PENDULUM.action_space, {"pi": [32, 16], "vf": [8]})
        # Wider output layer than SB3's 0.01-gain init, so actions spread over and beyond the bounds (clipping).
        params["pi"]["layers.2.weight"] = params["pi"]["layers.2.weight"] * 300
        params["log_std"] = torch.tensor([-0.7])
        return LoadedPolicy(
            "actor_critic", params, PENDULUM.observation_space, PENDULUM.action_space, {"activation": "relu"}
        )
    if case == "bc-discrete":
        params = mlp.init(key, CARTPOLE.observation_space, CARTPOLE.action_space, [32, 32])
        return LoadedPolicy("mlp", params, CARTPOLE.observation_space, CARTPOLE.action_space, {"activation": "tanh"})
    if case == "bc-box":
        params = mlp.init(key, PENDULUM.observation_space, PENDULUM.action_space, [16])
        params["pi"]["layers.1.weight"] = params["pi"]["layers.1.weight"] * 300
        return LoadedPolicy("mlp", params, PENDULUM.observation_space, PENDULUM.action_space, {"activation": "elu"})
    if case == "sac":
        params = sac.actor_init(key, PENDULUM.observation_space, PENDULUM.action_space, [32, 32])
        return LoadedPolicy(
            "sac_actor", params, PENDULUM.observation_space, PENDULUM.action_space, {"activation": "relu"}
        )
    if case == "ppo-cnn":  # SB3's CnnPolicy: NatureCNN, then the heads (net_arch [])
        return LoadedPolicy("actor_critic", _spread(cnn_actor_critic()), IMAGES, PONG_ACTIONS, {"activation": "tanh"})
    if case == "bc-cnn":  # BC on images: NatureCNN, then an MLP with a hidden layer
        params = {"pi": mlp_init(key, [512, 32, 6], output_gain=0.01), "cnn": cnn_actor_critic()["cnn"]}
        return LoadedPolicy("mlp", _spread(params, "relu"), IMAGES, PONG_ACTIONS, {"activation": "relu"})
    raise ValueError(case)


@functools.cache
def cnn_actor_critic(shape: tuple[int, ...] = IMAGES.shape) -> dict[str, Any]:
    """``actor_critic.init`` on images (its orthogonal 512 x 3136 layer takes a second or two: made once)."""
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    return actor_critic.init(random.key(3), space, PONG_ACTIONS, {"pi": [], "vf": []})


def _spread(params: dict[str, Any], activation: str = "tanh") -> dict[str, Any]:
    """``params`` with the action head's bias shifted so the logits' mean over the test frames is the same for every
    action: at init one action wins on every random frame, and a test that sees one action checks little."""
    shape = IMAGES.shape if params["cnn"]["conv0.weight"].shape[1] == IMAGES.shape[0] else IMAGES.shape[::-1]
    frames = torch.as_tensor(observations(gym.spaces.Box(0, 255, shape, np.uint8)))
    logits = mlp_apply(params["pi"], nature_cnn_apply(params["cnn"], frames), activation)
    last = f"layers.{len(params['pi']) // 2 - 1}.bias"
    return {**params, "pi": {**params["pi"], last: params["pi"][last] - logits.mean(0)}}


CASES = ["ppo-discrete", "ppo-box", "bc-discrete", "bc-box", "sac", "ppo-cnn", "bc-cnn"]
SB3_ALGO = {"actor_critic": PPO, "mlp": PPO, "sac_actor": SAC}


def assert_same_actions(model: Any, policy: LoadedPolicy, obs: np.ndarray, sb3_obs: np.ndarray | None = None) -> None:
    """SB3's deterministic ``predict`` (on ``sb3_obs``, default ``obs``) against our deterministic action."""
    theirs, _ = model.predict(obs if sb3_obs is None else sb3_obs, deterministic=True)
    ours = policy.act(torch.as_tensor(obs), random.key(0), deterministic=True).numpy()
    assert theirs.shape == ours.shape
    if isinstance(policy.action_space, gym.spaces.Discrete):
        np.testing.assert_array_equal(theirs, ours)
        assert len(np.unique(ours)) > 1, "the test observations should not all get one action"
    else:
        np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)


def leaves_equal(a: Any, b: Any) -> bool:
    la, lb = pytree.tree_leaves(a), pytree.tree_leaves(b)
    return pytree.tree_structure(a) == pytree.tree_structure(b) and all(
        torch.equal(x, y) for x, y in zip(la, lb, strict=True)
    )


# ---------------------------------------------------------------------------------------------------------------------
# Python API: random policies of every kind
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_sb3_loads_and_predicts_like_our_policy(case: str, tmp_path: Path) -> None:
    policy = make_policy(case)
    path = export_sb3(policy, tmp_path / "model.zip")
    model = SB3_ALGO[policy.kind].load(path)  # no custom_objects
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU}[policy.activation]
    if policy.kind == "sac_actor":
        assert type(model.policy).__name__ == "SACPolicy" and model.policy.net_arch == [32, 32]
    else:
        cnn = "cnn" in policy.params
        assert type(model.policy).__name__ == ("ActorCriticCnnPolicy" if cnn else "ActorCriticPolicy")
        arch = infer_net_arch(policy.kind, policy.params)
        assert model.policy.net_arch == (arch if policy.kind == "actor_critic" else {"pi": arch, "vf": arch})
        if cnn:  # one NatureCNN, shared by both heads as SB3's default
            assert type(model.policy.features_extractor).__name__ == "NatureCNN"
            assert model.policy.share_features_extractor and model.policy.features_dim == 512
            assert model.policy.vf_features_extractor is model.policy.features_extractor
            torch.testing.assert_close(
                model.policy.features_extractor.linear[0].weight, policy.params["cnn"]["linear.weight"]
            )
    assert model.policy.activation_fn is activation
    assert_same_actions(model, policy, observations(policy.observation_space))


@pytest.mark.parametrize("case", CASES)
def test_load_policy_reads_the_export_back(case: str, tmp_path: Path) -> None:
    policy = make_policy(case)
    back = load_policy(export_sb3(policy, tmp_path / "model.zip"))
    assert back.activation == policy.activation
    assert back.observation_space == policy.observation_space and back.action_space == policy.action_space
    if policy.kind == "mlp":  # BC's policy comes back as PPO's actor-critic with the added value net
        assert back.kind == "actor_critic"
        assert leaves_equal({k: back.params[k] for k in policy.params}, policy.params)
        assert back.params["vf"]["layers.0.weight"].shape[0] == policy.params["pi"]["layers.0.weight"].shape[0]
    else:
        assert back.kind == policy.kind and leaves_equal(back.params, policy.params)


def test_bc_value_net_is_sb3_style_and_deterministic(tmp_path: Path) -> None:
    policy = make_policy("bc-box")
    a = load_policy(export_sb3(policy, tmp_path / "a.zip")).params["vf"]
    b = load_policy(export_sb3(policy, tmp_path / "b.zip")).params["vf"]
    assert leaves_equal(a, b)
    hidden, head = a["layers.0.weight"], a["layers.1.weight"]  # (16, 3), (1, 16)
    torch.testing.assert_close(hidden.T @ hidden, 2.0 * torch.eye(3))  # orthogonal, gain sqrt(2)
    torch.testing.assert_close(head.norm(), torch.tensor(1.0))  # gain 1 on the value head
    assert not a["layers.0.bias"].any() and not a["layers.1.bias"].any()


def test_sac_critics_and_entropy_coefficient_travel_through_an_sb3_zip(tmp_path: Path) -> None:
    """An SB3 SAC zip read by load_policy keeps critics and log_ent_coef; exporting it writes them back."""
    policy = make_policy("sac")
    critic = sac.critic_init(random.key(5), PENDULUM.observation_space, PENDULUM.action_space, [24])
    target = pytree.tree_map(lambda x: x + 1, critic)
    extras = {"critic": critic, "critic_target": target, "log_ent_coef": torch.tensor([-1.5])}
    first = export_sb3(dataclasses.replace(policy, extras=extras), tmp_path / "first.zip")
    model = SAC.load(first)
    assert model.policy.net_arch == {"pi": [32, 32], "qf": [24]}
    assert float(model.log_ent_coef.detach()) == -1.5
    torch.testing.assert_close(model.critic_target.qf1[0].bias, target["q1"]["layers.0.bias"])
    again = load_policy(export_sb3(load_policy(first), tmp_path / "again.zip"))
    assert leaves_equal(again.extras["critic"], critic) and leaves_equal(again.extras["critic_target"], target)
    assert leaves_equal(again.params, policy.params)


# ---------------------------------------------------------------------------------------------------------------------
# Policies trained by our code: predict, then SB3 trains on
# ---------------------------------------------------------------------------------------------------------------------


def test_trained_ppo_expert_keeps_training_in_sb3(tmp_path: Path) -> None:
    policy = load_policy(EXPERTS / "CartPole-v1")
    path = export_sb3(policy, tmp_path / "ppo")
    assert path == tmp_path / "ppo.zip"
    model = PPO.load(path, n_steps=128, batch_size=64)
    assert_same_actions(model, policy, observations(policy.observation_space))
    before = model.policy.action_net.weight.detach().clone()
    model.set_env(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    model.learn(300)
    assert model.num_timesteps >= 300 and not torch.equal(before, model.policy.action_net.weight)


def test_trained_sac_expert_keeps_training_in_sb3(tmp_path: Path) -> None:
    policy = load_policy(EXPERTS / "Pendulum-v1")
    model = SAC.load(export_sb3(policy, tmp_path / "sac.zip"), learning_starts=50, buffer_size=1000)
    assert_same_actions(model, policy, observations(policy.observation_space))
    before = model.actor.mu.weight.detach().clone()
    model.set_env(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    model.learn(300)
    assert model.num_timesteps >= 300 and not torch.equal(before, model.actor.mu.weight)


def test_channels_last_cnn_policy_is_written_as_sb3_sees_it(tmp_path: Path) -> None:
    """A policy on (84, 84, 4) frames: SB3's policy is channels first behind VecTransposeImage; predict transposes."""
    space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    policy = LoadedPolicy("actor_critic", _spread(cnn_actor_critic(space.shape)), space, PONG_ACTIONS, {})
    path = export_sb3(policy, tmp_path / "last.zip")
    model = PPO.load(path)
    assert model.observation_space == IMAGES
    assert_same_actions(model, policy, observations(space))
    back = load_policy(path)
    assert back.observation_space == IMAGES and leaves_equal(back.params, policy.params)


def test_exported_cnn_policy_keeps_training_on_pong(tmp_path: Path) -> None:
    ale_py = pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    gym.register_envs(ale_py)
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    model = PPO.load(export_sb3(make_policy("bc-cnn"), tmp_path / "bc"), n_steps=16, batch_size=16, n_epochs=1)
    before = model.policy.features_extractor.cnn[0].weight.detach().clone()
    model.set_env(VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=1, seed=0), 4))
    model.learn(64)
    assert model.num_timesteps >= 64 and not torch.equal(before, model.policy.features_extractor.cnn[0].weight)
    assert model.policy.vf_features_extractor is model.policy.features_extractor


def test_observation_normalisation_is_written_for_vecnormalize(tmp_path: Path) -> None:
    policy = load_policy(EXPERTS / "Acrobot-v1")  # a PPO expert trained with normalised observations
    assert policy.obs_norm is not None
    path = export_sb3(policy, tmp_path / "acrobot.zip")
    venv = VecNormalize.load(str(vecnormalize_path(path)), make_vec_env("Acrobot-v1", n_envs=1, seed=0))
    assert not venv.training and not venv.norm_reward
    np.testing.assert_allclose(venv.obs_rms.mean, policy.obs_norm.mean.double().numpy())
    obs = observations(policy.observation_space)
    model = PPO.load(path, n_steps=128, batch_size=64)
    assert_same_actions(model, policy, obs, sb3_obs=venv.normalize_obs(obs))
    model.set_env(venv)
    model.learn(200)
    assert model.num_timesteps >= 200


# ---------------------------------------------------------------------------------------------------------------------
# Refusals, files
# ---------------------------------------------------------------------------------------------------------------------


def _shared_trunk() -> LoadedPolicy:
    params = actor_critic.init(random.key(0), CARTPOLE.observation_space, CARTPOLE.action_space, [16], shared=True)
    return LoadedPolicy("actor_critic", params, CARTPOLE.observation_space, CARTPOLE.action_space, {})


def _with_action_space(case: str, space: gym.Space[Any]) -> LoadedPolicy:
    return dataclasses.replace(make_policy(case), action_space=space)


def _on_images(case: str) -> LoadedPolicy:
    """A policy made for vector observations, claiming image ones: an MLP on raw pixels, no CNN."""
    return dataclasses.replace(make_policy(case), observation_space=IMAGES)


REFUSED = {
    "shared trunk": (_shared_trunk, {}, "shared"),
    "algo sac for an actor-critic": (lambda: make_policy("ppo-discrete"), {"algo": "sac"}, "not SAC"),
    "algo ppo for a SAC actor": (lambda: make_policy("sac"), {"algo": "ppo"}, "not PPO"),
    "Discrete(start=1)": (lambda: _with_action_space("bc-discrete", gym.spaces.Discrete(2, start=1)), {}, "start=1"),
    "infinite action bounds": (
        lambda: _with_action_space("ppo-box", gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)),
        {},
        "finite",
    ),
    "clip_actions off": (
        lambda: dataclasses.replace(make_policy("ppo-box"), config={"activation": "relu", "clip_actions": False}),
        {},
        "clip_actions",
    ),
    "SAC on images": (lambda: _on_images("sac"), {}, "SAC actor has none"),
    "images without a CNN": (lambda: _on_images("bc-discrete"), {}, "without a CNN"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refuses_what_sb3_cannot_express(case: str, tmp_path: Path) -> None:
    make, kwargs, says = REFUSED[case]
    with pytest.raises(SB3ExportError, match=says):
        export_sb3(make(), tmp_path / "model.zip", **kwargs)
    assert not list(tmp_path.iterdir()), "nothing is written when the export is refused"


def test_never_overwrites_without_being_asked(tmp_path: Path) -> None:
    policy = load_policy(EXPERTS / "Acrobot-v1")
    out = tmp_path / "model.zip"
    vecnormalize_path(out).write_text("the user's statistics")
    with pytest.raises(FileExistsError, match=r"_vecnormalize\.pkl"):
        export_sb3(policy, out)
    assert not out.exists() and vecnormalize_path(out).read_text() == "the user's statistics"
    export_sb3(policy, out, overwrite=True)
    assert zipfile.is_zipfile(out) and vecnormalize_path(out).read_bytes().startswith(b"\x80\x02")


def test_export_does_not_need_stable_baselines3(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['stable_baselines3'] = None\n"  # any import of SB3 now fails
        "from imitation_fn.policies import export_sb3\n"
        f"export_sb3({str(EXPERTS / 'Pendulum-v1')!r}, {str(tmp_path / 'm.zip')!r})\n"
        f"export_sb3({str(EXPERTS / 'Acrobot-v1')!r}, {str(tmp_path / 'n.zip')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    assert SAC.load(tmp_path / "m.zip").policy is not None


# ---------------------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO run on CartPole-v1 with seeds 0 and 1, trained by ``imitation-fn train-rl``."""
    root = tmp_path_factory.mktemp("export_cli")
    args = "train-rl --algo ppo --env CartPole-v1 --total-steps 256 --n-eval-episodes 1 --no-progress --seeds 2"
    assert_exit(run_cli([*args.split(), "--out", str(root / "run")], root, timeout=300))
    return root / "run"


def test_cli_exports_one_seed_of_a_run(two_seed_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "expert.zip"
    run = run_cli(["export-sb3", "--policy", str(two_seed_run), "--seed", "1", "--out", str(out)], tmp_path)
    assert_exit(run)
    assert mentions(run.output, 'PPO.load("') and out.is_file()
    policy = load_policy(two_seed_run / "policies" / "seed_1")
    assert_same_actions(PPO.load(out), policy, observations(policy.observation_space))


def test_cli_refuses_bad_input_with_exit_2(two_seed_run: Path, tmp_path: Path) -> None:
    existing = tmp_path / "existing.zip"
    existing.write_bytes(b"a model the user trained")
    shared = tmp_path / "shared"
    p = _shared_trunk()
    save_policy(shared, p.kind, p.params, (p.observation_space, p.action_space))
    run, seed0 = str(two_seed_run), str(two_seed_run / "policies" / "seed_0")
    out = str(tmp_path / "x.zip")
    cases = {  # arguments -> what the one-line message must name
        ("--policy", run, "--out", out): ("--seed", "0, 1"),
        ("--policy", run, "--seed", "7", "--out", out): ("--seed 7", "0, 1"),
        ("--policy", seed0, "--seed", "0", "--out", out): ("--seed",),
        ("--policy", seed0, "--out", str(existing)): ("--out", "--overwrite"),
        ("--policy", seed0, "--algo", "sac", "--out", out): ("--algo",),
        ("--policy", str(shared), "--out", out): (str(shared), "shared"),
        ("--policy", str(tmp_path / "missing"), "--out", out): ("--policy", "missing"),
    }
    with ThreadPoolExecutor(2) as pool:
        runs = {args: pool.submit(run_cli, ["export-sb3", *args], tmp_path) for args in cases}
    for args, names in cases.items():
        result = runs[args].result()
        assert_exit(result, codes=(2,))
        for token in names:
            assert mentions(message(result), token), f"{token!r} not named:\n{result.report()}"
    assert existing.read_bytes() == b"a model the user trained" and not (tmp_path / "x.zip").exists()
