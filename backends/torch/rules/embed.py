"""Lowerings of embeddings (nn.Embedding) and free parameters (registered by codegen on the parent)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor
from archdsl.ir.types import TensorType
from archdsl.ops.embed import Embedding, Parameter


@lowering(Parameter)
def _parameter(op: Parameter, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    # codegen registers the tensor under the layer path (the "" parameter) and passes its reference
    return str(ref)


def _embedding_module(op: Embedding, ins: list[TensorType]) -> str:
    return ctor("nn.Embedding", op.num_embeddings, op.embedding_dim, padding_idx=op.padding_idx)


@lowering(Embedding, module=_embedding_module)
def _embedding(op: Embedding, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]})"
