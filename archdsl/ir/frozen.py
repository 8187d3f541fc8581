"""An immutable, hashable mapping for the fields of frozen IR models (a frozen model must be deeply frozen)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import AfterValidator

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    """A dict whose contents cannot change after construction; ``|`` and ``set`` return new copies."""

    __slots__ = ("_hash",)
    _hash: int

    def _refuse(self, *args: Any, **kwargs: Any):
        raise TypeError("the IR is immutable: build a new mapping (d | {k: v}) and use Graph.replace()")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            self._hash = hash(frozenset(self.items()))
            return self._hash

    def __or__(self, other: Mapping[K, V]) -> FrozenDict[K, V]:  # type: ignore[override]
        return FrozenDict({**self, **other})

    def set(self, key: K, value: V) -> FrozenDict[K, V]:
        """A copy with ``key`` set to ``value``."""
        return FrozenDict({**self, key: value})

    def without(self, *keys: K) -> FrozenDict[K, V]:
        """A copy without ``keys``."""
        return FrozenDict({k: v for k, v in self.items() if k not in keys})

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict) -> FrozenDict[K, V]:
        return self


def _freeze(value: dict) -> FrozenDict:
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


Frozen = AfterValidator(_freeze)
"""Use as ``Annotated[dict[str, X], Frozen]`` on a frozen pydantic model's mapping fields."""

