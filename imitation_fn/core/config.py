"""The pydantic base of every algorithm ``Config``: frozen, no unknown fields, JSON round-trip.

Also :func:`read_mapping`, which reads a JSON or YAML file of config fields (a ``--config`` file).
Both raise :class:`~imitation_fn.core.errors.InputError` naming the file for anything unusable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from imitation_fn.core.errors import InputError


class Config(BaseModel):
    """Frozen, validated hyperparameters.

    Unknown fields are rejected (``extra='forbid'``) and values are validated on construction, so
    a typo in a flag or a JSON file fails loudly with pydantic's field-level message. Floats must be
    finite (``allow_inf_nan=False``): a NaN or infinite learning rate is never what was meant; a
    field where ``inf`` means something declares ``Field(allow_inf_nan=True)``.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, use_attribute_docstrings=True, allow_inf_nan=False
    )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse and validate; :class:`InputError` lists each invalid field (``lr: Input should be ...``)."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            raise InputError(_describe(cls, e)) from e

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a config saved by :meth:`save`; :class:`InputError` names ``path`` and what is wrong."""
        path = Path(path)
        text = _read_text(path)
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            raise InputError(_describe(cls, e, path)) from e


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The config fields in a JSON file, or a YAML file if ``path`` ends in ``.yaml`` / ``.yml``.

    The file must hold a mapping from field names (strings) to values; validating the values is
    left to the ``Config`` they are passed to. A missing or unreadable file, text that is not UTF-8
    or not valid JSON / YAML, or any other top level raises :class:`InputError` naming ``path``.
    """
    path = Path(path)
    text = _read_text(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"{path} is not valid YAML ({_yaml_reason(e)})") from e
        except RecursionError as e:
            raise InputError(f"{path} is not usable YAML (nested too deeply)") from e
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from e
        except RecursionError as e:
            raise InputError(f"{path} is not usable JSON (nested too deeply)") from e
    if not isinstance(data, dict):
        got = "nothing (the file is empty)" if data is None else f"a {type(data).__name__}"
        raise InputError(f"{path} must hold a mapping of field names to values, got {got}")
    names = [key for key in data if not isinstance(key, str)]
    if names:
        raise InputError(f"{path}: field names must be strings, got {names[0]!r}")
    return data


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"{path} does not exist") from e
    except IsADirectoryError as e:
        raise InputError(f"{path} is a directory, expected a file") from e
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return raw.decode("utf-8-sig")  # -sig: a byte-order mark some editors write is not an error
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start} is {raw[e.start : e.start + 1]!r})") from e


def _yaml_reason(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        problem = e.problem or e.context or "cannot parse"
        return f"line {e.problem_mark.line + 1} column {e.problem_mark.column + 1}: {problem}"
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _describe(cls: type[Config], e: ValidationError, source: Path | None = None) -> str:
    """A ``ValidationError`` as one clause per field: ``{source}: invalid bc.Config: lr: Input should be ...``."""
    errors = e.errors(include_url=False)
    if any(err["type"] == "json_invalid" for err in errors):
        reasons = "; ".join(err["msg"].removeprefix("Invalid JSON: ") for err in errors)
        return f"{source} is not valid JSON ({reasons})" if source else f"not valid JSON ({reasons})"
    fields = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" if err["loc"] else err["msg"] for err in errors]
    what = f"invalid {cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}: " + "; ".join(fields)
    return f"{source}: {what}" if source else what


__all__ = ["Config", "read_mapping"]
