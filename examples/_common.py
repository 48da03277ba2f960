"""Shared by the examples: the ``--tiny`` budget switch (the test suite runs every example with it)."""

from __future__ import annotations

import argparse
import os

import torch


def parse_args(description: str) -> argparse.Namespace:
    """``--tiny`` (or ``IMITATION_FN_EXAMPLES_TINY=1``) shrinks every budget so the example runs in seconds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke-test budget (used by the tests)")
    parser.add_argument("--out", default=None, help="directory for run outputs (default: a temporary one)")
    args = parser.parse_args()
    args.tiny = args.tiny or os.environ.get("IMITATION_FN_EXAMPLES_TINY") == "1"
    torch.set_num_threads(1)  # small networks run fastest on one thread
    return args
