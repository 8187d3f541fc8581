"""Per-node and per-block parameter and MAC counts of a Graph (what ``archdsl stats`` prints)."""

from __future__ import annotations

from dataclasses import dataclass

from archdsl.ir.dims import Dim
from archdsl.ir.graph import Graph, Node, shape_str


@dataclass(frozen=True)
class Row:
    """One line of the table: a node, or (at ``depth``) a block of nodes sharing a path prefix."""

    name: str                  # module path, node name, or block path
    op: str                    # op name, or "block" for a group of several nodes
    output: str                # output shape(s) of the node, or of the block's last node
    params: int                # trainable parameter elements first owned here (shared ones counted once)
    macs: Dim                  # multiply-accumulates (symbolic when shapes are)
    nodes: int = 1             # graph nodes in this row
    doc: str = ""              # block doc string (first line), when the row is a documented block


@dataclass(frozen=True)
class Stats:
    """The whole table plus totals."""

    model: str
    inputs: dict[str, str]     # input name -> shape text
    rows: tuple[Row, ...]
    params: int                # trainable parameter elements (== sum over build(...).parameters())
    buffers: int               # buffer elements (running stats), not parameters
    macs: Dim
    depth: int | None = None


def node_path(node: Node) -> tuple[str, ...]:
    """Where a node lives: its module path (``layer1.0.conv1``), else its scope plus its own name."""
    if node.module:
        return tuple(node.module.split("."))
    prefix = "_".join(node.scope) + "_" if node.scope else ""
    local = node.name[len(prefix):] if prefix and node.name.startswith(prefix) else node.name
    return (*node.scope, local)


def node_levels(node: Node) -> tuple[str, ...]:
    """The levels ``--depth`` counts: a node's path with each numbered entry joined to its container.

    ``stages.1.blocks.0.mlp`` is three levels (``stages.1``, ``blocks.0``, ``mlp``), so a block in a list
    sits one level below its parent as a named sub-block does (``stages.1.downsample``): siblings fold evenly.
    """
    return levels_of(node_path(node))


def levels_of(path: tuple[str, ...]) -> tuple[str, ...]:
    """Join every all-digit component of ``path`` to the one before it (``layer1``, ``0`` -> ``layer1.0``)."""
    levels: list[str] = []
    for part in path:
        if part.isdigit() and levels:
            levels[-1] += "." + part
        else:
            levels.append(part)
    return tuple(levels)


def node_macs(node: Node, types: dict) -> Dim:
    """MACs of one node, from its op's ``cost`` rule."""
    return node.op.cost([types[v] for v in node.inputs], list(node.types)).macs


def node_rows(graph: Graph) -> list[Row]:
    """One row per node, in topological order; each parameter counts at the first node that uses it."""
    types = graph.value_types()
    seen: set[str] = set()
    rows = []
    for node in graph.nodes:
        owned = [full for full in node.params.values() if full not in seen and full in graph.params]
        seen.update(owned)
        params = sum(graph.params[f].numel() for f in owned if not graph.params[f].buffer)
        output = ", ".join(shape_str(t.shape) for t in node.types)
        rows.append(Row(".".join(node_path(node)), node.op.name, output, params, node_macs(node, types)))
    loose = [p for name, p in graph.params.items() if name not in seen and not p.buffer]
    if loose:
        rows.append(Row("(unattached params)", "-", "", sum(p.numel() for p in loose), 0, nodes=0))
    return rows


def group_rows(graph: Graph, rows: list[Row], depth: int) -> list[Row]:
    """Merge node rows that share their first ``depth`` levels (:func:`node_levels`), in order of first appearance."""
    groups: dict[tuple[str, ...], list[tuple[Node, Row]]] = {}
    for node, row in zip(graph.nodes, rows, strict=False):  # rows may end with unattached params
        groups.setdefault(node_levels(node)[:depth], []).append((node, row))
    out = []
    for key, members in groups.items():
        if len(members) == 1 and node_levels(members[0][0]) == key:
            out.append(members[0][1])
            continue
        name = ".".join(key)
        doc = graph.module_docs.get(name, "").strip().splitlines()
        out.append(Row(name, "block", members[-1][1].output, sum(r.params for _, r in members),
                       sum((r.macs for _, r in members), 0), nodes=len(members), doc=doc[0] if doc else ""))
    out.extend(rows[len(graph.nodes):])
    return out


def stats(graph: Graph, depth: int | None = None) -> Stats:
    """The stats table of ``graph`` (bind sizes first with :func:`archdsl.analysis.bind`)."""
    rows = node_rows(graph)
    if depth is not None:
        rows = group_rows(graph, rows, depth)
    buffers = sum(p.numel() for p in graph.params.values() if p.buffer)
    inputs = {k: shape_str(t.shape) for k, t in graph.inputs.items()}
    return Stats(graph.name, inputs, tuple(rows), sum(r.params for r in rows), buffers,
                 sum((r.macs for r in rows), 0), depth)
