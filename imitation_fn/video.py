"""Record a policy's episodes as GIF or MP4 videos (host-side).

Two routes to the frames, one interface (:func:`record_episodes`):

- **gymnasium environments** (a :class:`~imitation_fn.envs.gym.GymEnv`, an id the torch registry does
  not have, or a ``gymnasium.Env`` made with ``render_mode="rgb_array"``) are stepped one episode at a
  time and rendered with their own ``render()``.
- **torch environments** are stepped as they are, and each observation is copied into the matching
  gymnasium environment's state (``env.unwrapped.state``) so its renderer draws it. Renderers exist for
  CartPole, Pendulum, MountainCar(+Continuous) and Acrobot (and their fixed-horizon variants);
  :func:`register_renderer` adds more.

Optional dependencies (``pip install "imitation-fn[video]"``): ``pygame`` (through
``gymnasium[classic-control]``) to draw classic-control frames, ``imageio`` to write GIFs and
``imageio-ffmpeg`` to write MP4s. Headless machines need no display: ``rgb_array`` rendering draws
off-screen (SDL's dummy drivers are selected when no display is set).

    paths = record_episodes("CartPole-v1", cartpole_expert, random.key(0), n_episodes=2, out_dir="videos")
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from imitation_fn.core import random
from imitation_fn.core.random import Key
from imitation_fn.envs.acrobot import Acrobot
from imitation_fn.envs.base import Env, PolicyFn
from imitation_fn.envs.cartpole import CartPole
from imitation_fn.envs.gym import GymEnv, obs_to_tensor
from imitation_fn.envs.mountain_car import MountainCar, MountainCarContinuous
from imitation_fn.envs.pendulum import Pendulum
from imitation_fn.envs.registry import make

Frame = np.ndarray  # (H, W, 3) uint8
SetState = Callable[[Any, np.ndarray, np.ndarray | None], None]
"""``(unwrapped gymnasium env, obs (*obs_shape,), action or None) -> None``: make the env show ``obs``."""

_EXTRA = 'pip install "imitation-fn[video]"'


@dataclasses.dataclass(frozen=True)
class Renderer:
    """How to draw a torch environment: the gymnasium id whose renderer is used, and how to set its state."""

    gym_id: str
    set_state: SetState


_RENDERERS: dict[type[Env], Renderer] = {}


def register_renderer(env_cls: type[Env], gym_id: str, set_state: SetState, *, overwrite: bool = False) -> None:
    """Render torch environments of class ``env_cls`` (and subclasses) through gymnasium's ``gym_id``."""
    if env_cls in _RENDERERS and not overwrite:
        raise ValueError(f"A renderer for {env_cls.__name__} is already registered; pass overwrite=True to replace it")
    _RENDERERS[env_cls] = Renderer(gym_id, set_state)


def renderer_for(env: Env) -> Renderer:
    """The renderer of ``env``'s class or its nearest registered base class; ``ValueError`` if none."""
    for cls in type(env).__mro__:
        if cls in _RENDERERS:
            return _RENDERERS[cls]
    raise ValueError(
        f"No renderer for the torch environment {type(env).__name__}: it has no gymnasium counterpart to draw "
        f"it. Renderers exist for {', '.join(sorted(c.__name__ for c in _RENDERERS))}; add one with "
        "imitation_fn.video.register_renderer(EnvClass, gym_id, set_state), or record a GymEnv instead."
    )


# Observations map back to gymnasium's states: angles from their (cos, sin) pairs.
def _set_cartpole(env: Any, obs: np.ndarray, action: np.ndarray | None) -> None:
    env.state = obs.astype(np.float64)  # (x, x_dot, theta, theta_dot)


def _set_pendulum(env: Any, obs: np.ndarray, action: np.ndarray | None) -> None:
    cos, sin, thdot = obs.astype(np.float64)
    env.state = np.array([math.atan2(sin, cos), thdot])
    env.last_u = None if action is None else float(np.clip(action.reshape(-1)[0], -env.max_torque, env.max_torque))


def _set_mountain_car(env: Any, obs: np.ndarray, action: np.ndarray | None) -> None:
    env.state = obs.astype(np.float64)  # (position, velocity)


def _set_acrobot(env: Any, obs: np.ndarray, action: np.ndarray | None) -> None:
    c1, s1, c2, s2, d1, d2 = obs.astype(np.float64)
    env.state = np.array([math.atan2(s1, c1), math.atan2(s2, c2), d1, d2])


register_renderer(CartPole, "CartPole-v1", _set_cartpole)
register_renderer(Pendulum, "Pendulum-v1", _set_pendulum)
register_renderer(MountainCar, "MountainCar-v0", _set_mountain_car)
register_renderer(MountainCarContinuous, "MountainCarContinuous-v0", _set_mountain_car)
register_renderer(Acrobot, "Acrobot-v1", _set_acrobot)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def render_episodes(
    env: str | Env | gym.Env[Any, Any], policy_fn: PolicyFn, key: Key, n_episodes: int
) -> list[list[Frame]]:
    """Frames of ``n_episodes`` episodes of ``policy_fn``: for each, ``T + 1`` frames (the reset and every step).

    ``env``: an id (``envs.make(id, n_envs=1)``), a torch ``Env`` (its sub-environments' episodes are
    shared out as in :func:`~imitation_fn.evaluation_gym.evaluate_gym_policy`), a ``GymEnv`` (rebuilt
    from its id with ``render_mode="rgb_array"``), or a ``gymnasium.Env`` made with that render mode.
    ``policy_fn(obs (n, *obs_shape), key) -> actions (n, *act_shape)``, with ``n = 1`` for gymnasium envs.
    """
    return _render(env, policy_fn, key, n_episodes)[0]


def _render(
    env: str | Env | gym.Env[Any, Any], policy_fn: PolicyFn, key: Key, n_episodes: int
) -> tuple[list[list[Frame]], float]:
    """The episodes' frames and the frame rate of the renderer that drew them."""
    if n_episodes < 1:
        raise ValueError(f"render_episodes: n_episodes must be >= 1, got {n_episodes}")
    if isinstance(env, str):
        env = make(env, n_envs=1)
    if isinstance(env, GymEnv):
        with _renderable(env) as gym_env:
            return _gym_frames(gym_env, policy_fn, key, n_episodes), _fps(gym_env)
    if isinstance(env, gym.Env):
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"render_episodes: the gymnasium env must have render_mode='rgb_array', not {env.render_mode!r}"
            )
        return _gym_frames(env, policy_fn, key, n_episodes), _fps(env)
    renderer = renderer_for(env)
    canvas = _make_rgb(renderer.gym_id)
    try:
        return _torch_frames(env, renderer, canvas, policy_fn, key, n_episodes), _fps(canvas)
    finally:
        canvas.close()


def _fps(env: gym.Env[Any, Any]) -> float:
    fps = env.metadata.get("render_fps")
    return float(fps) if fps else 30.0


def _headless() -> None:
    # rgb_array rendering draws off-screen; without a display SDL's default drivers only print errors.
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def _make_rgb(gym_id: str, **kwargs: Any) -> gym.Env[Any, Any]:
    _headless()
    env = gym.make(gym_id, render_mode="rgb_array", **kwargs)
    if env.unwrapped.__module__.startswith("gymnasium.envs.classic_control") and not importlib.util.find_spec("pygame"):
        env.close()
        raise ImportError(f"Rendering {gym_id} needs pygame: {_EXTRA} (or pip install 'gymnasium[classic-control]')")
    return env


@contextlib.contextmanager
def _renderable(gym_env: GymEnv) -> Iterator[gym.Env[Any, Any]]:
    """A single gymnasium env with ``render_mode="rgb_array"`` built like ``gym_env``'s sub-environments."""
    if gym_env.env_id not in gym.registry and ":" not in gym_env.env_id:
        raise ValueError(
            f"render_episodes: cannot rebuild {gym_env!r} for rendering (it was made from a factory). Pass a "
            "gymnasium.Env created with render_mode='rgb_array' instead."
        )
    env = _make_rgb(gym_env.env_id, max_episode_steps=gym_env.max_episode_steps)
    try:
        for wrap in gym_env.wrappers:
            env = wrap(env)
        if isinstance(env.observation_space, gym.spaces.Dict | gym.spaces.Tuple):
            env = gym.wrappers.FlattenObservation(env)  # as GymEnv flattens them
        yield env
    finally:
        env.close()


def _to_numpy_action(action: torch.Tensor, space: gym.Space[Any]) -> Any:
    a = np.asarray(action.detach().cpu().numpy(), dtype=space.dtype)
    return a.item() if isinstance(space, gym.spaces.Discrete) else a


def _gym_frames(env: gym.Env[Any, Any], policy_fn: PolicyFn, key: Key, n_episodes: int) -> list[list[Frame]]:
    """Step one gymnasium env episode by episode; seeded once from ``key``, then by its own generator."""
    reset_key, act_key = random.split(key)
    episodes: list[list[Frame]] = []
    t = 0
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=int(random.bits(reset_key, 1)[0]) if episode == 0 else None)
        frames = [_frame(env.render())]
        done = False
        while not done:
            action = policy_fn(obs_to_tensor(np.asarray(obs)[None]), random.fold_in(act_key, t))
            obs, _, terminated, truncated, _ = env.step(_to_numpy_action(action[0], env.action_space))
            frames.append(_frame(env.render()))
            done, t = bool(terminated or truncated), t + 1
        episodes.append(frames)
    return episodes


def _torch_frames(
    env: Env, renderer: Renderer, canvas: gym.Env[Any, Any], policy_fn: PolicyFn, key: Key, n_episodes: int
) -> list[list[Frame]]:
    """Step a torch env; draw each sub-environment's observations until it has its share of episodes."""
    canvas.reset(seed=0)  # creates the attributes render() reads; the state is overwritten before each frame
    unwrapped = canvas.unwrapped

    def draw(obs: torch.Tensor, action: torch.Tensor | None) -> Frame:
        act = None if action is None else action.detach().cpu().numpy()
        renderer.set_state(unwrapped, obs.detach().cpu().numpy(), act)
        return _frame(canvas.render())

    n = env.n_envs
    targets = [(n_episodes + i) // n for i in range(n)]  # as evaluate_gym_policy: no bias to short episodes
    reset_key, act_key, step_key = random.split(key, 3)
    timestep = env.reset(reset_key)
    current = [[draw(timestep.obs[i], None)] if targets[i] else [] for i in range(n)]
    done_episodes: list[list[list[Frame]]] = [[] for _ in range(n)]
    t = 0
    while any(len(done_episodes[i]) < targets[i] for i in range(n)):
        action = policy_fn(timestep.obs, random.fold_in(act_key, t))
        timestep = env.step(timestep.env_state, action, random.fold_in(step_key, t))
        done = timestep.done.tolist()
        for i in range(n):
            if len(done_episodes[i]) == targets[i]:
                continue
            current[i].append(draw(timestep.final_obs[i], action[i]))  # the state reached, before auto-reset
            if done[i]:
                done_episodes[i].append(current[i])
                current[i] = [draw(timestep.obs[i], None)]
        t += 1
    return [episode for per_env in done_episodes for episode in per_env]


def _frame(image: Any) -> Frame:
    if image is None:
        raise RuntimeError("render() returned None: the environment must be created with render_mode='rgb_array'")
    return np.asarray(image, dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_video(frames: Sequence[Frame], path: str | Path, fps: float = 30.0) -> Path:
    """Write ``frames`` (each ``(H, W, 3)`` uint8) to ``path`` as a GIF or an MP4, chosen by the suffix.

    GIFs need ``imageio`` (with Pillow); MP4s also ``imageio-ffmpeg`` (H.264, frames padded to even sizes).
    GIF frame delays are whole centiseconds, and Pillow stores a run of identical consecutive frames as
    one frame shown for the run's total time, so a GIF can hold fewer frames than it was given.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("gif", "mp4"):
        raise ValueError(f"write_video: unsupported format {path.suffix!r}; use .gif or .mp4")
    if not frames:
        raise ValueError("write_video: no frames")
    if importlib.util.find_spec("imageio") is None:
        raise ImportError(f"Writing videos needs imageio: {_EXTRA} (or pip install imageio)")
    import imageio.v2 as imageio  # optional dependency

    path.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])
    if fmt == "gif":
        imageio.mimwrite(path, list(stack), format="GIF", duration=1000.0 / fps, loop=0)
    else:
        if importlib.util.find_spec("imageio_ffmpeg") is None:
            raise ImportError(f"Writing MP4 needs imageio-ffmpeg: {_EXTRA} (or pip install imageio-ffmpeg)")
        h, w = stack.shape[1:3]
        stack = np.pad(stack, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # yuv420p needs even sizes
        imageio.mimwrite(path, list(stack), format="FFMPEG", fps=fps, macro_block_size=1)
    return path


def record_episodes(
    env: str | Env | gym.Env[Any, Any],
    policy_fn: PolicyFn,
    key: Key,
    n_episodes: int,
    out_dir: str | Path,
    fmt: Literal["gif", "mp4"] = "gif",
    *,
    fps: float | None = None,
    name_prefix: str | None = None,
) -> list[Path]:
    """Record ``n_episodes`` episodes of ``policy_fn`` in ``env``, one video file each; their paths.

    Files are ``out_dir/{name_prefix}-episode-{i}.{fmt}``; ``name_prefix`` defaults to the env id
    (``/`` and ``:`` replaced). ``fps`` defaults to the gymnasium environment's ``render_fps``.
    See :func:`render_episodes` for the kinds of ``env``.
    """
    if fmt not in ("gif", "mp4"):
        raise ValueError(f"record_episodes: fmt must be 'gif' or 'mp4', got {fmt!r}")
    if importlib.util.find_spec("imageio") is None:  # fail before stepping any episode
        raise ImportError(f"Writing videos needs imageio: {_EXTRA} (or pip install imageio)")
    name = name_prefix or _env_name(env)
    env = make(env, n_envs=1) if isinstance(env, str) else env
    episodes, default_fps = _render(env, policy_fn, key, n_episodes)
    rate = fps if fps is not None else default_fps
    out = Path(out_dir)
    return [write_video(frames, out / f"{name}-episode-{i}.{fmt}", rate) for i, frames in enumerate(episodes)]


def _env_name(env: str | Env | gym.Env[Any, Any]) -> str:
    if isinstance(env, str):
        raw = env
    elif isinstance(env, GymEnv):
        raw = env.env_id
    elif isinstance(env, gym.Env):
        raw = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    else:
        raw = type(env).__name__
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)


__all__ = [
    "Frame",
    "Renderer",
    "SetState",
    "record_episodes",
    "register_renderer",
    "render_episodes",
    "renderer_for",
    "write_video",
]
