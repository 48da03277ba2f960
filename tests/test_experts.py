"""The shipped expert zoo (benchmarks/expert_zoo.py): every expert loads and clears the issue's bar.

Each bar is the mean return over 50 episodes of the saved deterministic policy on our torch env.
An env whose files are absent is skipped with a message (train it with the script).
"""

from pathlib import Path

import pytest
import torch

from imitation_fn import envs
from imitation_fn.core import random
from imitation_fn.data import serialize
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.policies import load_policy, zoo

BARS = {"CartPole-v1": 475.0, "Acrobot-v1": -90.0, "Pendulum-v1": -200.0, "MountainCar-v0": -115.0}
N_EPISODES = 50


def _expert_dir(env_id: str) -> Path:
    try:
        return zoo.expert_path(env_id)
    except FileNotFoundError as e:
        pytest.skip(f"no shipped expert for {env_id}: {e}")


@pytest.mark.parametrize("env_id", sorted(BARS))
def test_expert_clears_its_bar(env_id: str) -> None:
    policy = load_policy(_expert_dir(env_id))
    env = envs.make(env_id, n_envs=N_EPISODES)
    with torch.no_grad():
        returns = evaluate_policy(env, policy.policy_fn(deterministic=True), random.key(0)).returns
    assert float(returns.mean()) >= BARS[env_id], f"{env_id}: mean return {float(returns.mean()):.1f}"
    # The summary reports this very evaluation (key 0), and the held-out one also clears the bar.
    summary = zoo.summary(env_id)
    assert summary["return_mean"] == pytest.approx(float(returns.mean()), abs=1e-3)
    assert summary["heldout_return_mean"] >= BARS[env_id]


@pytest.mark.parametrize("env_id", [*sorted(BARS), "seals/CartPole-v0"])
def test_expert_demos_fit_the_env(env_id: str) -> None:
    _expert_dir(env_id)
    trajs = serialize.load_with_rewards(zoo.demos_path(env_id))
    env = envs.make(env_id)
    assert len(trajs) == N_EPISODES
    obs_shape = tuple(env.observation_space.shape or ())
    assert all(tuple(t.obs.shape[1:]) == obs_shape and len(t.obs) == len(t.acts) + 1 for t in trajs)
    mean = sum(float(t.rews.sum()) for t in trajs) / len(trajs)
    assert mean == pytest.approx(zoo.summary(env_id)["demos"]["return_mean"], abs=1e-3)
    if env_id in BARS:
        assert mean >= BARS[env_id]


def test_seals_cartpole_expert_is_the_cartpole_one() -> None:
    seals, gym_ = _expert_dir("seals/CartPole-v0"), _expert_dir("CartPole-v1")
    a, b = load_policy(seals), load_policy(gym_)
    assert all(torch.equal(a.params["pi"][k], b.params["pi"][k]) for k in b.params["pi"])
    assert zoo.summary("seals/CartPole-v0")["return_mean"] >= 475.0  # upright for (nearly) all 500 steps


def test_expert_path_names_what_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path))
    (tmp_path / "seals_CartPole-v0" / "demos").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError, match=r"no shipped expert policy for 'Hopper-v5'.*available: seals_CartPole-v0"
    ):
        zoo.expert_path("Hopper-v5")
    assert zoo.demos_path("seals/CartPole-v0") == tmp_path / "seals_CartPole-v0" / "demos"
    assert zoo.experts_dir() == tmp_path
