"""Shipped expert policies: ``expert_path("CartPole-v1")`` finds the one ``benchmarks/expert_zoo.py`` trained.

    from imitation_fn.policies import load_policy, zoo
    expert = load_policy(zoo.expert_path("CartPole-v1"))
    demos = serialize.load(zoo.demos_path("seals/CartPole-v0"))

Experts live in ``$IMITATION_FN_EXPERTS`` when that variable is set, else in the repository's
``tests/data/experts``, one directory per environment id with ``/`` replaced by ``_``:
``policy.safetensors`` + ``policy.json`` (:func:`~imitation_fn.policies.io.save_policy`), ``demos/``
(50 expert episodes, :mod:`imitation_fn.data.serialize`) and ``summary.json`` (the expert's return).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV_VAR = "IMITATION_FN_EXPERTS"
_REPO_EXPERTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "experts"


def experts_dir() -> Path:
    """The directory searched for experts: ``$IMITATION_FN_EXPERTS`` or the repository's ``tests/data/experts``."""
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else _REPO_EXPERTS


def env_dir_name(env_id: str) -> str:
    """``"seals/CartPole-v0"`` -> ``"seals_CartPole-v0"``: the directory of an environment's expert."""
    return env_id.replace("/", "_").replace(":", "_")


def available() -> list[str]:
    """Directory names (``env_dir_name``) under :func:`experts_dir` holding a policy or demos, sorted."""
    root = experts_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "policy.json").is_file() or (p / "demos").is_dir())


def _missing(env_id: str, what: str) -> FileNotFoundError:
    have = ", ".join(available()) or "none"
    return FileNotFoundError(
        f"no shipped expert {what} for {env_id!r} in {experts_dir()} (available: {have}). "
        f"Train one with `python benchmarks/expert_zoo.py --env {env_id}` or point ${ENV_VAR} at a directory."
    )


def expert_path(env_id: str) -> Path:
    """The directory of ``env_id``'s expert policy (pass it to :func:`~imitation_fn.policies.load_policy`)."""
    path = experts_dir() / env_dir_name(env_id)
    if not (path / "policy.json").is_file() or not (path / "policy.safetensors").is_file():
        raise _missing(env_id, "policy")
    return path


def demos_path(env_id: str) -> Path:
    """The directory of ``env_id``'s expert demonstrations (pass it to :func:`imitation_fn.data.serialize.load`)."""
    path = experts_dir() / env_dir_name(env_id) / "demos"
    if not path.is_dir():
        raise _missing(env_id, "demonstrations")
    return path


def summary(env_id: str) -> dict[str, Any]:
    """``summary.json`` of ``env_id``'s expert: return mean/std over 50 episodes, seed, steps, wall time, date."""
    path = experts_dir() / env_dir_name(env_id) / "summary.json"
    if not path.is_file():
        raise _missing(env_id, "summary")
    return dict(json.loads(path.read_text()))


__all__ = ["ENV_VAR", "available", "demos_path", "env_dir_name", "expert_path", "experts_dir", "summary"]
