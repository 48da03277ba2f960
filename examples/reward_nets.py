"""Reward networks as pure functions: build, fit (vmapped over seeds), save, load, and train a policy on one.

    python examples/reward_nets.py
    python examples/reward_nets.py --tiny

A reward net is a frozen spec plus a params dict: ``net.apply(params, obs, acts, next_obs, dones)``.
Here 4 seeds of ``BasicRewardNet`` are regressed onto Pendulum's true reward in one vmapped loop
(``torch.func.grad`` + an optax-style Adam), the best is saved, loaded back as a plain
``reward_fn`` and handed to PPO — what AIRL, GAIL and preference comparisons produce.
"""

from __future__ import annotations

import tempfile

import torch
from _common import parse_args

from imitation_fn import envs, rewards
from imitation_fn.core import optim, random, tree
from imitation_fn.data import flatten_trajectories, rollout
from imitation_fn.policies.simple import random_policy
from imitation_fn.rl import ppo
from imitation_fn.train.rl import train_rl


def main() -> None:
    args = parse_args(__doc__ or "")
    env = envs.make("Pendulum-v1", n_envs=4)
    trajs = rollout.generate_trajectories(env, random_policy(env.action_space), random.key(0), min_episodes=4)
    data = flatten_trajectories(trajs)  # Transitions (with next_obs and dones)
    true_rews = torch.cat([t.rews for t in trajs])
    print(f"{len(data)} transitions from a random policy")

    net = rewards.BasicRewardNet(env.observation_space, env.action_space, hid_sizes=(32, 32))
    opt = optim.adam(1e-2)

    def loss(params: rewards.Params) -> torch.Tensor:
        pred = net.apply(params, data.obs, data.acts, data.next_obs, data.dones)
        return ((pred - true_rews) ** 2).mean()

    def step(params: rewards.Params, opt_state: object) -> tuple[rewards.Params, object, torch.Tensor]:
        grads, value = torch.func.grad_and_value(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), opt_state, value

    # Four seeds at once: vmap over init keys, then over the (params, opt_state) of each seed.
    params = torch.func.vmap(net.init)(random.split(random.key(1), 4))
    opt_state = torch.func.vmap(opt.init)(params)
    vstep = torch.func.vmap(step)
    for _ in range(20 if args.tiny else 1000):
        params, opt_state, mse = vstep(params, opt_state)
    print(f"mean squared error per seed: {[round(float(m), 2) for m in mse]}")

    best = tree.index(params, int(mse.argmin()))
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{args.out or tmp}/reward"
        rewards.save(path, net, best)
        reward_fn = rewards.load_reward("unnormalized", path, env)  # checks the spaces match
        obs = data.obs[:3]
        print(
            "loaded reward on 3 transitions:", reward_fn(obs, data.acts[:3], data.next_obs[:3], data.dones[:3]).tolist()
        )

        # Train PPO on the learned reward; evaluation still reports Pendulum's true return.
        cfg = (
            ppo.Config(n_envs=2, n_steps=16, batch_size=32, n_epochs=1)
            if args.tiny
            else ppo.Config(n_envs=8, n_steps=256, batch_size=256, n_epochs=10, gae_lambda=0.95, normalize_obs=True)
        )
        result = train_rl(
            ppo,
            cfg,
            "Pendulum-v1",
            seeds=range(2),
            total_timesteps=64 if args.tiny else 100_000,
            n_eval_episodes=2 if args.tiny else 10,
            reward_fn=reward_fn,
            progress=not args.tiny,
        )
    returns = [round(float(r), 1) for r in result.eval_returns.mean(-1)]
    print(f"true return of PPO trained on the learned reward: {returns}")


if __name__ == "__main__":
    main()
