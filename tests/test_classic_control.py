"""The torch Pendulum, MountainCar(Continuous), Acrobot and seals/MountainCar against gymnasium, step by step."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control import acrobot as gym_acrobot
from gymnasium.wrappers import TimeLimit

from imitation_fn.core import random, tree
from imitation_fn.envs import acrobot, mountain_car, pendulum
from imitation_fn.envs.acrobot import Acrobot
from imitation_fn.envs.base import Env
from imitation_fn.envs.mountain_car import (
    FixedHorizonMountainCar,
    MountainCar,
    MountainCarContinuous,
)
from imitation_fn.envs.pendulum import Pendulum

ENVS: dict[str, Callable[..., Env]] = {
    "Pendulum-v1": Pendulum,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Acrobot-v1": Acrobot,
    "seals/MountainCar-v0": FixedHorizonMountainCar,
}

Policy = Callable[[np.random.Generator, np.ndarray], np.ndarray]  # (rng, obs (n, d)) -> actions


class SealsAbsorbAfterDone(gym.Wrapper):
    """seals' ``ObsCastWrapper(float32)`` + ``AbsorbAfterDoneWrapper`` (seals/util.py), transcribed."""

    def reset(self, **kwargs: Any) -> Any:
        self.absorb_obs: np.ndarray | None = None
        obs, info = self.env.reset(**kwargs)
        return obs.astype(np.float32), info

    def step(self, action: Any) -> Any:
        if self.absorb_obs is not None:
            return self.absorb_obs, 0.0, False, False, {}
        obs, rew, terminated, truncated, info = self.env.step(action)
        obs = obs.astype(np.float32)
        if terminated or truncated:
            self.absorb_obs = obs
        return obs, rew, False, False, info


def seals_mountain_car() -> gym.Env:
    """``gym.make("seals/MountainCar-v0")`` without seals: its wrappers around MountainCar-v0, then TimeLimit(200)."""
    return TimeLimit(SealsAbsorbAfterDone(gym.make("MountainCar-v0")), max_episode_steps=200)


# Policies that reach the goal (pumping energy into the swing) mixed with random actions.
def mountain_car_policy(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """Half the envs push along their velocity (80% of the time), half act at random."""
    n = len(obs)
    pump = np.where(obs[:, 1] > 0, 2, 0)
    follow = (np.arange(n) < n // 2) & (rng.random(n) < 0.8)
    return np.where(follow, pump, rng.integers(0, 3, n))


def continuous_mountain_car_policy(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """Like :func:`mountain_car_policy` with forces in [-1.5, 1.5], so the clipped branch runs too."""
    n = len(obs)
    pump = np.sign(obs[:, 1:]) * rng.uniform(0.5, 1.5, (n, 1))
    follow = (np.arange(n)[:, None] < n // 2) & (rng.random((n, 1)) < 0.8)
    return np.where(follow, pump, rng.uniform(-1.5, 1.5, (n, 1))).astype(np.float32)


def acrobot_policy(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """Half the envs torque along the second joint's velocity (80% of the time; reaches up in ~100 steps)."""
    n = len(obs)
    pump = np.where(obs[:, 5] > 0, 2, 0)
    follow = (np.arange(n) < n // 2) & (rng.random(n) < 0.8)
    return np.where(follow, pump, rng.integers(0, 3, n))


def pendulum_policy(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    return rng.uniform(-3.0, 3.0, (len(obs), 1)).astype(np.float32)  # beyond ±2: clipped


class SharedLibm:
    """Stands in for ``torch`` inside an env module, with gymnasium's elementary functions, element by element.

    gymnasium calls ``math.cos`` or numpy's scalar ``cos``/``sin``/``**2`` (which numpy may take from SVML:
    then ``x**2`` is not always ``x*x``); torch's vectorised float64 ``cos`` differs from them in the last bit
    of ~0.1% of inputs. With the same elementary functions on both sides, what remains to compare is the
    arithmetic itself (operation order, float32/float64 promotion), which must then agree bit for bit.
    """

    def __init__(self, cos: Callable[[Any], Any], sin: Callable[[Any], Any], square: Callable[[Any], Any]):
        self._cos, self._sin, self._square = cos, sin, square

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def _map(f: Callable[[Any], Any], x: torch.Tensor) -> torch.Tensor:
        values = x.numpy()  # numpy scalars of the tensor's dtype, as gymnasium holds them
        return torch.from_numpy(np.array([f(v) for v in values.flat], dtype=values.dtype).reshape(values.shape))

    def cos(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(self._cos, x)

    def sin(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(self._sin, x)

    def square(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(self._square, x)


NUMPY_SCALAR_LIBM = SharedLibm(np.cos, np.sin, lambda v: v**2)
MATH_LIBM = SharedLibm(math.cos, math.sin, lambda v: v * v)


def _lockstep(
    gym_envs: list[gym.Env], env: Env, policy: Policy, n_steps: int, seed: int = 0, exact: bool = True
) -> dict[str, int]:
    """Step gymnasium envs and the torch env side by side with the same actions and compare every transition.

    ``exact``: the torch physics is set from gymnasium's after each gymnasium reset only, and observations,
    rewards and float64 states must agree bit for bit (use with :class:`SharedLibm`). Otherwise (torch's own
    ``cos``) the physics is copied after every step, as last bits can grow over an episode (Acrobot is
    chaotic), and one step must agree to 1e-6 in the observation and reward and 1e-12 in the state.
    """
    rng = np.random.default_rng(seed)
    n = len(gym_envs)
    next_seed = iter(range(seed * 100_000, (seed + 1) * 100_000))
    obs = np.stack([g.reset(seed=next(next_seed))[0] for g in gym_envs])

    def gym_physics() -> torch.Tensor:
        states = [np.asarray(g.unwrapped.state, dtype=np.float64) for g in gym_envs]  # type: ignore[attr-defined]
        return torch.tensor(np.array(states))

    state = env.reset(random.key(seed)).env_state.replace(physics=gym_physics())
    counts = {"terminated": 0, "truncated": 0}
    keys = random.split(random.key(seed), n_steps)
    for i in range(n_steps):
        actions = policy(rng, obs)
        ts = env.step(state, torch.from_numpy(actions), keys[i])
        results = [g.step(a if a.ndim else int(a)) for g, a in zip(gym_envs, actions, strict=True)]
        g_obs = np.stack([r[0] for r in results])
        g_rew = np.array([r[1] for r in results], dtype=np.float32)
        g_term = np.array([r[2] for r in results])
        g_trunc = np.array([r[3] for r in results])

        np.testing.assert_allclose(ts.final_obs.numpy(), g_obs, rtol=0, atol=0 if exact else 1e-6)
        np.testing.assert_allclose(ts.reward.numpy(), g_rew, rtol=0 if exact else 1e-6, atol=0)
        np.testing.assert_array_equal(ts.terminated.numpy(), g_term)
        np.testing.assert_array_equal(ts.truncated.numpy(), g_trunc)
        assert ts.reward.dtype == torch.float32 and ts.obs.dtype == torch.float32

        done = g_term | g_trunc
        physics = ts.env_state.physics.numpy()[~done]
        np.testing.assert_allclose(physics, gym_physics().numpy()[~done], rtol=0, atol=0 if exact else 1e-12)
        counts["terminated"] += int(g_term.sum())
        counts["truncated"] += int(g_trunc.sum())
        elapsed = np.array([0 if d else g._elapsed_steps for g, d in zip(gym_envs, done, strict=True)])  # type: ignore[attr-defined]
        np.testing.assert_array_equal(ts.env_state.t.numpy(), elapsed)
        np.testing.assert_array_equal(ts.obs.numpy()[~done], ts.final_obs.numpy()[~done])
        for j in np.flatnonzero(done):
            g_obs[j] = gym_envs[j].reset(seed=next(next_seed))[0]
        obs = g_obs
        sync = torch.from_numpy(done if exact else np.ones(n, dtype=bool))[:, None]
        state = ts.env_state.replace(physics=torch.where(sync, gym_physics(), ts.env_state.physics))
    return counts


LIBMS: dict[str, tuple[ModuleType, str, SharedLibm]] = {  # monkeypatch.setattr arguments, per env
    "Pendulum-v1": (pendulum, "torch", NUMPY_SCALAR_LIBM),
    "MountainCar-v0": (mountain_car, "torch", MATH_LIBM),
    "MountainCarContinuous-v0": (mountain_car, "torch", MATH_LIBM),
    "seals/MountainCar-v0": (mountain_car, "torch", MATH_LIBM),
    "Acrobot-v1": (acrobot, "torch", NUMPY_SCALAR_LIBM),
}


class Case(NamedTuple):
    env_id: str
    kwargs: dict[str, Any]  # for both gymnasium and the torch env
    policy: Policy
    n_envs: int
    n_steps: int
    min_terminated: int  # -1: must never terminate
    min_truncated: int

    def make_gym(self) -> gym.Env:
        return seals_mountain_car() if self.env_id.startswith("seals/") else gym.make(self.env_id, **self.kwargs)

    def make_env(self) -> Env:
        return ENVS[self.env_id](n_envs=self.n_envs, **self.kwargs)


CASES = {
    "Pendulum-v1": Case("Pendulum-v1", {}, pendulum_policy, 8, 410, -1, 16),
    "Pendulum-g9.81-limit60": Case("Pendulum-v1", {"g": 9.81, "max_episode_steps": 60}, pendulum_policy, 4, 130, -1, 8),
    "MountainCar-v0": Case("MountainCar-v0", {}, mountain_car_policy, 8, 500, 12, 8),
    "MountainCar-goal_velocity": Case("MountainCar-v0", {"goal_velocity": 0.02}, mountain_car_policy, 4, 250, 2, 2),
    # gymnasium mixes float32 and float64 here (float64 on the first step after a reset); a shorter time limit
    # lets the random-action envs be truncated too.
    "MountainCarContinuous-limit300": Case(
        "MountainCarContinuous-v0", {"max_episode_steps": 300}, continuous_mountain_car_policy, 8, 700, 16, 8
    ),
    "MountainCarContinuous-goal_velocity": Case(
        "MountainCarContinuous-v0",
        {"goal_velocity": 0.01, "max_episode_steps": 200},
        continuous_mountain_car_policy,
        4,
        250,
        2,
        2,
    ),
    "Acrobot-limit150": Case("Acrobot-v1", {"max_episode_steps": 150}, acrobot_policy, 8, 400, 8, 8),
    "seals/MountainCar-v0": Case("seals/MountainCar-v0", {}, mountain_car_policy, 8, 400, -1, 16),
}


def _check_counts(case: Case, counts: dict[str, int]) -> None:
    if case.min_terminated < 0:
        assert counts["terminated"] == 0
    else:
        assert counts["terminated"] >= case.min_terminated
    assert counts["truncated"] >= case.min_truncated


@pytest.mark.parametrize("name", list(CASES))
def test_matches_gymnasium_bit_for_bit(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Free-running episodes (state copied only at gymnasium's resets) agree exactly, given the same cos/sin."""
    case = CASES[name]
    monkeypatch.setattr(*LIBMS[case.env_id])
    gym_envs = [case.make_gym() for _ in range(case.n_envs)]
    counts = _lockstep(gym_envs, case.make_env(), case.policy, case.n_steps, exact=True)
    _check_counts(case, counts)


@pytest.mark.parametrize("name", [name for name in CASES if "goal_velocity" not in name and "g9.81" not in name])
def test_matches_gymnasium_with_torch_trig(name: str) -> None:
    """With torch's own cos/sin (what users run), every step from gymnasium's state agrees to 1e-12."""
    case = CASES[name]
    gym_envs = [case.make_gym() for _ in range(case.n_envs)]
    counts = _lockstep(gym_envs, case.make_env(), case.policy, case.n_steps, seed=1, exact=False)
    _check_counts(case, counts)


def _random_states(env_id: str, rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` states over (and past) the whole range the dynamics sees, and steps taken ``t``.

    MountainCarContinuous: half float64 states at ``t = 0`` (as after a reset), half float32 states at ``t = 5``
    (as gymnasium stores them after a step).
    """
    t = np.zeros(n, dtype=np.int64)
    if env_id == "Pendulum-v1":
        states = rng.uniform([-3 * math.pi, -8.0], [3 * math.pi, 8.0], (n, 2))
    elif env_id == "Acrobot-v1":
        high = np.array([math.pi, math.pi, 4 * math.pi, 9 * math.pi])
        states = rng.uniform(-high, high, (n, 4))
        states[: n // 5, 2:] = np.sign(states[: n // 5, 2:]) * high[2:]  # spinning at full speed: multi-turn wraps
    else:
        states = rng.uniform([-1.2, -0.07], [0.6, 0.07], (n, 2))
        if env_id == "MountainCarContinuous-v0":
            t[n // 2 :] = 5
            return [s if i < n // 2 else s.astype(np.float32) for i, s in enumerate(states)], t
    return list(states), t


def _random_gym_actions(env_id: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if env_id == "Pendulum-v1":
        return rng.uniform(-3.0, 3.0, (n, 1)).astype(np.float32)
    if env_id == "MountainCarContinuous-v0":
        actions = rng.uniform(-1.5, 1.5, (n, 1)).astype(np.float32)
        actions[: n // 10] = rng.choice([-1.0, 1.0], (n // 10, 1))  # the clip boundaries exactly
        return actions
    return rng.integers(0, 3, n)


@pytest.mark.parametrize("shared_libm", [True, False], ids=["shared-libm", "torch-trig"])
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("Pendulum-v1", {}),
        ("MountainCar-v0", {}),
        ("MountainCar-v0", {"goal_velocity": 0.02}),
        ("MountainCarContinuous-v0", {}),
        ("MountainCarContinuous-v0", {"goal_velocity": 0.01}),
        ("Acrobot-v1", {}),
    ],
)
def test_one_step_from_many_states(
    env_id: str, kwargs: dict[str, Any], shared_libm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One batched step from 2000 states across the whole state space (clipping, the wall, the goal, angle
    wrapping of fast spins, first steps after a reset) against gymnasium's step from each of them."""
    n = 2000
    if shared_libm:
        monkeypatch.setattr(*LIBMS[env_id])
    rng = np.random.default_rng(len(env_id) + len(kwargs))
    states, t = _random_states(env_id, rng, n)
    actions = _random_gym_actions(env_id, rng, n)
    reference = gym.make(env_id, **kwargs).unwrapped
    g_obs, g_rew, g_term, g_state = [], [], [], []
    for i in range(n):
        reference.state = states[i]  # type: ignore[attr-defined]
        obs, rew, term, _, _ = reference.step(actions[i] if actions.ndim > 1 else int(actions[i]))
        g_obs.append(obs)
        g_rew.append(rew)
        g_term.append(term)
        g_state.append(np.asarray(reference.state, dtype=np.float64))  # type: ignore[attr-defined]

    env = ENVS[env_id](n_envs=n, **kwargs)
    physics = torch.from_numpy(np.stack(states).astype(np.float64))
    state = env.reset(random.key(0)).env_state.replace(physics=physics)
    state = state.replace(t=torch.from_numpy(t))
    ts = env.step(state, torch.from_numpy(actions), random.key(1))
    tol = 0 if shared_libm else 1e-12
    assert 0 < sum(g_term) < n or env_id == "Pendulum-v1"
    np.testing.assert_array_equal(ts.terminated.numpy(), np.array(g_term))
    np.testing.assert_allclose(ts.final_obs.numpy(), np.stack(g_obs), rtol=0, atol=tol and 1e-6)
    np.testing.assert_allclose(ts.reward.numpy(), np.array(g_rew, dtype=np.float32), rtol=tol and 1e-6, atol=0)
    reached, _, _ = _transition(env, state, torch.from_numpy(actions))
    np.testing.assert_allclose(reached.numpy(), np.stack(g_state), rtol=0, atol=tol)
    if isinstance(env, Pendulum):  # the float64 cost, before it is rounded into the float32 reward
        cost = env.dynamics(state.physics, torch.from_numpy(actions))[1]
        # (numpy's float32 u**2 may come from an SVML pow, not always u*u: 1e-9 relative without the shared libm)
        np.testing.assert_allclose(-cost.numpy(), np.array(g_rew, dtype=np.float64), rtol=tol and 1e-9, atol=0)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Acrobot-v1"])
def test_observations_of_gymnasium_reset_states(env_id: str) -> None:
    reference = gym.make(env_id)
    g_obs, states = [], []
    for seed in range(300):
        g_obs.append(reference.reset(seed=seed)[0])
        states.append(np.asarray(reference.unwrapped.state, dtype=np.float64))  # type: ignore[attr-defined]
    obs = _observe(ENVS[env_id](), torch.from_numpy(np.stack(states)))
    # Acrobot's reset state is float32 and gymnasium takes its cos/sin in float32; ours are float64, rounded:
    # one float32 ulp apart in ~0.1% of elements.
    tol = 1.2e-7 if env_id == "Acrobot-v1" else 0
    np.testing.assert_allclose(obs.numpy(), np.stack(g_obs), rtol=0, atol=tol)


def test_acrobot_wrap_is_gymnasiums_repeated_subtraction() -> None:
    rng = np.random.default_rng(0)
    boundaries = np.array([k * 2 * math.pi + s * math.pi for k in range(-5, 6) for s in (-1, 1)])
    for _ in range(3):  # and their float64 neighbours, where the turn count is decided
        boundaries = np.concatenate([boundaries, np.nextafter(boundaries, np.inf), np.nextafter(boundaries, -np.inf)])
    x = np.concatenate([rng.uniform(-11 * math.pi, 11 * math.pi, 20_000), boundaries, [0.0, -0.0]])
    expected = np.array([gym_acrobot.wrap(v, -math.pi, math.pi) for v in x])
    ours = acrobot.wrap(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected))


def test_spaces_and_horizons_match_gymnasium() -> None:
    for env_id in ["Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Acrobot-v1"]:
        env, reference = ENVS[env_id](n_envs=3), gym.make(env_id)
        assert env.observation_space == reference.observation_space, env_id
        assert env.action_space == reference.action_space, env_id
        assert env.max_episode_steps == reference.spec.max_episode_steps, env_id  # type: ignore[union-attr]
        assert env.n_envs == 3
    seals = FixedHorizonMountainCar(3)
    assert seals.observation_space == seals_mountain_car().observation_space
    assert seals.action_space == gym.spaces.Discrete(3)
    assert seals.max_episode_steps == 200
    assert [ENVS[i]().max_episode_steps for i in ENVS] == [200, 200, 999, 500, 200]


@pytest.mark.parametrize("env_id", list(ENVS))
def test_reset_distribution(env_id: str) -> None:
    n = 40_000
    env = ENVS[env_id](n_envs=n)
    ts = env.reset(random.key(3))
    x = ts.env_state.physics
    assert (
        x.dtype == torch.float64
        and ts.obs.dtype == torch.float32
        and ts.obs.shape == (n, *(env.observation_space.shape or ()))
    )
    # Reset observations lie inside the observation space.
    assert bool((ts.obs >= torch.from_numpy(env.observation_space.low)).all())  # type: ignore[attr-defined]
    assert bool((ts.obs <= torch.from_numpy(env.observation_space.high)).all())  # type: ignore[attr-defined]
    if env_id == "Pendulum-v1":  # U[-pi, pi) x U[-1, 1)
        low, high = torch.tensor([-math.pi, -1.0], dtype=torch.float64), torch.tensor([math.pi, 1.0]).double()
    elif env_id == "Acrobot-v1":  # float32 values in [-0.1, 0.1], as gymnasium's float32 cast of U[-0.1, 0.1)
        low, high = torch.full((4,), -0.1, dtype=torch.float64), torch.full((4,), 0.1, dtype=torch.float64)
        torch.testing.assert_close(x, x.float().double(), rtol=0, atol=0)
    else:  # position U[-0.6, -0.4), velocity 0
        low, high = torch.tensor([-0.6, 0.0], dtype=torch.float64), torch.tensor([-0.4, 0.0], dtype=torch.float64)
        assert bool((x[:, 1] == 0).all())
    random_coords = high > low
    if env_id == "Acrobot-v1":
        assert bool((x >= low.float().double()).all()) and bool((x <= high.float().double()).all())
    else:
        assert bool((x >= low).all()) and bool((x[:, random_coords] < high[random_coords]).all())
    mean, var = (low + high) / 2, (high - low) ** 2 / 12  # uniform moments
    torch.testing.assert_close(x.mean(0), mean, rtol=0, atol=float(4 * var.max().sqrt() / math.sqrt(n)) + 1e-12)
    torch.testing.assert_close(x.var(0)[random_coords], var[random_coords], rtol=0.02, atol=0)
    assert not bool(ts.done.any()) and bool((ts.reward == 0).all()) and bool((ts.env_state.t == 0).all())
    torch.testing.assert_close(ts.final_obs, ts.obs, rtol=0, atol=0)
    # Deterministic in the key, different across keys.
    small = ENVS[env_id](n_envs=5)
    torch.testing.assert_close(small.reset(random.key(3)).obs, small.reset(random.key(3)).obs)
    assert not torch.equal(small.reset(random.key(3)).obs, small.reset(random.key(4)).obs)


def _observe(env: Env, physics: torch.Tensor) -> torch.Tensor:
    return env.observe(physics)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("env_id", "ending", "action"),
    [
        ("Pendulum-v1", [0.0, 0.0], [[1.0], [1.0], [1.0]]),  # never terminates
        ("MountainCar-v0", [0.49, 0.05], [2, 2, 2]),  # reaches the goal this step
        ("MountainCarContinuous-v0", [0.44, 0.05], [[1.0], [1.0], [1.0]]),
        ("Acrobot-v1", [math.pi, 0.0, 0.0, 0.0], [1, 1, 1]),  # upright: the tip is two links above the pivot
    ],
)
def test_auto_reset_returns_final_obs(env_id: str, ending: list[float], action: list[Any]) -> None:
    """Env 0 keeps going, env 1 terminates (where the task can), env 2 hits the time limit."""
    env = ENVS[env_id](n_envs=3)
    start = env.reset(random.key(0)).env_state
    physics = start.physics.clone()
    physics[1] = torch.tensor(ending, dtype=torch.float64)
    limit = env.max_episode_steps
    assert limit is not None
    state = start.replace(physics=physics, t=torch.tensor([0, 7, limit - 1]))
    key = random.key(9)
    actions = torch.tensor(action)
    ts = env.step(state, actions, key)
    reached, _, _ = _transition(env, state, actions)
    fresh = env.initial_physics(key)  # type: ignore[attr-defined]

    can_terminate = env_id != "Pendulum-v1"
    assert ts.terminated.tolist() == [False, can_terminate, False]
    assert ts.truncated.tolist() == [False, False, True]
    assert ts.env_state.t.tolist() == [1, 8 * (not can_terminate), 0]
    torch.testing.assert_close(ts.final_obs, _observe(env, reached), rtol=0, atol=0)
    expected = torch.where(ts.done[:, None], fresh, reached)
    torch.testing.assert_close(ts.env_state.physics, expected, rtol=0, atol=0)
    torch.testing.assert_close(ts.obs, _observe(env, expected), rtol=0, atol=0)
    if env_id == "Acrobot-v1":
        assert ts.reward.tolist() == [-1.0, 0.0, -1.0]
    elif env_id == "MountainCar-v0":
        assert ts.reward.tolist() == [-1.0, -1.0, -1.0]
    elif env_id == "MountainCarContinuous-v0":
        torch.testing.assert_close(ts.reward, torch.tensor([-0.1, 99.9, -0.1]))


def _transition(env: Env, state: Any, actions: torch.Tensor) -> tuple[torch.Tensor, Any, Any]:
    """The physics a step reaches, without the auto-reset."""
    if isinstance(env, MountainCar):
        return env.transition(state, actions)
    if isinstance(env, Pendulum):
        return env.dynamics(state.physics, actions)[0], None, None
    return env.dynamics(state.physics, actions), None, None  # type: ignore[attr-defined]


def _random_actions(env: Env, key: torch.Tensor) -> torch.Tensor:
    if isinstance(env.action_space, gym.spaces.Discrete):
        return random.randint(key, (env.n_envs,), 0, int(env.action_space.n))
    bound = 1.5 * float(env.action_space.high[0])  # type: ignore[attr-defined]
    return random.uniform(key, (env.n_envs, 1), minval=-bound, maxval=bound)


def _rollout(env: Env, key: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, ...]:
    """Reset, then ``n_steps`` random actions; returns the stacked obs, rewards and dones."""
    k_reset, k_steps = random.split(key)
    ts = env.reset(k_reset)
    obs, rews, dones = [ts.obs], [], []
    for k in random.split(k_steps, n_steps):
        k_act, k_env = random.split(k)
        ts = env.step(ts.env_state, _random_actions(env, k_act), k_env)
        obs.append(ts.obs)
        rews.append(ts.reward)
        dones.append(ts.done)
    return torch.stack(obs), torch.stack(rews), torch.stack(dones)


@pytest.mark.parametrize("env_id", list(ENVS))
def test_vmap_over_seeds_equals_loop(env_id: str) -> None:
    env = ENVS[env_id](n_envs=3, max_episode_steps=10)
    keys = random.split(random.key(5), 4)
    batched = torch.func.vmap(lambda k: _rollout(env, k, 25))(keys)
    looped = tree.stack([_rollout(env, k, 25) for k in keys])
    for b, lp in zip(batched, looped, strict=True):
        torch.testing.assert_close(b, lp, rtol=0, atol=1e-6)
    assert bool(batched[2].any())  # episodes ended (and auto-reset) inside the vmapped rollout


def test_fixed_horizon_mountain_car_absorbs_at_the_goal_and_lasts_exactly_200_steps() -> None:
    n = 6
    env = FixedHorizonMountainCar(n)
    ts = env.reset(random.key(0))
    rng = np.random.default_rng(0)
    steps = []
    for key in random.split(random.key(1), 450):
        pump = torch.where(ts.obs[:, 1] > 0, 2, 0)
        random_act = torch.from_numpy(rng.integers(0, 3, n))
        actions = torch.where(torch.arange(n) < 4, pump, random_act)  # 4 reach the goal, 2 never do
        ts = env.step(ts.env_state, actions, key)
        steps.append(ts)
    traj = tree.stack(steps)  # every leaf (450, n, ...)
    assert not bool(traj.terminated.any())
    assert torch.equal(traj.truncated, (torch.arange(1, 451) % 200 == 0)[:, None].expand(450, n))
    for j in range(n):
        for start in (0, 200):
            rews, obs = traj.reward[start : start + 200, j], traj.final_obs[start : start + 200, j]
            reached = obs[:, 0] >= 0.5
            assert bool(reached.any()) == (j < 4)
            if j < 4:
                first = int(reached.float().argmax())  # the step that reaches the goal: -1, then absorbed: 0
                assert bool((rews[: first + 1] == -1).all()) and bool((rews[first + 1 :] == 0).all())
                assert bool((obs[first:] == obs[first]).all())  # the goal observation repeats
                assert first + 1 < 200 and bool(traj.env_state.absorbed[start + first, j])
            else:
                assert bool((rews == -1).all())
    # Episodes restart unabsorbed from the reset distribution.
    assert not bool(traj.env_state.absorbed[199].any()) and not bool(traj.env_state.absorbed[399].any())
    assert bool((traj.obs[199, :, 0] < -0.4).all()) and bool((traj.obs[199, :, 1] == 0).all())
