"""Tabular MDPs as pytrees, and pure batched environments over them (seals' ``TabularModelPOMDP``).

A :class:`TabularMDP` holds the model as tensors under the names seals and ``imitation``'s MCE IRL use
(``transition_matrix``, ``reward_matrix``, ``initial_state_dist``, ``observation_matrix``, ``horizon``).
Because the MDP is itself a pytree, a batch of MDPs is one ``torch.func.vmap`` away:

    mdp = cliff_world(width=7, height=4, horizon=9)
    mdps = torch.func.vmap(lambda k: random_mdp(k, n_states=16, n_actions=3, branch_factor=2, horizon=20,
                                                random_obs=True, obs_dim=5))(random.split(random.key(0), 8))
    env = TabularEnv(mdp, n_envs=16)
    ts = env.reset(random.key(1))
    ts = env.step(ts.env_state, actions, random.key(2))  # actions: (16,) int64 in [0, n_actions)

:class:`TabularEnv` samples ``s' ~ transition_matrix[s, a]``, pays ``reward_matrix[s]`` (or ``[s, a]``,
``[s, a, s']``: the reward of the state *left*, as seals does) and observes ``observation_matrix[s']``.
Every episode lasts exactly ``horizon`` steps. seals reports the horizon step as ``terminated``; we report
it as ``truncated`` (a time limit, as seals' fixed-horizon classic-control tasks do) — both end the episode.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imitation_fn.core import random, struct
from imitation_fn.core.random import Key
from imitation_fn.envs.base import Env, TimeStep


class TabularMDP(struct.PyTreeNode):
    """A finite-horizon tabular (PO)MDP with deterministic feature observations.

    ``transition_matrix: (S, A, S)``: ``P(s' | s, a)``, rows sum to 1.
    ``reward_matrix: (S,)``, ``(S, A)`` or ``(S, A, S)``: reward of ``s``, ``(s, a)`` or ``(s, a, s')``.
    ``initial_state_dist: (S,)``. ``observation_matrix: (S, obs_dim)``: the observation of each state.
    ``horizon``: episode length (static).
    """

    transition_matrix: Tensor
    reward_matrix: Tensor
    initial_state_dist: Tensor
    observation_matrix: Tensor
    horizon: int = struct.field(static=True)

    @classmethod
    def create(
        cls,
        transition_matrix: Tensor,
        reward_matrix: Tensor,
        horizon: int,
        initial_state_dist: Tensor | None = None,
        observation_matrix: Tensor | None = None,
    ) -> TabularMDP:
        """An MDP with seals' defaults: start in state 0, observe the one-hot state (float32 identity)."""
        n_states = transition_matrix.shape[-1]
        device = transition_matrix.device
        if initial_state_dist is None:
            initial_state_dist = torch.zeros(n_states, dtype=transition_matrix.dtype, device=device)
            initial_state_dist = initial_state_dist.index_fill(0, torch.tensor([0], device=device), 1.0)
        if observation_matrix is None:
            observation_matrix = torch.eye(n_states, dtype=torch.float32, device=device)
        mdp = cls(transition_matrix, reward_matrix, initial_state_dist, observation_matrix, horizon)
        mdp.check_shapes()
        return mdp

    @property
    def n_states(self) -> int:
        return self.transition_matrix.shape[-1]

    @property
    def n_actions(self) -> int:
        return self.transition_matrix.shape[-2]

    @property
    def obs_dim(self) -> int:
        return self.observation_matrix.shape[-1]

    def reward_at(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        """Reward of transitions ``(state, action, next_state)``, each ``(n,)`` int64 -> ``(n,)``."""
        # The rank is static (also under vmap), so this branch is not data-dependent.
        if self.reward_matrix.ndim == 1:
            return self.reward_matrix[state]
        if self.reward_matrix.ndim == 2:
            return self.reward_matrix[state, action]
        return self.reward_matrix[state, action, next_state]

    def check_shapes(self) -> None:
        """Static checks only (shapes, ranks, horizon): safe inside ``vmap`` and ``torch.compile``."""
        t, r, p0, o = self.transition_matrix, self.reward_matrix, self.initial_state_dist, self.observation_matrix
        if t.ndim != 3 or t.shape[0] != t.shape[2]:
            raise ValueError(f"TabularMDP.transition_matrix must have shape (S, A, S), got {tuple(t.shape)}")
        n_states, n_actions = t.shape[0], t.shape[1]
        if not 1 <= r.ndim <= 3 or tuple(r.shape) != tuple(t.shape[: r.ndim]):
            raise ValueError(
                f"TabularMDP.reward_matrix must have shape (S,), (S, A) or (S, A, S) = {tuple(t.shape)}[:ndim], "
                f"got {tuple(r.shape)}"
            )
        if tuple(p0.shape) != (n_states,):
            raise ValueError(f"TabularMDP.initial_state_dist must have shape ({n_states},), got {tuple(p0.shape)}")
        if o.ndim != 2 or o.shape[0] != n_states or o.shape[1] == 0:
            raise ValueError(
                f"TabularMDP.observation_matrix must have shape ({n_states}, obs_dim >= 1), got {tuple(o.shape)}"
            )
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"TabularMDP.horizon must be a positive int, got {self.horizon!r}")
        if n_actions < 1:
            raise ValueError("TabularMDP.transition_matrix has no actions (shape[1] == 0)")

    def validate(self, atol: float = 1e-5) -> TabularMDP:
        """Host-side check of shapes and values: probabilities non-negative and summing to 1, all finite.

        Raises ``ValueError`` naming the offending field; returns ``self`` so it chains.
        Not for use inside transforms (it reads tensor values).
        """
        self.check_shapes()
        for name in ("transition_matrix", "reward_matrix", "initial_state_dist", "observation_matrix"):
            x = getattr(self, name)
            if not x.is_floating_point():
                raise ValueError(f"TabularMDP.{name} must be a floating-point tensor, got dtype {x.dtype}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"TabularMDP.{name} contains NaN or inf")
        for name in ("transition_matrix", "initial_state_dist"):
            dist = getattr(self, name)
            if bool((dist < 0).any()):
                raise ValueError(f"TabularMDP.{name} has negative probabilities (min {float(dist.min()):.3g})")
            sums = dist.sum(-1)
            worst = int((sums - 1).abs().flatten().argmax())
            if abs(float(sums.flatten()[worst]) - 1) > atol:
                where = f" at (state, action) = {divmod(worst, self.n_actions)}" if dist.ndim == 3 else ""
                raise ValueError(
                    f"TabularMDP.{name} must sum to 1 over next states: sum is {float(sums.flatten()[worst]):.6g}"
                    f"{where} (atol {atol})"
                )
        return self


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------


class TabularState(struct.PyTreeNode):
    """``state: (n_envs,)`` int64 state index; ``t: (n_envs,)`` int64 steps taken in the episode."""

    state: Tensor
    t: Tensor


class TabularEnv(Env):
    """``n_envs`` copies of a :class:`TabularMDP`, pure and auto-resetting; episodes last ``mdp.horizon`` steps.

    Actions: ``(n_envs,)`` int64 in ``[0, n_actions)``. Observations: ``(n_envs, obs_dim)`` float32 rows of
    ``observation_matrix`` or, with ``expose_state=True`` (seals' ``ExposePOMDPStateWrapper``), the state
    index ``(n_envs,)`` int64. The state index is always in ``env_state.state``. ``terminated`` is always
    ``False``; ``truncated`` is ``True`` on every ``horizon``-th step.

    The env holds ``mdp`` as data, so ``vmap(lambda mdp, k: TabularEnv(mdp, n).reset(k))(mdps, keys)``
    runs a batch of MDPs (the constructor reads only shapes).
    """

    def __init__(self, mdp: TabularMDP, n_envs: int = 1, *, expose_state: bool = False):
        mdp.check_shapes()
        self.mdp = mdp
        self.n_envs = n_envs
        self.expose_state = expose_state
        self.max_episode_steps = mdp.horizon
        self.action_space = gym.spaces.Discrete(mdp.n_actions)
        self.state_space = gym.spaces.Discrete(mdp.n_states)
        # seals' bounds for float observations; the state space itself when states are observed.
        box = gym.spaces.Box(-np.inf, np.inf, (mdp.obs_dim,), dtype=np.float32)
        self.observation_space = self.state_space if expose_state else box

    def __repr__(self) -> str:
        m = self.mdp
        return (
            f"{type(self).__name__}(n_envs={self.n_envs}, n_states={m.n_states}, n_actions={m.n_actions}, "
            f"obs_dim={m.obs_dim}, horizon={m.horizon}, expose_state={self.expose_state})"
        )

    def observe(self, state: Tensor) -> Tensor:
        """Observations of states ``(n,)`` int64: ``(n, obs_dim)`` float32, or the states themselves."""
        if self.expose_state:
            return state
        return self.mdp.observation_matrix[state].to(torch.float32)

    def initial_states(self, key: Key) -> Tensor:
        """``(n_envs,)`` int64 states drawn from ``initial_state_dist``."""
        return random.categorical(key, torch.log(self.mdp.initial_state_dist), (self.n_envs,))

    def reset(self, key: Key) -> TimeStep:
        state = self.initial_states(key)
        obs = self.observe(state)
        t = torch.zeros_like(state)
        done = torch.zeros_like(state, dtype=torch.bool)
        reward = torch.zeros(state.shape, dtype=torch.float32, device=state.device)
        return TimeStep(TabularState(state, t), obs, reward, done, done, obs)

    def step(self, env_state: TabularState, action: Tensor, key: Key) -> TimeStep:
        key_next, key_reset = random.split(key)
        state = env_state.state
        probs = self.mdp.transition_matrix[state, action]  # (n_envs, S)
        next_state = random.categorical(key_next, torch.log(probs))  # log 0 = -inf: never drawn
        reward = self.mdp.reward_at(state, action, next_state).to(torch.float32)
        t = env_state.t + 1
        truncated = t >= self.mdp.horizon
        # Auto-reset: a fresh initial state is drawn for every sub-environment, kept where the episode ended.
        new_state = torch.where(truncated, self.initial_states(key_reset), next_state)
        return TimeStep(
            env_state=TabularState(new_state, torch.where(truncated, 0, t)),
            obs=self.observe(new_state),
            reward=reward,
            terminated=torch.zeros_like(truncated),
            truncated=truncated,
            final_obs=self.observe(next_state),
        )


# --------------------------------------------------------------------------------------------
# CliffWorld (seals.diagnostics.cliff_world.CliffWorldEnv)
# --------------------------------------------------------------------------------------------


def cliff_world(
    *,
    width: int = 7,
    height: int = 4,
    horizon: int = 9,
    use_xy_obs: bool = False,
    rew_default: float = -1,
    rew_goal: float = 10,
    rew_cliff: float = -10,
    fail_p: float = 0.3,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> TabularMDP:
    """seals' ``CliffWorldEnv``: a ``height × width`` grid, start at (0, 0), goal at (0, width - 1), cliff between.

    State ``row * width + col``. Reward of the state left: ``rew_goal`` at the goal, ``rew_cliff`` on row 0
    between start and goal, ``rew_default`` elsewhere. The 4 actions move diagonally
    (``a = (drow + 1) + (dcol + 1) // 2`` for ``drow, dcol in ±1``); with probability ``fail_p`` the wind
    blows the agent one row further up (towards the cliff). Moves clamp at the walls. Observations: the
    one-hot state, or ``(col / (width - 1), row / (height - 1))`` with ``use_xy_obs``. Defaults are
    ``seals/CliffWorld7x4-v0``.
    """
    if width < 3 or height < 2:
        raise ValueError(f"cliff_world needs width >= 3 and height >= 2, got width={width}, height={height}")
    n_states = width * height
    row = torch.arange(height, device=device).repeat_interleave(width)  # (S,) for state = row * width + col
    col = torch.arange(width, device=device).repeat(height)

    def to_id_clamp(r: Tensor, c: Tensor) -> Tensor:
        return r.clamp(0, height - 1) * width + c.clamp(0, width - 1)

    succ_p = 1 - fail_p
    planes = []
    for drow in (-1, 1):  # action order of seals: (drow, dcol) = (-1, -1), (-1, 1), (1, -1), (1, 1)
        for dcol in (-1, 1):
            target = torch.nn.functional.one_hot(to_id_clamp(row + drow, col + dcol), n_states)
            fail = torch.nn.functional.one_hot(to_id_clamp(row + drow - 1, col + dcol), n_states)
            # seals adds fail_p first, then succ_p; the same order keeps float64 sums bit-identical.
            planes.append(fail.to(torch.float64) * fail_p + target.to(torch.float64) * succ_p)
    transition = torch.stack(planes, dim=1)  # (S, 4, S)

    is_cliff = (row == 0) & (col > 0) & (col < width - 1)
    is_goal = (row == 0) & (col == width - 1)
    reward = torch.where(is_goal, rew_goal, torch.where(is_cliff, rew_cliff, rew_default)).to(torch.float64)

    if use_xy_obs:
        obs = torch.stack([col.to(torch.float64) / (width - 1), row.to(torch.float64) / (height - 1)], dim=-1)
    else:
        obs = torch.eye(n_states, dtype=torch.float64, device=device)
    return TabularMDP.create(transition.to(dtype), reward.to(dtype), horizon, observation_matrix=obs.to(torch.float32))


class CliffWorld(TabularEnv):
    """:func:`cliff_world` as an environment of ``n_envs`` copies (``seals/CliffWorld7x4-v0`` by default)."""

    def __init__(
        self,
        n_envs: int = 1,
        *,
        width: int = 7,
        height: int = 4,
        horizon: int = 9,
        use_xy_obs: bool = False,
        rew_default: float = -1,
        rew_goal: float = 10,
        rew_cliff: float = -10,
        fail_p: float = 0.3,
        expose_state: bool = False,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        mdp = cliff_world(
            width=width,
            height=height,
            horizon=horizon,
            use_xy_obs=use_xy_obs,
            rew_default=rew_default,
            rew_goal=rew_goal,
            rew_cliff=rew_cliff,
            fail_p=fail_p,
            dtype=dtype,
            device=device,
        )
        super().__init__(mdp, n_envs, expose_state=expose_state)
        self.width, self.height = width, height


# --------------------------------------------------------------------------------------------
# Random MDPs (seals.diagnostics.random_trans.RandomTransitionEnv)
# --------------------------------------------------------------------------------------------


def _flat_dirichlet(key: Key, shape: tuple[int, ...], mask: Tensor | None = None) -> Tensor:
    """Dirichlet(1, ..., 1) over the last axis (restricted to ``mask``): normalised Exp(1) draws, float64."""
    exp = torch.exp(-random.gumbel(key, shape, torch.float64))  # exp(-Gumbel) ~ Exp(1), never 0 or inf
    if mask is not None:
        exp = exp * mask
    return exp / exp.sum(-1, keepdim=True)


def _distinct(key: Key, shape: tuple[int, ...], n: int, k: int) -> Tensor:
    """``(*shape, k)`` int64: ``k`` distinct indices from ``range(n)``, uniformly, for each entry of ``shape``."""
    return torch.argsort(random.randbits63(key, (*shape, n)), dim=-1, stable=True)[..., :k]


def random_mdp(
    key: Key,
    *,
    n_states: int,
    n_actions: int,
    branch_factor: int,
    horizon: int,
    random_obs: bool,
    obs_dim: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> TabularMDP:
    """seals' ``RandomTransitionEnv``, drawn from ``key``: pure, so ``vmap`` over keys makes a batch of MDPs.

    The construction is seals' (Sutton's random MDPs), with fixed shapes:

    - ``transition_matrix``: each ``(s, a)`` reaches ``k ~ U{1, ..., branch_factor}`` distinct uniformly chosen
      states with Dirichlet(1, ..., 1) probabilities;
    - ``initial_state_dist``: Dirichlet(1, ..., 1) over exactly ``branch_factor`` distinct states;
    - ``observation_matrix``: ``N(0, 2²)`` entries of shape ``(S, obs_dim)`` (``obs_dim`` defaults to ``S``)
      if ``random_obs``, else the identity (then ``obs_dim`` must be ``None``);
    - ``reward_matrix``: ``(S,)`` = ``observation_matrix @ w``, ``w ~ N(0, 1)`` of shape ``(obs_dim,)``.

    The numbers come from our Threefry keys, not seals' ``np.random.RandomState(generator_seed)``, so the same
    seed gives a different (equally distributed) MDP than seals does.
    """
    if random_obs:
        obs_dim = n_states if obs_dim is None else obs_dim
    elif obs_dim is not None:
        raise ValueError("random_mdp: obs_dim must be None if random_obs is False")
    if not 0 < branch_factor <= n_states:
        raise ValueError(f"random_mdp: branch_factor must be in [1, n_states={n_states}], got {branch_factor}")
    k_obs, k_count, k_succ, k_prob, k_init_succ, k_init_prob, k_rew = random.split(key, 7)

    if random_obs:
        assert obs_dim is not None
        obs = 2.0 * random.normal(k_obs, (n_states, obs_dim), torch.float64)
    else:
        obs = torch.eye(n_states, dtype=torch.float64, device=key.device)

    count = random.randint(k_count, (n_states, n_actions), 1, branch_factor + 1)  # successors of each (s, a)
    succ = _distinct(k_succ, (n_states, n_actions), n_states, branch_factor)  # (S, A, bf)
    used = torch.arange(branch_factor, device=key.device) < count.unsqueeze(-1)  # first `count` of them
    probs = _flat_dirichlet(k_prob, (n_states, n_actions, branch_factor), used)
    zeros = torch.zeros(n_states, n_actions, n_states, dtype=torch.float64, device=key.device)
    transition = zeros.scatter(-1, succ, probs)  # successors are distinct, so scatter never collides

    init_succ = _distinct(k_init_succ, (), n_states, branch_factor)
    init_probs = _flat_dirichlet(k_init_prob, (branch_factor,))
    initial = torch.zeros(n_states, dtype=torch.float64, device=key.device).scatter(-1, init_succ, init_probs)

    obs = obs.to(torch.float32)  # seals stores float32 observations and computes the reward from them
    reward = obs.to(torch.float64) @ random.normal(k_rew, (obs.shape[-1],), torch.float64)
    return TabularMDP(transition.to(dtype), reward.to(dtype), initial.to(dtype), obs, horizon)


class RandomMDP(TabularEnv):
    """:func:`random_mdp` as an environment; defaults are ``seals/Random-v0``'s.

    ``generator_seed`` seeds the MDP's construction only (through :func:`random.key`), as in seals; rollouts
    draw from the keys passed to ``reset`` / ``step``.
    """

    def __init__(
        self,
        n_envs: int = 1,
        *,
        n_states: int = 16,
        n_actions: int = 3,
        branch_factor: int = 2,
        horizon: int = 20,
        random_obs: bool = True,
        obs_dim: int | None = 5,
        generator_seed: int = 42,
        expose_state: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        mdp = random_mdp(
            random.key(generator_seed),
            n_states=n_states,
            n_actions=n_actions,
            branch_factor=branch_factor,
            horizon=horizon,
            random_obs=random_obs,
            obs_dim=obs_dim,
            dtype=dtype,
        )
        super().__init__(mdp, n_envs, expose_state=expose_state)


__all__ = ["CliffWorld", "RandomMDP", "TabularEnv", "TabularMDP", "TabularState", "cliff_world", "random_mdp"]
