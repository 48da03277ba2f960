"""The host-side driver that composes an algorithm's pure ``init`` / ``update`` into a run."""

from imitation_fn.training.driver import (
    SavedRun,
    TrainResult,
    evaluate_seeds,
    init_states,
    load_checkpoint,
    load_run,
    make_update,
    save_checkpoint,
    seed_keys,
    train,
)

__all__ = [
    "SavedRun",
    "TrainResult",
    "evaluate_seeds",
    "init_states",
    "load_checkpoint",
    "load_run",
    "make_update",
    "save_checkpoint",
    "seed_keys",
    "train",
]
