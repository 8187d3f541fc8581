"""Bind symbolic input sizes (``N=1,H=224``) to get a Graph with concrete shapes where possible."""

from __future__ import annotations

import ast

from archdsl.errors import Diagnostic, ShapeError, UsageError
from archdsl.ir.dims import Dim, SymDim
from archdsl.ir.graph import Graph, shape_str
from archdsl.ir.types import TensorType

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


def parse_sizes(texts: list[str] | str | None) -> dict[str, int]:
    """``"N=1,H=224,W=224"`` (or several such strings) -> ``{"N": 1, "H": 224, "W": 224}``."""
    if isinstance(texts, str):
        texts = [texts]
    sizes: dict[str, int] = {}
    for text in texts or []:
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = (s.strip() for s in part.partition("="))
            if len(value) > 19 and value.isascii() and value.isdigit():
                raise UsageError(Diagnostic(f"--input {key}: {value[:30]}... does not fit in 64 bits"))
            if not sep or not key.isidentifier() or not (value.isascii() and value.isdigit()) or int(value) <= 0:
                raise UsageError(Diagnostic(f"--input expects NAME=SIZE pairs with positive sizes, got {part[:60]!r}",
                                            hint="for example --input N=1,H=224,W=224"))
            if int(value) >= 2**63:
                raise UsageError(Diagnostic(f"--input {key}: {value[:30]} does not fit in 64 bits"))
            sizes[key] = int(value)
    return sizes


def substitute(d: Dim, env: dict[str, int]) -> Dim:
    """``d`` with the symbols in ``env`` replaced by their values; unbound symbols stay symbolic."""
    if isinstance(d, int):
        return d
    if d.symbols <= env.keys():
        return d.evaluate(env)
    return _from_ast(ast.parse(str(d), mode="eval").body, env)


def _from_ast(node: ast.AST, env: dict[str, int]) -> Dim:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id, SymDim.symbol(node.id))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_from_ast(node.operand, env)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_from_ast(node.left, env), _from_ast(node.right, env))
    raise ValueError(f"cannot substitute into dimension {ast.unparse(node)!r}")


def bind_type(t: TensorType, env: dict[str, int]) -> TensorType:
    """A tensor type with ``env`` substituted into its shape."""
    return t.with_shape(tuple(substitute(d, env) for d in t.shape))


def bind(graph: Graph, sizes: dict[str, int]) -> Graph:
    """A copy of ``graph`` with input symbols bound; raises UsageError for unknown symbols, ShapeError
    when an input is too small for some op (a non-positive concrete size)."""
    if not sizes:
        return graph
    known = graph.symbols()
    unknown = [k for k in sizes if k not in known]
    if unknown:
        raise UsageError(Diagnostic(f"--input names unknown size {unknown[0]!r} for model {graph.name}",
                                    hint="symbolic sizes of the inputs: " + (", ".join(known) or "none")))
    inputs = {k: bind_type(t, sizes) for k, t in graph.inputs.items()}
    nodes = []
    for node in graph.nodes:
        types = tuple(bind_type(t, sizes) for t in node.types)
        for t in types:
            if any(isinstance(d, int) and d <= 0 for d in t.shape):
                raise ShapeError(Diagnostic(f"{node.op.name} ({node.module or node.name}) gets output shape "
                                            f"{shape_str(t.shape)} for inputs {_sizes_text(sizes)}",
                                            span=node.span, hint="the input is too small for this network"))
        nodes.append(node.model_copy(update={"types": types}))
    return graph.replace(inputs=inputs, nodes=tuple(nodes))


def _sizes_text(sizes: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sizes.items())
