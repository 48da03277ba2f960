"""The host-side drivers that compose an algorithm's pure ``init`` / ``update`` into a run."""

from imitation_fn.train.driver import (
    SavedRun,
    TrainResult,
    evaluate_seeds,
    init_states,
    load_run,
    make_update,
    seed_keys,
    train,
)
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, Run, load_checkpoint, open_run

__all__ = [
    "CHECKPOINT_EVERY_SECONDS",
    "Run",
    "SavedRun",
    "TrainResult",
    "evaluate_seeds",
    "init_states",
    "load_checkpoint",
    "load_run",
    "make_update",
    "open_run",
    "seed_keys",
    "train",
]
