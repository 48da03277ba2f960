"""Tests for imitation_fn.video: episodes drawn through gymnasium's renderers and written as GIF/MP4."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn import video
from imitation_fn.core import random
from imitation_fn.envs.acrobot import Acrobot
from imitation_fn.envs.cartpole import CartPole, FixedHorizonCartPole
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.mountain_car import MountainCar, MountainCarContinuous
from imitation_fn.envs.pendulum import Pendulum
from imitation_fn.envs.tabular import CliffWorld

pytest.importorskip("pygame", reason="classic-control rendering needs pygame (the 'video' extra)")
pytest.importorskip("imageio", reason="writing videos needs imageio (the 'video' extra)")
Image = pytest.importorskip("PIL.Image")  # comes with imageio


def _gif_frames_and_duration(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        total = 0
        for i in range(im.n_frames):
            im.seek(i)
            total += im.info["duration"]
        return im.n_frames, total


def _distinct_runs(frames: list[np.ndarray]) -> int:
    return 1 + sum(bool((a != b).any()) for a, b in itertools.pairwise(frames))


def test_gif_of_a_torch_cartpole_episode(tmp_path: Path) -> None:
    # The expert never drops the pole, so the episode is exactly the 12-step time limit: 13 frames.
    env = CartPole(n_envs=1, max_episode_steps=12)
    (path,) = video.record_episodes(env, cartpole_expert, random.key(0), 1, tmp_path)
    assert path == tmp_path / "CartPole-episode-0.gif"
    frames = video.render_episodes(env, cartpole_expert, random.key(0), 1)[0]
    assert len(frames) == 13 and frames[0].shape == (400, 600, 3) and frames[0].dtype == np.uint8
    # Pillow keeps one frame per run of identical frames, shown for the run's time: 13 frames at 50 fps.
    n_frames, duration_ms = _gif_frames_and_duration(path)
    assert n_frames == _distinct_runs(frames)
    assert duration_ms == 13 * 20


def test_frames_show_a_cart_and_a_pole() -> None:
    random_policy = _policy_for(gym.spaces.Discrete(2))
    frames = video.render_episodes("CartPole-v1", random_policy, random.key(1), 1)[0]
    assert 9 <= len(frames) < 100  # a random policy drops the pole quickly
    frame = frames[0]
    black = (frame.sum(-1) == 0).sum()  # the cart (and the track line)
    pole = np.all(frame == (202, 152, 101), axis=-1).sum()  # gymnasium's pole colour
    assert black > 1000 and pole > 500


def test_episodes_are_shared_out_over_sub_environments() -> None:
    episodes = video.render_episodes(
        FixedHorizonCartPole(n_envs=2, max_episode_steps=5), cartpole_expert, random.key(2), 3
    )
    assert [len(e) for e in episodes] == [6, 6, 6]
    assert not np.array_equal(episodes[0][0], episodes[2][0])  # different sub-environments start apart


def test_gym_env_route_and_mp4(tmp_path: Path) -> None:
    with GymEnv("CartPole-v1", max_episode_steps=9) as env:
        frames = video.render_episodes(env, cartpole_expert, random.key(0), 2)
        assert [len(f) for f in frames] == [10, 10]
        if not _has("imageio_ffmpeg"):
            with pytest.raises(ImportError, match="imageio-ffmpeg"):
                video.record_episodes(env, cartpole_expert, random.key(0), 1, tmp_path, "mp4")
            return
        (path,) = video.record_episodes(env, cartpole_expert, random.key(0), 1, tmp_path, "mp4")
    import imageio.v2 as imageio

    assert len(imageio.mimread(path)) == 10
    assert imageio.get_reader(path).get_meta_data()["fps"] == 50.0


def test_gymnasium_env_instance_needs_rgb_array() -> None:
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="rgb_array"):
        video.render_episodes(env, cartpole_expert, random.key(0), 1)
    env = gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=3)
    assert [len(f) for f in video.render_episodes(env, cartpole_expert, random.key(0), 1)] == [4]


def _policy_for(space: gym.Space[Any]) -> Any:
    def act(obs: torch.Tensor, key: random.Key) -> torch.Tensor:
        if isinstance(space, gym.spaces.Discrete):
            return random.randint(key, (obs.shape[0],), 0, int(space.n))
        return random.uniform(key, (obs.shape[0], *(space.shape or ())), minval=-2.0, maxval=2.0)

    return act


@pytest.mark.parametrize(
    ("env_cls", "gym_id"),
    [
        (CartPole, "CartPole-v1"),
        (Pendulum, "Pendulum-v1"),
        (MountainCar, "MountainCar-v0"),
        (MountainCarContinuous, "MountainCarContinuous-v0"),
        (Acrobot, "Acrobot-v1"),
    ],
)
def test_observations_map_back_to_the_state_gymnasium_draws(env_cls: type, gym_id: str) -> None:
    # Step gymnasium itself; drawing its observations through the torch env's renderer gives its own frames.
    renderer = video.renderer_for(env_cls(n_envs=1))
    assert renderer.gym_id == gym_id
    reference = gym.make(gym_id, render_mode="rgb_array")
    canvas = gym.make(gym_id, render_mode="rgb_array")
    obs, _ = reference.reset(seed=0)
    canvas.reset(seed=1)
    act = _policy_for(reference.action_space)
    action = None
    for t in range(5):
        renderer.set_state(canvas.unwrapped, np.asarray(obs, np.float32), action)
        np.testing.assert_array_equal(canvas.render(), reference.render(), err_msg=f"frame {t}")
        action = act(torch.as_tensor(obs)[None], random.key(t))[0].numpy()
        obs, *_ = reference.step(action.item() if action.ndim == 0 else action)
    reference.close()
    canvas.close()


def test_torch_env_without_renderer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No renderer for the torch environment CliffWorld"):
        video.record_episodes(CliffWorld(n_envs=1), cartpole_expert, random.key(0), 1, tmp_path)
    with pytest.raises(ValueError, match="fmt"):
        video.record_episodes("CartPole-v1", cartpole_expert, random.key(0), 1, tmp_path, "avi")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported format"):
        video.write_video([np.zeros((4, 4, 3), np.uint8)], tmp_path / "x.webm")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
