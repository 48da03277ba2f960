"""Maximum-causal-entropy IRL on CliffWorld: recover a reward whose soft-optimal policy visits what the expert visits.

    python examples/train_mce_irl.py
    python examples/train_mce_irl.py --tiny

Mirrors ``imitation``'s "Learn a Reward Function using Maximum Conditional Entropy IRL" tutorial: the
expert is the soft-optimal policy of the true reward, its occupancy measure is the demonstration, and
several reward-net seeds train as one vmapped computation.
"""

from __future__ import annotations

from _common import parse_args

from imitation_fn.algorithms import mce_irl
from imitation_fn.core import tree
from imitation_fn.envs.tabular import cliff_world
from imitation_fn.train import mce_irl as mce_training


def main() -> None:
    args = parse_args(__doc__ or "")
    mdp = cliff_world(width=7, height=4, horizon=10 if args.tiny else 40, use_xy_obs=True)
    _, _, expert_pi = mce_irl.mce_partition_fh(mdp)  # soft-optimal under the true reward
    _, expert_occupancy = mce_irl.mce_occupancy_measures(mdp, pi=expert_pi)

    cfg = mce_irl.Config(max_iter=20 if args.tiny else 3000)  # a [32, 32] MLP reward over (x, y)
    result = mce_training.train(cfg, mdp, expert_occupancy, seeds=range(2 if args.tiny else 4))
    linf = (mce_training.occupancies(result.states, mdp) - expert_occupancy).abs().amax(-1)
    print(f"occupancy L-inf per seed after {result.steps} iterations: {[f'{float(x):.1e}' for x in linf]}")

    expert_return = float(mce_irl.expected_return(mdp, expert_pi))
    learned = [  # exact expected return (not sampled) of each seed's soft-optimal policy, under the true reward
        float(mce_irl.expected_return(mdp, mce_irl.policy(tree.index(result.states, i)).pi)) for i in range(len(linf))
    ]
    print(f"expert return {expert_return:.2f}")
    print(f"learned-policy return per seed: {[round(r, 2) for r in learned]}")


if __name__ == "__main__":
    main()
