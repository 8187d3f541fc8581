"""Draw a Graph as graphviz DOT: ops with key attributes, shape-labelled edges, blocks as clusters.

At ``depth=K`` every block deeper than K components collapses into one box, and runs of identical
sibling blocks that feed one another (``layer1.0 .. layer1.2``) fold into one box with a ``×n`` badge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from archdsl.analysis.cost import node_path
from archdsl.analysis.report import human
from archdsl.errors import ArchError, Diagnostic, UsageError
from archdsl.ir.graph import Graph, Node, shape_str
from archdsl.ops.base import OpDef

FILL = {"conv": "#cfe2ff", "linear": "#d1e7dd", "norm": "#fff3cd", "activation": "#f8d7da", "pool": "#e2d9f3",
        "attention": "#ffe5d0", "block": "#e9ecef"}
HEADER = ('  rankdir=TB; compound=true; fontname="Helvetica"; fontsize=11;\n'
          '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];\n'
          '  edge [fontname="Helvetica", fontsize=8, color="#555555"];\n')
INSTALL_HINT = "install graphviz (e.g. `apt-get install graphviz` or `brew install graphviz`), or write a .dot file"


@dataclass
class Item:
    """One drawn box: a node, a collapsed block, or a fold of identical sibling blocks."""

    id: str
    key: tuple[str, ...]                      # path of the node or block
    nodes: list[Node] = field(default_factory=list)
    count: int = 1                            # > 1 for a fold (the ×n badge)
    last: tuple[str, ...] = ()                # key of the last folded sibling

    @property
    def cluster(self) -> tuple[str, ...]:
        """The enclosing block (cluster) path."""
        return self.key[:-1]


def op_label(op: OpDef) -> str:
    """``conv2d 3x3/2, 64``: the op name with its headline attributes (kernel, stride, width, groups)."""
    attrs = op.attrs()
    text = op.name
    if attrs.get("kernel_size") is not None:
        text += " " + "x".join(str(k) for k in _ints(attrs["kernel_size"]))
    if any(s != 1 for s in _ints(attrs.get("stride") or 1)):
        text += "/" + _short(attrs["stride"])
    width = attrs.get("out_channels", attrs.get("out_features"))
    if width is not None:
        text += f", {width}"
    if attrs.get("groups", 1) != 1:
        text += f", g={attrs['groups']}"
    if any(d != 1 for d in _ints(attrs.get("dilation", 1))):
        text += f", d={_short(attrs['dilation'])}"
    return text


def _ints(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _short(value: object) -> str:
    """``2`` for 2 or (2, 2); ``2x1`` for (2, 1)."""
    values = _ints(value)
    return str(values[0]) if len(set(values)) == 1 else "x".join(str(v) for v in values)


def _items(graph: Graph, depth: int | None) -> tuple[list[Item], dict[str, str]]:
    """Boxes in order of first appearance, and node name -> box id."""
    items: dict[tuple[str, ...], Item] = {}
    owner: dict[str, str] = {}
    for node in graph.nodes:
        path = node_path(node)
        if depth is None or len(path) <= depth:
            item = items.setdefault((*path, "#" + node.name), Item(f"n:{node.name}", path))
        else:
            key = path[:depth]
            item = items.setdefault(key, Item("b:" + ".".join(key), key))
        item.nodes.append(node)
        owner[node.name] = item.id
    return list(items.values()), owner


def _signature(graph: Graph, item: Item) -> tuple:
    """Structure of a box: ops, attributes, types and internal wiring, independent of its name."""
    inside = {v: i for i, n in enumerate(item.nodes) for v in n.outputs}
    outside: dict[str, int] = {}
    sig = []
    for node in item.nodes:
        rel = tuple(node.module.split("."))[len(item.key):] if node.module else ("~", *node.scope[len(item.key):])
        refs = tuple(("in", inside[v]) if v in inside else ("ext", outside.setdefault(v, len(outside)))
                     for v in node.inputs)
        sig.append((rel, node.op.name, repr(node.op.attrs()), tuple(str(t) for t in node.types), refs))
    return tuple(sig)


def _feeds_only(graph: Graph, a: Item, b: Item) -> bool:
    """True when every value ``a`` exports goes only into ``b`` and every value ``b`` imports comes from ``a``."""
    a_out = {v for n in a.nodes for v in n.outputs}
    b_out = {v for n in b.nodes for v in n.outputs}
    b_ext = {v for n in b.nodes for v in n.inputs if v not in b_out}
    if not b_ext <= a_out or a_out & set(graph.outputs.values()):
        return False
    names_a, names_b = {n.name for n in a.nodes}, {n.name for n in b.nodes}
    return all(n.name in names_a | names_b for n in graph.nodes if a_out & set(n.inputs))


def _fold(graph: Graph, items: list[Item], owner: dict[str, str]) -> tuple[list[Item], dict[str, str]]:
    """Merge runs of identical sibling boxes that feed one another into one box with a count."""
    out: list[Item] = []
    sigs: list[tuple] = []
    for item in items:
        sig = _signature(graph, item)
        prev = out[-1] if out else None
        if prev is not None and prev.cluster == item.cluster and sigs[-1] == sig \
                and prev.key[-1:] != item.key[-1:] and _feeds_only(graph, _tail(prev, sig), item):
            prev.count += 1
            prev.last = item.key
            prev.nodes.extend(item.nodes)
            for node in item.nodes:
                owner[node.name] = prev.id
            continue
        out.append(Item(item.id, item.key, list(item.nodes)))
        sigs.append(sig)
    return out, owner


def _tail(item: Item, sig: tuple) -> Item:
    """The last folded copy inside ``item`` (its final ``len(sig)`` nodes)."""
    return Item(item.id, item.key, item.nodes[-len(sig):])


def _item_label(graph: Graph, item: Item) -> str:
    """Text of a box: a node's name and op, or a block's path, doc, size and ×n badge."""
    if item.id.startswith("n:"):
        node = item.nodes[0]
        return f"{node.module}\n{op_label(node.op)}" if node.module else op_label(node.op)
    name = ".".join(item.key)
    if item.count > 1:
        name = f"{name} .. {item.last[-1]}  ×{item.count}"
    lines = [name]
    doc = graph.module_docs.get(".".join(item.key), "").strip().splitlines()
    if doc:
        lines.append(doc[0])
    params = sum(graph.params[p].numel() for p in {f for n in item.nodes for f in n.params.values()}
                 if p in graph.params and not graph.params[p].buffer)
    per = len(item.nodes) // item.count
    lines.append(f"{per} ops, {human(params // item.count)} params" + (" each" if item.count > 1 else ""))
    return "\n".join(lines)


def _q(text: str) -> str:
    """A DOT quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_line(graph: Graph, item: Item, indent: str) -> str:
    family = "block" if item.id.startswith("b:") else item.nodes[0].op.family
    attrs = [f"label={_q(_item_label(graph, item))}", f"fillcolor={_q(FILL.get(family, '#ffffff'))}"]
    if item.count > 1:
        attrs.append("shape=box3d")
    return f"{indent}{_q(item.id)} [{', '.join(attrs)}];"


def _clusters(graph: Graph, items: list[Item]) -> list[str]:
    """Nested ``subgraph cluster_*`` blocks holding the boxes, one per block path."""
    tree: dict = {}
    for item in items:
        level = tree
        for i in range(len(item.cluster)):
            level = level.setdefault(item.cluster[: i + 1], {})
        level.setdefault(None, []).append(item)
    return _emit(graph, tree, "  ")


def _emit(graph: Graph, level: dict, indent: str) -> list[str]:
    lines = [_node_line(graph, item, indent) for item in level.get(None, [])]
    for path, sub in level.items():
        if path is None:
            continue
        name = ".".join(path)
        doc = graph.module_docs.get(name, "").strip().splitlines()
        label = name + (f"\n{doc[0]}" if doc else "")
        lines.append(f"{indent}subgraph {_q('cluster_' + name)} {{")
        lines.append(f'{indent}  label={_q(label)}; style="rounded,dashed"; color="#888888";')
        lines += _emit(graph, sub, indent + "  ")
        lines.append(f"{indent}}}")
    return lines


def _edges(graph: Graph, owner: dict[str, str]) -> list[str]:
    """One edge per (source box, target box, value), labelled with the value's shape."""
    types = graph.value_types()
    producer = {v: owner[n.name] for n in graph.nodes for v in n.outputs}
    producer.update({name: f"in:{name}" for name in graph.inputs})
    seen: set[tuple[str, str, str]] = set()
    lines = []
    targets = [(owner[n.name], v) for n in graph.nodes for v in n.inputs]
    targets += [(f"out:{name}", v) for name, v in graph.outputs.items()]
    for dst, v in targets:
        src = producer[v]
        if src == dst or (src, dst, v) in seen:
            continue
        seen.add((src, dst, v))
        lines.append(f"  {_q(src)} -> {_q(dst)} [label={_q(' ' + shape_str(types[v].shape))}];")
    return lines


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """DOT text for ``graph``; ``depth`` collapses blocks below that many path components and folds repeats."""
    if depth is not None and depth < 1:
        raise UsageError(Diagnostic(f"depth must be at least 1, got {depth}"))
    items, owner = _items(graph, depth)
    if depth is not None:
        items, owner = _fold(graph, items, owner)
    title = graph.name + (f"\n{graph.doc.strip().splitlines()[0]}" if graph.doc.strip() else "")
    lines = [f"digraph {_q(graph.name)} {{", HEADER.rstrip("\n"), f"  label={_q(title)}; labelloc=t;"]
    for name, t in graph.inputs.items():
        lines.append(f'  {_q("in:" + name)} [label={_q(name + chr(10) + str(t))}, shape=ellipse, fillcolor="#ffffff"];')
    lines += _clusters(graph, items)
    for name in graph.outputs:
        lines.append(f'  {_q("out:" + name)} [label={_q(name)}, shape=ellipse, fillcolor="#ffffff"];')
    lines += _edges(graph, owner)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_binary() -> str:
    """Path of graphviz's ``dot``; UsageError with install instructions when missing."""
    exe = shutil.which("dot")
    if exe is None:
        raise UsageError(Diagnostic("graphviz's `dot` program is needed to draw SVG or PNG", hint=INSTALL_HINT))
    return exe


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Lay out DOT text with ``dot -T<fmt>``."""
    try:
        proc = subprocess.run([_dot_binary(), f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                              timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise ArchError(Diagnostic(f"`dot -T{fmt}` took longer than 120 s", hint="draw with --depth K")) from None
    if proc.returncode != 0:
        raise ArchError(Diagnostic(f"`dot -T{fmt}` failed: {proc.stderr.decode(errors='replace').strip()}"))
    return proc.stdout


def graph_svg(graph: Graph, depth: int | None = None) -> str:
    """The graph drawn as SVG text (needs graphviz's ``dot``)."""
    return run_dot(to_dot(graph, depth), "svg").decode()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` safely (atomic for regular files; see :func:`archdsl.output.write_file`)."""
    from archdsl.output import write_file

    write_file(path, data)


def render(graph: Graph, path: str | os.PathLike, depth: int | None = None) -> None:
    """Write ``graph`` to ``path``: ``.dot`` as DOT text, ``.svg``/``.png`` laid out by graphviz's ``dot``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("dot", "gv", "svg", "png", "pdf"):
        raise UsageError(Diagnostic(f"cannot draw to {str(path)!r}: use a .dot, .svg, .png or .pdf file name"))
    if not Path(path).parent.is_dir():
        raise UsageError(Diagnostic(f"cannot write {str(path)!r}: folder {str(Path(path).parent)!r} does not exist"))
    text = to_dot(graph, depth)
    data = text.encode() if suffix in ("dot", "gv") else run_dot(text, suffix)
    write_atomic(path, data)
