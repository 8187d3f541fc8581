"""The typed IR: a Graph of Nodes over named values, with parameter declarations beside it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_serializer, field_validator

from archdsl.ir.construct import compact, maker
from archdsl.ir.dims import Dim
from archdsl.ir.frozen import Frozen, FrozenDict
from archdsl.ir.types import DimField, Span, TensorType
from archdsl.ops.base import OpDef


@compact
class Param(BaseModel):
    """A parameter or buffer declaration: full (state_dict) name, shape, dtype and initialiser."""

    model_config = ConfigDict(frozen=True)
    name: str
    shape: tuple[DimField, ...]
    dtype: str = "float32"
    init: str = "zeros"
    buffer: bool = False
    axis: str = "none"
    fan_in: int | None = None
    layout: tuple[str, ...] = ()             # axis roles ("out", "in", "spatial", "channel"); see ParamSpec
    groups: int = 1

    def axis_of(self, role: str) -> int:
        """The axis with ``role`` in this parameter's layout; ValueError when it has none."""
        if role not in self.layout:
            raise ValueError(f"parameter {self.name} has no '{role}' axis (layout {self.layout or 'untagged'})")
        return self.layout.index(role)

    def renamed(self, name: str) -> Param:
        """The same declaration under another name (a replayed block's copy), without re-validating it."""
        return maker(Param)(name, self.shape, self.dtype, self.init, self.buffer, self.axis, self.fan_in, self.layout,
                            self.groups)

    def numel(self) -> int:
        """Number of elements (parameter shapes are always concrete)."""
        total = 1
        for d in self.shape:
            total *= int(d)
        return total


@compact
class Node(BaseModel):
    """One op application: attributes, input and output values, owned params, source span, scope."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    name: str                                # unique node id
    op: OpDef
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    types: tuple[TensorType, ...]            # one per output
    params: Annotated[dict[str, str], Frozen] = FrozenDict()   # local name (weight) -> Graph.params key
    module: str | None = None                # module path of the layer (layer1.0.conv1); None if inline
    scope: tuple[str, ...] = ()              # block nesting that produced the node (for clusters)
    span: Span | None = None
    tags: tuple[str, ...] = ()               # e.g. "reparam" on the sum of a re-param block

    @field_serializer("op")
    def _ser_op(self, op: OpDef) -> dict[str, Any]:
        return {"name": op.name, "attrs": op.attrs()}

    @field_validator("op", mode="before")
    @classmethod
    def _val_op(cls, value: Any, info: ValidationInfo) -> OpDef:
        if isinstance(value, OpDef):
            return value
        from archdsl.ops.registry import op_class

        # from_json: one op object per distinct spelling of an op (equal reprs are equal JSON values), validated
        # once and shared by its nodes, as the elaborator shares them (verify then checks each op once)
        memo = info.context.get("ops") if isinstance(info.context, dict) else None
        key = repr(value) if memo is not None else ""
        op = memo.get(key) if memo is not None else None
        if op is None:
            op = op_class(value["name"]).model_validate(value["attrs"], strict=False)
            if memo is not None:
                memo[key] = op
        return op


@compact
class Graph(BaseModel):
    """A verified-or-not network: inputs, nodes in topological order, outputs and parameters."""

    model_config = ConfigDict(frozen=True)
    name: str
    inputs: Annotated[dict[str, TensorType], Frozen]
    nodes: tuple[Node, ...]
    outputs: Annotated[dict[str, str], Frozen]            # output name -> value name
    params: Annotated[dict[str, Param], Frozen]
    doc: str = ""
    span: Span | None = None
    input_spans: Annotated[dict[str, Span], Frozen] = FrozenDict()
    module_docs: Annotated[dict[str, str], Frozen] = FrozenDict()   # module path -> block doc string
    mode: Literal["train", "eval"] = "train"              # eval: a deploy form (BN folded, dropout gone)

    # -- queries ------------------------------------------------------------------------------
    def value_types(self) -> dict[str, TensorType]:
        """Type of every value: inputs and node outputs."""
        types = dict(self.inputs)
        for node in self.nodes:
            types.update(zip(node.outputs, node.types, strict=True))
        return types

    def producers(self) -> dict[str, Node]:
        """Map value name -> the node that produces it."""
        return {v: n for n in self.nodes for v in n.outputs}

    def output_types(self) -> dict[str, TensorType]:
        """Type of each named output."""
        types = self.value_types()
        return {k: types[v] for k, v in self.outputs.items()}

    def symbols(self) -> list[str]:
        """Symbolic dims of the inputs, in order of first appearance."""
        seen: list[str] = []
        for t in self.inputs.values():
            for d in t.shape:
                for s in sorted(getattr(d, "symbols", ())):
                    if s not in seen:
                        seen.append(s)
        return seen

    def num_params(self) -> int:
        """Number of trainable parameter elements (buffers excluded)."""
        return sum(p.numel() for p in self.params.values() if not p.buffer)

    def to_networkx(self):  # -> networkx.DiGraph
        """A DiGraph view: nodes are node names (plus inputs), edges carry the value and its type."""
        import networkx as nx

        g = nx.DiGraph()
        producer = {name: name for name in self.inputs}
        for name in self.inputs:
            g.add_node(name, kind="input")
        for node in self.nodes:          # every producer first, so out-of-order edges and cycles show
            g.add_node(node.name, kind="op", op=node.op.name)
            producer.update(dict.fromkeys(node.outputs, node.name))
        types = self.value_types()
        for node in self.nodes:
            for v in node.inputs:
                if v in producer:
                    g.add_edge(producer[v], node.name, value=v, type=types.get(v))
        return g

    def to_json(self) -> str:
        """Serialise to JSON (round-trips through :meth:`from_json`)."""
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str) -> Graph:
        """Parse JSON made by :meth:`to_json`."""
        return cls.model_validate_json(text, context={"ops": {}})

    def replace(self, **changes: Any) -> Graph:
        """A validated copy with some fields changed (the IR is immutable; mappings are frozen again)."""
        return type(self).model_validate({**{k: getattr(self, k) for k in type(self).model_fields}, **changes})


def shape_str(shape: tuple[Dim, ...]) -> str:
    """``[N, 64, H, W]``."""
    return "[" + ", ".join(str(d) for d in shape) + "]"
