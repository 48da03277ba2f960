"""Behavioural cloning: clone the shipped CartPole expert from its demonstrations, 8 seeds in one vmapped run.

    python examples/train_bc.py            # ~1 minute on a laptop CPU
    python examples/train_bc.py --tiny     # a few seconds (what the test suite runs)

Mirrors ``imitation``'s "Train an Agent using Behavior Cloning" tutorial: load demonstrations, train BC,
and compare the learner's return with the expert's.
"""

from __future__ import annotations

from _common import parse_args

from imitation_fn import envs
from imitation_fn.algorithms import bc
from imitation_fn.core import random, tree
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.policies import zoo
from imitation_fn.train import train


def main() -> None:
    args = parse_args(__doc__ or "")
    env_id = "CartPole-v1"
    # 1. Demonstrations: 50 episodes of a PPO expert ship with the library (imitation-compatible datasets).
    trajectories = serialize.load(zoo.demos_path(env_id))[: 2 if args.tiny else 10]
    print(f"{len(trajectories)} expert episodes, {sum(len(t.acts) for t in trajectories)} transitions")
    transitions = flatten_trajectories(trajectories)

    # 2. Behavioural cloning, every seed at once: init and update are vmapped over the seeds.
    env = envs.make(env_id, n_envs=2 if args.tiny else 10)  # evaluation episodes per seed
    result = train(
        bc,
        bc.Config(batch_size=64 if args.tiny else 256),
        transitions,
        env,
        seeds=range(2 if args.tiny else 8),
        n_batches=20 if args.tiny else 1000,
        log_dir=args.out,
        progress=not args.tiny,
    )

    # 3. The learner against the expert (final evaluation: one row per seed).
    for seed, returns in zip(result.seeds, result.eval_returns, strict=True):
        print(f"seed {seed}: return {returns.mean():.1f}")
    print(f"mean over seeds: {result.eval_returns.mean():.1f} (expert: {zoo.summary(env_id)['return_mean']:.1f})")

    # 4. The trained policy is a plain function (obs, key) -> action; take seed 0's state.
    policy = bc.policy(tree.index(result.states, 0))
    obs = env.reset(random.key(0)).obs
    print("actions of seed 0 on a reset batch:", policy(obs, random.key(1)).tolist())


if __name__ == "__main__":
    main()
