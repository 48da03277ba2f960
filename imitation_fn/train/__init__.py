"""Training: the one loop (:mod:`loop`), run directories, metric writers, sweeps, and each algorithm's spec."""

from imitation_fn.train.driver import SavedRun, load_run, train
from imitation_fn.train.loop import Result, Spec, evaluate_seeds, init_states, seed_keys
from imitation_fn.train.run import CHECKPOINT_EVERY_SECONDS, Run, load_checkpoint, open_run

__all__ = [
    "CHECKPOINT_EVERY_SECONDS",
    "Result",
    "Run",
    "SavedRun",
    "Spec",
    "evaluate_seeds",
    "init_states",
    "load_checkpoint",
    "load_run",
    "open_run",
    "seed_keys",
    "train",
]
