"""Well-formedness and type checking of a finished Graph, with Diagnostics that point at the spec.

The elaborator only builds well-formed graphs; these checks matter for graphs built by hand, loaded from
JSON, or rewritten by passes. Every check is linear in the size of the graph.
"""

from __future__ import annotations

import math

from archdsl.errors import Diagnostic, OpError, VerifyError
from archdsl.gcpause import gc_paused
from archdsl.ir.graph import Graph, Node
from archdsl.ir.types import DTYPES, TensorType
from archdsl.ops.base import Trait, apply_rules
from archdsl.ops.embed import check_init
from archdsl.reserved import reserved_component

# What an op's shape or parameter rule may raise on inputs it was not written for.
_RULE_ERRORS = (OpError, ArithmeticError, ValueError, TypeError, IndexError, KeyError)
RULE_MEMO = 4096        # rule results remembered while one graph is checked (most nodes share a few dozen)


def diagnostics(graph: Graph) -> list[Diagnostic]:
    """Every problem in ``graph``: undefined or redefined values, cycles, type drift, unused results."""
    found = _structure(graph)
    types: dict[str, TensorType] = dict(graph.inputs)
    used: set[str] = set()
    late: list[tuple[Node, str]] = []
    finite: dict[int, bool] = {}
    rules: dict[tuple[int, ...], tuple] = {}       # apply_rules by the identity of op and input types (see _retype)
    params = graph.params
    lookup = types.__getitem__
    for node in graph.nodes:
        missing: list[str] = []
        inputs = node.inputs
        try:
            ins = list(map(lookup, inputs))
        except KeyError:
            missing = [v for v in inputs if v not in types]
            late += [(node, v) for v in missing]
        used.update(inputs)
        outputs = node.outputs
        for v in outputs:
            if v in types:
                found.append(Diagnostic(f"value '{v}' is defined twice (again by {_what(node)})", node.span,
                                        "a value has one producer: rename one of the outputs"))
        op_id = id(node.op)
        ok = finite.get(op_id)
        if ok is None:                                  # replayed blocks share op objects: check each once
            ok = finite[op_id] = not _finite_attrs(node)
        if node.params:
            for full in node.params.values():
                if full not in params:
                    found += _params(graph, node)
                    break
        if not ok:
            found += _finite_attrs(node)
        if not missing:
            problems = _retype(graph, node, ins, rules)
            if problems:
                found += problems
        if len(outputs) == 1 and node.types:
            types[outputs[0]] = node.types[0]
        else:
            types.update(zip(outputs, node.types, strict=False))
    if late:
        found += _ordering(graph, late)
    found += _ends(graph, types, used)
    dead = _dead_results(graph, used)
    del types, used                         # the value tables go before the parameter table is built (peak memory)
    return found + _names(graph) + _unused_params(graph) + dead


def _ends(graph: Graph, types: dict[str, TensorType], used: set[str]) -> list[Diagnostic]:
    """Outputs name defined values; every input is read (``used`` gains the outputs)."""
    found = []
    for name, v in graph.outputs.items():
        if v not in types:
            found.append(Diagnostic(f"output '{name}' refers to undefined value '{v}'", graph.span,
                                    "an output names a graph input or a value some node produces"))
        used.add(v)
    for name in graph.inputs:
        if name not in used:
            found.append(Diagnostic(f"input '{name}' is never used", graph.input_spans.get(name),
                                    "remove the input, or read it in the dataflow"))
    return found


def _names(graph: Graph) -> list[Diagnostic]:
    """Layer and parameter names must be valid nn.Module attribute paths (``training`` or ``a..b`` are not)."""
    found: list[Diagnostic] = []
    seen: set[str] = set()
    good: set[str] = set()          # path components known to be fine (most repeat: body, 0, fc, weight)

    def first_bad(path: str) -> str | None:
        for part in path.split("."):
            if part not in good:
                if reserved_component(part) is not None:        # a component has no dots: itself or None
                    return part
                good.add(part)
        return None

    declared = graph.params
    root = declared.get("")
    parent = "\0"                   # a prefix ending in "." whose components are known good (none yet)
    for node in graph.nodes:
        owned = node.params
        free = declared.get(owned.get("", "")) if owned else root
        if free is not None:     # a free parameter is initialised from its IR initialiser string
            try:
                check_init(free.init)
            except ValueError as exc:
                found.append(Diagnostic(f"parameter '{free.name}': {exc}", node.span,
                                        "Parameter's initialisers are listed in docs/ops.md"))
        if not owned:
            continue
        module = node.module
        if module is not None:
            # consecutive layers share their parent's path (body.3.217.up, .norm): its components are known good
            bad = first_bad(module[len(parent):]) if module.startswith(parent) else first_bad(module)
            if bad is not None:
                _bad_name(found, seen, node, module, bad)
                continue
            prefix = module + "."
            parent = module[:module.rfind(".") + 1]
        for full in owned.values():
            param = declared.get(full)
            if param is None:
                continue
            path = param.name
            if module is not None and path.startswith(prefix):     # the module's components are known good
                rest = path[len(prefix):]
                bad = None if rest in good else first_bad(rest)
            else:
                bad = first_bad(path)
            if bad is not None:
                _bad_name(found, seen, node, path, bad)
                break
    return found


def _bad_name(found: list[Diagnostic], seen: set[str], node: Node, path: str, bad: str) -> None:
    """Report the component ``bad`` of ``path``, once per bad prefix (the layer, not each of its weights)."""
    parts = path.split(".")
    where = ".".join(parts[:parts.index(bad) + 1])
    if where in seen:
        return
    seen.add(where)
    if bad == "":
        found.append(Diagnostic(f"module path {path!r} of {_what(node)} has an empty component", node.span,
                                "a module path is dot-separated names (layer1.0.conv1), none of them empty"))
    else:
        found.append(Diagnostic(f"layer name '{bad}' (in '{where}') clashes with an attribute of "
                                "torch.nn.Module", node.span, "rename the layer"))


def _finite_attrs(node: Node) -> list[Diagnostic]:
    """Float attributes must be finite numbers: inf and nan have no place in generated source or ONNX."""
    for field in type(node.op).model_fields:
        value = getattr(node.op, field)
        items = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            return [Diagnostic(f"attribute '{field}' of {_what(node)} is {value!r}; attributes must be finite",
                               node.span, "write a finite number (a large one such as 1e30 is allowed)")]
    return []


def _what(node: Node) -> str:
    return f"{node.op.name} node '{node.name}'"


def _structure(graph: Graph) -> list[Diagnostic]:
    """Node names unique, one type per output, known dtypes, the op's tensor arity, some output."""
    found: list[Diagnostic] = []
    if not graph.outputs:
        found.append(Diagnostic(f"graph '{graph.name}' has no outputs", graph.span,
                                "a model returns at least one value (`out ...`)"))
    for name, t in graph.inputs.items():
        found += _dtype(t.dtype, f"input '{name}'", graph.input_spans.get(name))
    seen: set[str] = set()
    for node in graph.nodes:
        count = len(seen)
        seen.add(node.name)
        if len(seen) == count:
            found.append(Diagnostic(f"two nodes are named '{node.name}'", node.span, "node names are unique: rename one"))
        if len(node.types) != len(node.outputs):
            found.append(Diagnostic(f"{_what(node)} has {len(node.outputs)} output(s) but {len(node.types)} "
                                    "type(s)", node.span, "give each output value exactly one TensorType"))
        arity = node.op.arity
        if arity is not None and len(node.inputs) != arity:
            found.append(Diagnostic(f"{_what(node)} takes {arity} input(s), got {len(node.inputs)}",
                                    node.span, f"pass exactly {arity} input value(s)"))
        for t in node.types:
            if t.dtype not in DTYPES:
                found += _dtype(t.dtype, _what(node), node.span)
    for p in graph.params.values():
        if p.dtype not in DTYPES:
            found += _dtype(p.dtype, f"parameter '{p.name}'", graph.span)
    return found


def _dtype(dtype: str, where: str, span) -> list[Diagnostic]:
    if dtype in DTYPES:
        return []
    return [Diagnostic(f"{where} has unknown dtype '{dtype}'", span, f"dtypes are: {', '.join(DTYPES)}")]


def _ordering(graph: Graph, late: list[tuple[Node, str]]) -> list[Diagnostic]:
    """Reads of values not defined before the reader: a cycle, nodes out of order, or a dangling value."""
    import networkx as nx

    producers = graph.producers()
    flow = nx.DiGraph()
    flow.add_nodes_from(n.name for n in graph.nodes)
    flow.add_edges_from((producers[v].name, n.name) for n in graph.nodes for v in n.inputs if v in producers)
    found = []
    try:
        cycle = [a for a, _ in nx.find_cycle(flow)]
    except nx.NetworkXNoCycle:
        cycle = []
    if cycle:
        chain = " -> ".join(f"'{n}'" for n in cycle + cycle[:1])
        found.append(Diagnostic(f"the graph has a cycle: {chain}", _node(graph, cycle[0]).span,
                                "a value cannot depend on itself"))
    for node, v in late:
        if v not in producers:
            found.append(Diagnostic(f"{_what(node)} reads '{v}', which is not defined (a dangling value)",
                                    node.span, "a node reads graph inputs and values of nodes before it"))
        elif not cycle:
            found.append(Diagnostic(f"{_what(node)} reads '{v}' before {_what(producers[v])} defines it",
                                    node.span, "nodes must be in topological order"))
    return found


def _node(graph: Graph, name: str) -> Node:
    return next(n for n in graph.nodes if n.name == name)


def _params(graph: Graph, node: Node) -> list[Diagnostic]:
    """Every parameter a node names is declared."""
    return [Diagnostic(f"{_what(node)} uses parameter '{full}', which is not declared", node.span,
                       "declare it in the graph's parameter table (name, shape, dtype, initialiser)")
            for full in node.params.values() if full not in graph.params]


def _retype(graph: Graph, node: Node, ins: list[TensorType],
            rules: dict[tuple[int, ...], tuple] | None = None) -> list[Diagnostic]:
    """Re-run the op's shape and parameter rules; a mismatch means the graph was edited inconsistently.

    ``rules`` memoises the rules' results by the identity of the op and input type objects (nodes share them:
    replayed blocks, ops made once per distinct arguments), so most nodes cost no hashing of IR objects; the
    objects stay alive in the graph while it is checked, so their identities are not reused meanwhile. It holds
    at most RULE_MEMO results (then starts again), so its size does not grow with the graph.
    """
    key = (id(node.op), *map(id, ins))
    known = rules.get(key) if rules is not None else None
    if known is None:
        try:
            _, outs, specs = apply_rules(node.op, ins)
        except _RULE_ERRORS as exc:
            return [Diagnostic(f"{_what(node)}: {exc}", node.span, getattr(exc, "hint", None)
                               or "the node's attributes do not fit its inputs: recompute the node from the spec")]
        known = (tuple(outs), specs)
        if rules is not None:
            if len(rules) >= RULE_MEMO:          # bounded: the entries of a 100k-node graph would be its peak
                rules.clear()
            rules[key] = known
    outs, specs = known
    if outs != tuple(node.types):
        got = ", ".join(str(t) for t in node.types)
        want = ", ".join(str(t) for t in outs)
        return [Diagnostic(f"{_what(node)} is typed {got} but its inputs give {want}", node.span,
                           "recompute the node's output types after changing its inputs or attributes")]
    owned = node.params
    if len(specs) == len(owned):                # the usual case: every parameter given, none extra, each of its shape
        table = graph.params
        for local, full in owned.items():
            spec = specs.get(local)
            if spec is None:
                break
            declared = table.get(full)
            if declared is not None and declared.shape is not spec.shape and tuple(declared.shape) != tuple(spec.shape):
                break
        else:
            return []
    found = [Diagnostic(f"{_what(node)} needs its parameter '{local or '(the layer itself)'}', which it is not "
                        "given", node.span, "map it to a declared parameter in the node's params")
             for local in specs if local not in owned]
    for local, full in owned.items():
        declared = graph.params.get(full)
        if local not in specs:
            found.append(Diagnostic(f"{_what(node)} has no parameter '{local}' (given '{full}')", node.span,
                                    "remove it from the node's params"))
        elif declared is not None and tuple(declared.shape) != tuple(specs[local].shape):
            found.append(Diagnostic(f"parameter '{full}' is declared {list(declared.shape)} but {_what(node)} "
                                    f"needs {list(specs[local].shape)}", node.span,
                                    "declare the parameter with the shape the op needs"))
    return found


def _unused_params(graph: Graph) -> list[Diagnostic]:
    """A declared parameter no node uses is dead weight (warning)."""
    declared = iter(graph.params)
    expected = next(declared, None)
    for node in graph.nodes:     # the usual order (an elaborated graph): each parameter used once, in declared order
        for full in node.params.values():
            if full != expected:
                return _unused_by_set(graph)
            expected = next(declared, None)
    rest = [] if expected is None else [expected, *declared]     # used by no node
    return [_unused_param(graph, name) for name in rest]


def _unused_by_set(graph: Graph) -> list[Diagnostic]:
    """:func:`_unused_params` for any order of use (a set of every used name: the larger peak)."""
    owned: set[str] = set()
    for node in graph.nodes:
        if node.params:
            owned.update(node.params.values())
    return [_unused_param(graph, name) for name in graph.params if name not in owned]


def _unused_param(graph: Graph, name: str) -> Diagnostic:
    return Diagnostic(f"parameter '{name}' is declared but no node uses it", graph.span,
                      "remove it from the parameter table", severity="warning")


def _dead_results(graph: Graph, used: set[str]) -> list[Diagnostic]:
    """Results nobody reads are dead code (warnings; ``dce`` removes them)."""
    out = []
    for node in graph.nodes:
        outputs = node.outputs
        if (outputs[0] in used) if len(outputs) == 1 else used.issuperset(outputs):
            continue
        unused = [v for v in node.outputs if v not in used]
        if len(unused) == len(node.outputs):
            if not node.op.has(Trait.STOCHASTIC):
                out.append(Diagnostic(f"the result of {node.op.name} ('{node.outputs[0]}') is never used",
                                      node.span, "remove the computation or use its result", severity="warning"))
        elif unused:
            out.append(Diagnostic(f"output{'s' if len(unused) > 1 else ''} {', '.join(repr(v) for v in unused)} "
                                  f"of {_what(node)} {'are' if len(unused) > 1 else 'is'} never used", node.span,
                                  "use it, or compute only the outputs that are needed",
                                  severity="warning"))
    return out


def verify(graph: Graph, sources: dict[str, str] | None = None) -> list[Diagnostic]:
    """Raise VerifyError on any error; return the warnings."""
    with gc_paused():           # linear time on large graphs (see archdsl.gcpause)
        found = diagnostics(graph)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        raise VerifyError(errors, sources)
    return found
