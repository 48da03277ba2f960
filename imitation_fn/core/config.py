"""The pydantic base of every algorithm ``Config``: frozen, no unknown fields, JSON round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """Frozen, validated hyperparameters.

    Unknown fields are rejected (``extra='forbid'``) and values are validated on construction, so
    a typo in a flag or a JSON file fails loudly with pydantic's field-level message.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, use_attribute_docstrings=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.model_validate_json(text)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return cls.from_json(Path(path).read_text())


__all__ = ["Config"]
