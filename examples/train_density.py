"""Density-based reward modelling: reward = log-density of the expert's states, then PPO on that reward.

    python examples/train_density.py
    python examples/train_density.py --tiny

Mirrors ``imitation``'s "Learning a Reward Function using Kernel Density" tutorial on the fixed-horizon
seals/CartPole-v0 (IRL needs fixed horizons: variable ones leak the reward through episode length).
"""

from __future__ import annotations

import torch
from _common import parse_args

from imitation_fn import envs
from imitation_fn.algorithms import density
from imitation_fn.core import random
from imitation_fn.data import rollout
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.policies.simple import random_policy
from imitation_fn.rl import ppo
from imitation_fn.train import density as density_training


def main() -> None:
    args = parse_args(__doc__ or "")
    env_id = "seals/CartPole-v0"
    env = envs.make(env_id, n_envs=4)
    expert = rollout.generate_trajectories(env, cartpole_expert, random.key(0), min_episodes=4)[:4]

    # The density model alone: expert behaviour should score higher than random behaviour.
    cfg = density.Config(
        density_type=density.DensityType.STATE_ACTION_DENSITY, kernel="exponential", kernel_bandwidth=2.0
    )
    model = density.fit(cfg, density.demo_points(cfg, expert, env.observation_space, env.action_space))
    rand = rollout.generate_trajectories(env, random_policy(env.action_space), random.key(1), min_episodes=4)[:4]
    score = density.reward_fn(model)
    for name, trajs in (("expert", expert), ("random", rand)):
        t = trajs[0]
        rews = score(t.obs[:-1], t.acts, t.obs[1:], None, torch.arange(len(t.acts)))
        print(f"{name} episode: mean log-density reward {float(rews.mean()):.2f}")

    # PPO on the density reward, several seeds vmapped.
    rl_cfg = (
        ppo.Config(n_envs=4, n_steps=16, batch_size=32, n_epochs=2, lr=1e-3)
        if args.tiny
        else ppo.Config(  # rl-zoo's CartPole settings
            n_envs=8, n_steps=32, batch_size=256, n_epochs=20, lr=1e-3, lr_schedule="linear", gamma=0.98, gae_lambda=0.8
        )
    )
    result = density_training.train_policy(
        cfg.model_copy(update={"rl": rl_cfg}),
        env_id,
        expert,
        seeds=range(2 if args.tiny else 4),
        total_timesteps=128 if args.tiny else 40 * 256,
        n_eval_episodes=2 if args.tiny else 10,
        progress=not args.tiny,
    )
    print(f"true return of the learned policies: {[round(float(r), 1) for r in result.eval_returns.mean(-1)]}")


if __name__ == "__main__":
    main()
