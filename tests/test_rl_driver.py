"""The RL driver and its CLI: vmapped seeds, resume, saved policies that act like the trained ones."""

import functools
from pathlib import Path

import pytest
import torch

from imitation_fn import envs
from imitation_fn.cli import main
from imitation_fn.core import checks, random, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import serialize
from imitation_fn.policies import load_policy
from imitation_fn.rl import ppo
from imitation_fn.train.rl import save_policies, train_rl

CFG = ppo.Config(n_envs=4, n_steps=16, batch_size=32, n_epochs=2, lr=1e-3)
run = functools.partial(
    train_rl, ppo, CFG, "CartPole-v1", total_timesteps=4 * 16 * 3, n_eval_episodes=2, progress=False
)


def test_seed_results_do_not_depend_on_the_sweep() -> None:
    alone, sweep = run(seeds=[1]), run(seeds=[0, 1, 2])
    assert alone.steps == sweep.steps == 192
    checks.assert_trees_allclose(
        tree.index(sweep.states, 1).params, tree.index(alone.states, 0).params, rtol=1e-5, atol=1e-6
    )
    assert sweep.eval_returns.shape == (3, 2)


def test_resume_continues_to_the_same_result(tmp_path: Path) -> None:
    full = run(seeds=[0, 1])
    run(seeds=[0, 1], total_timesteps=128, log_dir=tmp_path)  # stopped after 2 of 3 iterations
    resumed = run(seeds=[0, 1], log_dir=tmp_path, resume=True)
    checks.assert_trees_allclose(resumed.states.params, full.states.params, rtol=0, atol=0)


def test_saved_policies_act_like_the_trained_ones(tmp_path: Path) -> None:
    result = run(seeds=[0, 1])
    env = envs.make("CartPole-v1", n_envs=5)
    paths = save_policies(ppo, result, env, tmp_path)
    obs = env.reset(random.key(3)).obs
    for i, path in enumerate(paths):
        expected = ppo.policy(tree.index(result.states, i))(obs, random.key(0))
        assert torch.equal(load_policy(path).policy_fn()(obs, random.key(0)), expected)


def test_an_env_whose_spaces_no_policy_takes_is_refused_with_a_reason() -> None:
    # Gymnasium-only envs train on the host (tests/test_host_envs.py); FrozenLake's Discrete observations do not.
    with pytest.raises(InputError, match=r"observation space Discrete\(16\) is not supported"):
        train_rl(ppo, CFG, "FrozenLake-v1", total_timesteps=10, progress=False)


def test_cli_train_rl_saves_policies_and_demos(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    flags = "--no-preset --n-envs 4 --n-steps 16 --batch-size 32 --n-epochs 2 --total-steps 128 --seeds 2"
    assert (
        main(["train-rl", "--algo", "ppo", "--out", str(out), "--save-demos", "3", "--no-progress", *flags.split()])
        == 0
    )
    assert (out / "policies" / "seed_0" / "policy.safetensors").is_file()
    assert len(serialize.load(out / "demos")) == 3
    capsys.readouterr()
    assert main(["eval", "--policy", str(out / "policies" / "seed_1"), "--n-episodes", "2"]) == 0
    assert "mean return" in capsys.readouterr().out
    assert (
        main(
            [
                "rollouts",
                "--policy",
                str(out / "policies" / "seed_1"),
                "--env",
                "CartPole-v1",
                "--episodes",
                "2",
                "--out",
                str(tmp_path / "ro"),
            ]
        )
        == 0
    )
    assert len(serialize.load(tmp_path / "ro")) == 2
    assert main(["train-rl", "--algo", "sac", "--clip-range", "0.1", "--env", "Pendulum-v1"]) == 2
    assert main(["train-rl", "--algo", "ppo", "--env", "Acrobot-v1", "--no-preset"]) == 2  # no steps given


def test_reward_fn_replaces_the_environment_reward_in_training() -> None:
    """A constant learned reward leaves PPO nothing to learn from advantages; the env reward does not."""
    env_reward = run(seeds=[0])
    zero = run(seeds=[0], reward_fn=lambda obs, acts, next_obs, dones: torch.zeros(obs.shape[0]))
    same_zero = run(seeds=[0], reward_fn=lambda obs, acts, next_obs, dones: torch.zeros(obs.shape[0]))
    checks.assert_trees_allclose(zero.states.params, same_zero.states.params, rtol=0, atol=0)
    assert not tree.allclose(zero.states.params, env_reward.states.params)


def test_cli_train_rl_on_a_saved_reward(tmp_path: Path) -> None:
    from imitation_fn import rewards

    env = envs.make("CartPole-v1", n_envs=1)
    net = rewards.BasicRewardNet(env.observation_space, env.action_space)
    rewards.save(tmp_path / "reward", net, net.init(random.key(0)))
    flags = "--no-preset --n-envs 4 --n-steps 16 --batch-size 32 --n-epochs 2 --total-steps 64 --no-progress"
    argv = ["train-rl", "--reward", str(tmp_path / "reward"), "--reward-kind", "unnormalized", *flags.split()]
    assert main(argv) == 0
    # The saved net was built for CartPole's spaces: another env is refused with a reason.
    assert main([*argv, "--env", "Pendulum-v1"]) == 2
