"""Graph -> .arch text: a readable spec whose elaboration gives the same graph and the same parameter names.

Used for the deploy form that ``archdsl simplify`` writes. The module tree of the graph becomes the spec's
structure: every container whose nodes form a region (values in, values out) becomes a block applied under
its name; a container of index-named entries that run one after another becomes a ``seq[...]`` (gaps left
by removed parameterless entries are kept as ``identity``, so later indices keep their names); everything
else is written in the enclosing block. Blocks with the same body are written once.
"""

from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass, field
from typing import cast

from archdsl.errors import Diagnostic, VerifyError
from archdsl.ir.dims import SymDim, linear_form
from archdsl.ir.graph import Graph, Node
from archdsl.ir.symbols import constrained_form
from archdsl.ir.types import TensorType

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"in", "out", "seq", "reparam", "let", "import", "as", "if", "else", "for", "and", "or", "not",
             "true", "false", "none"} | set(keyword.kwlist)


def _home(node: Node) -> tuple[str, ...]:
    """Where a node is written: its module path, else the block scope it came from."""
    if node.module:
        return tuple(node.module.split("."))
    return tuple(node.scope)


def literal(value) -> str:
    """An attribute value in .arch syntax."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        items = ", ".join(literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise VerifyError(Diagnostic(f"cannot write the attribute value {value!r} in a spec"))


def _compact(value):
    """Resolved attributes written as the author would: (3, 3) -> 3, ((1, 1), (1, 1)) -> 1."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(p, (list, tuple)) and len(p) == 2
                                                          and p[0] == p[1] for p in value):
        value = tuple(p[0] for p in value)
    if isinstance(value, (list, tuple)) and value and all(type(v) is int and v == value[0] for v in value):
        return value[0]
    return value


def _compact_for(cls, attrs: dict, name: str, value):
    """The compact spelling of one attribute when the op accepts it (a shape tuple stays a tuple)."""
    short = _compact(value)
    if short == value:
        return value
    try:
        cls.model_validate({**attrs, name: short}, strict=False)
    except ValueError:
        return value
    return short


def op_call(node: Node) -> str:
    """``Conv2d(64, 3, stride=2)``: positional attributes first, then those that differ from the default."""
    op = node.op
    fields = type(op).model_fields
    args: list[str] = []
    positional = True
    attrs = op.attrs()
    for name, value in attrs.items():
        value = _compact_for(type(op), attrs, name, value)
        f = fields[name]
        if not f.is_required() and _compact(f.default) == value:
            positional = False
            continue
        if positional and name in op.positional and op.positional.index(name) == len(args):
            args.append(literal(value))
        else:
            positional = False
            args.append(f"{name}={literal(value)}")
    return f"{type(op).__name__}({', '.join(args)})"


def apply_text(node: Node, args: str) -> str:
    """An inline (unnamed) op applied to ``args``: ``relu(x)`` for attribute-free ops, else ``Op(...)(x)``."""
    call = op_call(node)
    if not node.inputs:                      # a constructor (arange, zeros) is a value where it is written
        return call
    return f"{node.op.name}({args})" if call.endswith("()") else f"{call}({args})"


def _with_ties(node: Node, call: str) -> str:
    """``Linear(11, bias=false, tie_weight=wte)`` for a layer that reads another layer's parameter."""
    parent = (node.module or "").rpartition(".")[0]
    ties = []
    for local, key in node.params.items():
        owner = key.rpartition(".")[0]
        if not local or key == f"{node.module}.{local}":
            continue
        if owner.rpartition(".")[0] != parent:
            raise VerifyError(Diagnostic(f"layer '{node.module}' is tied to '{key}' in another block, which a spec "
                                         "cannot name", node.span))
        ties.append(f"tie_{local}={owner.rpartition('.')[2]}")
    if not ties:
        return call
    return call[:-1] + (", " if not call.endswith("()") else "") + ", ".join(ties) + ")"


@dataclass
class Region:
    """The nodes under one module path, with the values that cross its border."""

    path: tuple[str, ...]
    nodes: list[Node] = field(default_factory=list)
    children: dict[str, Region] = field(default_factory=dict)

    def all_nodes(self) -> list[Node]:
        """Every node in this region and below, in graph order."""
        out = list(self.nodes)
        for child in self.children.values():
            out += child.all_nodes()
        return out


class _Writer:
    """Writes blocks bottom-up; identical bodies share one block definition."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.order = {n.name: i for i, n in enumerate(graph.nodes)}
        self.types = graph.value_types()
        self.blocks: dict[str, str] = {}           # body text -> block name
        self.defs: list[str] = []

    def tree(self) -> Region:
        root = Region(())
        for node in self.graph.nodes:
            region = root
            for i, part in enumerate(_home(node)):
                region = region.children.setdefault(part, Region(_home(node)[:i + 1]))
            region.nodes.append(node)
        return root

    # -- one region as a block body ----------------------------------------------------------------
    def body(self, region: Region, ins: list[str], outs: list[str], local: dict[str, str]) -> list[str]:
        """Statements inside ``region`` in dependency order (``local``: value -> spec name, updated)."""
        items: list[tuple[str, object, list[Node]]] = [("node", n, [n]) for n in region.nodes]
        for name, child in region.children.items():
            if _is_leaf(child):                  # a layer (applied once or more): its nodes are statements here
                items += [("node", n, [n]) for n in child.nodes]
            else:
                items.append(("child", (name, child), child.all_nodes()))
        lines: list[str] = []
        taken = set(local.values())
        layers: dict[str, str] = {}
        for _, item, _ in self.ordered(items):
            if isinstance(item, Node):           # a "node" item; a "child" item is (name, region)
                lines += self.node_line(item, local, taken, layers)
            else:
                name, child = cast("tuple[str, Region]", item)
                lines += self.child_lines(name, child, local, taken)
        return lines

    def ordered(self, items: list[tuple[str, object, list[Node]]]) -> list[tuple[str, object, list[Node]]]:
        """Items (nodes and sub-regions) in an order where each one's inputs are computed first."""
        made = {v: i for i, (_, _, nodes) in enumerate(items) for n in nodes for v in n.outputs}
        needs = [{made[v] for n in nodes for v in n.inputs if v in made} - {i} for i, (_, _, nodes) in enumerate(items)]
        first = [min(self.order[n.name] for n in nodes) for _, _, nodes in items]
        done: set[int] = set()
        out: list[tuple[str, object, list[Node]]] = []
        while len(out) < len(items):
            ready = [i for i in range(len(items)) if i not in done and needs[i] <= done]
            if not ready:
                raise VerifyError(Diagnostic("a container's nodes are interleaved with the code around it, so it "
                                             "cannot be written as one block"))
            i = min(ready, key=lambda j: first[j])
            done.add(i)
            out.append(items[i])
        return out

    def fresh(self, hint: str, taken: set[str]) -> str:
        """A spec name from ``hint`` that is not taken, not a keyword and does not shadow an op or built-in."""
        base = re.sub(r"[^A-Za-z0-9_]", "_", hint).strip("_") or "v"
        if not base[0].isalpha():
            base = "v" + base
        stem, k = (base[:-1], 1) if base.endswith("1") and base[:-1].isalpha() else (base + "_", 1)
        name = base
        while name in taken or name in _RESERVED or name in _shadowed():
            k += 1
            name = f"{stem}{k}"
        taken.add(name)
        return name

    def node_line(self, node: Node, local: dict[str, str], taken: set[str], layers: dict[str, str]) -> list[str]:
        targets = [self.fresh("h1", taken) for _ in node.outputs]
        args = ", ".join(local[v] for v in node.inputs)
        lines = []
        if node.module:
            leaf = node.module.split(".")[-1]
            if not _IDENT.match(leaf) or leaf in _RESERVED:
                raise VerifyError(Diagnostic(f"layer name '{node.module}' cannot be written as a spec name",
                                             node.span))
            call = _with_ties(node, op_call(node))
            if not node.inputs and len(node.outputs) == 1:         # a free parameter is a tensor value itself
                if leaf not in taken:
                    lines.append(f"{leaf} = {call}")
                    taken.add(leaf)
                local[node.outputs[0]] = leaf
                return lines
            if layers.setdefault(leaf, call) != call:
                raise VerifyError(Diagnostic(f"layer '{node.module}' is applied with different attributes",
                                             node.span))
            if leaf not in taken:
                lines.append(f"{leaf} = {call}")
                taken.add(leaf)
            call = f"{leaf}({args})"
        else:
            call = apply_text(node, args)
        lines.append(f"{', '.join(targets)} = {call}")
        local.update(zip(node.outputs, targets, strict=True))
        return lines

    def crossing(self, nodes: list[Node]) -> tuple[list[str], list[str]]:
        """Values read from outside ``nodes`` and values they produce that are read outside (graph order)."""
        inside = {v for n in nodes for v in n.outputs}
        names = {n.name for n in nodes}
        ins = list(dict.fromkeys(v for n in nodes for v in n.inputs if v not in inside))
        read_outside = {v for n in self.graph.nodes if n.name not in names for v in n.inputs}
        read_outside |= set(self.graph.outputs.values())
        outs = [v for n in nodes for v in n.outputs if v in read_outside]
        return ins, outs

    def child_lines(self, name: str, child: Region, local: dict[str, str], taken: set[str]) -> list[str]:
        nodes = sorted(child.all_nodes(), key=lambda n: self.order[n.name])
        ins, outs = self.crossing(nodes)
        if not _IDENT.match(name) or name in _RESERVED:
            raise VerifyError(Diagnostic(f"container '{'.'.join(child.path)}' cannot be written as a named block"))
        layer = self.layer_expr(child, ins, outs)
        targets = [self.fresh("h1", taken) for _ in outs]
        taken.add(name)
        local.update(zip(outs, targets, strict=True))
        return [f"{name} = {layer}", f"{', '.join(targets)} = {name}({', '.join(local[v] for v in ins)})"]

    def layer_expr(self, region: Region, ins: list[str], outs: list[str]) -> str:
        """A layer expression for a region: ``seq[...]`` for index-named chains, else a block application."""
        chain = self.as_seq(region, ins, outs)
        if chain is not None:
            return chain
        return self.block(region, ins, outs) + "()"

    def as_seq(self, region: Region, ins: list[str], outs: list[str]) -> str | None:
        """A container whose entries run one after another: ``seq[a, b, identity, c]`` when they are named
        0..n-1 (a removed parameterless entry keeps its index as ``identity``), else ``seq{name: a, ...}``."""
        if region.nodes or not region.children or len(ins) != 1 or len(outs) != 1:
            return None
        numeric = all(k.isdigit() and str(int(k)) == k for k in region.children)
        names = [str(i) for i in range(max(map(int, region.children)) + 1)] if numeric else \
            sorted(region.children, key=lambda k: min(self.order[n.name] for n in region.children[k].all_nodes()))
        entries = []
        value = ins[0]
        for key in names:
            child = region.children.get(key)
            if child is None:
                entries.append("identity")
                continue
            nodes = sorted(child.all_nodes(), key=lambda n: self.order[n.name])
            c_ins, c_outs = self.crossing(nodes)
            if c_ins != [value] or len(c_outs) != 1:
                return None
            layer = op_call(nodes[0]) if _is_leaf(child) and len(nodes) == 1 else self.layer_expr(child, c_ins, c_outs)
            entries.append(layer if numeric else f"{key if _IDENT.match(key) else literal(key)}: {layer}")
            value = c_outs[0]
        if value != outs[0]:
            return None
        return "seq[" + ", ".join(entries) + "]" if numeric else "seq{" + ", ".join(entries) + "}"

    def block(self, region: Region, ins: list[str], outs: list[str]) -> str:
        """Define (once per distinct body) a block computing ``outs`` from ``ins``; return its name."""
        local: dict[str, str] = {}
        header = []
        taken: set[str] = set()
        for i, v in enumerate(ins):
            name = self.fresh(f"x{i}" if len(ins) > 1 else "x", taken)
            local[v] = name
            header.append(f"  in {name}: {self.type_text(self.types[v], i)}")
        lines = self.body(region, list(local), [], local)
        result = [f"  out {local[v]}" if len(outs) == 1 else f"  out y{i} = {local[v]}" for i, v in enumerate(outs)]
        text = "\n".join(header + [f"  {line}" for line in lines] + result)
        if text in self.blocks:
            return self.blocks[text]
        name = self.fresh("B_" + "_".join(region.path) if region.path else "Main", set(self.blocks.values()))
        name = name[0].upper() + name[1:]
        self.blocks[text] = name
        self.defs.append(f"block {name}() {{\n{text}\n}}")
        return name

    @staticmethod
    def type_text(t: TensorType, i: int) -> str:
        dims = [str(d) if isinstance(d, int) else f"D{i}_{j}" for j, d in enumerate(t.shape)]
        prefix = "" if t.dtype == "float32" else t.dtype
        return f"{prefix}[{', '.join(dims)}]"


@functools.cache
def _shadowed() -> frozenset[str]:
    """Names a local must not take: op spellings and built-in functions of the language."""
    from archdsl.elaborate.builtins import BUILTINS
    from archdsl.ops.registry import spellings

    return frozenset(spellings()) | frozenset(BUILTINS)


def _is_leaf(region: Region) -> bool:
    """A region that is one layer: no sub-containers, every node applies the module at the region's path."""
    return not region.children and all(n.module == ".".join(region.path) for n in region.nodes)


def graph_to_spec(graph: Graph, source: str = "a spec") -> str:
    """The .arch text of ``graph`` as one model (plus the blocks it needs); parameter names are kept."""
    w = _Writer(graph)
    root = w.tree()
    local: dict[str, str] = {}
    taken: set[str] = set()
    header = []
    ruled: set[str] = set()
    for name, t in graph.inputs.items():
        local[name] = w.fresh(name, taken)
        dims = ", ".join(str(d) if isinstance(d, int) else _symbol(d) for d in t.shape)
        rules = [r for d in t.shape if (r := constrained_form(d)) is not None and r[0] not in ruled]
        ruled |= {r[0] for r in rules}
        where = " where " + " and ".join(f"{s} % {k} == {r}" for s, k, r in rules) if rules else ""
        header.append(f"  in {local[name]}: {'' if t.dtype == 'float32' else t.dtype}[{dims}]{where}")
    lines = w.body(root, list(graph.inputs), list(graph.outputs.values()), local)
    outs = [f"  out {k} = {local[v]}" for k, v in graph.outputs.items()]
    doc = f"Deploy form of {graph.name} (archdsl simplify of {source}); eval mode."
    model = "\n".join([f"model {graph.name}() {{", f"  {literal(doc)}", *header, *(f"  {x}" for x in lines), *outs,
                       "}"])
    notice = f"# Generated by archdsl simplify from {source}: the deploy form of {graph.name}.\n"
    return _formatted(notice + "\n\n".join([*w.defs, model]) + "\n")


def _formatted(text: str) -> str:
    """The text as `archdsl fmt` prints it (long lines wrapped)."""
    from archdsl.elaborate.loader import parse_source
    from archdsl.syntax.printer import format_module

    return format_module(parse_source(text, "deploy.arch"))


def _symbol(d: SymDim) -> str:
    """An input dim as declared: a name, a pattern (``32*P``), or the name of a size with a rule (``H``)."""
    rule = constrained_form(d)
    if rule is not None:
        return rule[0]
    text = str(d)
    if not _IDENT.match(text) and linear_form(d) is None:
        raise VerifyError(Diagnostic(f"input dimension {text} cannot be declared in a spec"))
    return text
