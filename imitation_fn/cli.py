"""``imitation-fn``: the command line over the driver.

    imitation-fn quickstart                     # scripted expert → demos → BC × 8 seeds → table
    imitation-fn demos --env CartPole-v1 --n-episodes 50 --out demos/
    imitation-fn bc --env CartPole-v1 --demos demos/ --seeds 8 --n-epochs 10 --lr 3e-3 --out runs/bc
    imitation-fn eval --run runs/bc --env CartPole-v1 --n-episodes 20
    imitation-fn convert demos/ demos.npz       # datasets directory <-> imitation's .npz
    imitation-fn train-rl --algo ppo --env CartPole-v1 --seeds 4 --out runs/ppo --save-demos 50
    imitation-fn rollouts --policy runs/ppo/policies/seed_0 --env CartPole-v1 --episodes 50 --out demos/
    imitation-fn eval --policy expert.zip --env Pendulum-v1 --n-episodes 20 --video videos/

Every ``Config`` field is a flag (``--net-arch 64 64``, ``--max-grad-norm none``); ``--config FILE``
(JSON or YAML) sets fields too, and flags override it. Invalid values are reported field by field.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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
from imitation_fn.algorithms import bc
from imitation_fn.core import random, serialization
from imitation_fn.core.config import Config
from imitation_fn.data import flatten_trajectories, generate_trajectories, rollout_stats, serialize
from imitation_fn.data.convert import convert
from imitation_fn.data.utils import check_spaces
from imitation_fn.envs.experts import expert_for
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.policies import load_policy
from imitation_fn.rl import ppo, presets, sac
from imitation_fn.training import evaluate_seeds, load_run, train
from imitation_fn.training.driver import CHECKPOINT
from imitation_fn.training.rl import save_policies, train_rl
from imitation_fn.video import record_episodes

console = Console()
C = typing.TypeVar("C", bound=Config)


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# --- Config fields as flags ----------------------------------------------------------------------


def _flag(name: str) -> str:
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
        if _flag(name) in parser._option_string_actions:  # shared with a config added before (train-rl)
            continue
        help_text = f"{field.description or ''} (default: {_show_default(field)})".strip()
        choices = _choices(field.annotation)
        if _is_sequence(field.annotation):
            group.add_argument(_flag(name), nargs="*", default=None, metavar="N", help=help_text)
        else:
            group.add_argument(_flag(name), default=None, choices=choices, help=help_text)


def _show_default(field: FieldInfo) -> str:
    d = field.get_default(call_default_factory=True)
    return " ".join(map(str, d)) if isinstance(d, tuple | list) else str(d)


def _choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None


def _read_config_file(path: str) -> dict[str, Any]:
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
        values.update(_read_config_file(args.config))
    for name in config_cls.model_fields:
        raw = getattr(args, name, None)
        if raw is None:
            continue
        values[name] = None if isinstance(raw, str) and raw.lower() == "none" else raw
    try:
        return config_cls(**values)
    except ValidationError as e:
        lines = [f"  {_flag(str(err['loc'][0])) if err['loc'] else ''}: {err['msg']}" for err in e.errors()]
        raise CLIError(f"invalid {config_cls.__module__.rsplit('.', 1)[-1]} config:\n" + "\n".join(lines)) from e


# --- Commands ------------------------------------------------------------------------------------


def _make_env(env_id: str, n_envs: int) -> envs.Env:
    try:
        return envs.make(env_id, n_envs=n_envs)
    except (KeyError, ValueError) as e:
        raise CLIError(str(e.args[0] if e.args else e)) from e


def _demos(env_id: str, n_episodes: int, seed: int) -> list[Any]:
    env = _make_env(env_id, n_envs=n_episodes)
    try:
        expert = expert_for(env_id)
    except KeyError as e:
        raise CLIError(str(e.args[0])) from e
    # generate_trajectories finishes every running episode (no short-episode bias); keep exactly n.
    return generate_trajectories(env, expert, random.key(seed), min_episodes=n_episodes)[:n_episodes]


def _results_table(title: str, seeds: Sequence[int], returns: torch.Tensor) -> Table:
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


def cmd_demos(args: argparse.Namespace) -> None:
    trajs = _demos(args.env, args.n_episodes, args.seed)
    serialize.save(args.out, trajs)
    stats = rollout_stats(trajs)
    console.print(
        f"saved {len(trajs)} episodes to {args.out}: return mean {stats['return_mean']:.1f}, "
        f"length mean {stats['len_mean']:.1f}"
    )


def _run_bc(cfg: bc.Config, env_id: str, trajs: list[Any], args: argparse.Namespace) -> None:
    env = _make_env(env_id, n_envs=args.n_eval_episodes)
    try:
        check_spaces(trajs, env.observation_space, env.action_space)
    except ValueError as e:
        raise CLIError(f"--demos do not fit {env_id}: {e}") from e
    data = flatten_trajectories(trajs)
    seeds = list(range(args.seed, args.seed + args.seeds))
    t0 = time.perf_counter()
    try:
        result = train(
            bc,
            cfg,
            data,
            env,
            seeds=seeds,
            n_epochs=args.n_epochs,
            eval_every=args.eval_every,
            log_dir=args.out,
            resume=args.resume,
            compile=args.compile,
            progress=not args.no_progress,
        )
    except (ValueError, FileExistsError, AssertionError) as e:
        raise CLIError(str(e)) from e
    elapsed = time.perf_counter() - t0
    console.print(_results_table(f"BC on {env_id}", seeds, result.eval_returns))
    console.print(f"{len(data)} transitions, {result.steps} steps × {len(seeds)} seeds in {elapsed:.1f} s")
    if args.out:
        console.print(f"metrics, config and checkpoint in {args.out}")


def cmd_convert(args: argparse.Namespace) -> None:
    try:
        dst = convert(args.src, args.dst, overwrite=args.overwrite)
        n_trajs = len(serialize.load(dst))
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise CLIError(str(e)) from e
    kind = "imitation .npz file" if dst.suffix == ".npz" else "datasets directory"
    console.print(f"{n_trajs} trajectories: {args.src} → {dst} ({kind})")


def cmd_bc(args: argparse.Namespace) -> None:
    cfg = config_from_args(bc.Config, args)
    try:
        trajs = serialize.load(args.demos)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e)) from e
    _run_bc(cfg, args.env, trajs, args)


def cmd_quickstart(args: argparse.Namespace) -> None:
    out = Path(args.out)
    demos = out / "demos"
    console.print(f"[bold]1.[/] scripted CartPole expert → {args.n_demos} demonstrations → {demos}")
    trajs = _demos("CartPole-v1", args.n_demos, args.seed)
    serialize.save(demos, trajs)
    stats = rollout_stats(trajs)
    console.print(f"   expert return {stats['return_mean']:.1f} ± {stats['return_std']:.1f}")
    console.print(f"[bold]2.[/] behavioural cloning, {args.seeds} seeds in one vmapped run")
    args.out = str(out / "bc")
    _run_bc(bc.Config(), "CartPole-v1", serialize.load(demos), args)


ALGORITHMS: dict[str, types.ModuleType] = {"bc": bc}


def cmd_eval(args: argparse.Namespace) -> None:
    if (args.run is None) == (args.policy is None):
        raise CLIError("eval: give exactly one of --run (a training run directory) and --policy (a policy file)")
    if args.policy is not None:
        _eval_policy(args)
        return
    env = _make_env(args.env, n_envs=args.n_episodes)
    try:
        algo_name = serialization.load_metadata(Path(args.run) / CHECKPOINT).get("algorithm", "")
        algo = ALGORITHMS[algo_name]
        run = load_run(algo, args.run, env.observation_space, env.action_space)
    except FileNotFoundError as e:
        raise CLIError(f"{args.run} is not a run directory (no {CHECKPOINT})") from e
    except KeyError as e:
        raise CLIError(f"{args.run} holds an unknown algorithm {e.args[0]!r}") from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    keys = torch.stack([random.fold_in(random.key(args.seed), s) for s in run.seeds])
    returns = evaluate_seeds(algo, env, run.states, keys)
    title = f"{algo_name} run {args.run} after {run.step} steps, on {args.env}"
    console.print(_results_table(title, run.seeds, returns))


def _eval_policy(args: argparse.Namespace) -> None:
    loaded = _load_policy_arg(args.policy)
    policy = loaded.policy_fn(deterministic=not args.stochastic)
    env = _make_env(args.env, n_envs=args.n_episodes)
    key = random.key(args.seed)
    if isinstance(env, envs.GymEnv):
        returns = evaluate_gym_policy(env, policy, key, args.n_episodes).returns
    else:
        returns = evaluate_policy(env, policy, key).returns
    console.print(_results_table(f"{args.policy} on {args.env}", [args.seed], returns[None]))
    if args.video:
        try:
            paths = record_episodes(args.env, policy, key, args.video_episodes, args.video, fmt=args.video_format)
        except (ImportError, ValueError) as e:
            raise CLIError(f"--video: {e}") from e
        console.print(f"videos: {', '.join(map(str, paths))}")


RL_ALGORITHMS: dict[str, types.ModuleType] = {"ppo": ppo, "sac": sac}


def cmd_train_rl(args: argparse.Namespace) -> None:
    algo = RL_ALGORITHMS[args.algo]
    others = {f for name, mod in RL_ALGORITHMS.items() if name != args.algo for f in mod.Config.model_fields}
    foreign = [f for f in others - set(algo.Config.model_fields) if getattr(args, f, None) is not None]
    if foreign:
        raise CLIError(f"{', '.join(_flag(f) for f in sorted(foreign))}: not an option of {args.algo}")
    preset = presets.get(args.algo, args.env) if not args.no_preset else None
    base = dict(preset.config) if preset else {}
    if args.config:
        base.update(_read_config_file(args.config))
    args.config = None
    cfg = config_from_args(algo.Config, args, base=base)
    total = args.total_steps or (preset.total_timesteps if preset else None)
    if total is None:
        raise CLIError(f"no preset for {args.algo} on {args.env}: give --total-steps")
    seeds = list(range(args.seed, args.seed + args.seeds))
    console.print(
        f"{args.algo} on {args.env}: {total} env steps × {len(seeds)} seeds" + (" (preset)" if preset else "")
    )
    try:
        result = train_rl(
            algo,
            cfg,
            args.env,
            seeds=seeds,
            total_timesteps=total,
            eval_every=args.eval_every,
            n_eval_episodes=args.n_eval_episodes,
            log_dir=args.out,
            resume=args.resume,
            compile=args.compile,
            progress=not args.no_progress,
        )
    except (ValueError, FileExistsError, NotImplementedError) as e:
        raise CLIError(str(e)) from e
    console.print(_results_table(f"{args.algo} on {args.env}", seeds, result.eval_returns))
    if args.out:
        env = _make_env(args.env, n_envs=1)
        paths = save_policies(algo, result, env, Path(args.out) / "policies")
        console.print(f"policies: {', '.join(map(str, paths))}")
        if args.save_demos:
            best = int(result.eval_returns.mean(-1).argmax())
            policy = load_policy(paths[best]).policy_fn()
            trajs = generate_trajectories(
                _make_env(args.env, n_envs=args.save_demos), policy, random.key(args.seed), min_episodes=args.save_demos
            )[: args.save_demos]
            serialize.save(Path(args.out) / "demos", trajs)
            stats = rollout_stats(trajs)
            console.print(
                f"demos: {len(trajs)} episodes of seed {seeds[best]}'s policy, return "
                f"{stats['return_mean']:.1f} ± {stats['return_std']:.1f} → {Path(args.out) / 'demos'}"
            )


def _load_policy_arg(path: str) -> Any:
    try:
        return load_policy(path)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CLIError(f"--policy {path}: {e}") from e


def cmd_rollouts(args: argparse.Namespace) -> None:
    policy = _load_policy_arg(args.policy).policy_fn(deterministic=not args.stochastic)
    env = _make_env(args.env, n_envs=min(args.episodes, 64))
    trajs = generate_trajectories(env, policy, random.key(args.seed), min_episodes=args.episodes)[: args.episodes]
    serialize.save(args.out, trajs)
    stats = rollout_stats(trajs)
    console.print(
        f"saved {len(trajs)} episodes to {args.out}: return {stats['return_mean']:.1f} ± "
        f"{stats['return_std']:.1f}, length {stats['len_mean']:.1f}"
    )


def _add_run_flags(p: argparse.ArgumentParser, seeds: int) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imitation-fn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="scripted expert → 50 demos → BC over 8 seeds → evaluation table")
    q.add_argument("--out", default="quickstart", help="output directory (default: quickstart)")
    q.add_argument("--n-demos", type=int, default=50, help="expert episodes (default: 50)")
    _add_run_flags(q, seeds=8)
    q.set_defaults(func=cmd_quickstart)

    d = sub.add_parser("demos", help="roll out a scripted expert and save the episodes as a dataset")
    d.add_argument("--env", default="CartPole-v1", help="environment id (default: CartPole-v1)")
    d.add_argument("--n-episodes", type=int, default=50, help="episodes (default: 50)")
    d.add_argument("--seed", type=int, default=0, help="rollout seed (default: 0)")
    d.add_argument("--out", required=True, help="dataset directory to write")
    d.set_defaults(func=cmd_demos)

    b = sub.add_parser(
        "bc",
        help="behavioural cloning from a demonstrations dataset",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    b.add_argument("--env", default="CartPole-v1", help="environment id")
    b.add_argument("--demos", required=True, help="dataset directory (ours or imitation's) or .npz file")
    b.add_argument("--out", default=None, help="run directory: metrics.jsonl, config.json, checkpoint")
    b.add_argument("--config", default=None, help="JSON or YAML file of config fields")
    _add_run_flags(b, seeds=1)
    add_config_flags(b, bc.Config)
    b.set_defaults(func=cmd_bc)
    c = sub.add_parser("convert", help="convert trajectories between a datasets directory and imitation's .npz")
    c.add_argument("src", help="datasets directory (ours or imitation's) or imitation .npz file")
    c.add_argument(
        "dst", help="output: a path ending in .npz gets imitation's npz layout, any other a datasets directory"
    )
    c.add_argument("--overwrite", action="store_true", help="replace dst if it already exists")
    c.set_defaults(func=cmd_convert)

    r = sub.add_parser(
        "train-rl",
        help="train PPO or SAC experts, vmapped over seeds",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument("--algo", choices=sorted(RL_ALGORITHMS), default="ppo", help="RL algorithm")
    r.add_argument("--env", default="CartPole-v1", help="environment id (a torch one: seeds are vmapped)")
    r.add_argument("--total-steps", type=int, default=None, help="env steps per seed (default: the preset's)")
    r.add_argument("--out", default=None, help="run directory: metrics, config, checkpoint, policies/, demos/")
    r.add_argument("--config", default=None, help="JSON or YAML file of config fields (over the preset)")
    r.add_argument("--no-preset", action="store_true", help="start from the algorithm's defaults, not the preset")
    r.add_argument(
        "--save-demos",
        type=int,
        default=0,
        metavar="N",
        help="also save N episodes of the best seed's policy as a dataset in OUT/demos",
    )
    r.add_argument("--seeds", type=int, default=1, help="number of seeds trained in one vmapped run")
    r.add_argument("--seed", type=int, default=0, help="first seed")
    r.add_argument("--eval-every", type=int, default=None, help="evaluate every N env steps (default: at the end)")
    r.add_argument("--n-eval-episodes", type=int, default=10, help="evaluation episodes per seed")
    r.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    r.add_argument("--compile", action="store_true", help="torch.compile the vmapped update")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    for mod in RL_ALGORITHMS.values():
        add_config_flags(r, mod.Config)
    r.set_defaults(func=cmd_train_rl)

    o = sub.add_parser("rollouts", help="roll out a saved policy (ours or an SB3 .zip) and save a dataset")
    o.add_argument("--policy", required=True, help="policy directory, policy.safetensors/.json, or SB3 .zip")
    o.add_argument("--env", required=True, help="environment id")
    o.add_argument("--episodes", type=int, default=50, help="episodes (default: 50)")
    o.add_argument("--out", required=True, help="dataset directory to write")
    o.add_argument("--seed", type=int, default=0, help="rollout seed (default: 0)")
    o.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    o.set_defaults(func=cmd_rollouts)

    e = sub.add_parser("eval", help="evaluate a saved run directory (every seed) or a policy file")
    e.add_argument("--run", default=None, help="run directory written by a training command (--out)")
    e.add_argument("--policy", default=None, help="policy directory, policy file, or SB3 .zip")
    e.add_argument("--stochastic", action="store_true", help="with --policy: sample actions instead of the mode")
    e.add_argument("--video", default=None, metavar="DIR", help="with --policy: record episodes into DIR")
    e.add_argument("--video-episodes", type=int, default=1, help="episodes to record (default: 1)")
    e.add_argument("--video-format", choices=["gif", "mp4"], default="gif", help="video format (default: gif)")
    e.add_argument("--env", default="CartPole-v1", help="environment id (default: CartPole-v1)")
    e.add_argument("--n-episodes", type=int, default=10, help="episodes per seed (default: 10)")
    e.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    e.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except CLIError as e:
        console.print(f"[red]error:[/] {e}", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
