"""What every command shares: the error type, Config fields as flags, environments, result tables."""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.table import Table

from imitation_fn import envs
from imitation_fn.core.config import Config, read_mapping
from imitation_fn.core.device import DEVICE_CHOICES
from imitation_fn.core.errors import InputError
from imitation_fn.envs.base import require_supported
from imitation_fn.policies import load_policy
from imitation_fn.policies.io import LoadedPolicy
from imitation_fn.train import warm_start
from imitation_fn.train.logger import LOG_FORMATS, parse_log_formats
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, DEFAULT_LOG_FORMATS

console = Console()
C = typing.TypeVar("C", bound=Config)


class CLIError(InputError):
    """A user error found by a command: printed without a traceback, exit status 2."""


# --- Parsers -------------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default once: argparse's own, unless the help text already states one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or not action.option_strings
            or any(default is d for d in (None, False, argparse.SUPPRESS))
        ):
            return text
        return f"{text} (default: %(default)s)"


def escape_help(text: str) -> str:
    """argparse %-formats help strings: a literal ``%`` must be doubled."""
    return text.replace("%", "%%")


def add_command(sub: Any, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows each default once and whose text may contain ``%``."""
    return sub.add_parser(name, help=escape_help(help), formatter_class=HelpFormatter, **kwargs)


def _at_least(minimum: float, cast: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            kind = "an integer" if cast is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a finite number >= {minimum:g}, got {text}")
        return value

    parse.__name__ = cast.__name__  # argparse names the type in its messages
    return parse


def _log_formats(text: str) -> tuple[str, ...]:
    try:
        return parse_log_formats(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--log-formats: ")) from None


positive_int = _at_least(1, int)
"""argparse ``type``: an integer >= 1 (budgets, counts: 0 or less is an error, never a default)."""
nonnegative_int = _at_least(0, int)
nonnegative_float = _at_least(0, float)


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
        help_text = escape_help(f"{field.description or ''} (default: {_show_default(field)})".strip())
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


def read_config_file(path: str, flag: str = "--config") -> dict[str, Any]:
    """The fields in a JSON or YAML config file; any problem is one error naming the flag and the file."""
    try:
        return read_mapping(path)
    except InputError as e:
        raise CLIError(f"{flag}: {e}") from e


def config_from_args(
    config_cls: type[C],
    args: argparse.Namespace,
    base: dict[str, Any] | None = None,
    over: dict[str, Any] | None = None,
) -> C:
    """Defaults < ``base`` (e.g. a preset) < ``--config`` file < ``over`` (an ``--init-policy``'s networks) < flags,
    validated by pydantic."""
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        values.update(read_config_file(args.config))
    values.update(over or {})
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


def require_env(env_id: str) -> None:
    """Refuse, before any work, an environment id that cannot be made (a torch env, a gymnasium id or
    ``module:Id``) or whose spaces the policies cannot take (``envs.base.require_supported``)."""
    env = make_env(env_id, n_envs=1)
    if isinstance(env, envs.GymEnv):
        env.close()
    require_supported(env, f"--env {env_id}")


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


def load_policy_arg(path: str, flag: str = "--policy") -> Any:
    """A saved policy (directory, file or SB3 zip); errors name the flag (the loader's name the file)."""
    try:
        return load_policy(path)
    except FileNotFoundError as e:
        raise CLIError(f"{flag} {path}: {e}") from e
    except InputError as e:
        raise CLIError(f"{flag}: {e}") from e


def add_init_policy_flag(p: argparse.ArgumentParser, learner: str = "the policy") -> None:
    """``--init-policy``: every seed starts from a saved policy (see :func:`init_policy_from_args`)."""
    p.add_argument(
        "--init-policy",
        default=None,
        metavar="PATH",
        help=f"start {learner} of every seed from this policy: a policy directory (a run's policies/seed_<s>), "
        "a .safetensors file or an SB3 zip; its network sizes, activation and observation normalisation are "
        "used unless given as flags",
    )


def init_policy_from_args(args: argparse.Namespace, learner: str) -> tuple[LoadedPolicy | None, dict[str, Any]]:
    """``(policy, config fields)``: the ``--init-policy`` and the ``learner``'s config fields that match its
    networks (``warm_start.architecture``), or ``(None, {})`` without the flag."""
    if getattr(args, "init_policy", None) is None:
        return None, {}
    policy = load_policy_arg(args.init_policy, "--init-policy")
    return policy, warm_start.architecture(policy, learner)


def add_run_flags(
    p: argparse.ArgumentParser,
    *,
    seeds: int = 1,
    eval_unit: str | None = "steps",
    eval_every: int | None = None,
    n_eval_episodes: int = 10,
    progress: bool = True,
    compile_help: str = "torch.compile the vmapped update (slow to start)",
) -> None:
    """The flags every training command shares: seeds, evaluation, checkpoints and resume, speed.

    ``eval_unit=None``: the command evaluates only at the end (no ``--eval-every``).
    """
    g = p.add_argument_group("run")
    g.add_argument("--seeds", type=positive_int, default=seeds, help="number of seeds trained in one vmapped run")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="first seed; seeds are seed, seed+1, ...")
    if eval_unit is not None:
        g.add_argument(
            "--eval-every",
            type=positive_int,
            default=eval_every,
            metavar="N",
            help=f"evaluate every N {eval_unit}, and at the end"
            + ("" if eval_every else " (default: only at the end)"),
        )
    g.add_argument("--n-eval-episodes", type=positive_int, default=n_eval_episodes, help="evaluation episodes per seed")
    g.add_argument(
        "--checkpoint-every",
        type=nonnegative_float,
        default=CHECKPOINT_EVERY_SECONDS,
        metavar="SECONDS",
        help="with --out: write a checkpoint at least every SECONDS of training, at every evaluation and at the "
        "end (0: after every update)",
    )
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument(
        "--log-formats",
        type=_log_formats,
        default=",".join(DEFAULT_LOG_FORMATS),
        metavar="FORMATS",
        help=f"where metrics go, comma-separated: {', '.join(LOG_FORMATS)} (jsonl is always written: analyze and "
        "--resume read it)",
    )
    g.add_argument("--compile", action="store_true", help=compile_help)
    g.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help=f"where the run's tensors live: {DEVICE_CHOICES} (cuda when torch sees a GPU)",
    )
    if progress:
        g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.add_argument(
        "--threads", type=positive_int, default=1, help="torch intra-op threads (1 is fastest for small networks)"
    )
