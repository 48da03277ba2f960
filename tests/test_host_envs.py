"""Any gymnasium environment in the one loop: N seeds × n_envs host sub-environments, the learner vmapped.

``TinyPoint`` below is a user's environment, defined here and registered with gymnasium by this module
(not by the package): commands reach it as ``test_host_envs:TinyPoint-v0``, the ``module:id`` form, which
imports this module first. Every training command runs on it with a tiny budget as the installed console
script; the Python API's properties (seed i alone ≡ seed i in a sweep, deterministic restarts on resume,
staggered generator envs) are checked on it directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from imitation_fn import envs
from imitation_fn.algorithms import adversarial, gail
from imitation_fn.core import random, serialization, tree
from imitation_fn.data.rollout import generate_trajectories
from imitation_fn.envs.gym import GymEnv
from imitation_fn.envs.host import HostEnvs, restart_keys
from imitation_fn.rl import ppo, ppo_batched, sac
from imitation_fn.train import adversarial as train_adversarial
from imitation_fn.train import loop
from imitation_fn.train.rl import PPO_SPEC, make_task, train_rl
from imitation_fn.train.run import CHECKPOINT

HORIZON = 16


class TinyPoint(gym.Env[np.ndarray, Any]):
    """A point on a line that should stay near 0: observation ``(x, t / HORIZON)``, reward ``-|x|``.

    No terminal states (fixed horizon, as seals' tasks): the imitation algorithms accept it without
    ``allow_variable_horizon``. Actions: Discrete(3) (left, stay, right) or a Box step in [-1, 1].
    """

    def __init__(self, continuous: bool = False) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(3)
        self.continuous = continuous

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.t / HORIZON], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1.0, 1.0)), 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        move = float(np.clip(action, -1.0, 1.0)[0]) if self.continuous else int(action) - 1
        self.x, self.t = self.x + 0.25 * move, self.t + 1
        return self._obs(), -abs(self.x), False, False, {}


gym.register("TinyPoint-v0", entry_point=TinyPoint, max_episode_steps=HORIZON)
gym.register("TinyPointContinuous-v0", entry_point=TinyPoint, max_episode_steps=HORIZON, kwargs={"continuous": True})
gym.register(
    "TinyPointMulti-v0",
    entry_point=lambda: gym.wrappers.TransformAction(
        TinyPoint(), lambda a: int(a[0]), gym.spaces.MultiDiscrete([3, 2])
    ),
    max_episode_steps=HORIZON,
)
ENV = f"{__name__}:TinyPoint-v0"
ENV_CONTINUOUS = f"{__name__}:TinyPointContinuous-v0"
PPO_TINY = ppo.Config(n_envs=2, n_steps=16, batch_size=16, n_epochs=2)


def _close(a: Any, b: Any, atol: float = 1e-5) -> bool:
    return all(
        torch.allclose(x.float(), y.float(), atol=atol) for x, y in zip(tree.leaves(a), tree.leaves(b), strict=True)
    )


# ---------------------------------------------------------------------------------------------------------------------
# The pieces: module:id, HostEnvs, states without an env inside
# ---------------------------------------------------------------------------------------------------------------------


def test_module_id_makes_the_users_env_on_the_host() -> None:
    env = envs.make(ENV, n_envs=3)
    assert isinstance(env, GymEnv) and env.host and env.n_envs == 3 and env.max_episode_steps == HORIZON
    assert not envs.make("CartPole-v1").host  # the torch version
    # imitation's "seals:seals/CartPole-v0" names a task we provide: ours, without importing seals.
    assert type(envs.make("seals:seals/CartPole-v0")) is type(envs.make("seals/CartPole-v0"))


@pytest.mark.parametrize("env_id", ["no_such_module_xyz:Foo-v0", f"{__name__}:NoSuchEnv-v0"])
def test_a_module_id_that_cannot_be_made_is_one_clear_error(env_id: str) -> None:
    with pytest.raises(ValueError, match=f"cannot make the gymnasium environment '{env_id}'"):
        envs.make(env_id)


def test_host_envs_seed_each_seed_as_its_own_env_would() -> None:
    """Seed i's copies in the N-seed vector env meet the episodes a lone GymEnv reset with seed i's key meets."""
    keys = torch.stack([random.key(5), random.key(9)])
    host = HostEnvs(GymEnv(ENV, 3), n_seeds=2)
    ts = host.reset(keys)
    assert ts.obs.shape == (2, 3, 2)
    alone = GymEnv(ENV, 3)
    lone = alone.reset(keys[1])
    torch.testing.assert_close(ts.obs[1], lone.obs, rtol=0, atol=0)
    actions = torch.tensor([[0, 1, 2], [2, 1, 0]])
    for _ in range(HORIZON + 2):  # across the time limit: auto-resets draw from each copy's own generator
        ts, lone = host.step(actions), alone.step(lone.env_state, actions[1], random.key(0))
        torch.testing.assert_close(ts.obs[1], lone.obs, rtol=0, atol=0)
        torch.testing.assert_close(ts.final_obs[1], lone.final_obs, rtol=0, atol=0)
        torch.testing.assert_close(ts.reward[1], lone.reward, rtol=0, atol=0)


def test_advance_puts_each_copy_at_its_offset() -> None:
    host = HostEnvs(GymEnv(ENV, 4), n_seeds=2)
    host.reset(torch.stack([random.key(0), random.key(1)]))
    offsets = adversarial.stagger_offsets(host)
    assert offsets.tolist() == [0, 4, 8, 12]
    ts = host.advance(offsets, lambda obs, t: torch.ones(obs.shape[:2], dtype=torch.int64))
    assert (ts.obs[..., 1] * HORIZON).round().tolist() == [[0, 4, 8, 12]] * 2  # the observed time step


def test_a_none_field_has_no_leaves() -> None:
    """A state whose env steps outside it has ``timestep=None``: vmap, stacking and checkpoints see only tensors."""
    task = make_task(PPO_TINY, ENV, budget=64, n_eval_episodes=1)
    states = loop.init_states(PPO_SPEC, PPO_TINY, task, [0, 1])
    assert states.timestep is None and tree.leaves(states)
    assert tree.unstack(states)[1].timestep is None
    with pytest.raises(ValueError, match=r"state\.timestep is None"):
        ppo.collect(tree.index(states, 0), task)


# ---------------------------------------------------------------------------------------------------------------------
# The loop on a host env
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("algo", "cfg", "env_id"), [(ppo, PPO_TINY, ENV), (sac, None, ENV_CONTINUOUS)])
def test_seed_alone_equals_seed_in_a_sweep(algo: Any, cfg: Any, env_id: str) -> None:
    cfg = cfg or sac.Config(n_envs=2, learning_starts=16, batch_size=16, buffer_size=256, net_arch=(16, 16))
    alone = train_rl(algo, cfg, env_id, total_timesteps=96, seeds=[7], n_eval_episodes=2, progress=False)
    sweep = train_rl(algo, cfg, env_id, total_timesteps=96, seeds=[3, 7], n_eval_episodes=2, progress=False)
    # Batched float reductions differ in the last bits between 1 and 2 seeds (as on torch envs), nothing more.
    assert _close(alone.states, tree.index(sweep.states, slice(1, 2)))
    torch.testing.assert_close(alone.eval_returns[0], sweep.eval_returns[1], atol=1e-4, rtol=0)


def test_resume_restarts_host_envs_deterministically(tmp_path: Path, copies_at_checkpoints: Any) -> None:
    """A host env's simulators are not in the checkpoint: a resumed run restarts its episodes from keys of
    (seed, progress), so resuming the same checkpoint twice gives the same run, and it ends at the budget."""
    with copies_at_checkpoints() as copies:
        whole = train_rl(
            ppo, PPO_TINY, ENV, total_timesteps=160, seeds=[0, 1], log_dir=tmp_path / "whole", checkpoint_every=0
        )
    killed = copies[1]
    twice = [killed, shutil.copytree(killed, tmp_path / "again")]
    resumed = [
        train_rl(ppo, PPO_TINY, ENV, total_timesteps=160, seeds=[0, 1], log_dir=d, resume=True, progress=False)
        for d in twice
    ]
    assert resumed[0].steps == resumed[1].steps == whole.steps
    a, b = (serialization.load_flat(d / CHECKPOINT) for d in twice)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_restart_keys_depend_on_the_state_key_only() -> None:
    keys = torch.stack([random.key(1), random.key(2)])
    torch.testing.assert_close(restart_keys(keys)[1:], restart_keys(keys[1:]), rtol=0, atol=0)
    assert not torch.equal(restart_keys(keys), keys)


@pytest.fixture(scope="module")
def tiny_demos() -> list[Any]:
    """A few episodes of a barely trained PPO policy on TinyPoint (the checks here are not about their quality)."""
    result = train_rl(ppo, PPO_TINY, ENV, total_timesteps=32, seeds=[0], n_eval_episodes=1, progress=False)
    policy = ppo.policy(tree.index(result.states, 0))
    return generate_trajectories(envs.make(ENV, 2), policy, random.key(0), min_episodes=4)


def test_gail_staggers_the_host_generator_envs(tiny_demos: list[Any]) -> None:
    """As on torch envs, generator copy j starts j · horizon / n_envs steps into its first episode."""
    cfg = gail.Config(gen=ppo.Config(n_envs=4, n_steps=8, batch_size=16), demo_batch_size=16)
    task = train_adversarial.make_task(cfg, ENV, budget=32, n_eval_episodes=1, demos=tiny_demos)
    states = loop.init_states(train_adversarial.GAIL_SPEC, cfg, task, [0, 1])
    assert states.gen.timestep is None  # init cannot step a host env under vmap: the loop staggers it
    restarts = []

    def stagger(gens: ppo.State, host: HostEnvs) -> None:
        restarts.append(host)
        train_adversarial.host_stagger(gens, host)

    assert isinstance(task.env, GymEnv)
    collect = ppo_batched.host_collect(task.env, on_restart=stagger)
    _, rollout = collect(states.gen)
    first_t = (rollout.obs[:, 0, :, 1] * HORIZON).round()  # (seeds, envs): the time step of the first observation
    assert first_t.tolist() == [[0, 4, 8, 12]] * 2
    collect(states.gen)
    assert len(restarts) == 1  # only when the envs (re)start


# ---------------------------------------------------------------------------------------------------------------------
# Every command on the user's env, as the installed console script
# ---------------------------------------------------------------------------------------------------------------------

TINY_EVAL = ["--n-eval-episodes", "2", "--no-progress"]
PPO_FLAGS = ["--n-envs", "2", "--n-steps", "16", "--batch-size", "16"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(["imitation-fn", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and proc.returncode == 0, f"$ imitation-fn {' '.join(args)}\n{output[-3000:]}"
    return proc


def test_every_command_runs_on_a_users_env(tmp_path: Path) -> None:
    """train-rl (PPO, SAC), rollouts, bc, dagger, gail, airl, density, preference-comparisons and eval on
    ``module:id``, each with a tiny budget."""
    ppo_run = ["--seeds", "2", "--total-steps", "256", "--save-demos", "6", *PPO_FLAGS, *TINY_EVAL]
    _cli(["train-rl", "--algo", "ppo", "--env", ENV, "--out", "ppo", *ppo_run], tmp_path)
    assert (tmp_path / "ppo" / "policies" / "seed_1").is_dir() and (tmp_path / "ppo" / "demos").exists()
    sac_run = ["--seeds", "2", "--total-steps", "64", "--learning-starts", "32", "--batch-size", "16"]
    _cli(["train-rl", "--algo", "sac", "--env", ENV_CONTINUOUS, "--out", "sac", *sac_run, *TINY_EVAL], tmp_path)
    expert = "ppo/policies/seed_0"
    _cli(["rollouts", "--policy", expert, "--env", ENV, "--episodes", "6", "--out", "demos"], tmp_path)
    bc_run = ["--seeds", "2", "--n-epochs", "1", "--batch-size", "16", *TINY_EVAL]
    _cli(["bc", "--env", ENV, "--demos", "demos", "--out", "bc", *bc_run], tmp_path)
    dagger_run = ["--seeds", "2", "--total-timesteps", "96", "--rollout-round-min-timesteps", "32"]
    dagger_run += ["--rollout-round-min-episodes", "1", "--n-batches", "4", "--batch-size", "16", *TINY_EVAL]
    _cli(["dagger", "--env", ENV, "--expert", expert, "--out", "dagger", *dagger_run], tmp_path)
    for algo in ("gail", "airl"):
        run = ["--seeds", "2", "--total-timesteps", "64", "--demo-batch-size", "16", *PPO_FLAGS, *TINY_EVAL]
        _cli([algo, "--env", ENV, "--demos", "demos", "--out", algo, *run], tmp_path)
        assert (tmp_path / algo / "rewards" / "seed_1").is_dir()
    density_run = ["--seeds", "2", "--total-timesteps", "64", *PPO_FLAGS, *TINY_EVAL]
    _cli(["density", "--env", ENV, "--demos", "demos", "--out", "density", *density_run], tmp_path)
    agent = '{"n_envs": 2, "n_steps": 16, "batch_size": 16}'
    pc_run = ["--seeds", "2", "--total-timesteps", "128", "--total-comparisons", "12", "--num-iterations", "2"]
    pc_run += ["--fragment-length", "4", "--agent", "ppo", "--agent-config", agent, *TINY_EVAL]
    _cli(["preference-comparisons", "--env", ENV, "--out", "pc", *pc_run], tmp_path)
    assert (tmp_path / "pc" / "seed_1" / "reward").exists()
    evaluated = _cli(["eval", "--run", "bc", "--n-episodes", "2"], tmp_path)
    assert "mean return" in evaluated.stdout


def test_an_env_that_cannot_be_made_is_one_clear_error_in_every_command(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    for command in (["train-rl", "--algo", "ppo"], ["gail", "--demos", "x"], ["density", "--demos", "x"]):
        proc = subprocess.run(
            ["imitation-fn", *command, "--env", "no_such_module_xyz:Foo-v0", "--no-progress"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in output and "no_such_module_xyz" in output, output
    proc = subprocess.run(
        ["imitation-fn", "train-rl", "--algo", "ppo", "--env", f"{__name__}:TinyPointMulti-v0", "--no-progress"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(Path(__file__).parent)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in output and "MultiDiscrete" in output, output
