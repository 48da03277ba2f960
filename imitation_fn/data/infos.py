"""Per-step ``infos`` on disk as JSON, the way ``imitation`` stores them (host-side).

``imitation`` writes each step's info dict with ``jsonpickle.encode``; for a dict of plain values
that is plain JSON, which is what :func:`encode` writes, so both libraries read the files. What an
info may hold:

- kept: ``None``, ``bool``, ``int``, ``float`` (NaN and ±inf as ``NaN``/``Infinity``, as jsonpickle
  writes them), ``str``, lists, and dicts with string keys, nested;
- converted: tuples → lists; numpy and torch scalars → Python numbers; numpy arrays and tensors →
  nested lists (their dtype and shape are not kept);
- dropped, with one warning that names them: anything else (objects, bytes, sets, complex numbers)
  together with its key, and entries whose key is not a string or starts with ``py/`` (jsonpickle's
  tags: ``imitation`` would build objects from them). A list holding such a value is dropped whole.

So what comes back from a save equals what was saved, up to those conversions, or is absent.

:func:`decode` never runs jsonpickle (decoding it can run arbitrary code): each string is parsed as
JSON. Values only jsonpickle can rebuild (``{"py/object": ...}``, ``{"py/reduce": ...}``, ...: numpy
arrays and scalars, objects, in ``imitation``-written files) are dropped with one warning that names
their keys; ``{"py/tuple": [...]}`` becomes a list.
"""

from __future__ import annotations

import json
import pickletools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from imitation_fn.core.errors import InputError

Info = dict[str, Any]

_EMPTY = "{}"  # == jsonpickle.encode({}), what imitation writes for infos=None
_MAX_DEPTH = 64  # deeper nesting (or a cycle) is dropped, not recursed into
_SHOWN = 10  # dropped keys named in a warning


class _Dropped:
    """Marks a value that cannot be kept; the caller drops its key (or its whole list)."""


_DROP = _Dropped()


def encode(infos: Sequence[Sequence[Mapping[str, Any]]], lengths: Sequence[int], where: str) -> list[list[str]]:
    """Per trajectory, one JSON string per step (``imitation``'s ``infos`` column).

    ``infos[i]`` holds the ``lengths[i]`` infos of trajectory ``i``. Values that JSON cannot hold are
    converted or dropped as the module docstring says, with one warning prefixed by ``where``.
    """
    if len(infos) != len(lengths):
        raise InputError(f"{where}: got infos for {len(infos)} trajectories, expected {len(lengths)}")
    dropped: dict[str, str] = {}
    encoded = []
    for i, (episode, n) in enumerate(zip(infos, lengths, strict=True)):
        if len(episode) != n:
            raise InputError(f"{where}: trajectory {i} has {n} steps but {len(episode)} infos")
        row = []
        for t, info in enumerate(episode):
            if not isinstance(info, Mapping):
                raise InputError(f"{where}: trajectory {i} step {t}: info is a {type(info).__name__}, expected a dict")
            clean = _to_json(info, "", dropped, ()) if info else {}
            row.append(json.dumps(clean) if clean else _EMPTY)
        encoded.append(row)
    _warn(dropped, f"{where}: dropped per-step info values that JSON cannot hold (see imitation_fn.data.infos)")
    return encoded


def decode(rows: Sequence[Any], lengths: Sequence[int], where: str) -> list[list[Info]]:
    """The infos of ``imitation``'s ``infos`` column: ``rows[i]`` is ``lengths[i]`` JSON strings.

    Raises :class:`InputError` for rows of the wrong length or strings that are not JSON objects;
    drops jsonpickle-only values with one warning (module docstring).
    """
    dropped: dict[str, str] = {}
    infos = []
    for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
        if not isinstance(row, list) or len(row) != n or not all(isinstance(s, str) for s in row):
            shape = f"a list of {len(row)}" if isinstance(row, list) else f"a {type(row).__name__}"
            raise InputError(f"{where}: trajectory {i}: infos is {shape}, expected {n} JSON strings (one per step)")
        episode: list[Info] = []
        for t, text in enumerate(row):
            if text == _EMPTY:
                episode.append({})
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as e:
                raise InputError(f"{where}: trajectory {i} step {t}: info is not JSON ({type(e).__name__})") from e
            if not isinstance(value, dict):
                raise InputError(f"{where}: trajectory {i} step {t}: info is {text[:40]!r}, expected a JSON object")
            episode.append(_from_json(value, "", dropped, 0))
        infos.append(episode)
    _warn(
        dropped,
        f"{where}: dropped per-step info values that only jsonpickle can rebuild (not run here: it can execute code)",
    )
    return infos


def pickled_dicts_are_empty(data: bytes) -> bool:
    """Whether a pickle (e.g. ``imitation``'s ``.npz`` infos array) holds no non-empty dict.

    Reads the opcodes without unpickling: a dict gets items only through ``SETITEM``/``SETITEMS``, or
    ``DICT`` over a non-empty mark. ``False`` when that cannot be told (a damaged pickle).
    """
    try:
        previous = None
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name in ("SETITEM", "SETITEMS") or (opcode.name == "DICT" and previous != "MARK"):
                return False
            previous = opcode.name
    except (ValueError, EOFError, UnicodeDecodeError):
        return False
    return True


def _to_json(value: Any, path: str, dropped: dict[str, str], parents: tuple[int, ...]) -> Any:
    """``value`` as JSON values, or ``_DROP``; records what was dropped at ``path``.

    ``parents`` are the ids of the containers ``value`` sits in: a container met again is a cycle.
    """
    if len(parents) > _MAX_DEPTH or id(value) in parents:
        dropped.setdefault(path, "a cycle" if id(value) in parents else "nested too deep")
        return _DROP
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):  # np.str_ and other subclasses
        return str(value)
    if isinstance(value, int):  # IntEnum, ...
        return int(value)
    if isinstance(value, float):  # np.float64
        return float(value)
    if isinstance(value, np.generic | np.ndarray):
        if value.dtype.kind in "biufUO":  # not complex, bytes, dates or structured values
            return _to_json(value.tolist(), path, dropped, parents)
    elif isinstance(value, torch.Tensor):
        if not value.is_complex():
            return _to_json(value.tolist(), path, dropped, parents)
    elif isinstance(value, Mapping):
        inside = (*parents, id(value))
        out = {}
        for key, item in value.items():
            where = f"{path}[{key!r}]"
            if not isinstance(key, str) or key.startswith("py/"):
                why = "key starts with py/" if isinstance(key, str) else f"key is {type(key).__name__}"
                dropped.setdefault(where, why)
                continue
            converted = _to_json(item, where, dropped, inside)
            if converted is not _DROP:
                out[key] = converted
        return out
    elif isinstance(value, list | tuple):
        inside = (*parents, id(value))
        items = [_to_json(item, f"{path}[{i}]", dropped, inside) for i, item in enumerate(value)]
        return _DROP if any(item is _DROP for item in items) else items
    dropped.setdefault(path, type(value).__name__)
    return _DROP


def _from_json(value: Any, path: str, dropped: dict[str, str], depth: int) -> Any:
    """A parsed JSON value without jsonpickle's tagged objects, or ``_DROP``."""
    if depth > _MAX_DEPTH:
        dropped.setdefault(path, "nested too deep")
        return _DROP
    if isinstance(value, dict):
        tags = [key for key in value if key.startswith("py/")]
        if tags == ["py/tuple"] and len(value) == 1 and isinstance(value["py/tuple"], list):
            return _from_json(value["py/tuple"], path, dropped, depth + 1)
        if tags:
            dropped.setdefault(path, tags[0])
            return _DROP
        out = {}
        for key, item in value.items():
            converted = _from_json(item, f"{path}[{key!r}]", dropped, depth + 1)
            if converted is not _DROP:
                out[key] = converted
        return out
    if isinstance(value, list):
        items = [_from_json(item, f"{path}[{i}]", dropped, depth + 1) for i, item in enumerate(value)]
        return _DROP if any(item is _DROP for item in items) else items
    return value


def _warn(dropped: dict[str, str], message: str) -> None:
    if not dropped:
        return
    names = [f"{path} ({why})" for path, why in list(dropped.items())[:_SHOWN]]
    more = f" and {len(dropped) - _SHOWN} more" if len(dropped) > _SHOWN else ""
    warnings.warn(f"{message}: {', '.join(names)}{more}", UserWarning, stacklevel=3)


__all__ = ["Info", "decode", "encode", "pickled_dicts_are_empty"]
