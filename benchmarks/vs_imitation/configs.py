"""The work both sides do, one dict per algorithm: read by ``ours.py`` and by ``peer.py``.

Standard library only: ``peer.py`` imports this module inside the peer's virtual environment, where
``imitation_fn`` is not installed. Every value here is a hyperparameter or a budget that both sides
set to the same number; ``ours.describe`` and ``peer.describe`` read each side's settings back into
this shape, and ``tests/test_vs_imitation.py`` checks that both equal the dict below.

Where the values come from (``imitation`` 1.0.1 and stable-baselines3 2.2.1):

- ``bc``: ``imitation.algorithms.bc.BC``'s defaults (batch 32, ``FeedForward32Policy``: 32x32 tanh,
  Adam lr 1e-3, ent_weight 1e-3, l2_weight 0), ``train(n_epochs=10)``.
- ``dagger``: ``SimpleDAggerTrainer``'s defaults (linear β over 15 rounds, rounds of ≥ 500 steps and
  ≥ 3 episodes, 4 BC epochs per round), the BC defaults above, 8 envs (``imitation``'s scripts'
  ``num_vec``), 20,000 env steps (``train_imitation``'s ``cartpole`` named config).
- ``gail`` / ``airl``: ``imitation``'s ``train_adversarial`` script with its ``seals_cartpole`` named
  config (what ``imitation``'s benchmark runs): 8 envs, PPO as the ``rl`` ingredient sets it (n_steps
  2048 // 8 = 256, batch 64, 10 epochs, lr 3e-4, ent_coef 0; SB3's other defaults), the ``policy``
  ingredient's ``FeedForward32Policy`` (32x32 tanh, separate policy and value networks in SB3 2.x),
  demo_batch_size 1024, 4 discriminator updates per round, gen_replay_buffer_capacity = the rl batch
  (2048), the ``reward`` ingredient's nets (``BasicRewardNet`` / ``BasicShapedRewardNet`` with
  ``RunningNorm`` inputs, wrapped in ``NormalizedRewardNet``), the discriminator's Adam at torch's
  default lr 1e-3; 300k generator steps instead of the script's 1.4M. GAIL's training reward is
  ``RewardNetFromDiscriminatorLogit(net)``, which calls the net's ``forward`` and so never applies the
  output normalisation: for GAIL the effective setting is ``normalize_output: False``.
- ``density``: ``DensityAlgorithm``'s defaults, PPO with SB3's defaults on 8 envs (the density
  notebook's ``PPO(ActorCriticPolicy, env, learning_rate=3e-4, n_steps=2048)``), 49,152 steps (3 PPO
  iterations).
- ``mce_irl``: ``imitation``'s MCE IRL tutorial on seals' ``CliffWorldEnv`` (7 wide, 4 high, (x, y)
  observations; horizon 40), ``BasicRewardNet(hid_sizes=[256])`` on the state only, Adam lr 1e-2,
  1000 iterations with both stopping tests switched off (``linf_eps = grad_l2_eps = 0``) so both sides
  run all 1000, the demonstrations being the soft-optimal expert's exact occupancy measure.
- ``preference_comparisons``: ``imitation_fn``'s preset for seals/CartPole-v0 (``presets.py``), which
  ``imitation`` expresses one to one: soft labels (``SyntheticGatherer(sample=False)``), a state-only
  ``BasicRewardNet`` without input normalisation, its output normalised (``NormalizedRewardNet``), 40%
  of the comparisons up front, 25% exploration; BasicRewardTrainer's AdamW (weight decay 0.01).
- ``ppo``: SB3's PPO defaults on one env (n_steps 2048, batch 64, 10 epochs, lr 3e-4, 64x64 tanh).
- ``sac``: SB3's SAC defaults (buffer 1e6, learning_starts 100, batch 256, 256x256 ReLU, train_freq 1,
  auto entropy).

``--quick`` budgets (``QUICK``) shrink budgets and rollout sizes for a smoke test; both sides again get
the same numbers.
"""

from __future__ import annotations

import copy
from typing import Any

EXPERTS = "tests/data/experts"
"""Shipped experts and demonstrations, relative to the repository root."""
N_EVAL_EPISODES = 10
"""Episodes of the final, deterministic policy that each seed's return is the mean of."""

# stable-baselines3 2.2.1's PPO defaults (the policy's Adam eps 1e-5 is SB3's for PPO's ActorCriticPolicy).
SB3_PPO: dict[str, Any] = {
    "n_steps": 2048,
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "normalize_advantage": True,
    "net_arch": [64, 64],
    "activation": "tanh",
    "adam_eps": 1e-5,
}

# stable-baselines3 2.2.1's SAC defaults.
SB3_SAC: dict[str, Any] = {
    "buffer_size": 1_000_000,
    "learning_starts": 100,
    "batch_size": 256,
    "tau": 0.005,
    "gamma": 0.99,
    "train_freq": 1,
    "gradient_steps": 1,
    "ent_coef": "auto",
    "target_entropy": "auto",
    "learning_rate": 3e-4,
    "net_arch": [256, 256],
    "activation": "relu",
}

# imitation's BC defaults (BC.__init__ and its FeedForward32Policy).
BC: dict[str, Any] = {
    "batch_size": 32,
    "net_arch": [32, 32],
    "activation": "tanh",
    "learning_rate": 1e-3,
    "ent_weight": 1e-3,
    "l2_weight": 0.0,
}

# imitation's train_adversarial script, seals_cartpole: the rl and policy ingredients' PPO.
_ADVERSARIAL_PPO: dict[str, Any] = {**SB3_PPO, "n_steps": 256, "net_arch": [32, 32]}

ALGOS: dict[str, dict[str, Any]] = {
    "bc": {
        "env": "CartPole-v1",
        "demos": f"{EXPERTS}/CartPole-v1/demos",
        "n_demos": 50,
        "n_epochs": 10,
        "bc": BC,
    },
    "dagger": {
        "env": "CartPole-v1",
        "expert": f"{EXPERTS}/CartPole-v1",
        "n_envs": 8,
        "total_timesteps": 20_000,
        "beta_rampdown_rounds": 15,
        "rollout_round_min_timesteps": 500,
        "rollout_round_min_episodes": 3,
        "bc_epochs_per_round": 4,
        "bc": BC,
    },
    "gail": {
        "env": "seals/CartPole-v0",
        "demos": f"{EXPERTS}/seals_CartPole-v0/demos",
        "n_demos": 50,
        "n_envs": 8,
        "total_timesteps": 300_000,
        "ppo": _ADVERSARIAL_PPO,
        "demo_batch_size": 1024,
        "n_disc_updates_per_round": 4,
        "gen_replay_buffer_capacity": 2048,
        "disc_lr": 1e-3,
        "reward": {
            "net": "BasicRewardNet",
            "hid_sizes": [32, 32],
            "activation": "relu",
            "use_state": True,
            "use_action": True,
            "use_next_state": False,
            "use_done": False,
            "normalize_input": True,
            "normalize_output": False,  # see the module docstring: GAIL's reward bypasses it
        },
    },
    "airl": {
        "env": "seals/CartPole-v0",
        "demos": f"{EXPERTS}/seals_CartPole-v0/demos",
        "n_demos": 50,
        "n_envs": 8,
        "total_timesteps": 300_000,
        "ppo": _ADVERSARIAL_PPO,
        "demo_batch_size": 1024,
        "n_disc_updates_per_round": 4,
        "gen_replay_buffer_capacity": 2048,
        "disc_lr": 1e-3,
        "reward": {
            "net": "BasicShapedRewardNet",
            "reward_hid_sizes": [32],
            "potential_hid_sizes": [32, 32],
            "activation": "relu",
            "discount_factor": 0.99,
            "use_state": True,
            "use_action": True,
            "use_next_state": False,
            "use_done": False,
            "normalize_input": True,
            "normalize_output": True,
        },
    },
    "density": {
        "env": "seals/CartPole-v0",
        "demos": f"{EXPERTS}/seals_CartPole-v0/demos",
        "n_demos": 50,
        "n_envs": 8,
        "total_timesteps": 49_152,
        "ppo": SB3_PPO,
        "density_type": "state_action",
        "kernel": "gaussian",
        "kernel_bandwidth": 0.5,
        "standardise_inputs": True,
        "is_stationary": True,
    },
    "mce_irl": {
        "env": "CliffWorld",
        "width": 7,
        "height": 4,
        "horizon": 40,
        "use_xy_obs": True,
        "hid_sizes": [256],
        "activation": "relu",
        "learning_rate": 1e-2,
        "discount": 1.0,
        "linf_eps": 0.0,
        "grad_l2_eps": 0.0,
        "max_iter": 1000,
        "log_interval": 100,
    },
    "preference_comparisons": {
        "env": "seals/CartPole-v0",
        "n_envs": 8,
        "total_timesteps": 100_000,
        "total_comparisons": 500,
        "num_iterations": 10,
        "fragment_length": 25,
        "transition_oversampling": 1.0,
        "initial_comparison_frac": 0.4,
        "initial_epoch_multiplier": 50.0,
        "query_schedule": "hyperbolic",
        "comparison_queue_size": None,
        "fragmenter_warning_threshold": 0,
        "exploration_frac": 0.25,
        "switch_prob": 0.5,
        "random_prob": 0.5,
        "gatherer": {"temperature": 1.0, "discount_factor": 1.0, "sample": False, "threshold": 50.0},
        "preference_model": {"noise_prob": 0.0, "discount_factor": 1.0, "threshold": 50.0},
        "reward_trainer": {"epochs": 10, "batch_size": 32, "minibatch_size": None, "lr": 1e-3, "weight_decay": 0.01},
        "reward": {
            "net": "BasicRewardNet",
            "hid_sizes": [32, 32],
            "activation": "relu",
            "use_state": True,
            "use_action": False,
            "use_next_state": False,
            "use_done": False,
            "normalize_input": False,
            "normalize_output": True,
        },
        "ppo": {
            **SB3_PPO,
            "n_steps": 32,
            "batch_size": 256,
            "n_epochs": 20,
            "learning_rate": 1e-3,
            "gamma": 0.98,
            "gae_lambda": 0.8,
            "ent_coef": 0.01,
        },
    },
    "ppo": {"env": "CartPole-v1", "n_envs": 1, "total_timesteps": 100_000, "ppo": SB3_PPO},
    "sac": {"env": "Pendulum-v1", "n_envs": 1, "total_timesteps": 10_000, "sac": SB3_SAC},
}

QUICK: dict[str, dict[str, Any]] = {
    "bc": {"n_demos": 10, "n_epochs": 1},
    "dagger": {"total_timesteps": 2_000},
    "gail": {"n_demos": 10, "total_timesteps": 2_048},
    "airl": {"n_demos": 10, "total_timesteps": 2_048},
    "density": {"n_demos": 4, "total_timesteps": 2_048, "ppo": {"n_steps": 256}},
    "mce_irl": {"max_iter": 20},
    "preference_comparisons": {
        "total_timesteps": 2_048,
        "total_comparisons": 40,
        "num_iterations": 2,
        "reward_trainer": {"epochs": 1},
        "initial_epoch_multiplier": 2.0,
    },
    "ppo": {"total_timesteps": 2_048},
    "sac": {"total_timesteps": 200},
}
"""``--quick``: overrides of ``ALGOS`` (merged key by key) for a smoke test of every algorithm in a few minutes."""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def spec(algo: str, quick: bool = False) -> dict[str, Any]:
    """The settings of ``algo`` (a fresh copy), with the ``--quick`` overrides when ``quick``."""
    if algo not in ALGOS:
        raise KeyError(f"unknown algorithm {algo!r}; expected one of {', '.join(ALGOS)}")
    return _merge(ALGOS[algo], QUICK[algo]) if quick else copy.deepcopy(ALGOS[algo])


__all__ = ["ALGOS", "BC", "EXPERTS", "N_EVAL_EPISODES", "QUICK", "SB3_PPO", "SB3_SAC", "spec"]
