"""Any gymnasium environment behind the :class:`~imitation_fn.envs.base.Env` interface, stepped on the host.

:class:`GymEnv` runs ``n_envs`` copies of a gymnasium environment (an id or a user's factory) in
gymnasium's vector API and converts between tensors and numpy at the boundary, so the rollout code
written for the torch environments (``imitation_fn.data.rollout``) runs unchanged on MuJoCo, Atari
or a user's own environment::

    env = GymEnv("HalfCheetah-v5", n_envs=8)
    ts = env.reset(random.key(0))
    ts = env.step(ts.env_state, actions, random.key(1))  # actions: (8, 6) float32

Unlike the torch environments it is **not pure**: the simulator state lives in the gymnasium
objects, ``env_state`` is only a handle to it, and the calls cannot run inside ``torch.func.vmap``,
``grad`` or ``torch.compile`` (they raise). For a sweep over seeds, step one ``GymEnv`` per seed (or
one with ``seeds * n_envs`` sub-environments) and stack the batches before the vmapped ``update``.

Semantics match :class:`~imitation_fn.envs.base.TimeStep`: gymnasium's ``AutoresetMode.SAME_STEP``,
so a step that ends an episode returns the next episode's first observation in ``obs`` and the
observation the step reached in ``final_obs``.

Observations become tensors: float ``Box`` -> float32, ``uint8`` ``Box`` (images) -> uint8 with the
layout gymnasium gives (e.g. ``(H, W, C)``), ``Discrete`` / ``MultiDiscrete`` / ``MultiBinary`` /
integer ``Box`` -> int64.

``Dict`` and ``Tuple`` observations are supported by flattening them at this boundary with
``gymnasium.spaces.flatten`` into one vector, so policies and reward nets are MLPs on it: entries in
the space's key order (sorted for a ``Dict`` built from a plain dict), ``Box`` entries raveled,
``Discrete`` / ``MultiDiscrete`` one-hot encoded, everything cast to the common dtype (float32 as
soon as one entry is float). That is what SB3's ``MultiInputPolicy`` (``CombinedExtractor``) computes
for entries that are not images, so the weights are the same. Keys and shapes are dropped here;
``env.unflattened_observation_space`` keeps the space, ``gymnasium.spaces.unflatten`` recovers an
observation, and ``imitation_fn.data.serialize.save(..., observation_space=...)`` writes datasets
with the observations keyed again (one field per key). Only image entries (``uint8`` ``Box`` of rank 3)
warn: flattened, no CNN sees them. Entries with no fixed-size vector form (``Sequence``, ``Graph``) are refused by
``envs.base.require_supported``.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.core.random import Key
from imitation_fn.envs.base import Env, TimeStep

EnvFactory = Callable[[], gym.Env[Any, Any]]
Wrapper = Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]

ROLLOUT_INFO_KEY = "rollout"  # the info key RolloutInfoWrapper writes at episode end (as in ``imitation``)
_COMPOSITE = (gym.spaces.Dict, gym.spaces.Tuple)


class GymEnvState(struct.PyTreeNode):
    """A handle to a :class:`GymEnv`'s live sub-environments after one ``reset`` or ``step``.

    Only the latest handle can be stepped: gymnasium environments cannot be copied or rewound.
    """

    elapsed: Tensor  # (n_envs,) int64: steps taken in each sub-environment's current episode
    clock: int = struct.field(static=True)  # which reset/step of the env produced this handle
    # Per sub-environment, the info dict of the reset or step that produced this handle; where a step
    # ended an episode, the info of that last step (gymnasium's ``final_info``), not the next reset's.
    infos: tuple[dict[str, Any], ...] = struct.field(static=True, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class RawEpisode:
    """One episode's observations and rewards as the unwrapped environment produced them."""

    obs: np.ndarray  # (T + 1, *raw_obs_shape); Dict/Tuple observations flattened
    rews: np.ndarray  # (T,) float64


class RolloutInfoWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """Records the raw observations and rewards of each episode; puts them in the last step's info.

    Applied innermost (before any user wrapper), it sees what the environment itself returns, so
    demonstrations keep the original observations and rewards even when wrappers rescale rewards or
    preprocess observations. When a step ends the episode, ``info["rollout"]`` is a
    :class:`RawEpisode`. It is an object, not a dict of arrays as in ``imitation``, because
    gymnasium's vector env would stack arrays of different episode lengths into one array.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self._obs: list[np.ndarray] = []
        self._rews: list[float] = []

    def _record(self, obs: Any) -> np.ndarray:
        space = self.env.observation_space
        return np.asarray(gym.spaces.flatten(space, obs) if isinstance(space, _COMPOSITE) else obs).copy()

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs, self._rews = [self._record(obs)], []
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, rew, terminated, truncated, info = self.env.step(action)
        self._obs.append(self._record(obs))
        self._rews.append(float(rew))
        if terminated or truncated:
            if ROLLOUT_INFO_KEY in info:
                raise KeyError(f"RolloutInfoWrapper: the environment's info already has a {ROLLOUT_INFO_KEY!r} key")
            info = {**info, ROLLOUT_INFO_KEY: RawEpisode(np.stack(self._obs), np.asarray(self._rews))}
        return obs, rew, terminated, truncated, info


class GymEnv(Env):
    """``n_envs`` copies of a gymnasium environment in a vector env, with the torch ``Env`` interface.

    Host-side and stateful: not vmappable, not compilable (see the module docstring). The same
    ``reset`` key gives the same episodes for the same actions: integer seeds for the sub-environments
    are drawn from the key, and their own generators (seeded there) drive every later auto-reset;
    ``step``'s key is unused.

    Args:
        env: a gymnasium id (``"CartPole-v1"``, ``"ale_py:ALE/Pong-v5"``) or a factory returning a new
            ``gymnasium.Env``.
        n_envs: number of sub-environments.
        max_episode_steps: time limit; ``None`` keeps the registered one (a factory's env gets a
            ``TimeLimit`` only when this is given).
        wrappers: applied to each sub-environment in order, outside :class:`RolloutInfoWrapper`.
        vectorization: ``"sync"`` (one process) or ``"async"`` (one subprocess per sub-environment).
        rollout_info: wrap each sub-environment in :class:`RolloutInfoWrapper` (innermost), so
            ``imitation_fn.data.gym_rollout`` can record raw observations and rewards.
        device: where observation, reward and done tensors are put.
        make_kwargs: extra keyword arguments for ``gymnasium.make``.

    Actions: ``(n_envs, *action_space.shape)``, converted to numpy in the space's dtype (not clipped).
    """

    def __init__(
        self,
        env: str | EnvFactory,
        n_envs: int = 1,
        *,
        max_episode_steps: int | None = None,
        wrappers: Sequence[Wrapper] = (),
        vectorization: Literal["sync", "async"] = "sync",
        rollout_info: bool = True,
        device: torch.device | str = "cpu",
        make_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"GymEnv: n_envs must be >= 1, got {n_envs}")
        if vectorization not in ("sync", "async"):
            raise ValueError(f"GymEnv: vectorization must be 'sync' or 'async', got {vectorization!r}")
        self.env_id = env if isinstance(env, str) else getattr(env, "__name__", repr(env))
        self.n_envs = n_envs
        self.vectorization = vectorization
        self.wrappers = tuple(wrappers)
        self.rollout_info = rollout_info
        self.device = torch.device(device)
        make_one = _SubEnvFactory(env, max_episode_steps, self.wrappers, rollout_info, dict(make_kwargs or {}))
        self._make_one = make_one

        # Build the first sub-environment here to read its spaces and time limit (also for "async").
        first = make_one.build()
        self.unflattened_observation_space: gym.Space[Any] = first.observation_space
        self.max_episode_steps = max_episode_steps if max_episode_steps is not None else _time_limit(first)
        images = _image_entries(self.unflattened_observation_space)
        if images:
            warnings.warn(
                f"GymEnv({self.env_id!r}): the image entries {images} of its observations are flattened with the "
                "rest into one vector (gymnasium.spaces.flatten), so an MLP sees their raw pixels and no CNN sees "
                "them (SB3's MultiInputPolicy would put a NatureCNN on each)",
                stacklevel=2,
            )
        env_fns = [make_one.flatten] * n_envs
        mode = AutoresetMode.SAME_STEP  # TimeStep semantics: obs starts the next episode, final_obs ends this one
        if vectorization == "sync":
            first_flat = make_one.flatten_env(first)
            env_fns = [lambda: first_flat, *env_fns[1:]]
            self.vector_env: SyncVectorEnv | AsyncVectorEnv = SyncVectorEnv(env_fns, autoreset_mode=mode)
        else:
            first.close()
            self.vector_env = AsyncVectorEnv(env_fns, autoreset_mode=mode)
        self.observation_space = _tensor_space(self.vector_env.single_observation_space)
        self.action_space = self.vector_env.single_action_space
        if not isinstance(
            self.action_space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary
        ):
            self.vector_env.close()
            raise NotImplementedError(
                f"GymEnv: action space {self.action_space} is not supported (Box/Discrete/Multi*)"
            )
        self._clock = -1  # bumped by every reset/step; only the latest env_state may be stepped

    host = True

    def __repr__(self) -> str:
        return f"GymEnv({self.env_id!r}, n_envs={self.n_envs}, max_episode_steps={self.max_episode_steps})"

    def resized(self, n_envs: int, vectorization: Literal["sync", "async"] | None = None) -> GymEnv:
        """A new ``GymEnv`` of the same environment (id or factory, time limit, wrappers) with ``n_envs`` copies."""
        one = self._make_one
        return GymEnv(
            one.env,
            n_envs,
            max_episode_steps=one.max_episode_steps,
            wrappers=one.wrappers,
            vectorization=vectorization or self.vectorization,
            rollout_info=one.rollout_info,
            device=self.device,
            make_kwargs=one.make_kwargs,
        )

    def to(self, device: torch.device | str) -> GymEnv:
        """This environment with its observation, reward and done tensors put on ``device``: a shallow copy
        that shares the sub-environments (``self`` when ``device`` is already its device)."""
        device = torch.device(device)
        if device == self.device:
            return self
        env = copy.copy(self)
        env.device = device
        return env

    def close(self) -> None:
        """Close the sub-environments (and their processes for ``"async"``)."""
        self.vector_env.close()

    def __enter__(self) -> GymEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, key: Key) -> TimeStep:
        """Reset every sub-environment with seeds drawn from ``key``; ``reward`` is 0 and nothing is done."""
        _check_host("reset", key)
        return self.reset_seeds(random.bits(key, self.n_envs).tolist())

    def reset_seeds(self, seeds: Sequence[int]) -> TimeStep:
        """Reset sub-environment ``i`` with the integer seed ``seeds[i]`` (what :meth:`reset` draws from its key)."""
        if len(seeds) != self.n_envs:
            raise ValueError(f"GymEnv.reset_seeds: {len(seeds)} seeds for {self.n_envs} sub-environments")
        obs, info = self.vector_env.reset(seed=[int(s) for s in seeds])
        obs_t = self._obs_tensor(obs)
        zeros = torch.zeros(self.n_envs, dtype=torch.bool, device=self.device)
        state = self._advance(
            torch.zeros(self.n_envs, dtype=torch.int64, device=self.device), _split_info(info, self.n_envs)
        )
        return TimeStep(state, obs_t, torch.zeros(self.n_envs, device=self.device), zeros, zeros, obs_t)

    def step(self, env_state: GymEnvState, action: Tensor, key: Key) -> TimeStep:
        """Step every sub-environment with ``action: (n_envs, *action_shape)``; ``key`` is unused."""
        _check_host("step", action)
        self._check_latest("step", env_state)
        obs, rew, terminated, truncated, info = self.vector_env.step(self._np_action(action))
        done = np.logical_or(terminated, truncated)
        final_obs = np.array(obs, copy=True)
        infos = _split_info(info, self.n_envs)
        if done.any():  # SAME_STEP: the observation and info the step reached sit in the info dict
            final_infos = _split_info(info["final_info"], self.n_envs)
            for i in np.flatnonzero(done):
                final_obs[i], infos[i] = info["final_obs"][i], final_infos[i]
        done_t = torch.as_tensor(done, device=self.device)
        elapsed = torch.where(done_t, 0, env_state.elapsed + 1)
        return TimeStep(
            env_state=self._advance(elapsed, infos),
            obs=self._obs_tensor(obs),
            reward=torch.as_tensor(np.asarray(rew, dtype=np.float32), device=self.device),
            terminated=torch.as_tensor(np.asarray(terminated, dtype=bool), device=self.device),
            truncated=torch.as_tensor(np.asarray(truncated, dtype=bool), device=self.device),
            final_obs=self._obs_tensor(final_obs),
        )

    def reset_where(self, env_state: GymEnvState, where: Tensor) -> TimeStep:
        """Restart the sub-environments where ``where`` (``(n_envs,)`` bool) holds; the others keep their episode.

        The restarted ones continue their own generators (no new seed). ``obs`` is every sub-environment's
        observation to act on; ``reward`` is 0 and nothing is done.
        """
        self._check_latest("reset_where", env_state)
        obs, info = self.vector_env.reset(options={"reset_mask": where.cpu().numpy().astype(bool)})
        obs_t = self._obs_tensor(obs)
        zeros = torch.zeros(self.n_envs, dtype=torch.bool, device=self.device)
        elapsed = torch.where(where.to(self.device), 0, env_state.elapsed)
        infos = [
            new if w else old
            for new, old, w in zip(_split_info(info, self.n_envs), env_state.infos, where.tolist(), strict=True)
        ]
        return TimeStep(
            self._advance(elapsed, infos), obs_t, torch.zeros(self.n_envs, device=self.device), zeros, zeros, obs_t
        )

    def _check_latest(self, name: str, env_state: Any) -> None:
        if not isinstance(env_state, GymEnvState) or env_state.clock != self._clock:
            raise RuntimeError(
                f"GymEnv.{name}: env_state is not this env's latest state. A GymEnv steps live gymnasium "
                "environments that cannot be copied or rewound: pass the env_state of the last reset/step."
            )

    def _advance(self, elapsed: Tensor, infos: list[dict[str, Any]]) -> GymEnvState:
        self._clock += 1
        return GymEnvState(elapsed=elapsed, clock=self._clock, infos=tuple(infos))

    def _obs_tensor(self, obs: Any) -> Tensor:
        return obs_to_tensor(np.asarray(obs), self.device)

    def _np_action(self, action: Tensor) -> np.ndarray:
        space = self.action_space
        expected = (self.n_envs, *(space.shape or ()))
        if tuple(action.shape) != expected:
            raise ValueError(f"GymEnv.step: action has shape {tuple(action.shape)}, expected {expected} for {space}")
        return np.asarray(action.detach().cpu().numpy(), dtype=space.dtype)


def make_gym(env_id: str | EnvFactory, n_envs: int = 1, **kwargs: Any) -> GymEnv:
    """``GymEnv(env_id, n_envs, **kwargs)``: the host-side counterpart of ``imitation_fn.envs.make``."""
    return GymEnv(env_id, n_envs, **kwargs)


def obs_to_tensor(obs: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """A numpy observation batch as a tensor: floats -> float32, uint8 and bool kept, other integers -> int64."""
    return torch.as_tensor(np.asarray(obs, dtype=_tensor_dtype(obs.dtype)), device=device).clone()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _SubEnvFactory:
    """Builds one sub-environment: make (or call the factory), time limit, RolloutInfoWrapper, user wrappers."""

    env: str | EnvFactory
    max_episode_steps: int | None
    wrappers: tuple[Wrapper, ...]
    rollout_info: bool
    make_kwargs: dict[str, Any]

    def build(self) -> gym.Env[Any, Any]:
        if isinstance(self.env, str):
            env = gym.make(self.env, max_episode_steps=self.max_episode_steps, **self.make_kwargs)
        else:
            env = self.env()
            if self.max_episode_steps is not None:
                env = gym.wrappers.TimeLimit(env, self.max_episode_steps)
        if self.rollout_info:
            env = RolloutInfoWrapper(env)
        for wrap in self.wrappers:
            env = wrap(env)
        return env

    def flatten_env(self, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        space = env.observation_space
        if isinstance(space, _COMPOSITE):
            env = gym.wrappers.FlattenObservation(env)
        elif not isinstance(
            space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary
        ):
            raise NotImplementedError(
                f"GymEnv: observation space {space} has no fixed-shape tensor form "
                "(supported: Box, Discrete, MultiDiscrete, MultiBinary, and Dict/Tuple of those, flattened)"
            )
        return env

    def flatten(self) -> gym.Env[Any, Any]:
        return self.flatten_env(self.build())


def _image_entries(space: gym.Space[Any], prefix: str = "") -> list[str]:
    """The paths (``"camera"``, ``"0/frame"``) of the image entries (``uint8`` ``Box`` of rank 3) in a Dict/Tuple."""
    if isinstance(space, gym.spaces.Dict):
        items: list[tuple[str, gym.Space[Any]]] = [(str(k), s) for k, s in space.spaces.items()]
    elif isinstance(space, gym.spaces.Tuple):
        items = [(str(i), s) for i, s in enumerate(space.spaces)]
    else:
        return []
    found = []
    for name, sub in items:
        path = f"{prefix}{name}"
        if isinstance(sub, gym.spaces.Box) and sub.dtype == np.uint8 and len(sub.shape) == 3:
            found.append(path)
        found += _image_entries(sub, f"{path}/")
    return found


def _time_limit(env: gym.Env[Any, Any]) -> int | None:
    """The ``max_episode_steps`` of the innermost ``TimeLimit`` found, or of the env's spec."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return env.spec.max_episode_steps if env.spec is not None else None


def _tensor_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    if np.issubdtype(dtype, np.floating):
        return np.dtype(np.float32)
    if dtype in (np.uint8, np.bool_):
        return dtype
    if np.issubdtype(dtype, np.integer):
        return np.dtype(np.int64)
    raise TypeError(f"GymEnv: observations of dtype {dtype} have no tensor form")


def _tensor_space(space: gym.Space[Any]) -> gym.Space[Any]:
    """The single-env space, retyped as the tensors GymEnv returns (float Box -> float32)."""
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating) and space.dtype != np.float32:
        return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
    return space


def _split_info(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's batched info dict (values with ``_key`` masks, nested dicts) as one dict per sub-env."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for k, v in info.items():
        if k.startswith("_") and k[1:] in info:
            continue  # a mask
        if k in ("final_obs", "final_info"):
            continue  # SAME_STEP bookkeeping, unpacked by GymEnv.step
        mask = info.get(f"_{k}", np.ones(n, dtype=bool))
        parts = _split_info(v, n) if isinstance(v, dict) else v
        for i in np.flatnonzero(mask):
            out[i][k] = parts[i]
    return out


def _check_host(name: str, x: Tensor) -> None:
    inside = torch._C._functorch.peek_interpreter_stack() is not None or torch.compiler.is_compiling()
    if inside or torch._C._functorch.is_functorch_wrapped_tensor(x):
        raise RuntimeError(
            f"GymEnv.{name} was called inside torch.func.vmap/grad or torch.compile. A GymEnv steps gymnasium "
            "environments on the host and cannot be transformed; collect outside the transform (one GymEnv per "
            "seed, or seeds * n_envs sub-environments) and vmap only the update."
        )


__all__ = ["ROLLOUT_INFO_KEY", "GymEnv", "GymEnvState", "RawEpisode", "RolloutInfoWrapper", "make_gym", "obs_to_tensor"]
