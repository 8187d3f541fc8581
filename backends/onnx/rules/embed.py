"""Embeddings (a Gather of the table's rows) and free parameters (the initialiser itself)."""

from __future__ import annotations

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops.embed import Embedding, Parameter


@lowering(Parameter)
def _parameter(e: NodeEmitter, op: Parameter, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return params[""]


@lowering(Embedding)
def _embedding(e: NodeEmitter, op: Embedding, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Gather", params["weight"], xs[0], axis=0)
