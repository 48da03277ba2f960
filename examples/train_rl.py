"""Reinforcement learning: PPO on CartPole and SAC on Pendulum, several seeds in one vmapped run each.

    python examples/train_rl.py
    python examples/train_rl.py --tiny

The RL algorithms are what the imitation algorithms train their policies with (GAIL, AIRL, density,
preference comparisons) and how the expert zoo was made. ``imitation_fn.presets`` holds rl-zoo's tuned settings.
"""

from __future__ import annotations

import tempfile

from _common import parse_args

from imitation_fn import envs, presets
from imitation_fn.policies import load_policy
from imitation_fn.rl import ppo, sac
from imitation_fn.train.rl import save_policies, train_rl


def main() -> None:
    args = parse_args(__doc__ or "")
    # PPO on CartPole with rl-zoo's hyperparameters (a preset), 4 seeds vmapped.
    preset = presets.get("ppo", "CartPole-v1")
    assert preset is not None
    ppo_cfg = ppo.Config(n_envs=4, n_steps=16, batch_size=32, n_epochs=2) if args.tiny else ppo.Config(**preset.config)
    result = train_rl(
        ppo,
        ppo_cfg,
        "CartPole-v1",
        seeds=range(2 if args.tiny else 4),
        total_timesteps=128 if args.tiny else preset.total_timesteps,
        n_eval_episodes=2 if args.tiny else 10,
        progress=not args.tiny,
    )
    print(f"PPO on CartPole-v1: returns per seed {[round(float(r), 1) for r in result.eval_returns.mean(-1)]}")

    # Save each seed's policy; it loads without the training code (and as an expert for BC/DAgger).
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_policies(ppo, result, envs.make("CartPole-v1"), args.out or tmp)
        policy = load_policy(paths[0])
        print(f"saved {len(paths)} policies; seed 0's loads as {type(policy).__name__}")

    # SAC on Pendulum.
    sac_cfg = (
        sac.Config(n_envs=2, net_arch=(32, 32), batch_size=32, learning_starts=32)
        if args.tiny
        else sac.Config(n_envs=4, learning_starts=1000)
    )
    result = train_rl(
        sac,
        sac_cfg,
        "Pendulum-v1",
        seeds=range(2),
        total_timesteps=64 if args.tiny else 20_000,
        n_eval_episodes=2 if args.tiny else 10,
        progress=not args.tiny,
    )
    print(f"SAC on Pendulum-v1: returns per seed {[round(float(r), 1) for r in result.eval_returns.mean(-1)]}")


if __name__ == "__main__":
    main()
