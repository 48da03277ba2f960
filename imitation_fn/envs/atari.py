"""Atari through the Arcade Learning Environment (``pip install imitation-fn[atari]``), preprocessed as SB3 does.

    env = envs.make("ALE/Pong-v5", n_envs=8)      # or "PongNoFrameskip-v4", "ale_py:ALE/Breakout-v5"
    env.observation_space                          # Box(0, 255, (4, 84, 84), uint8): 4 stacked 84x84 grey frames

Each copy is gymnasium's ``AtariPreprocessing`` (up to 30 no-ops at reset, 4 frames per step with the max of
the last two, 84×84 greyscale) and ``FrameStackObservation`` of the last 4 frames: SB3's ``make_atari_env``
+ ``VecFrameStack(4)`` as its ``CnnPolicy`` sees them (channels first, as after SB3's ``VecTransposeImage``),
and so what ``imitation``'s Atari examples train on. Two differences from SB3's ``AtariWrapper``, both so
that returns are the game's own score over whole games: rewards are not clipped to their sign, and losing a
life does not end the episode. ``ALE/*-v5`` ids keep their sticky actions (repeat probability 0.25) and
skip frames here instead of inside the emulator. Policies on these images get a NatureCNN
(:mod:`imitation_fn.nn.cnn`); demonstrations record the preprocessed frames.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from imitation_fn.envs.gym import GymEnv

ENTRY_POINT = "ale_py.env:AtariEnv"
FRAME_STACK = 4


def _register_ale() -> bool:
    """Register ale-py's ids with gymnasium; False when ale-py is not installed."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    return True


def _bare_id(env_id: str) -> str:
    module, _, name = env_id.rpartition(":")
    return name if module == "ale_py" else env_id


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is one of ale-py's Atari games (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ``ale_py:...``)."""
    name = _bare_id(env_id)
    looks_atari = name.startswith("ALE/") or name.endswith(("-v4", "-v5")) or name != env_id
    if not looks_atari:
        return False
    if name not in gym.registry and not _register_ale():
        if name.startswith("ALE/") or name != env_id:
            raise ValueError(f"{env_id!r} is an Atari game: pip install 'imitation-fn[atari]' (ale-py) to play it")
        return False
    return name in gym.registry and gym.spec(name).entry_point == ENTRY_POINT


class AtariFactory:
    """Makes one preprocessed copy of an Atari game (a picklable callable, for ``vectorization="async"``)."""

    def __init__(self, env_id: str) -> None:
        self.env_id = _bare_id(env_id)
        self.__name__ = self.env_id  # GymEnv names the env by its factory's name

    def __call__(self) -> gym.Env[Any, Any]:
        # AtariPreprocessing skips frames itself, so the emulator must not (ALE/*-v5 skip 4 by default).
        env = gym.make(self.env_id, frameskip=1)
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
        )
        return gym.wrappers.FrameStackObservation(env, FRAME_STACK)


def make(env_id: str, n_envs: int = 1, **kwargs: Any) -> GymEnv:
    """``n_envs`` preprocessed copies of the Atari game ``env_id`` (keywords: :class:`GymEnv`'s)."""
    return GymEnv(AtariFactory(env_id), n_envs, **kwargs)


__all__ = ["FRAME_STACK", "AtariFactory", "is_atari", "make"]
