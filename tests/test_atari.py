"""Atari: SB3's preprocessing, NatureCNN policies equal to SB3's, CNN reward nets, and the commands on ALE/Pong-v5.

The networks are checked against SB3's own modules with the same weights; the environment against what
SB3's ``CnnPolicy`` sees; the commands (train-rl, rollouts, bc, gail, the --init-policy warm start) run as
the installed console script with tiny budgets.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn import envs
from imitation_fn.algorithms import airl, gail
from imitation_fn.core import random, tree
from imitation_fn.envs.task import Task
from imitation_fn.nn.cnn import FEATURES_DIM, is_image_space, nature_cnn_apply, nature_cnn_init, nature_cnn_shapes
from imitation_fn.policies import actor_critic, load_policy, mlp
from imitation_fn.policies.io import save_policy
from imitation_fn.policies.layout import param_shapes
from imitation_fn.rewards.cnn import CnnRewardNet
from imitation_fn.rl import ppo

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

PONG = "ALE/Pong-v5"
IMAGES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------------


def test_image_spaces_are_recognised_as_sb3_does() -> None:
    assert is_image_space(IMAGES) and is_image_space(gym.spaces.Box(0, 255, (84, 84, 3), np.uint8))
    assert not is_image_space(gym.spaces.Box(0, 255, (4, 84, 84), np.float32))
    assert not is_image_space(gym.spaces.Box(0, 1, (4, 84, 84), np.uint8))
    assert not is_image_space(gym.spaces.Box(0, 255, (84, 84), np.uint8))


def test_nature_cnn_equals_sb3s_with_the_same_weights() -> None:
    torch_layers = pytest.importorskip("stable_baselines3.common.torch_layers")
    preprocessing = pytest.importorskip("stable_baselines3.common.preprocessing")
    params = nature_cnn_init(random.key(0), IMAGES.shape)
    theirs = torch_layers.NatureCNN(IMAGES, features_dim=FEATURES_DIM)
    names = {"cnn.0": "conv0", "cnn.2": "conv1", "cnn.4": "conv2", "linear.0": "linear"}
    theirs.load_state_dict(
        {k: params[f"{names[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}"] for k in theirs.state_dict()}
    )
    obs = _frames(3)
    expected = theirs(preprocessing.preprocess_obs(obs, IMAGES))
    torch.testing.assert_close(nature_cnn_apply(params, obs), expected, rtol=1e-5, atol=1e-5)
    # Channels-last images are the same pictures.
    torch.testing.assert_close(nature_cnn_apply(params, obs.permute(0, 2, 3, 1)), expected, rtol=1e-5, atol=1e-5)
    assert tree.map(lambda x: tuple(x.shape), params) == nature_cnn_shapes(IMAGES.shape)


def test_policies_on_images_are_cnn_policies_and_vmap_over_seeds() -> None:
    acts = gym.spaces.Discrete(6)
    keys = torch.stack([random.key(0), random.key(1)])
    params = torch.func.vmap(lambda k: actor_critic.init(k, IMAGES, acts, ()))(keys)
    expected = param_shapes("actor_critic", IMAGES, acts, {"pi": [], "vf": []})
    assert tree.map(lambda x: tuple(x.shape[1:]), params) == expected
    obs = _frames(5)
    values = torch.func.vmap(lambda p: actor_critic.forward(p, obs)[1])(params)
    assert values.shape == (2, 5) and not torch.equal(values[0], values[1])
    bc_params = mlp.init(random.key(0), IMAGES, acts, (32,))
    assert bc_params["cnn"].keys() == params["cnn"].keys() and mlp.distribution(bc_params, obs).logits.shape == (5, 6)
    # MLP policies keep the parameters they always had (the CNN's key is folded in, not split off).
    box = gym.spaces.Box(-1, 1, (4,))
    assert "cnn" not in actor_critic.init(random.key(0), box, acts)


def test_cnn_policy_files_round_trip(tmp_path: Path) -> None:
    params = actor_critic.init(random.key(3), IMAGES, gym.spaces.Discrete(6), (64,))
    save_policy(tmp_path / "p", "actor_critic", params, (IMAGES, gym.spaces.Discrete(6)), {"activation": "tanh"})
    loaded = load_policy(tmp_path / "p")
    assert tree.allclose(loaded.params, params, rtol=0, atol=0)
    obs = _frames(4)
    expected = actor_critic.act(params, obs, random.key(0), deterministic=True)
    torch.testing.assert_close(loaded.act(obs, random.key(0)), expected)


def test_adversarial_and_preference_reward_nets_on_images_are_cnns() -> None:
    task = Task(spaces=(IMAGES, gym.spaces.Discrete(6)))
    gen = ppo.Config(n_envs=1, n_steps=8, batch_size=8)
    net = gail.reward_net(gail.Config(gen=gen), task)
    assert isinstance(net, CnnRewardNet) and net.hwc_format is False and net.in_channels == 4
    shaped = airl.reward_net(airl.Config(gen=gen), task)
    assert isinstance(shaped.base, CnnRewardNet)
    params = net.init(random.key(0))
    obs = _frames(2)
    rewards = net.apply(params, obs, torch.tensor([0, 5]), obs, torch.tensor([False, True]))
    assert rewards.shape == (2,)


# ---------------------------------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------------------------------


def test_atari_ids_get_sb3s_preprocessing() -> None:
    for env_id in (PONG, "PongNoFrameskip-v4", "ale_py:ALE/Pong-v5"):
        env = envs.make(env_id, n_envs=2)
        assert isinstance(env, envs.GymEnv)
        assert env.observation_space == IMAGES and env.action_space == gym.spaces.Discrete(6), env_id
        first = env.reset(random.key(0))
        again = env.reset(random.key(0))
        assert first.obs.dtype == torch.uint8 and first.obs.shape == (2, 4, 84, 84)
        assert torch.equal(first.obs, again.obs)  # the same key: the same no-op starts
        env.close()


def test_an_atari_id_without_ale_py_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from imitation_fn.envs import atari

    monkeypatch.setattr(atari, "_register_ale", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'imitation-fn\[atari\]'"):
        atari.is_atari("ALE/NotAGame-v5")


# ---------------------------------------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------------------------------------

TINY_PPO = ["--n-envs", "2", "--n-steps", "32", "--batch-size", "64", "--n-epochs", "1"]


def _cli(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    proc = subprocess.run(["imitation-fn", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in output, f"imitation-fn {' '.join(args)}\n{output[-3000:]}"
    return output


def _returns(output: str) -> list[float]:
    return [float(x) for x in re.findall(r"│\s*\d+\s*│\s*(-?[\d.]+)\s*│", output)]


def test_pong_through_train_rl_rollouts_bc_and_gail(tmp_path: Path) -> None:
    quiet = ["--n-eval-episodes", "1", "--no-progress"]
    out = _cli(["train-rl", "--env", PONG, "--total-steps", "64", *TINY_PPO, "--out", "ppo", *quiet], tmp_path)
    assert all(-21 <= r <= 21 for r in _returns(out)) and _returns(out)
    policy = tmp_path / "ppo" / "policies" / "seed_0"
    assert load_policy(policy).params["cnn"]["conv0.weight"].shape == (32, 4, 8, 8)
    _cli(["rollouts", "--policy", str(policy), "--env", PONG, "--episodes", "1", "--out", "demos"], tmp_path)
    _cli(["bc", "--env", PONG, "--demos", "demos", "--n-epochs", "1", "--out", "bc", *quiet], tmp_path)
    _cli(
        [
            *["gail", "--env", PONG, "--demos", "demos", "--no-preset", "--total-timesteps", "64", *TINY_PPO],
            *["--demo-batch-size", "64", "--allow-variable-horizon", "true", "--init-policy", str(policy), *quiet],
        ],
        tmp_path,
    )
    assert (tmp_path / "bc" / "policies" / "seed_0").is_dir()


def test_frames_are_saved_and_loaded_as_bytes(tmp_path: Path) -> None:
    from imitation_fn.data import serialize
    from imitation_fn.data.types import Trajectory

    traj = Trajectory(obs=_frames(3), acts=torch.tensor([0, 5]), terminal=True)
    serialize.save(tmp_path / "demos", [traj])
    (loaded,) = serialize.load(tmp_path / "demos")
    assert loaded.obs.dtype == torch.uint8 and torch.equal(loaded.obs, traj.obs)  # not int64: 8x the memory
