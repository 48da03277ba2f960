"""DAgger: the learner acts, the expert labels what it visits, BC trains on the growing aggregate.

    python examples/train_dagger.py
    python examples/train_dagger.py --tiny

Mirrors ``imitation``'s "Train an Agent using the DAgger Algorithm" tutorial, with the shipped PPO
expert for CartPole as the (queryable) expert and 4 seeds trained as one vmapped computation.
"""

from __future__ import annotations

import tempfile

from _common import parse_args

from imitation_fn.algorithms import dagger
from imitation_fn.policies import load_policy, zoo
from imitation_fn.train.dagger import train_dagger


def main() -> None:
    args = parse_args(__doc__ or "")
    env_id = "CartPole-v1"
    expert = load_policy(zoo.expert_path(env_id)).policy_fn()  # any (obs, key) -> action works here
    cfg = dagger.Config()
    if args.tiny:  # rounds of 64 steps, 3 BC steps each
        cfg = dagger.Config(
            n_envs=4, batch_size=32, rollout_round_min_episodes=0, rollout_round_min_timesteps=64, n_batches=3
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = train_dagger(
            cfg,
            env_id,
            expert,
            seeds=range(2 if args.tiny else 4),
            total_timesteps=256 if args.tiny else 4000,
            n_eval_episodes=2 if args.tiny else 10,
            eval_every=None,
            scratch_dir=args.out or tmp,  # per-round datasets, checkpoints, policies: resumable
            progress=not args.tiny,
        )
    print(f"rounds per seed: {result.states.round.tolist()}; env steps per seed: {result.states.timesteps.tolist()}")
    print(f"final return per seed: {[round(float(r), 1) for r in result.eval_returns.mean(-1)]}")
    print(f"expert: {zoo.summary(env_id)['return_mean']:.1f}")


if __name__ == "__main__":
    main()
