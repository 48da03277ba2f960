"""Learning a reward function from preference comparisons (synthetic labels from the true reward).

    python examples/train_preference_comparisons.py
    python examples/train_preference_comparisons.py --tiny

Mirrors ``imitation``'s "Learning a Reward Function using Preference Comparisons" tutorial on Pendulum:
each round samples trajectories from the agent, cuts them into fragment pairs, labels the pairs by
their true return (Bradley–Terry with temperature), trains the reward net on them and the agent (SAC;
PPO in the --tiny smoke test) on the learned reward. Every round of every seed is one vmapped call.
"""

from __future__ import annotations

import tempfile
import time

import torch
from _common import parse_args

from imitation_fn import presets, rewards
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.train import preference_comparisons as tpc


def main() -> None:
    args = parse_args(__doc__ or "")
    env_id = "Pendulum-v1"
    if args.tiny:
        cfg = pc.Config(
            total_timesteps=64,
            total_comparisons=12,
            num_iterations=1,
            fragment_length=10,
            initial_epoch_multiplier=2,
            warning_threshold=0,
            exploration_frac=0.5,
            agent_config={"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1, "net_arch": [16, 16]},
        )
    else:
        cfg = pc.Config(
            total_timesteps=20_000,
            total_comparisons=400,
            num_iterations=10,
            fragment_length=25,
            initial_epoch_multiplier=4,
            exploration_frac=0.05,
            agent="sac",  # Pendulum learns far faster with SAC; rl-zoo's settings
            agent_config=dict(presets.PRESETS["sac", "Pendulum-v1"].config),
        )
    last: dict[str, torch.Tensor] = {}  # each round's metrics, kept by the callback: the last round's stay
    t0 = time.perf_counter()
    result = tpc.train(
        cfg,
        env_id,
        seeds=range(2),
        n_eval_episodes=2 if args.tiny else 10,
        progress=not args.tiny,
        callback=lambda done, states, metrics, evaluation: last.update(metrics),
    )
    print(f"{cfg.total_comparisons} comparisons in {result.steps} rounds, {time.perf_counter() - t0:.1f} s")
    print(f"reward-model accuracy on its last batch: {[round(float(a), 2) for a in last['reward/accuracy']]}")
    print(f"true return of the agents: {[round(float(r), 1) for r in result.eval_returns.mean(-1)]}")

    # The learned reward (and policy) of each seed, saved; the reward loads as a plain function.
    with tempfile.TemporaryDirectory() as tmp:
        paths = tpc.save_artifacts(result, env_id, args.out or tmp)
        reward = rewards.load(paths[0] / "reward")
        print(f"saved {len(paths)} seeds' reward nets, e.g. {type(reward).__name__} from {paths[0] / 'reward'}")


if __name__ == "__main__":
    main()
