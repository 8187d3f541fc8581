"""Run-time values of elaboration: tensors (graph handles) and unapplied layers."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from archdsl.ir.dims import SymDim
from archdsl.ir.types import Span, TensorType
from archdsl.ops.base import OpDef
from archdsl.syntax import ast as A

_uids = itertools.count(1)


def fresh_uid() -> int:
    """A new identity for a layer application (used to detect accidental parameter sharing)."""
    return next(_uids)


# The values made per node (Tensor, OpLayer, OpRef) are never changed once made, but are not frozen dataclasses:
# a frozen dataclass sets each field through object.__setattr__, twice the cost on a path taken 100k times.
# unsafe_hash keeps the hash a frozen dataclass with eq has.
@dataclass(unsafe_hash=True, slots=True)
class Tensor:
    """A value in the graph under construction: its name, type, and where it came from (never changed once made)."""

    value: str
    type: TensorType
    span: Span | None = None
    # the node making ``value`` when known (None: look it up), so the next node need not search 100k value names
    node: Any = field(default=None, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return f"tensor {self.type}"


@dataclass(frozen=True)
class BlockRef:
    """A block name, not yet called."""

    block: A.BlockDef
    namespace: Any                      # the Namespace the block was defined in

    def describe(self) -> str:
        """For error messages."""
        return f"the block {self.block.name}"


@dataclass(unsafe_hash=True)
class OpRef:
    """An op name, not yet called (``relu`` in ``x |> relu``)."""

    op: type[OpDef]

    def describe(self) -> str:
        """For error messages."""
        return f"the op {self.op.__name__}"


@dataclass(frozen=True)
class NamespaceRef:
    """An import alias (``std`` in ``std.ConvBNAct``)."""

    namespace: Any

    def describe(self) -> str:
        """For error messages."""
        return f"the import alias of '{self.namespace.file}'"


@dataclass(frozen=True)
class Unnamed:
    """A buffer given its value but not yet its name: the assignment ``idx = Buffer(expr)`` names and applies it."""

    layer: Any                          # the OpLayer of an op with Trait.BUFFER
    inputs: tuple[Any, ...]
    span: Span | None = None

    def describe(self) -> str:
        """For error messages."""
        name = self.layer.op.__name__
        return f"an unnamed {name} (a buffer is named where it is assigned: `idx = {name}(...)`)"


class Layer:
    """Base of unapplied layers; applying one to tensors adds nodes to the graph."""

    __slots__ = ()          # (the layers made per statement, OpLayer, BlockLayer and Named, keep no dict)
    span: Span | None


@dataclass(eq=False, slots=True)
class OpLayer(Layer):
    """An op with its attributes bound, waiting for inputs: ``Conv2d(64, 3)``."""

    op: type[OpDef]
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    span: Span | None = None
    arg_spans: Mapping[str | int, Span] = field(default_factory=dict)   # argument (index or name) -> its span


@dataclass(eq=False, slots=True)
class BlockLayer(Layer):
    """A block with its parameters bound: ``BasicBlock(64, stride=2)``."""

    block: A.BlockDef
    namespace: Any                      # the module namespace the block was defined in
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    span: Span | None = None
    arg_spans: Mapping[str | int, Span] = field(default_factory=dict)   # argument (index or name) -> its span


@dataclass(frozen=True, eq=False)
class SeqLayer(Layer):
    """A sequential container; entries without a key are named by their index."""

    entries: tuple[tuple[str | None, Any], ...]
    span: Span | None = None


@dataclass(frozen=True, eq=False)
class ReparamLayer(Layer):
    """Named branches applied to the same input and summed (merged into one op for deployment)."""

    branches: tuple[tuple[str, Any], ...]
    span: Span | None = None
    merged: str | None = None            # the merged layer's name (None: the pass's default, reparam_conv)


@dataclass(frozen=True, eq=False)
class Absent(Layer):
    """A conditional layer whose condition was false: the identity, or a dropped branch."""

    span: Span | None = None


@dataclass(eq=False, slots=True)
class Named(Layer):
    """A layer bound to a name in a block: applications put its parameters under that name."""

    name: str
    layer: Layer
    where: Any = None                     # its Span, or the statement naming it (see ``span``)
    path: tuple[str, ...] = ()            # full module path where it was bound
    owner: tuple[int | str, ...] = ()     # identities of the applications it was bound in, and its name
    uses: int = 0
    scope: tuple[str, ...] | None = None  # the nodes' scope when applied (None: ``path``); a container's entry
                                          # reached by index keeps the container's scope

    @property
    def span(self) -> Span | None:
        """Where the layer is named (a syntax node makes its span on each read: read only when needed)."""
        where = self.where
        return where if where is None or isinstance(where, Span) else where.span

    @span.setter
    def span(self, value: Span | None) -> None:
        self.where = value


def describe(value: Any) -> str:
    """A short phrase for error messages: 'an int', 'a tensor [N, 64]', 'a layer Conv2d'."""
    if isinstance(value, Tensor):
        return f"a tensor {value.type}"
    if isinstance(value, Named):
        return f"the layer '{value.name}'"
    if isinstance(value, OpLayer):
        return f"a layer {value.op.__name__}"
    if isinstance(value, BlockLayer):
        return f"a block {value.block.name}"
    if isinstance(value, (SeqLayer, ReparamLayer)):
        return "a container of layers"
    if isinstance(value, Absent):
        return "an absent layer"
    if hasattr(value, "describe"):
        return value.describe()
    if isinstance(value, SymDim):
        return f"the symbolic size {value}"
    if value is None:
        return "none"
    if callable(value):
        return "a built-in function"
    return _article(_TYPE_WORDS.get(type(value), type(value).__name__))


_TYPE_WORDS = {bool: "bool", int: "int", float: "float", str: "string", list: "list", tuple: "tuple"}


def _article(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def layer_like(value: Any) -> bool:
    """Layers, op and block names, and non-empty lists of those (a list acts as a sequential container)."""
    if isinstance(value, list):
        return bool(value) and all(layer_like(v) for v in value)
    return isinstance(value, (Layer, OpRef, BlockRef))


def is_layer(value: Any) -> bool:
    """True for layers and lists of layers (which act as sequential containers)."""
    if isinstance(value, Layer):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, Layer) for v in value)
