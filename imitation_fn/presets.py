"""Named presets: the settings each tested (algorithm, environment) pair starts from.

    preset = presets.get("gail", "seals/CartPole-v0")
    cfg = gail.Config(**preset.config)
    result = train_adversarial(gail, cfg, "seals/CartPole-v0", demos, total_timesteps=preset.total_timesteps)

The CLI (``train-rl``, ``gail``, ``airl``, ``density``, ``preference-comparisons``), the examples and the
benchmarks start from these; flags and ``--config`` override any field. Data only: plain dicts of ``Config``
fields, validated where they are used. Where PPO's or SAC's defaults fail, the RL settings follow rl-zoo's
tuned ones. How each preset was chosen (what was tried, what was measured): benchmarks/README.md,
"Presets: how they were chosen".
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Preset:
    """One (algorithm, env) setting.

    ``config`` holds the algorithm's ``Config`` fields: for GAIL/AIRL ``gen`` holds PPO's; for density, the
    PPO agent's (the density model starts from its defaults); for preference comparisons every field but
    ``total_timesteps``. ``total_timesteps`` is the env steps per seed (generator or agent steps).
    ``target_return`` is the bar the benchmarks check (mean return), None where there is none.
    """

    config: dict[str, Any]
    total_timesteps: int
    target_return: float | None = None


# --- PPO and SAC: the experts (benchmarks/expert_zoo.py checks the bars) -------------------------------------------

_RL: dict[tuple[str, str], Preset] = {
    # rl-zoo's, with shorter rollouts and two minibatches: half the env steps to 475 at the same compute per step.
    ("ppo", "CartPole-v1"): Preset(
        config={
            "n_envs": 8,
            "n_steps": 16,
            "batch_size": 128,
            "n_epochs": 15,
            "lr": 1.5e-3,
            "lr_schedule": "linear",
            "gamma": 0.98,
            "gae_lambda": 0.8,
        },
        total_timesteps=100_000,
        target_return=475.0,
    ),
    # rl-zoo's, with 64x64 networks.
    ("sac", "Pendulum-v1"): Preset(
        config={"net_arch": (64, 64), "lr": 1e-3, "learning_starts": 1000},
        total_timesteps=5_000,
        target_return=-200.0,
    ),
    # rl-zoo's, with minibatches of 256 (4x fewer gradient steps) and 3e5 of its 1e6 steps.
    ("ppo", "Acrobot-v1"): Preset(
        config={
            "n_envs": 16,
            "n_steps": 256,
            "batch_size": 256,
            "n_epochs": 4,
            "gamma": 0.99,
            "gae_lambda": 0.94,
            "ent_coef": 0.0,
            "normalize_obs": True,
        },
        total_timesteps=300_000,
        target_return=-90.0,
    ),
    # rl-zoo's as it is (PPO's defaults fail here), 1e6 steps.
    ("ppo", "MountainCar-v0"): Preset(
        config={
            "n_envs": 16,
            "n_steps": 16,
            "batch_size": 64,
            "n_epochs": 4,
            "gamma": 0.99,
            "gae_lambda": 0.98,
            "ent_coef": 0.0,
            "normalize_obs": True,
        },
        total_timesteps=1_000_000,
        target_return=-115.0,
    ),
    # seals' MuJoCo tasks: rl-zoo's SAC (256x256, batch 256, one gradient step per env step, 1e6 steps; learning
    # from step 10,000, Swimmer with gamma 0.9999). The bars are imitation's experts: Walker2d, Swimmer and Ant as
    # issue 20 states them; HalfCheetah and Hopper the expert returns in imitation's benchmark logs
    # (benchmarking/results/logs_example_bc_seals_*_bhp.csv: 3465.4 and 2630.9), far above the 1615.0 and 204.8
    # the issue quotes (those are not expert-level returns on these tasks).
    **{
        ("sac", f"seals/{name}-v1"): Preset(
            config={"buffer_size": 1_000_000, **extra},
            total_timesteps=1_000_000,
            target_return=bar,
        )
        for name, extra, bar in [
            ("HalfCheetah", dict[str, Any](learning_starts=10_000), 3465.4),
            ("Hopper", {"learning_starts": 10_000}, 2630.9),
            ("Walker2d", {"learning_starts": 10_000}, 2502.9),
            ("Ant", {"learning_starts": 10_000}, 2527.6),
            ("Swimmer", {"gamma": 0.9999}, 295.4),
        ]
    },
    # rl-zoo's Atari PPO (SB3's CnnPolicy: the heads sit right on NatureCNN's features; its clip range is annealed
    # linearly there, constant here). No bar: 1e7 frames-steps are days on two cores.
    **{
        ("ppo", env_id): Preset(
            config={
                "n_envs": 8,
                "n_steps": 128,
                "batch_size": 256,
                "n_epochs": 4,
                "lr": 2.5e-4,
                "lr_schedule": "linear",
                "clip_range": 0.1,
                "ent_coef": 0.01,
                "vf_coef": 0.5,
                "net_arch": (),
            },
            total_timesteps=10_000_000,
        )
        for env_id in ("ALE/Pong-v5", "ALE/Breakout-v5", "PongNoFrameskip-v4", "BreakoutNoFrameskip-v4")
    },
}

# --- GAIL and AIRL (benchmarks/adversarial.py) ----------------------------------------------------------------------

# Many short env slices (64 × 32 = 2048 steps a round, cheap per step), rl-zoo's CartPole discounting, a little entropy.
_CARTPOLE_GEN: dict[str, Any] = {
    "n_envs": 64,
    "n_steps": 32,
    "batch_size": 512,
    "n_epochs": 10,
    "lr": 1e-3,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "ent_coef": 0.01,
}
# A discriminator that becomes informative within a few rounds: 4 Adam steps of lr 3e-3 on normalised inputs.
_CARTPOLE: dict[str, Any] = {
    "gen": _CARTPOLE_GEN,
    "demo_batch_size": 2048,
    "n_disc_updates_per_round": 4,
    "disc_lr": 3e-3,
}
# AIRL: a state-only reward g(s) (its disentangled form) and more entropy: with g(s, a) or 0.01 some seeds stalled.
_CARTPOLE_AIRL: dict[str, Any] = {
    **_CARTPOLE,
    "gen": {**_CARTPOLE_GEN, "ent_coef": 0.03},
    "use_action": False,
}
# rl-zoo's Pendulum discounting; lr 3e-4 keeps the Gaussian's std from collapsing.
_PENDULUM: dict[str, Any] = {
    "gen": {
        "n_envs": 64,
        "n_steps": 32,
        "batch_size": 512,
        "n_epochs": 10,
        "lr": 3e-4,
        "gamma": 0.9,
        "gae_lambda": 0.95,
    },
    "demo_batch_size": 2048,
    "n_disc_updates_per_round": 4,
    "disc_lr": 3e-3,
}
# An exploration problem first: a longer discount and a larger entropy bonus (not benchmarked: no expert data).
_MOUNTAINCAR: dict[str, Any] = {
    "gen": {
        "n_envs": 64,
        "n_steps": 32,
        "batch_size": 512,
        "n_epochs": 10,
        "lr": 1e-3,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.02,
    },
    "demo_batch_size": 2048,
    "n_disc_updates_per_round": 4,
    "disc_lr": 3e-3,
}

_ADVERSARIAL: dict[tuple[str, str], Preset] = {
    ("gail", "seals/CartPole-v0"): Preset(config=_CARTPOLE, total_timesteps=300_000, target_return=475.0),
    ("airl", "seals/CartPole-v0"): Preset(config=_CARTPOLE_AIRL, total_timesteps=300_000, target_return=450.0),
    ("gail", "Pendulum-v1"): Preset(config=_PENDULUM, total_timesteps=500_000, target_return=-372.0),
    ("airl", "Pendulum-v1"): Preset(config=_PENDULUM, total_timesteps=500_000, target_return=-372.0),
    ("gail", "seals/MountainCar-v0"): Preset(config=_MOUNTAINCAR, total_timesteps=500_000, target_return=-120.0),
    ("airl", "seals/MountainCar-v0"): Preset(config=_MOUNTAINCAR, total_timesteps=500_000, target_return=-120.0),
}

# --- Density: the PPO agent on the log-density reward --------------------------------------------------------------

# A fixed-horizon seals variant trains well with its original's PPO preset (same dynamics). Not on Atari: its games
# have no fixed horizon for the density model's time steps.
_TORCH_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
_SAME_DYNAMICS = {"seals/CartPole-v0": "CartPole-v1", "seals/MountainCar-v0": "MountainCar-v0"}
_PPO_ENVS = {env: env for algo, env in _RL if algo == "ppo" and env in _TORCH_ENVS}
_DENSITY: dict[tuple[str, str], Preset] = {
    ("density", env): Preset(config=_RL["ppo", original].config, total_timesteps=_RL["ppo", original].total_timesteps)
    for env, original in {**_PPO_ENVS, **_SAME_DYNAMICS}.items()
}

# --- Preference comparisons (benchmarks/preference_comparisons.py) -------------------------------------------------

_PREFERENCE_COMPARISONS: dict[tuple[str, str], Preset] = {
    # rl-zoo's SAC on 4 envs: -150 from random starts needs a near-optimal policy, ~12k gradient steps.
    ("preference_comparisons", "Pendulum-v1"): Preset(
        config={
            "total_comparisons": 1_000,
            "num_iterations": 20,
            "fragment_length": 25,
            "epochs": 3,
            "initial_epoch_multiplier": 20.0,
            "warning_threshold": 0,
            "agent": "sac",
            "agent_config": {
                "n_envs": 4,
                "train_freq": 4,
                "gradient_steps": 4,
                "net_arch": [64, 64],
                "lr": 1e-3,
                "learning_starts": 1000,
                "buffer_size": 20_000,
            },
        },
        total_timesteps=48_000,
        target_return=-150.0,
    ),
    # A poor agent's fragments mostly tie (1 per upright step): soft labels, a state-only reward, early comparisons.
    ("preference_comparisons", "seals/CartPole-v0"): Preset(
        config={
            "total_comparisons": 500,
            "num_iterations": 10,
            "initial_comparison_frac": 0.4,
            "exploration_frac": 0.25,
            "fragment_length": 25,
            "gatherer_sample": False,
            "reward_use_action": False,
            "epochs": 10,
            "initial_epoch_multiplier": 50.0,
            "warning_threshold": 0,
            "agent": "ppo",
            "agent_config": {
                "n_envs": 8,
                "n_steps": 32,
                "batch_size": 256,
                "n_epochs": 20,
                "lr": 1e-3,
                "gamma": 0.98,
                "gae_lambda": 0.8,
                "ent_coef": 0.01,
            },
        },
        total_timesteps=200_000,
        target_return=450.0,
    ),
}

PRESETS: dict[tuple[str, str], Preset] = {**_RL, **_ADVERSARIAL, **_DENSITY, **_PREFERENCE_COMPARISONS}
"""Every preset by (algorithm, env id); algorithms by module name: ppo, sac, gail, airl, density,
preference_comparisons."""


def get(algorithm: str, env_id: str) -> Preset | None:
    """The preset for ``algorithm`` (a module name: ``"gail"``, ``"preference_comparisons"``) on ``env_id``, or None.

    ``"module:Id"`` (imitation's ``"seals:seals/CartPole-v0"``) names the same environment as ``"Id"``.
    """
    return PRESETS.get((algorithm, env_id.rsplit(":", 1)[-1]))


def env_ids(algorithm: str) -> list[str]:
    """The env ids ``algorithm`` has presets for, in the order above."""
    return [env for algo, env in PRESETS if algo == algorithm]


__all__ = ["PRESETS", "Preset", "env_ids", "get"]
