"""What every command shares: the error type, Config fields as flags, environments, result tables."""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.table import Table

from imitation_fn import envs
from imitation_fn.core.config import Config
from imitation_fn.policies import load_policy

console = Console()
C = typing.TypeVar("C", bound=Config)


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# --- Config fields as flags ----------------------------------------------------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_sequence(annotation: Any) -> bool:
    """A tuple/list field, or a union with one (``tuple[int, ...] | dict[...]``: the tuple form is the flag's)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_sequence(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) in (tuple, list)


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type[Config]) -> None:
    """One flag per field, help text from the field docstring, default shown; pydantic validates."""
    group = parser.add_argument_group(f"{config_cls.__module__.rsplit('.', 1)[-1]} config")
    for name, field in config_cls.model_fields.items():
        if flag(name) in parser._option_string_actions:  # shared with a config added before (train-rl)
            continue
        help_text = f"{field.description or ''} (default: {_show_default(field)})".strip()
        choices = _choices(field.annotation)
        if _is_sequence(field.annotation):
            group.add_argument(flag(name), nargs="*", default=None, metavar="N", help=help_text)
        else:
            group.add_argument(flag(name), default=None, choices=choices, help=help_text)


def _show_default(field: FieldInfo) -> str:
    d = field.get_default(call_default_factory=True)
    return " ".join(map(str, d)) if isinstance(d, tuple | list) else str(d)


def _choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None


def read_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"--config: no such file {p}")
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CLIError(f"--config: {p} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise CLIError(f"--config: {p} must hold a mapping of field names to values")
    return data


def config_from_args(config_cls: type[C], args: argparse.Namespace, base: dict[str, Any] | None = None) -> C:
    """Defaults < ``base`` (e.g. a preset) < ``--config`` file < flags, validated by pydantic."""
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        values.update(read_config_file(args.config))
    for name in config_cls.model_fields:
        raw = getattr(args, name, None)
        if raw is None:
            continue
        values[name] = None if isinstance(raw, str) and raw.lower() == "none" else raw
    try:
        return config_cls(**values)
    except ValidationError as e:
        lines = [f"  {flag(str(err['loc'][0])) if err['loc'] else ''}: {err['msg']}" for err in e.errors()]
        raise CLIError(f"invalid {config_cls.__module__.rsplit('.', 1)[-1]} config:\n" + "\n".join(lines)) from e


# --- Commands ------------------------------------------------------------------------------------


# --- Shared pieces of commands -------------------------------------------------------------------


def make_env(env_id: str, n_envs: int) -> envs.Env:
    try:
        return envs.make(env_id, n_envs=n_envs)
    except (KeyError, ValueError) as e:
        raise CLIError(str(e.args[0] if e.args else e)) from e


def results_table(title: str, seeds: Sequence[int], returns: torch.Tensor) -> Table:
    table = Table(title=title)
    for col in ("seed", "mean return", "std", "min", "max"):
        table.add_column(col, justify="right")
    for seed, r in zip(seeds, returns, strict=True):
        table.add_row(str(seed), f"{r.mean():.1f}", f"{r.std(correction=0):.1f}", f"{r.min():.1f}", f"{r.max():.1f}")
    table.add_row(
        "all",
        f"{returns.mean():.1f}",
        f"{returns.std(correction=0):.1f}",
        f"{returns.min():.1f}",
        f"{returns.max():.1f}",
        style="bold",
    )
    return table


def load_policy_arg(path: str) -> Any:
    try:
        return load_policy(path)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CLIError(f"--policy {path}: {e}") from e


def add_run_flags(p: argparse.ArgumentParser, seeds: int) -> None:
    p.add_argument(
        "--seeds", type=int, default=seeds, help=f"number of seeds trained in one vmapped run (default: {seeds})"
    )
    p.add_argument("--seed", type=int, default=0, help="first seed; seeds are seed, seed+1, ... (default: 0)")
    p.add_argument("--n-epochs", type=int, default=10, help="passes over the demonstrations (default: 10)")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps (default: at the end)")
    p.add_argument("--n-eval-episodes", type=int, default=10, help="evaluation episodes per seed (default: 10)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--compile", action="store_true", help="torch.compile the vmapped update (slow to start)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1, best for small nets)")
