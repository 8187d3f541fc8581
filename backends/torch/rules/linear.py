"""Lowerings of dense layers to nn.Linear and nn.Bilinear."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor
from archdsl.ir.types import TensorType
from archdsl.ops.graph import GraphConv
from archdsl.ops.linear import Bilinear, Linear, last_dim


def _linear_module(op: Linear, ins: list[TensorType]) -> str:
    return ctor("nn.Linear", last_dim(op, ins[0]), op.out_features, bias=op.bias)


@lowering(Linear, module=_linear_module, fresh=True)
def _linear(op: Linear, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]})"


def _bilinear_module(op: Bilinear, ins: list[TensorType]) -> str:
    in1, in2 = op.features(ins)
    return ctor("nn.Bilinear", in1, in2, op.out_features, bias=op.bias)


@lowering(Bilinear, module=_bilinear_module)
def _bilinear(op: Bilinear, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]}, {args[1]})"


def _graph_conv_module(op: GraphConv, ins: list[TensorType]) -> str:
    return ctor("nn.Linear", last_dim(op, ins[1]), op.out_features, bias=op.bias)


@lowering(GraphConv, module=_graph_conv_module, fresh=True)
def _graph_conv(op: GraphConv, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    # S^k X (torch.matmul takes a sparse COO adjacency too), then the features' linear map
    propagated = args[1]
    for _ in range(op.hops):
        propagated = f"torch.matmul({args[0]}, {propagated})"
    return f"{ref}({propagated})"
