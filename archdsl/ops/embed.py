"""Embeddings and free parameters: Embedding lookups and Parameter (class tokens, position embeddings)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import Cost, OpDef, ParamSpec, PositiveInt
from archdsl.symmetry.contract import Free, Lookup

INT_DTYPES = ("int64", "int32")
# initialisers the backends understand, with the keyword arguments each takes
INITS: dict[str, tuple[str, ...]] = {
    "zeros": (), "ones": (), "constant": ("value",), "normal": ("mean", "std"),
    "trunc_normal": ("mean", "std", "a", "b"), "uniform": ("a", "b", "bound"),
}
_INIT = re.compile(r"(\w+)(?:\((.*)\))?$")


def check_init(text: str) -> str:
    """Validate an initialiser string such as ``normal(std=0.02)``; ValueError with the accepted forms."""
    match = _INIT.match(text.strip())
    if match is None or match.group(1) not in INITS:
        raise ValueError(f"unknown initialiser {text!r}; use one of: {', '.join(INITS)}, e.g. 'normal(std=0.02)'")
    kind, args = match.group(1), match.group(2) or ""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in args.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in INITS[kind]:
            raise ValueError(f"{kind} takes keyword arguments {', '.join(INITS[kind]) or '(none)'}, got {part!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{kind}: {key.strip()} must be a number, got {value.strip()!r}") from None
        if not abs(number) <= _FLOAT32_MAX:
            raise ValueError(f"{kind}: {key.strip()} must be a finite float32 number, got {value.strip()}")
        values[key.strip()] = number
    _check_init_values(kind, values)
    return text.strip()


_FLOAT32_MAX = 3.4028234663852886e38


def _check_init_values(kind: str, v: dict[str, float]) -> None:
    """The ranges the initialisers need: std >= 0 (> 0 when truncated), a <= b (a < b when truncated)."""
    if kind in ("normal", "trunc_normal") and v.get("std", 1.0) < 0:
        raise ValueError(f"{kind}: std must not be negative, got {v['std']:g}")
    if kind == "trunc_normal":
        std = v.get("std", 1.0)
        if std == 0:
            raise ValueError("trunc_normal: std must be positive")
        a, b = v.get("a", -2 * std), v.get("b", 2 * std)
        if not a < b:
            raise ValueError(f"trunc_normal: the range a={a:g} .. b={b:g} is empty")
    if kind == "uniform":
        if v.get("bound", 0.0) < 0:
            raise ValueError(f"uniform: bound must not be negative, got {v['bound']:g}")
        if "a" in v and "b" in v and v["a"] > v["b"]:
            raise ValueError(f"uniform: a={v['a']:g} is greater than b={v['b']:g}")
        if ("a" in v) != ("b" in v) and (v.get("a", 0.0) > 0 or v.get("b", 0.0) < 0):
            raise ValueError("uniform: with a one-sided range the other end is the default bound; give both a and b")


class Parameter(OpDef):
    """A free learned tensor named by where it is assigned: ``class_token = Parameter((1, 1, 768))``."""

    name: ClassVar = "parameter"
    symmetry: ClassVar = Free()
    positional: ClassVar = ("shape", "init")
    arity: ClassVar = 0
    family: ClassVar = "embed"
    shape: tuple[int, ...]
    init: str = "zeros"
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
            raise OpError(f"parameter takes no tensor inputs, got {len(inputs)}")
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
                          f"{self.num_embeddings} embeddings")
        return [TensorType(shape=(*x.shape, self.embedding_dim), dtype="float32")]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        return {"weight": ParamSpec((self.num_embeddings, self.embedding_dim), "normal(std=1)", axis="feature")}


OPS = (Parameter, Embedding)
