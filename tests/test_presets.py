"""The named presets: every one is a valid config of its algorithm, found by (algorithm, env id)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imitation_fn import envs, presets
from imitation_fn.algorithms import airl, gail
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.envs import atari, seals_mujoco
from imitation_fn.rl import ppo, sac

CONFIGS = {
    "ppo": ppo.Config,
    "sac": sac.Config,
    "gail": gail.Config,
    "airl": airl.Config,
    "density": ppo.Config,  # the PPO agent's; the density model starts from its defaults
}


@pytest.mark.parametrize(("algorithm", "env_id"), sorted(presets.PRESETS))
def test_every_preset_is_a_valid_config_on_a_known_env(algorithm: str, env_id: str) -> None:
    preset = presets.get(algorithm, env_id)
    assert preset is not None and preset.total_timesteps > 0
    if algorithm == "preference_comparisons":
        assert "total_timesteps" not in preset.config  # the budget lives in Preset.total_timesteps
        pc.Config(**preset.config, total_timesteps=preset.total_timesteps)
    else:
        CONFIGS[algorithm](**preset.config)
    # A torch env, one of seals' MuJoCo tasks the package registers with gymnasium, or an Atari game (host envs).
    assert (
        env_id in envs.registered_ids()
        or env_id in {f"seals/{n}-v1" for n in seals_mujoco.SEALS_MUJOCO}
        or atari.is_atari(env_id)
    )


def test_get_and_env_ids() -> None:
    assert presets.get("ppo", "seals/CartPole-v0") is None  # train-rl has no preset there
    assert presets.get("gail", "CartPole-v1") is None
    assert presets.get("bc", "CartPole-v1") is None
    assert presets.get("gail", "seals:seals/CartPole-v0") == presets.get("gail", "seals/CartPole-v0") is not None
    assert presets.env_ids("preference_comparisons") == ["Pendulum-v1", "seals/CartPole-v0"]
    assert presets.env_ids("bc") == []


def test_density_uses_the_ppo_preset_of_the_env_or_of_its_original() -> None:
    for env_id, original in [
        ("CartPole-v1", "CartPole-v1"),
        ("Acrobot-v1", "Acrobot-v1"),
        ("MountainCar-v0", "MountainCar-v0"),
        ("seals/CartPole-v0", "CartPole-v1"),  # fixed horizon, same dynamics
        ("seals/MountainCar-v0", "MountainCar-v0"),
    ]:
        found, ppo_preset = presets.get("density", env_id), presets.get("ppo", original)
        assert found is not None and ppo_preset is not None
        assert (found.config, found.total_timesteps) == (ppo_preset.config, ppo_preset.total_timesteps)
        assert found.target_return is None  # PPO's expert bar is not density's
    assert presets.env_ids("density") == [
        "CartPole-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "seals/CartPole-v0",
        "seals/MountainCar-v0",
    ]
    assert presets.get("density", "Pendulum-v1") is None  # no PPO preset for Pendulum


def test_presets_module_imports_nothing_from_the_package() -> None:
    """Data only: importable from every layer (training, cli, sweeps, benchmarks) without cycles."""
    tree = ast.parse(Path(presets.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith("imitation_fn")], imported
