"""Well-formedness and type checking of a finished Graph, with Diagnostics that point at the spec.

The elaborator only builds well-formed graphs; these checks matter for graphs built by hand, loaded from
JSON, or rewritten by passes. Every check is linear in the size of the graph. A graph is first checked in one
pass (:func:`_clean_pass`, which finds a clean graph clean and words the few findings it can); at the first sign
of an error the general checks (:func:`_general`) find and word everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import islice
from operator import attrgetter, eq

from archdsl.errors import Diagnostic, OpError, VerifyError
from archdsl.gcpause import gc_paused
from archdsl.ir.graph import Graph, Node
from archdsl.ir.types import DTYPES, TensorType
from archdsl.ops.base import ParamSpec, Trait, apply_rules
from archdsl.ops.embed import check_init
from archdsl.reserved import reserved_component

# What an op's shape or parameter rule may raise on inputs it was not written for.
_RULE_ERRORS = (OpError, ArithmeticError, ValueError, TypeError, IndexError, KeyError)
RULE_MEMO = 4096        # rule results remembered while one graph is checked (most nodes share a few dozen)


def diagnostics(graph: Graph) -> list[Diagnostic]:
    """Every problem in ``graph``: undefined or redefined values, cycles, type drift, unused results."""
    found = _clean_pass(graph)
    return found if found is not None else _general(graph)


def _clean_pass(graph: Graph) -> list[Diagnostic] | None:  # noqa: C901 - one pass, its checks inlined (see below)
    """:func:`diagnostics` of a graph with no errors, in one pass over the nodes; None at the first sign of one.

    Every check of the general path (:func:`_general`) is made, but each node is visited once, with its checks
    inlined (the general path's five passes and per-node calls cost a 100k-node graph about twice as much), and
    what holds for all nodes of the same op and input types (the rules' results, the op's arity and attributes,
    the names of its parameters) is checked once per such pair. The per-parameter checks run as whole-list
    comparisons after the pass (:func:`_clean_params`). Anything that may be an error ends the pass with None,
    and the general checks then find and word everything. The findings a graph without those errors can have (an
    unread input, an unused parameter, a dead result) come from the general checks' own functions, called only when
    the pass saw a sign of them: the findings are the general path's, in the same order.
    """
    if not graph.outputs:
        return None
    inputs = graph.inputs
    for t in inputs.values():
        if t.dtype not in DTYPES:
            return None
    table = graph.params
    if "" in table:                 # a parameter named "": _names checks its initialiser on every node
        return None
    types: dict[str, TensorType] = dict(inputs)
    lookup = types.__getitem__
    used: set[str] = set()
    names: set[str] = set()
    # the rule results by the identity of op and input types, as in _retype, with what holds for every node of the
    # same key checked once: the op's arity and finite attributes, the outputs' dtypes, the names of its parameters
    rules: dict[tuple[int, ...], tuple] = {}
    older: dict[tuple[int, ...], tuple] = {}    # the entries before the last RULE_MEMO (see below)
    memo = RULE_MEMO
    # values' types are kept as one object per distinct type, so equal types made apart (a layer's output type,
    # made once per layer) give the same memo key
    canon: dict[int, TensorType] = {}           # each type object seen (by identity) -> the first equal one
    by_value: dict[TensorType, TensorType] = {}  # the first of each value (each object is hashed once)
    fulls: list[str] = []           # the parameters the nodes use, in order of use
    specs: list[ParamSpec] = []     # and what its op's rule says of it (the shape)
    plain = True                    # every parameter is named module.local by its node (module alone: "")
    good: set[str] = set()          # path components known to be fine (see _names)
    finite: dict[int, bool] = {}    # ops (by identity) whose attributes are finite
    parent = "\0"
    for node in graph.nodes:
        node_inputs = node.inputs
        op = node.op
        key: tuple[int, ...]
        try:
            if len(node_inputs) == 1:           # most nodes: no list of input types
                value = node_inputs[0]
                key = (id(op), id(lookup(value)))
                used.add(value)
            else:
                key = (id(op), *map(id, map(lookup, node_inputs)))
                used.update(node_inputs)
        except KeyError:
            return None
        known = rules.get(key)
        if known is None:
            known = older.get(key)
            if known is None:
                known = _rule_entry(node, list(map(lookup, node_inputs)), finite, good)
                if known is None:
                    return None
            if len(rules) >= memo:          # the older half goes; the results used since it was made stay
                older = rules
                rules = {}
                canon = {}
                by_value = {}
            rules[key] = known
        outs, spec_of, dotted, free = known
        ty = node.types
        if ty is not outs and ty != outs:          # equal types: the node's dtypes are the checked ones
            return None
        owned = node.params
        if owned or spec_of:
            if len(owned) != len(spec_of):
                return None
            try:
                specs.extend(map(spec_of.__getitem__, owned))
            except KeyError:
                return None
            fulls.extend(owned.values())
            module = node.module
            if module is None:
                plain = False
            else:
                # consecutive layers share their parent's path (body.3.217.up, .norm): its components are known good
                if not (module.startswith(parent) and module[len(parent):] in good):
                    if not _good_path(module, good):
                        return None
                    parent = module[:module.rfind(".") + 1]
                if plain:           # compared here, not kept: a list of 100k's names would raise the peak memory
                    for local, full in owned.items():
                        if full != module + dotted[local]:
                            plain = False
                            break
            if free:
                param = table.get(owned[""])
                if param is not None and not _init_ok(param.init):      # a free parameter's initialiser
                    return None
        outputs = node.outputs
        if len(outputs) != len(ty):
            return None
        if len(outputs) == 1:
            value = outputs[0]
            if value in types:
                return None
            t = ty[0]
            same = canon.get(id(t))
            if same is None:
                same = canon[id(t)] = by_value.setdefault(t, t)
            types[value] = same
        elif not _define(types, outputs, ty, canon, by_value):
            return None
        names.add(node.name)
    if len(names) != len(graph.nodes) or not all(v in types for v in graph.outputs.values()):
        return None
    del names
    found = _ends(graph, types, used)             # warnings only now: inputs no node reads
    read = sum(1 for name in inputs if name in used)
    made = len(types) - len(inputs)               # values the nodes define (each once: the pass went on)
    dead = _dead_results(graph, used) if len(used) - read != made else []    # some node output is never read
    del types, used
    unused = _clean_params(graph, fulls, specs, plain)
    return None if unused is None else found + unused + dead


def _clean_params(graph: Graph, fulls: list[str], specs: list[ParamSpec], plain: bool) -> list[Diagnostic] | None:
    """The parameter checks of a clean graph, given for each parameter use in node order its full name and its
    rule's ParamSpec, and whether (``plain``) each full name is ``module.local`` of its node, as the elaborator
    names them: the unused-parameter warnings, or None when a check may fail.

    The usual graph uses each parameter once, in declared order: the table's own order then lists the Params, and
    each check is one comparison of whole lists. Otherwise the Params are looked up by name, and names that are not
    ``module.local`` are checked by :func:`_names`.
    """
    table = graph.params
    count = len(fulls)
    # compared item by item, not as lists: on a large graph the lists would raise the peak memory
    listed: list | None = None                  # the Params in order of use, where not the table's own order
    if count <= len(table) and all(map(eq, table, fulls)):   # used once each, in declared order: the usual case
        unused = [_unused_param(graph, name) for name in islice(table, count, None)]
    else:
        try:
            listed = list(map(table.__getitem__, fulls))
        except KeyError:                          # an undeclared parameter
            return None
        unused = _unused_by_set(graph)

    def params() -> Iterable:
        return islice(table.values(), count) if listed is None else listed

    if (not all(map(_same, map(_SHAPE, params()), map(_SHAPE, specs)))      # (shapes: mostly the same objects)
            or not all(map(DTYPES.__contains__, map(_DTYPE, table.values())))):
        return None
    if not (plain and all(map(eq, map(_NAME, params()), fulls))) and _names(graph):
        return None
    return unused


def _same(a: object, b: object) -> bool:
    """``a == b``, at once when they are the same object (as in a list comparison)."""
    return a is b or a == b


_SHAPE, _DTYPE, _NAME = attrgetter("shape"), attrgetter("dtype"), attrgetter("name")


def _good_path(path: str, good: set[str]) -> bool:
    """No component of the dotted ``path`` clashes with an nn.Module attribute or is empty (``good`` gains them)."""
    for part in path.split("."):
        if part not in good:
            if reserved_component(part) is not None:
                return False
            good.add(part)
    return True


def _define(types: dict[str, TensorType], outputs: tuple[str, ...], ty: tuple[TensorType, ...],
            canon: dict[int, TensorType], by_value: dict[TensorType, TensorType]) -> bool:
    """:func:`_clean_pass`'s definition of a node's several outputs; False when one is defined already."""
    for value, t in zip(outputs, ty, strict=True):
        if value in types:
            return False
        same = canon.get(id(t))
        if same is None:
            same = canon[id(t)] = by_value.setdefault(t, t)
        types[value] = same
    return True


def _rule_entry(node: Node, ins: list[TensorType], finite: dict[int, bool], good: set[str]) -> tuple | None:
    """What :func:`_clean_pass` remembers of a node's op applied to its input types: the output types, the
    ParamSpec of each parameter by local name, the suffix each adds to its layer's module path (".weight"; "" for
    a free parameter, named by its module), whether the op has a free parameter (local name ""); None when the
    node's op has the wrong arity, an attribute that is not finite, a failing rule, an output of an unknown dtype,
    or a local parameter name that cannot be an attribute of a module."""
    op = node.op
    arity = op.arity
    if arity is not None and len(ins) != arity:
        return None
    ok = finite.get(id(op))
    if ok is None:                  # ops are shared by many nodes and rule keys: each is checked once
        ok = finite[id(op)] = not _finite_attrs(node)
    if not ok:
        return None
    try:
        _, outs, specs = apply_rules(op, ins)
    except _RULE_ERRORS:
        return None
    if not all(map(DTYPES.__contains__, map(_DTYPE, outs))):
        return None
    if not good.issuperset(specs) and not all(_good_path(local, good) for local in specs if local):
        return None                     # ("" is no component: a free parameter is named by its module)
    return tuple(outs), specs, {local: f".{local}" if local else "" for local in specs}, "" in specs


def _init_ok(text: str) -> bool:
    try:
        check_init(text)
    except ValueError:
        return False
    return True


def _general(graph: Graph) -> list[Diagnostic]:
    """:func:`diagnostics` by the general checks, one after another: any graph, and the words for every finding."""
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
