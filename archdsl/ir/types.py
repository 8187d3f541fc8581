"""Tensor types and source spans: the small immutable values every IR node carries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator

from archdsl.ir.construct import compact, maker
from archdsl.ir.dims import Dim, SymDim, parse_dim


@functools.lru_cache(maxsize=4096)    # graph.json spells the same few sizes thousands of times (Dims are immutable)
def _parse_dim_text(text: str) -> Dim:
    return parse_dim(text)


def _validate_dim(value: Any) -> Dim:
    if isinstance(value, SymDim):
        return value.simplify()
    if isinstance(value, bool):
        raise ValueError("a dimension is an integer or a symbol")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return _parse_dim_text(value)
    raise ValueError(f"not a dimension: {value!r}")


def _serialize_dim(value: Dim) -> int | str:
    return value if isinstance(value, int) else str(value)


DimField = Annotated[Any, PlainValidator(_validate_dim), PlainSerializer(_serialize_dim)]

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")


@compact
class Span(BaseModel):
    """Where something came from: file, 1-based line and column, and the end position."""

    model_config = ConfigDict(frozen=True)
    file: str = "<string>"
    line: int = 1
    column: int = 1
    end_line: int = 1
    end_column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ``Span(file, line, column, end_line, end_column)`` from values already of the right types, without pydantic's
# validation (the parser's hot path: one span per syntax node), and compact (see archdsl.ir.construct)
make_span: Callable[[str, int, int, int, int], Span] = maker(Span)


@compact
class TensorType(BaseModel):
    """A tensor's shape (ints or symbolic dims) and dtype."""

    model_config = ConfigDict(frozen=True)
    shape: tuple[DimField, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        """Number of axes."""
        return len(self.shape)

    def with_shape(self, shape: tuple[Dim, ...] | list[Dim]) -> TensorType:
        """The same dtype with another shape."""
        shape = tuple(shape)
        for d in shape:        # ints and SymDims as they are (what validation keeps); anything else is validated
            if type(d) is not int and not (type(d) is SymDim and d.simplify() is d):
                return TensorType(shape=shape, dtype=self.dtype)
        return _make_tensor_type(shape, self.dtype)

    # equality and hash as pydantic defines them (same class, equal fields), without reading ``__dict__``
    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(other) is type(self) and self.shape == other.shape and self.dtype == other.dtype  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype))

    def numel(self) -> Dim:
        """Number of elements (symbolic when the shape is)."""
        total: Dim = 1
        for d in self.shape:
            total = total * d
        return total

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"[{dims}]" if self.dtype == "float32" else f"{self.dtype}[{dims}]"


_make_tensor_type = maker(TensorType)
