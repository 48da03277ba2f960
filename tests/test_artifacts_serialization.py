"""core.serialization on damaged files, and the fingerprint that ties a JSON config to its weights."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch

from imitation_fn.core import serialization
from imitation_fn.core.errors import InputError


def _checkpoint(path: Path) -> dict[str, torch.Tensor]:
    state = {"params": torch.randn(16, 8), "step": torch.tensor(7)}
    serialization.save(path, state, {"algorithm": "bc", "step": 7})
    return state


@pytest.mark.parametrize("keep", [0, 5, 8, 60, -1])
def test_a_truncated_checkpoint_is_an_input_error_naming_it(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "checkpoint.safetensors"
    state = _checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) + keep])
    for read in (lambda: serialization.load(path, state), lambda: serialization.load_metadata(path)):
        with pytest.raises(InputError, match=re.escape(str(path)) + r" is truncated or not a safetensors file \(.+\)"):
            read()
    with pytest.raises(InputError, match="truncated"):
        serialization.load_flat(path)


def test_a_file_that_is_not_safetensors_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("these are not tensors\n" * 20)
    with pytest.raises(InputError, match="not a safetensors file"):
        serialization.load_metadata(path)
    # A header entry that is not JSON (written by hand or by another tool).
    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "odd.safetensors", metadata={"imitation_fn": "{"})
    with pytest.raises(InputError, match=r"odd.safetensors: the imitation_fn entry of its header is not valid JSON"):
        serialization.load_metadata(tmp_path / "odd.safetensors")
    # Missing files stay FileNotFoundError (callers tell "nothing there" from "something wrong there").
    with pytest.raises(FileNotFoundError):
        serialization.load_metadata(tmp_path / "missing.safetensors")


def test_tensors_that_do_not_fit_the_template_are_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.safetensors"
    _checkpoint(path)
    with pytest.raises(InputError, match=r"checkpoint.safetensors: .*params.* has shape \(16, 8\)"):
        serialization.load(path, {"params": torch.zeros(4, 8), "step": torch.tensor(0)})
    with pytest.raises(InputError, match="missing"):
        serialization.load(path, {"weights": torch.zeros(16, 8), "step": torch.tensor(0)})


def test_fingerprint_is_sha256_of_canonical_json() -> None:
    obj = {"kind": "mlp", "config": {"activation": "tanh", "net_arch": [64, 64]}}
    canonical = '{"config":{"activation":"tanh","net_arch":[64,64]},"kind":"mlp"}'
    assert serialization.fingerprint(obj) == hashlib.sha256(canonical.encode()).hexdigest()
    reordered = json.loads(
        json.dumps({"config": {"net_arch": [64, 64], "activation": "tanh"}, "kind": "mlp"}, indent=4)
    )
    assert serialization.fingerprint(reordered) == serialization.fingerprint(obj)
    changed = {"kind": "mlp", "config": {"activation": "relu", "net_arch": [64, 64]}}
    assert serialization.fingerprint(changed) != serialization.fingerprint(obj)
    with pytest.raises(ValueError):
        serialization.fingerprint({"x": float("nan")})  # not JSON


def test_json_changes_names_what_differs() -> None:
    saved = {"activation": "tanh", "net_arch": {"pi": [64, 64], "vf": [64]}, "kind": "actor_critic"}
    current = {"activation": "relu", "net_arch": {"pi": [32, 64], "vf": [64]}, "kind": "actor_critic", "x": 1}
    assert serialization.json_changes(saved, current) == [
        "activation: tanh → relu",
        "net_arch.pi: [64, 64] → [32, 64]",
        "x: (absent) → 1",
    ]
    assert serialization.json_changes(saved, saved) == []
    assert serialization.json_changes(saved, current, limit=1) == ["activation: tanh → relu"]


def test_read_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"kind": "mlp",')
    with pytest.raises(InputError, match=r"a.json is not valid JSON"):
        serialization.read_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match=r"b.json is not a UTF-8 text file"):
        serialization.read_json(tmp_path / "b.json")
    (tmp_path / "c.json").write_text('{"kind": "mlp"}')
    assert serialization.read_json(tmp_path / "c.json") == {"kind": "mlp"}
