"""Graph convolution over a whole graph: the normalised adjacency is an input, the features' map a layer."""

from __future__ import annotations

from typing import ClassVar

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import Cost, OpDef, ParamSpec, PositiveInt
from archdsl.ops.linear import Linear, last_dim
from archdsl.symmetry.contract import Pinned


class GraphConv(OpDef):
    """y = S^hops X W^T + b: graph convolution (Kipf & Welling's GCN; SGC's S^K X W, Wu et al. 2019).

    Inputs: the normalised adjacency S [V, V] (dense, or a sparse COO tensor) and node features X [V, F];
    weight [out, F] (nn.Linear's), bias [out]. The propagation S^hops X holds no parameter, so it can be
    computed once per graph (SGC's precomputation).
    """

    name: ClassVar = "graph_conv"
    symmetry: ClassVar = Pinned("graph_conv: the adjacency is an input, not a layer")
    positional: ClassVar = ("out_features",)
    arity: ClassVar = 2
    family: ClassVar = "graph"
    out_features: PositiveInt
    hops: PositiveInt = 1
    bias: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        s, x = inputs
        if s.rank != 2 or x.rank != 2 or s.shape[0] != s.shape[1] or s.shape[1] != x.shape[0]:
            raise OpError(f"graph_conv needs an adjacency [V, V] and node features [V, F] over the same nodes, "
                          f"got {s} and {x}", "pass the adjacency first and the features second, both without a "
                          "batch axis, with one row per node")
        if s.dtype != x.dtype:
            raise OpError(f"graph_conv: adjacency and features differ in dtype ({s.dtype}, {x.dtype})",
                          "declare both inputs with one dtype")
        last_dim(self, x)
        return [x.with_shape((x.shape[0], self.out_features))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        return Linear(out_features=self.out_features, bias=self.bias).params([inputs[1]])

    def graph_propagation(self) -> int | None:
        """``hops``: this op is ``linear(S^hops X)``."""
        return self.hops

    def with_hops(self, hops: int, out_features: int, bias: bool) -> GraphConv:
        """The same op propagating ``hops`` times into ``out_features`` (a collapsed chain)."""
        return self.model_copy(update={"hops": hops, "out_features": out_features, "bias": bias})

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        s, x = inputs
        return Cost(macs=self.hops * s.numel() * x.shape[1] + outputs[0].numel() * x.shape[1],
                    activations=outputs[0].numel())


OPS = (GraphConv,)
