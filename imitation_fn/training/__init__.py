"""The host-side driver that composes an algorithm's pure ``init`` / ``update`` into a run."""

from imitation_fn.training.driver import TrainResult, load_checkpoint, make_update, save_checkpoint, seed_keys, train

__all__ = ["TrainResult", "load_checkpoint", "make_update", "save_checkpoint", "seed_keys", "train"]
