"""seals' MuJoCo family under seals' ids, registered with gymnasium: ``gymnasium.make("seals/Hopper-v1")``.

seals (HumanCompatibleAI/seals 0.2.1, ``seals/mujoco.py`` on gymnasium 0.29) renovates gymnasium's
``*-v4`` MuJoCo environments for imitation learning: the observation keeps the current positions
(``exclude_current_positions_from_observation=False``), and Ant, Hopper, Humanoid and Walker2d never
end early (``terminate_when_unhealthy=False``), so every episode runs the full horizon of 1,000 steps
and its length says nothing about the reward. Observation sizes: HalfCheetah 18, Hopper 12, Swimmer 10,
Walker2d 18, Ant 29, Humanoid 378. The seals package itself, when installed, keeps its own
registrations. Needs the ``mujoco`` extra only when an environment is made.
"""

from __future__ import annotations

import gymnasium as gym

HORIZON = 1000

# name -> whether the env can end early (then seals turns that off)
SEALS_MUJOCO: dict[str, bool] = {
    "Ant": True,
    "HalfCheetah": False,
    "Hopper": True,
    "Humanoid": True,
    "Swimmer": False,
    "Walker2d": True,
}
MODULES = {
    "Ant": "ant_v4",
    "HalfCheetah": "half_cheetah_v4",
    "Hopper": "hopper_v4",
    "Humanoid": "humanoid_v4",
    "Swimmer": "swimmer_v4",
    "Walker2d": "walker2d_v4",
}


def env_id(name: str) -> str:
    return f"seals/{name}-v1"


def register() -> None:
    """Register ``seals/<Name>-v1`` for each environment with gymnasium (ids already there are kept)."""
    for name, can_end_early in SEALS_MUJOCO.items():
        if env_id(name) in gym.registry:
            continue
        kwargs: dict[str, bool] = {"exclude_current_positions_from_observation": False}
        if can_end_early:
            kwargs["terminate_when_unhealthy"] = False
        gym.register(
            id=env_id(name),
            entry_point=f"gymnasium.envs.mujoco.{MODULES[name]}:{name}Env",
            max_episode_steps=HORIZON,
            kwargs=kwargs,
        )


__all__ = ["HORIZON", "SEALS_MUJOCO", "env_id", "register"]
