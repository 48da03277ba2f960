"""``imitation-fn``: the command line over the drivers.

    imitation-fn quickstart                     # scripted expert → demos → BC × 8 seeds → table
    imitation-fn demos --env CartPole-v1 --n-episodes 50 --out demos/
    imitation-fn bc --env CartPole-v1 --demos demos/ --seeds 8 --n-epochs 10 --lr 3e-3 --out runs/bc
    imitation-fn eval --run runs/bc --env CartPole-v1 --n-episodes 20
    imitation-fn convert demos/ demos.npz       # datasets directory <-> imitation's .npz
    imitation-fn train-rl --algo ppo --env CartPole-v1 --seeds 4 --out runs/ppo --save-demos 50
    imitation-fn rollouts --policy runs/ppo/policies/seed_0 --env CartPole-v1 --episodes 50 --out demos/
    imitation-fn eval --policy expert.zip --env Pendulum-v1 --n-episodes 20 --video videos/
    imitation-fn dagger --env CartPole-v1 --expert tests/data/experts/CartPole-v1 --seeds 8 --out runs/dagger
    imitation-fn gail --env seals/CartPole-v0 --demos demos/ --seeds 8 --out runs/gail     # also: airl
    imitation-fn density --env seals/CartPole-v0 --demos demos/ --density-type state_action --seeds 8
    imitation-fn mce-irl --env CliffWorld --horizon 40 --seeds 16 --out runs/mce
    imitation-fn preference-comparisons --env Pendulum-v1 --seeds 4 --out runs/pc
    imitation-fn sweep examples/sweeps/bc.yaml --out sweeps/bc [--ray] [--resume]
    imitation-fn analyze runs/ sweeps/bc --out analysis/ --baseline "bc[lr=0.001, l2_weight=0]"

Every ``Config`` field is a flag (``--net-arch 64 64``, ``--max-grad-norm none``); ``--config FILE``
(JSON or YAML) sets fields too, and flags override it. Invalid values are reported field by field.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.markup import escape

from imitation_fn.cli.common import CLIError, HelpFormatter, add_config_flags, config_from_args, console
from imitation_fn.core import device, serialization
from imitation_fn.core.errors import InputError
from imitation_fn.train.run import CHECKPOINT

# One module per command group, each with ``register(subparsers)``; ``--help`` lists them in this order.
COMMANDS = (
    "bc",
    "data",
    "rl",
    "evaluate",
    "export",
    "dagger",
    "adversarial",
    "mce_irl",
    "density",
    "preference_comparisons",
    "sweep",
    "tune",
    "analyze",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imitation-fn", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"imitation_fn.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input anywhere (an ``InputError``) prints one message and returns 2."""
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        if getattr(args, "device", None) is not None:  # before any data loads: a wrong --device is said first
            args.device = device.resolve(args.device)
        _announce_resume(args)
        args.func(args)
    except InputError as e:
        console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: a run with --out continues from its last checkpoint with --resume")
        return 130
    return 0


def _announce_resume(args: argparse.Namespace) -> None:
    """``--resume`` says where it continues from (``open_run`` refuses what cannot be resumed)."""
    out = getattr(args, "out", None)
    if not getattr(args, "resume", False) or out is None or not (Path(out) / CHECKPOINT).is_file():
        return
    meta = serialization.load_metadata(Path(out) / CHECKPOINT)
    console.print(
        f"resuming the {meta.get('algorithm', '')} run in {out} from its checkpoint at step {meta.get('step')}"
    )


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["COMMANDS", "CLIError", "add_config_flags", "build_parser", "config_from_args", "main"]
