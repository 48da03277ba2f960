"""GAIL and AIRL on the fixed-horizon CartPole: a discriminator learns the reward, PPO learns the policy.

    python examples/train_adversarial.py
    python examples/train_adversarial.py --tiny

Mirrors ``imitation``'s "Train an Agent using Generative Adversarial Imitation Learning" and "... Adversarial
Inverse Reinforcement Learning" tutorials, on the shipped expert's 50 episodes of seals/CartPole-v0 (fixed
horizon: with termination the episode length alone would tell the discriminator who is who). Every seed
trains in the same vmapped computation; the presets are the hyperparameters the benchmark uses.
"""

from __future__ import annotations

from _common import parse_args

from imitation_fn import presets
from imitation_fn.algorithms import airl, gail
from imitation_fn.data import serialize
from imitation_fn.policies import zoo
from imitation_fn.train import adversarial as driver


def main() -> None:
    args = parse_args(__doc__ or "")
    env_id = "seals/CartPole-v0"
    demos = serialize.load(zoo.demos_path(env_id))  # 50 expert episodes, 500 steps each
    for algo in (gail, airl):
        name = algo.__name__.rsplit(".", 1)[-1]
        preset = presets.get(name, env_id)
        assert preset is not None
        overrides = (
            {"gen": {"n_envs": 8, "n_steps": 16, "batch_size": 64, "n_epochs": 2}, "demo_batch_size": 128}
            if args.tiny
            else {}
        )
        cfg = algo.Config(**{**preset.config, **overrides})
        result = driver.train_adversarial(
            algo,
            cfg,
            env_id,
            demos,
            seeds=range(2 if args.tiny else 4),
            total_timesteps=2 * 8 * 16 if args.tiny else preset.total_timesteps,
            n_eval_episodes=2 if args.tiny else 20,
            log_dir=None if args.out is None else f"{args.out}/{name}",
            progress=not args.tiny,
        )
        print(f"{name}: true return per seed {[round(float(r), 1) for r in result.eval_returns.mean(-1)]}")
    print("done: GAIL and AIRL trained")


if __name__ == "__main__":
    main()
