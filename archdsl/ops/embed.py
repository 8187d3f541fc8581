"""Embeddings and free parameters: Embedding lookups and Parameter (class tokens, position embeddings)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.init import Init
from archdsl.ir.types import TensorType
from archdsl.ops.base import Cost, OpDef, ParamSpec, PositiveInt
from archdsl.symmetry.contract import Free, Lookup

INT_DTYPES = ("int64", "int32")


def check_init(text: str) -> str:
    """Validate an initialiser string such as ``normal(std=0.02)`` (see :class:`archdsl.ir.init.Init`)."""
    Init.parse(text)
    return text.strip()


class Parameter(OpDef):
    """A free learned tensor named by where it is assigned: ``class_token = Parameter((1, 1, 768), "zeros")``.

    The initialiser is required (``"zeros"``, ``"trunc_normal(std=0.02)"``, ...): a position embedding that
    silently started at zero trains differently from its reference.
    """

    name: ClassVar = "parameter"
    symmetry: ClassVar = Free()
    positional: ClassVar = ("shape", "init")
    arity: ClassVar = 0
    family: ClassVar = "embed"
    shape: tuple[int, ...]
    init: str
    dtype: Literal["float32", "float64", "float16", "bfloat16"] = "float32"

    @field_validator("shape")
    @classmethod
    def _sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d <= 0 for d in v):
            raise ValueError(f"sizes must be positive, got {v}")
        return v

    @field_validator("init")
    @classmethod
    def _init(cls, v: str) -> str:
        return check_init(v)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs:
            raise OpError(f"parameter takes no tensor inputs, got {len(inputs)}",
                          "declare it on its own (`w = Parameter([...])`) and use `w` in an expression")
        return [TensorType(shape=self.shape, dtype=self.dtype)]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        return {"": ParamSpec(self.shape, self.init, dtype=self.dtype)}

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=0, activations=0)


class Embedding(OpDef):
    """Rows of a learned table picked by integer ids: int[...] -> [..., embedding_dim]; weight [num, dim]."""

    name: ClassVar = "embedding"
    symmetry: ClassVar = Lookup()
    positional: ClassVar = ("num_embeddings", "embedding_dim")
    family: ClassVar = "embed"
    num_embeddings: PositiveInt
    embedding_dim: PositiveInt
    padding_idx: int | None = None

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.dtype not in INT_DTYPES:
            raise OpError(f"embedding expects integer ids (int64 or int32), got {x.dtype} {x}",
                          hint="declare the input as int64[...]")
        if self.padding_idx is not None and not -self.num_embeddings <= self.padding_idx < self.num_embeddings:
            raise OpError(f"embedding: padding_idx {self.padding_idx} is out of range for "
                          f"{self.num_embeddings} embeddings", f"padding_idx is a row index: 0 to "
                          f"{self.num_embeddings - 1} (or negative from the end)")
        return [TensorType(shape=(*x.shape, self.embedding_dim), dtype="float32")]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        return {"weight": ParamSpec((self.num_embeddings, self.embedding_dim), "normal(std=1)", axis="feature")}


OPS = (Parameter, Embedding)
