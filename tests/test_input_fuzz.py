"""Fuzzing the loaders of user files: each call returns data or raises InputError, never anything else.

Damaged copies of a tiny valid dataset (truncated, bytes overwritten, metadata rewritten), ``.npz``
files of random shapes, dtypes, lengths and values, and random config files. Small example counts
keep the module to a few seconds; a failure prints the input that escaped.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imitation_fn.algorithms import bc
from imitation_fn.core.config import read_mapping
from imitation_fn.core.errors import InputError
from imitation_fn.data import serialize
from imitation_fn.data.convert import save_npz
from imitation_fn.data.types import Trajectory, TrajectoryWithRew

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def loads_or_refuses(load: Callable[[Path], Any], path: Path) -> Any:
    """``load(path)``; ``None`` when it raised InputError (naming ``path``), anything else fails the test."""
    try:
        return load(path)
    except InputError as e:
        assert str(path) in str(e), f"the message does not name {path}: {e}"
        return None


def assert_valid_trajectories(trajs: list[Trajectory]) -> None:
    """What load() returns is usable as is: consistent lengths, finite numbers."""
    assert trajs
    for traj in trajs:
        assert traj.obs.shape[0] == len(traj) + 1
        if isinstance(traj, TrajectoryWithRew):
            assert traj.rews.shape == (len(traj),) and traj.rews.dtype == torch.float32
        for x in (traj.obs, traj.acts):
            assert not x.is_floating_point() or bool(torch.isfinite(x).all())


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The files of a tiny valid datasets directory and ``.npz``: name -> bytes."""
    root = tmp_path_factory.mktemp("valid")
    gen = torch.Generator().manual_seed(0)  # test data only
    trajs = [
        TrajectoryWithRew(
            obs=torch.randn(n + 1, 2, generator=gen), acts=torch.arange(n) % 3, terminal=n != 1, rews=torch.randn(n)
        )
        for n in (3, 1, 2)
    ]
    serialize.save(root / "demos", trajs)
    save_npz(root / "demos.npz", trajs)
    directory = {p.name: p.read_bytes() for p in (root / "demos").iterdir()}
    return {"demos": directory, "demos.npz": {"demos.npz": (root / "demos.npz").read_bytes()}}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Path]]:
    """A fresh empty directory per hypothesis example (function-scoped tmp_path is shared by examples)."""
    root = tmp_path_factory.mktemp("fuzz")

    def fresh() -> Path:
        return Path(tempfile.mkdtemp(dir=root))

    yield fresh
    shutil.rmtree(root, ignore_errors=True)


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with some bytes overwritten, or both."""
    out = bytearray(data)
    if draw(st.booleans()):
        del out[draw(st.integers(0, len(out))) :]
    for _ in range(draw(st.integers(0, 8 if out else 0))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@FUZZ
@given(data=st.data())
def test_damaged_dataset_directory(valid: dict[str, dict[str, bytes]], scratch: Callable[[], Path], data: Any) -> None:
    files = valid["demos"]
    (shard,) = (name for name in files if name.endswith(".arrow"))
    damaged = data.draw(st.sampled_from([shard, shard, "state.json", "dataset_info.json"]))  # mostly the data
    path = scratch() / "demos"
    path.mkdir()
    for name, content in files.items():
        (path / name).write_bytes(data.draw(damage(content)) if name == damaged else content)
    trajs = loads_or_refuses(serialize.load, path)
    if trajs is not None:
        assert_valid_trajectories(trajs)


@FUZZ
@given(data=st.data())
def test_damaged_npz(valid: dict[str, dict[str, bytes]], scratch: Callable[[], Path], data: Any) -> None:
    path = scratch() / "demos.npz"
    path.write_bytes(data.draw(damage(valid["demos.npz"]["demos.npz"])))
    trajs = loads_or_refuses(serialize.load, path)
    if trajs is not None:
        assert_valid_trajectories(trajs)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(data=st.data())
def test_rewritten_dataset_metadata(valid: dict[str, dict[str, bytes]], scratch: Callable[[], Path], data: Any) -> None:
    """Valid JSON of the wrong structure in state.json / dataset_info.json: one value replaced or removed."""
    files = valid["demos"]
    name = data.draw(st.sampled_from(["state.json", "dataset_info.json"]))
    meta = json.loads(files[name])
    node = meta
    while isinstance(node, dict) and node and data.draw(st.booleans()):  # descend a few levels
        child = node[data.draw(st.sampled_from(sorted(node)))]
        if not isinstance(child, dict) or not child:
            break
        node = child
    key = data.draw(st.sampled_from(sorted(node)))
    if data.draw(st.booleans()):
        del node[key]
    else:
        node[key] = data.draw(json_values)
    path = scratch() / "demos"
    path.mkdir()
    for file, content in files.items():
        (path / file).write_bytes(json.dumps(meta).encode() if file == name else content)
    trajs = loads_or_refuses(serialize.load, path)
    if trajs is not None:
        assert_valid_trajectories(trajs)


DTYPES = ["float32", "int64", "bool", "float64", "float16", "uint8", ">f4", "complex64", "<U2", "S1"]
# Hypothesis favours the ends of a range: an odd case drawn as "== 0" would come up far more often than 1 in 10.
rarely = st.integers(0, 9).map(lambda i: i == 5)


@st.composite
def array(draw: st.DrawFn, rows: int) -> np.ndarray:
    """Mostly ``rows`` rows (sometimes one more or less, sometimes any shape) of any dtype and values."""
    tail = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    shape = tail if draw(rarely) else (max(rows + draw(st.sampled_from([0, 0, 0, 0, 1, -1])), 0), *tail)
    dtype = draw(st.sampled_from(DTYPES)) if draw(rarely) else draw(st.sampled_from(["float32", "int64"]))
    return draw(hnp.arrays(np.dtype(dtype), shape))


@st.composite
def npz_contents(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """imitation's .npz arrays, close enough to consistent that some of them load."""
    lengths = [] if draw(rarely) else draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    steps, n = sum(lengths), len(lengths)
    indices = np.cumsum(lengths[:-1]).astype(np.int64)
    contents = {
        "obs": draw(array(steps + n)),
        "acts": draw(array(steps)),
        "terminal": draw(array(n)) if draw(rarely) else draw(hnp.arrays(np.bool_, n)),
        "indices": draw(array(max(n - 1, 0))) if draw(rarely) else indices,
    }
    if draw(st.booleans()):
        contents["rews"] = draw(array(steps))
    if draw(rarely):
        del contents[draw(st.sampled_from(sorted(contents)))]
    return contents


@FUZZ
@given(contents=npz_contents())
def test_npz_of_random_arrays(scratch: Callable[[], Path], contents: dict[str, np.ndarray]) -> None:
    path = scratch() / "demos.npz"
    with open(path, "wb") as f:
        np.savez(f, **contents)  # type: ignore[arg-type]
    trajs = loads_or_refuses(serialize.load, path)
    if trajs is not None:
        assert_valid_trajectories(trajs)


number = st.floats(width=32) | st.integers(-3, 3)
odd = st.none() | st.text(max_size=2) | st.lists(st.floats(width=32), max_size=2) | st.booleans()


@st.composite
def dataset_columns(draw: st.DrawFn) -> dict[str, list[Any]]:
    """Columns of a datasets directory: mostly trajectory-shaped rows, with wrong lengths and odd values mixed in."""

    def value() -> Any:
        return draw(odd) if draw(rarely) and draw(st.booleans()) else draw(number)

    def rows(n: int) -> int:
        return max(n + draw(st.sampled_from([-1, 1])), 0) if draw(rarely) else n

    columns: dict[str, list[Any]] = {"obs": [], "acts": [], "terminal": []}
    with_rews, width = draw(st.booleans()), draw(st.integers(1, 2))
    for _ in range(draw(st.integers(0, 3))):
        steps = draw(st.integers(0, 3))
        columns["obs"].append([[value() for _ in range(rows(width))] for _ in range(rows(steps + 1))])
        columns["acts"].append([value() for _ in range(rows(steps))])
        columns["terminal"].append(value() if draw(rarely) else draw(st.booleans()))
        if with_rews:
            columns.setdefault("rews", []).append([value() for _ in range(rows(steps))])
    return columns


@FUZZ
@given(columns=dataset_columns())
def test_dataset_of_random_columns(scratch: Callable[[], Path], columns: dict[str, list[Any]]) -> None:
    path = scratch() / "demos"
    try:
        dataset = datasets.Dataset.from_dict(columns)
    except (ValueError, TypeError, OverflowError):  # datasets itself refuses columns it cannot type
        return
    dataset.save_to_disk(str(path))
    trajs = loads_or_refuses(serialize.load, path)
    if trajs is not None:
        assert_valid_trajectories(trajs)


def bc_config_text(draw: st.DrawFn) -> str:
    fields = st.sampled_from([*bc.Config.model_fields, "typo"])
    values = st.one_of(json_values, st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -1.0, 1e-3, [64, 64]]))
    mapping = draw(st.dictionaries(fields, values, max_size=4))
    return json.dumps(mapping) if draw(st.booleans()) else yaml.safe_dump(mapping)


@st.composite
def config_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A (suffix, content) pair: random bytes or text, or a mapping of bc fields, possibly damaged."""
    suffix = draw(st.sampled_from([".json", ".yaml", ".yml", ".txt"]))
    kind = draw(st.sampled_from(["bytes", "text", "fields"]))
    if kind == "bytes":
        return suffix, draw(st.binary(max_size=40))
    if kind == "text":
        return suffix, draw(st.text(alphabet=st.sampled_from('{}[]:,- "\n\t#&*!|>%@`0a1.e'), max_size=40)).encode()
    return suffix, draw(damage(bc_config_text(draw).encode()))


@FUZZ
@given(file=config_files())
def test_config_files(scratch: Callable[[], Path], file: tuple[str, bytes]) -> None:
    suffix, content = file
    path = scratch() / f"config{suffix}"
    path.write_bytes(content)
    mapping = loads_or_refuses(read_mapping, path)
    if mapping is not None:
        assert isinstance(mapping, dict) and all(isinstance(k, str) for k in mapping)
    cfg = loads_or_refuses(bc.Config.load, path)
    if cfg is not None:
        assert isinstance(cfg, bc.Config) and math.isfinite(cfg.lr)
