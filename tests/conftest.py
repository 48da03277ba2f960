import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from imitation_fn.train.run import Run

# Small networks on 2 cores: one intra-op thread avoids oversubscription (DESIGN.md §8).
torch.set_num_threads(1)

# Tests never touch the network: a path that reads org/name and does not exist is looked up in the
# Hugging Face cache only (imitation_fn.data.hub reads this at call time; commands run as subprocesses
# inherit it). tests/test_hub.py builds such a cache in a temporary directory.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def copies_at_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], contextlib.AbstractContextManager[list[Path]]]:
    """``with copies_at_checkpoints() as copies:`` a copy of the run directory at every checkpoint written
    inside the block, as a run killed right after that checkpoint would leave it."""

    @contextlib.contextmanager
    def recording() -> Iterator[list[Path]]:
        copies: list[Path] = []
        save = Run.save

        def save_and_copy(self: Run, states: Any, step: int, **kwargs: Any) -> None:
            save(self, states, step, **kwargs)
            assert self.out is not None
            copies.append(shutil.copytree(self.out, tmp_path / f"killed_{len(copies)}"))

        with monkeypatch.context() as patch:
            patch.setattr(Run, "save", save_and_copy)
            yield copies

    return recording
