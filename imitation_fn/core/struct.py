"""Frozen pytree dataclasses, in the spirit of ``flax.struct``.

``@struct.dataclass`` makes a frozen dataclass that torch's pytree utilities — and therefore
``torch.func.vmap``, ``torch.func.grad`` and ``torch.compile`` — see as a container. Fields marked
``static`` (ints, strings, shapes, callables) travel in the pytree *context*, not as leaves, so they
are never batched or traced.

    @struct.dataclass
    class State:
        params: dict[str, Tensor]
        step: Tensor
        n_actions: int = struct.field(static=True)

    state = state.replace(step=state.step + 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, dataclass_transform

import torch.utils._pytree as pytree

T = TypeVar("T")

_STATIC = "imitation_fn.static"


def field(*, static: bool = False, **kwargs: Any) -> Any:
    """A dataclass field; ``static=True`` keeps it out of the pytree leaves."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[_STATIC] = static
    return dataclasses.field(metadata=metadata, **kwargs)


def static_field(**kwargs: Any) -> Any:
    """Shorthand for ``field(static=True)``."""
    return field(static=True, **kwargs)


@dataclass_transform(frozen_default=True, field_specifiers=(field, static_field, dataclasses.field))
def dataclass(cls: type[T]) -> type[T]:
    """Turn ``cls`` into a frozen dataclass registered as a torch pytree node."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    data_names = tuple(f.name for f in fields if not f.metadata.get(_STATIC, False))
    static_names = tuple(f.name for f in fields if f.metadata.get(_STATIC, False))

    # A data field set to None has no leaves (JAX's convention): it goes into the context, so vmap and
    # checkpoints see only tensors (e.g. a state whose environment is stepped outside it).
    def present(obj: Any) -> tuple[str, ...]:
        return tuple(n for n in data_names if getattr(obj, n) is not None)

    def flatten(obj: Any) -> tuple[list[Any], Any]:
        names = present(obj)
        return [getattr(obj, n) for n in names], (names, tuple(getattr(obj, n) for n in static_names))

    def flatten_with_keys(obj: Any) -> tuple[list[tuple[Any, Any]], Any]:
        children, context = flatten(obj)
        return [(pytree.GetAttrKey(n), c) for n, c in zip(context[0], children, strict=True)], context

    def unflatten(children: Any, context: Any) -> Any:
        # Bypass __init__/__post_init__: transforms rebuild states from (possibly batched) leaves.
        names, static = context
        obj = object.__new__(cls)
        for name in data_names:
            object.__setattr__(obj, name, None)
        for name, value in zip(names, children, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zip(static_names, static, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    pytree.register_pytree_node(
        cls,
        flatten,
        unflatten,
        serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
        flatten_with_keys_fn=flatten_with_keys,
    )

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    cls.replace = replace  # type: ignore[attr-defined]
    return cls


@dataclass_transform(frozen_default=True, field_specifiers=(field, static_field, dataclasses.field))
class PyTreeNode:
    """Base class alternative: ``class State(struct.PyTreeNode): ...`` is a pytree dataclass.

    Subclasses get ``.replace`` and are registered automatically.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(cls)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


__all__ = ["PyTreeNode", "dataclass", "field", "static_field"]
