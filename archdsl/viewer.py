"""A self-contained interactive HTML page for a Graph: ``archdsl viz FILE --html out.html``.

One file, no network access at view time (inline CSS and script, the drawing inline when graphviz is
installed). The author's blocks are a tree: click a block to expand or collapse it, hover a row to see
its attributes, shapes, parameters, MACs and the spec line it came from, type in the search box to show
only what matches. ``page.html#toggle=layer1.0&search=conv`` clicks a block and searches on load (links
to a place in the model). Numbers come from the same analysis as ``archdsl stats``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from archdsl.analysis.cost import levels_of, node_macs, node_path
from archdsl.analysis.report import human
from archdsl.errors import ArchError
from archdsl.ir.dims import Dim
from archdsl.ir.graph import Graph, Node
from archdsl.viz import op_label, shape_label

MAX_SOURCE = 4 * 1024 * 1024


@dataclass
class Block:
    """A block of the tree: its child blocks and nodes in order of appearance, and its totals."""

    path: tuple[str, ...]
    children: dict[str, Block] = field(default_factory=dict)
    items: list[Block | Node] = field(default_factory=list)
    params: int = 0
    macs: object = 0


def _tree(graph: Graph) -> Block:
    root = Block(())
    for node in graph.nodes:
        path = node_path(node)
        block = root
        for k in range(1, len(path)):
            name = path[k - 1]
            if name not in block.children:
                block.children[name] = Block(path[:k])
                block.items.append(block.children[name])
            block = block.children[name]
        block.items.append(node)
    return root


def _sources(graph: Graph, given: dict[str, str] | None) -> dict[str, list[str]]:
    """Source lines of the files the graph's spans point into (given, or read when they exist)."""
    texts = dict(given or {})
    for node in graph.nodes:
        file = node.span.file if node.span else None
        if file and file not in texts:
            try:
                path = Path(file)
                texts[file] = path.read_text(encoding="utf-8") if path.is_file() and \
                    path.stat().st_size <= MAX_SOURCE else ""
            except (OSError, UnicodeDecodeError, ValueError):
                texts[file] = ""
    return {f: t.split("\n") for f, t in texts.items()}


class _Page:
    """Builds the rows of a tree, and the details each row shows on hover (``details`` shared by all trees)."""

    def __init__(self, graph: Graph, depth: int, sources: dict[str, list[str]], details: list[dict]):
        self.graph = graph
        self.depth = depth
        self.sources = sources
        self.types = graph.value_types()
        self.details = details

    def _node_params(self, node: Node) -> tuple[int, list[str]]:
        count, listed = 0, []
        for local, key in node.params.items():
            p = self.graph.params.get(key)
            if p is None:
                continue
            listed.append(f"{local} {shape_label(p.shape)} {p.dtype}" + (" (buffer)" if p.buffer else ""))
            if not p.buffer:
                count += int(p.numel()) if isinstance(p.numel(), int) else 0
        return count, listed

    def _where(self, node: Node) -> str:
        span = node.span
        if span is None or span.file is None:
            return ""
        lines = self.sources.get(span.file) or []
        text = lines[span.line - 1].strip() if 0 < span.line <= len(lines) else ""
        return f"{span.file}:{span.line}" + (f"\n{text}" if text else "")

    def node_row(self, node: Node, indent: int) -> tuple[str, int, Dim]:
        try:
            macs = node_macs(node, self.types)
        except (ArchError, ArithmeticError, TypeError, ValueError):
            macs = 0
        count, listed = self._node_params(node)
        index = len(self.details)
        self.details.append({
            "name": node.module or node.name, "op": node.op.name, "attributes": node.op.attrs(),
            "inputs": [shape_label(self.types[v].shape) for v in node.inputs],
            "outputs": [shape_label(t.shape) for t in node.types],
            "parameters": listed, "params": human(count), "macs": human(macs), "where": self._where(node)})
        name = (node.module or node.name).split(".")[-1]
        out = ", ".join(shape_label(t.shape) for t in node.types)
        row = (f'<div class="row node fam-{html.escape(node.op.family)}" data-i="{index}" '
               f'data-name="{html.escape((node.module or node.name).lower())}" style="--d:{indent}">'
               f'<span class="name">{html.escape(name)}</span><span class="op">{html.escape(op_label(node.op))}</span>'
               f'<span class="shape">{html.escape(out)}</span><span class="num">{html.escape(human(count))}</span>'
               f'{_macs_cell(macs)}</div>')
        return row, count, macs

    def block_html(self, block: Block, indent: int) -> tuple[str, int, Dim]:
        parts = []
        params = 0
        macs: Dim = 0
        for item in block.items:
            text, p, m = self.block_html(item, indent + 1) if isinstance(item, Block) else self.node_row(item, indent)
            parts.append(text)
            params += p
            macs = macs + m
        if not block.path:
            return "".join(parts), params, macs
        name = ".".join(block.path)
        doc = self.graph.module_docs.get(name, "").strip().split("\n")[0]
        opened = " open" if len(levels_of(block.path)) < self.depth else ""   # depth counts levels, as viz's
        summary = (f'<summary class="row block" data-name="{html.escape(name.lower())}" style="--d:{indent}">'
                   f'<span class="name">{html.escape(block.path[-1])}</span>'
                   f'<span class="op">{html.escape(doc)}</span><span class="shape"></span>'
                   f'<span class="num">{html.escape(human(params))}</span>'
                   f'{_macs_cell(macs)}</summary>')
        return f'<details data-path="{html.escape(name)}"{opened}>{summary}{"".join(parts)}</details>', params, macs


def _macs_cell(macs: Dim) -> str:
    """MACs in a column: a number, or for symbolic sizes a short mark with the formula on hover."""
    text = human(macs)
    if isinstance(macs, int) or len(text) <= 12:
        return f'<span class="num">{html.escape(text)}</span>'
    return f'<span class="num" title="{html.escape(text)}">f(sizes)</span>'


def _macs_total(macs: Dim) -> str:
    text = human(macs)
    return f"{text} MACs" if isinstance(macs, int) or len(text) <= 12 else \
        "MACs depend on the input sizes (give them with --input)"


def _drawing(graph: Graph, depth: int) -> str:
    """The graphviz drawing as inline SVG (no XML prolog or DOCTYPE), or a note when graphviz is missing."""
    from archdsl.viz import graph_svg

    try:
        svg = graph_svg(graph, depth)
    except ArchError:
        return '<p class="note">Install graphviz to see the drawing here (the tree works without it).</p>'
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else ""


def graph_html(graph: Graph | dict[str, Graph], depth: int = 2, sources: dict[str, str] | None = None,
               drawing: bool = True) -> str:
    """The interactive page for ``graph``; blocks shallower than ``depth`` start expanded.

    Several graphs by label (``{"training form": g, "deploy form": s}``) are shown side by side, each
    tree in its own column with its totals; hover and search work across all of them.
    """
    graphs = graph if isinstance(graph, dict) else {"": graph}
    first = next(iter(graphs.values()))
    details: list[dict] = []
    columns, figures, totals = [], [], []
    for label, g in graphs.items():
        page = _Page(g, depth, _sources(g, sources), details)
        tree, params, macs = page.block_html(_tree(g), 0)
        total = f"{human(params)} params, {_macs_total(macs)}, {len(g.nodes)} ops"
        totals.append(f"{html.escape(label)}: {total}" if label else total)
        heading = f'<h2>{html.escape(label)} <small>{total}</small></h2>' if label else ""
        columns.append(f'<div class="tree">{heading}{_HEAD}{tree}</div>')
        if drawing:
            figures.append(f'<figure>{f"<figcaption>{html.escape(label)}</figcaption>" if label else ""}'
                           f'{_drawing(g, depth)}</figure>')
    data = json.dumps(details, default=str).replace("</", "<\\/")
    doc = html.escape(first.doc.strip().split("\n")[0]) if first.doc.strip() else ""
    inputs = ", ".join(f"{html.escape(n)}: {html.escape(shape_label(t.shape))}" for n, t in first.inputs.items())
    return (_TEMPLATE.replace("{{title}}", html.escape(first.name)).replace("{{doc}}", doc)
            .replace("{{inputs}}", inputs).replace("{{totals}}", " &middot; ".join(totals))
            .replace("{{tree}}", "".join(columns)).replace("{{drawing}}", "".join(figures)).replace("{{data}}", data))


_HEAD = ('<div class="row head" style="--d:0"><span>name</span><span>op / block</span><span>output</span>'
         '<span class="num">params</span><span class="num">MACs</span></div>')


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<style>
body{font:13px/1.4 Helvetica,Arial,sans-serif;margin:0;color:#222}
header{padding:10px 16px;border-bottom:1px solid #ddd}h1{font-size:18px;margin:0 0 4px}
#search{margin-top:6px;padding:4px 8px;width:320px;font-size:13px}
main{display:flex;gap:16px;padding:8px 16px}#tree{flex:1 1 60%;min-width:0;display:flex;gap:16px}
.tree{flex:1 1 0;min-width:0}h2{font-size:14px;margin:4px 0}h2 small{font-weight:normal;color:#666}
figure{display:inline-block;margin:0 16px 0 0;vertical-align:top}figcaption{font-weight:600}
#info{flex:0 0 34%;position:sticky;top:8px;align-self:flex-start;border:1px solid #ccc;border-radius:6px;
padding:8px 10px;white-space:pre-wrap;font-family:Menlo,Consolas,monospace;font-size:12px;min-height:120px}
.row{display:grid;grid-template-columns:minmax(140px,1.2fr) 2fr 1.3fr 70px 80px;gap:8px;padding:2px 4px;
padding-left:calc(var(--d)*16px + 4px);border-radius:4px;cursor:default}
.row:hover{background:#eef4ff}.block{font-weight:600;cursor:pointer;list-style:none}
.block::before{content:"\\25B8 ";position:absolute;margin-left:-12px}details[open]>.block::before{content:"\\25BE "}
.num{text-align:right;font-variant-numeric:tabular-nums}.op{color:#444}.shape{color:#666}
.head{font-weight:600;border-bottom:1px solid #ccc}.hidden{display:none}.match{background:#fff3b0}
.fam-conv .name{color:#0b5ed7}.fam-norm .name{color:#997404}.fam-activation .name{color:#b02a37}
.fam-linear .name{color:#146c43}.fam-attention .name{color:#c4581a}
#drawing{padding:8px 16px;overflow:auto;border-top:1px solid #ddd}.note{color:#666}
</style></head><body>
<header><h1>{{title}}</h1><div>{{doc}}</div><div>inputs {{inputs}} &middot; {{totals}}</div>
<input id="search" type="search" placeholder="search layers by name (e.g. conv1, layer3.2)" autocomplete="off"></header>
<main><div id="tree">{{tree}}</div>
<pre id="info">Hover a layer to see its attributes, shapes, parameters, MACs and the spec line it came from.
Click a block to expand or collapse it.</pre></main>
<section id="drawing">{{drawing}}</section>
<script id="details" type="application/json">{{data}}</script>
<script>
"use strict";
const details = JSON.parse(document.getElementById("details").textContent);
const info = document.getElementById("info");
function show(d) {
  const attrs = Object.entries(d.attributes).map(([k, v]) => "  " + k + " = " + JSON.stringify(v)).join("\\n");
  info.textContent = d.name + "  (" + d.op + ")\\n\\nattributes:\\n" + (attrs || "  none") +
    "\\n\\ninputs:  " + d.inputs.join(", ") + "\\noutputs: " + d.outputs.join(", ") +
    "\\n\\nparameters: " + d.params + (d.parameters.length ? "\\n  " + d.parameters.join("\\n  ") : "") +
    "\\nMACs: " + d.macs + (d.where ? "\\n\\nfrom " + d.where : "");
}
document.querySelectorAll(".node").forEach(row => {
  row.addEventListener("mouseenter", () => show(details[Number(row.dataset.i)]));
});
const search = document.getElementById("search");
search.addEventListener("input", event => {
  const q = event.target.value.trim().toLowerCase();
  document.querySelectorAll("#tree .node, #tree summary").forEach(row => {
    const hit = q && row.dataset.name.includes(q);
    row.classList.toggle("match", Boolean(hit));
    if (row.classList.contains("node")) row.classList.toggle("hidden", Boolean(q) && !hit);
  });
  document.querySelectorAll("#tree details").forEach(block => {
    const any = block.querySelector(".match");
    block.classList.toggle("hidden", Boolean(q) && !any);
    if (q && any) block.open = true;
  });
});
// Deep links: #toggle=layer1.0&search=conv clicks the block layer1.0 and searches for "conv".
for (const part of location.hash.slice(1).split("&")) {
  const [key, value] = part.split("=").map(decodeURIComponent);
  if (key === "toggle") {
    const block = [...document.querySelectorAll("#tree details")].find(b => b.dataset.path === value);
    if (block) block.querySelector("summary").click();
  } else if (key === "search") {
    search.value = value;
    search.dispatchEvent(new Event("input"));
  }
}
document.body.dataset.ready = "1";
</script></body></html>
"""


def write_html(graph: Graph | dict[str, Graph], path: str, depth: int = 2) -> None:
    """Write the page to ``path`` (atomically, as every output)."""
    from archdsl.errors import Diagnostic, UsageError
    from archdsl.viz import write_atomic

    if not Path(path).parent.is_dir():
        raise UsageError(Diagnostic(f"cannot write {path!r}: folder {str(Path(path).parent)!r} does not exist"))
    write_atomic(path, graph_html(graph, depth).encode("utf-8"))
