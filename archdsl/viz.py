"""Draw a Graph as graphviz DOT: ops with key attributes, shape-labelled edges, blocks as clusters.

At ``depth=K`` every block deeper than K levels collapses into one box (a level is a path component, a
numbered list entry counted with its list: ``stages.1.blocks.0`` is two levels), and runs of identical
sibling blocks that feed one another (``layer1.0 .. layer1.2``) fold into one box with a ``×n`` badge;
a run of blocks drawn open shows one representative (``encoder_layer_0 .. 11 ×12``). A node inside a
cluster is named relative to it; a block's doc string shows once (wrapped), on its first occurrence.
``to_dot`` is the composable entry point; ``side_by_side`` draws several graphs in one picture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from archdsl.analysis.cost import levels_of, node_levels
from archdsl.analysis.report import human
from archdsl.errors import ArchError, Diagnostic, UsageError
from archdsl.ir.graph import Graph, Node
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


HEADLINE = ("kernel_size", "stride", "out_channels", "out_features", "groups", "dilation")


def op_label(op: OpDef) -> str:
    """``conv2d 3x3/2, 64``: the op name with its headline attributes, else its non-default attributes."""
    attrs = op.attrs()
    if not any(attrs.get(k) is not None for k in ("kernel_size", "out_channels", "out_features")):
        return _attr_label(op, attrs)
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


def _attr_label(op: OpDef, attrs: dict) -> str:
    """``select dim=1, index=0``, ``dropout p=0.1``, ``multihead_self_attention heads=12``: non-default attributes."""
    defaults = {k: f.default for k, f in type(op).model_fields.items() if not f.is_required()}
    shown = []
    for key, value in attrs.items():
        if key in defaults and _plain(defaults[key]) == value:
            continue
        name = "heads" if key == "num_heads" else key
        shown.append(f"{name}={_value(value)}")
    text = ", ".join(shown)
    if len(text) > 40:
        text = text[:39] + "…"
    return f"{op.name} {text}" if text else op.name


def _plain(value: object) -> object:
    return list(_plain(v) for v in value) if isinstance(value, (tuple, list)) else value


_WORDS: dict[object, str] = {True: "true", False: "false", None: "none"}


def _value(value: object) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return _WORDS.get(value, str(value)) if not isinstance(value, (int, float)) \
        or isinstance(value, bool) else str(value)


def _dim(text: str) -> str:
    """A dim's text without one pair of parentheses around all of it: ``(H + 3)//4`` for ``((H + 3)//4)``."""
    if text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0 and i < len(text) - 1:
                return text
        return text[1:-1]
    return text


def shape_label(shape: tuple) -> str:
    """``[N, 64, (H + 3)//4, W]``: a shape for a drawing."""
    return "[" + ", ".join(_dim(str(d)) for d in shape) + "]"


def _ints(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _short(value: object) -> str:
    """``2`` for 2 or (2, 2); ``2x1`` for (2, 1)."""
    values = _ints(value)
    return str(values[0]) if len(set(values)) == 1 else "x".join(str(v) for v in values)


@dataclass
class Drawing:
    """What one drawing shows: its boxes, which nodes a representative stands for, and what was said once."""

    graph: Graph
    prefix: str = ""                                   # id prefix (several graphs in one picture)
    dropped: set[str] = field(default_factory=set)     # nodes of copies a representative stands for
    alias: dict[str, str] = field(default_factory=dict)   # dropped node -> its representative's node
    badges: dict[tuple[str, ...], tuple[str, int]] = field(default_factory=dict)   # block -> (last, count)
    docs_shown: set[str] = field(default_factory=set)


def _items(d: Drawing, depth: int | None) -> tuple[list[Item], dict[str, str]]:
    """Boxes in order of first appearance, and node name -> box id."""
    items: dict[tuple[str, ...], Item] = {}
    owner: dict[str, str] = {}
    for node in d.graph.nodes:
        if node.name in d.dropped:
            continue
        path = node_levels(node)
        if depth is None or len(path) <= depth:
            item = items.setdefault((*path, "#" + node.name), Item(f"{d.prefix}n:{node.name}", path))
        else:
            key = path[:depth]
            item = items.setdefault(key, Item(f"{d.prefix}b:" + ".".join(key), key))
        item.nodes.append(node)
        owner[node.name] = item.id
    return list(items.values()), owner


def _blocks(graph: Graph, dropped: set[str]) -> dict[tuple[str, ...], list[Node]]:
    """Every block path (a proper prefix of some node's path) with its nodes, in order of appearance."""
    blocks: dict[tuple[str, ...], list[Node]] = {}
    for node in graph.nodes:
        if node.name not in dropped:
            path = node_levels(node)
            for k in range(1, len(path)):
                blocks.setdefault(path[:k], []).append(node)
    return blocks


def _representatives(d: Drawing, depth: int) -> None:
    """Runs of identical sibling blocks drawn open (shallower than ``depth``): keep the first, badge it ×n."""
    for level in range(1, depth):
        blocks = _blocks(d.graph, d.dropped)
        siblings: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for path in blocks:
            if len(path) == level:
                siblings.setdefault(path[:-1], []).append(path)
        for paths in siblings.values():
            run: list[tuple[str, ...]] = []
            for nxt in [*paths, None]:
                if run and nxt is not None and _same_block(d.graph, blocks, run, nxt):
                    run.append(nxt)
                    continue
                if len(run) > 1:
                    _keep_first(d, blocks, run)
                run = [nxt] if nxt is not None else []


def _same_block(graph: Graph, blocks: dict, run: list[tuple[str, ...]], path: tuple[str, ...]) -> bool:
    first, last = Item("", run[0], blocks[run[0]]), Item("", run[-1], blocks[run[-1]])
    item = Item("", path, blocks[path])
    return _signature(graph, first) == _signature(graph, item) and _feeds_only(graph, last, item)


def _keep_first(d: Drawing, blocks: dict, run: list[tuple[str, ...]]) -> None:
    representative = blocks[run[0]]
    for path in run[1:]:
        for mine, node in zip(representative, blocks[path], strict=True):
            d.dropped.add(node.name)
            d.alias[node.name] = mine.name
    d.badges[run[0]] = (run[-1][-1], len(run))


def _signature(graph: Graph, item: Item) -> tuple:
    """Structure of a box: ops, attributes, types and internal wiring, independent of its name."""
    inside = {v: i for i, n in enumerate(item.nodes) for v in n.outputs}
    outside: dict[str, int] = {}
    sig = []
    for node in item.nodes:
        rel = node_levels(node)[len(item.key):] if node.module else ("~", *levels_of(node.scope)[len(item.key):])
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


def _doc_lines(d: Drawing, path: str) -> list[str]:
    """A block's doc string, wrapped, the first time that text is drawn; nothing after."""
    doc = d.graph.module_docs.get(path, "").strip()
    if not doc or doc in d.docs_shown:
        return []
    d.docs_shown.add(doc)
    return textwrap.wrap(doc, 48, max_lines=4, placeholder=" …")


def _item_label(d: Drawing, item: Item) -> str:
    """Text of a box: a node's name (relative to its cluster) and op, or a block's path, doc, size and ×n badge."""
    graph = d.graph
    if "n:" in item.id[len(d.prefix):len(d.prefix) + 2]:
        node = item.nodes[0]
        name = ".".join(node_levels(node)[len(item.cluster):]) if node.module else ""
        return f"{name}\n{op_label(node.op)}" if name else op_label(node.op)
    name = ".".join(item.key[len(item.cluster):])
    if item.count > 1:
        name = run_title(name, item.last[-1], item.count)
    lines = [name, *_doc_lines(d, ".".join(item.key))]
    params = sum(graph.params[p].numel() for p in {f for n in item.nodes for f in n.params.values()}
                 if p in graph.params and not graph.params[p].buffer)
    per = len(item.nodes) // item.count
    lines.append(f"{per} ops, {human(params // item.count)} params" + (" each" if item.count > 1 else ""))
    return "\n".join(lines)


def run_title(first: str, last: str, count: int) -> str:
    """``blocks.0 .. 2  ×3``: a run of list entries names its list once."""
    head, _, index = last.rpartition(".")
    if head and first.startswith(head + "."):
        last = index
    return f"{first} .. {last}  ×{count}"


def _q(text: str) -> str:
    """A DOT quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_line(d: Drawing, item: Item, indent: str) -> str:
    family = "block" if item.id.startswith(d.prefix + "b:") else item.nodes[0].op.family
    attrs = [f"label={_q(_item_label(d, item))}", f"fillcolor={_q(FILL.get(family, '#ffffff'))}"]
    if item.count > 1:
        attrs.append("shape=box3d")
    return f"{indent}{_q(item.id)} [{', '.join(attrs)}];"


def _clusters(d: Drawing, items: list[Item], indent: str = "  ") -> list[str]:
    """Nested ``subgraph cluster_*`` blocks holding the boxes, one per block path."""
    tree: dict = {}
    for item in items:
        level = tree
        for i in range(len(item.cluster)):
            level = level.setdefault(item.cluster[: i + 1], {})
        level.setdefault(None, []).append(item)
    return _emit(d, tree, indent)


def _emit(d: Drawing, level: dict, indent: str) -> list[str]:
    lines = [_node_line(d, item, indent) for item in level.get(None, [])]
    for path, sub in level.items():
        if path is None:
            continue
        name = ".".join(path)
        title = path[-1] if len(path) > 1 else name        # inside its parent's frame: its own name
        if path in d.badges:
            last, count = d.badges[path]
            title = run_title(title, last, count)
        label = "\n".join([title, *_doc_lines(d, name)])
        style = "rounded,dashed" if path not in d.badges else "rounded,bold"
        lines.append(f"{indent}subgraph {_q('cluster_' + d.prefix + name)} {{")
        lines.append(f'{indent}  label={_q(label)}; style="{style}"; color="#888888";')
        lines += _emit(d, sub, indent + "  ")
        lines.append(f"{indent}}}")
    return lines


def _edges(d: Drawing, owner: dict[str, str], indent: str = "  ") -> list[str]:
    """One edge per (source box, target box, value), labelled with the value's shape."""
    graph, p = d.graph, d.prefix
    types = graph.value_types()
    producer = {v: owner[d.alias.get(n.name, n.name)] for n in graph.nodes for v in n.outputs}
    producer.update({name: f"{p}in:{name}" for name in graph.inputs})
    seen: set[tuple[str, str, str]] = set()
    lines = []
    targets = [(owner[n.name], v) for n in graph.nodes if n.name not in d.dropped for v in n.inputs]
    targets += [(f"{p}out:{name}", v) for name, v in graph.outputs.items()]
    for dst, v in targets:
        src = producer[v]
        if src == dst or (src, dst, v) in seen:
            continue
        seen.add((src, dst, v))
        lines.append(f"{indent}{_q(src)} -> {_q(dst)} [label={_q(' ' + shape_label(types[v].shape))}];")
    return lines


def _body(graph: Graph, depth: int | None, prefix: str, indent: str) -> list[str]:
    """Inputs, clusters, outputs and edges of one graph (ids start with ``prefix``)."""
    if depth is not None and depth < 1:
        raise UsageError(Diagnostic(f"depth must be at least 1, got {depth}"))
    d = Drawing(graph, prefix)
    if depth is not None:
        _representatives(d, depth)
    items, owner = _items(d, depth)
    if depth is not None:
        items, owner = _fold(graph, items, owner)
    lines = [f'{indent}{_q(prefix + "in:" + name)} [label={_q(name + chr(10) + shape_label(t.shape))}, '
             f'shape=ellipse, fillcolor="#ffffff"];' for name, t in graph.inputs.items()]
    lines += _clusters(d, items, indent)
    lines += [f'{indent}{_q(prefix + "out:" + name)} [label={_q(name)}, shape=ellipse, fillcolor="#ffffff"];'
              for name in graph.outputs]
    return lines + _edges(d, owner, indent)


def _title(graph: Graph) -> str:
    doc = graph.doc.strip().splitlines()
    return "\n".join([graph.name, *textwrap.wrap(doc[0], 90, max_lines=2, placeholder=" …")]) if doc else graph.name


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """DOT text for ``graph``; ``depth`` collapses blocks below that many path components and folds repeats."""
    lines = [f"digraph {_q(graph.name)} {{", HEADER.rstrip("\n"), f"  label={_q(_title(graph))}; labelloc=t;"]
    lines += _body(graph, depth, "", "  ")
    return "\n".join([*lines, "}"]) + "\n"


def side_by_side(graphs: dict[str, Graph], depth: int | None = None, title: str = "") -> str:
    """One DOT picture with each graph in its own labelled frame, left to right (training vs deploy form)."""
    lines = [f"digraph {_q(title or 'graphs')} {{", HEADER.rstrip("\n"), f"  label={_q(title)}; labelloc=t;"]
    for i, (label, graph) in enumerate(graphs.items()):
        lines.append(f"  subgraph {_q(f'cluster_g{i}')} {{")
        lines.append(f'    label={_q(label)}; style="rounded"; color="#444444";')
        lines += _body(graph, depth, f"g{i}/", "    ")
        lines.append("  }")
    return "\n".join([*lines, "}"]) + "\n"


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


@dataclass(frozen=True)
class Picture:
    """A graph drawn for Jupyter: ``archdsl.viz.show(graph)`` displays as SVG (text, without ``dot``)."""

    graph: Graph
    depth: int | None = None

    def _repr_svg_(self) -> str | None:
        """SVG for notebooks; None when graphviz is missing, so Jupyter falls back to the text repr."""
        from archdsl.errors import ArchError

        try:
            return graph_svg(self.graph, self.depth)
        except ArchError:
            return None

    def __repr__(self) -> str:
        return f"<archdsl drawing of {self.graph.name!r}>"


def show(graph: Graph, depth: int | None = None) -> Picture:
    """A drawing of ``graph`` that notebooks display (the IR itself stays free of graphviz)."""
    return Picture(graph, depth)


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
