"""GraphBuilder: accumulates nodes, values and parameters while a model is elaborated."""

from __future__ import annotations

import re

from archdsl.errors import Diagnostic, ElaborationError, LimitError, ShapeError
from archdsl.ir.construct import maker, trusted
from archdsl.ir.frozen import FrozenDict
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import Span, TensorType
from archdsl.ops.base import OpDef, ParamSpec

MAX_NODES = 500_000
PLAN_MEMO = 4096                 # parameter plans a builder remembers at once (see GraphBuilder._plan)
MAX_PARAM_BYTES = 64 * 2**30     # parameters and buffers of one model; checked as they are declared, before any build
DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "bool": 1}


def param_bytes(params) -> int:
    """Bytes that parameters (``Param`` declarations with concrete shapes) need."""
    total = 0
    for p in params:
        total += p.numel() * DTYPE_BYTES.get(p.dtype, 8)
    return total


def budget_error(total: int, span: Span | None, sources: dict[str, str] | None = None) -> LimitError:
    """The LimitError for a model whose parameters need ``total`` bytes, more than MAX_PARAM_BYTES."""
    return LimitError(Diagnostic(f"the model's parameters need {_size(total)}, more than the limit of "
                                 f"{_size(MAX_PARAM_BYTES)}", span,
                                 "check the layer sizes (archdsl.elaborate.builder.MAX_PARAM_BYTES is the limit)"),
                      sources)


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")
_make_param = maker(Param)
_make_node = maker(Node)
_NO_PARAMS: FrozenDict[str, str] = FrozenDict()        # shared by every node without parameters
_set = dict.__setitem__                                 # fills the builder's frozen mappings (it alone adds to them)
_setdefault = dict.setdefault


def _ident(text: str) -> str:
    """``text`` with every character but ASCII letters, digits and '_' replaced by '_' (``layer1.0.conv``)."""
    joined = text.replace(".", "_")
    if joined.isascii() and ("_" + joined).isidentifier():       # the usual dotted path: nothing else to replace
        return joined
    return _NOT_IDENT.sub("_", text)


def _plain_numel(spec) -> int | None:
    """The ParamSpec's number of elements when every field is already of its Param field's type (concrete int dims,
    the usual case); else None."""
    fan_in, shape, layout = spec.fan_in, spec.shape, spec.layout
    if not (type(shape) is tuple and type(spec.groups) is int and (fan_in is None or type(fan_in) is int)
            and type(spec.buffer) is bool and type(layout) is tuple and type(spec.dtype) is str
            and type(spec.init) is str and type(spec.axis) is str):
        return None
    numel = 1
    for d in shape:                 # (loops, not generators: in a spec of varied widths most specs are new)
        if type(d) is not int:
            return None
        numel *= d
    for x in layout:
        if type(x) is not str:
            return None
    return numel


class GraphBuilder:
    """Mutable accumulator used only during elaboration; :meth:`finish` returns the immutable Graph."""

    def __init__(self, name: str, sources: dict[str, str]):
        self.name = name
        self.sources = sources
        self.inputs: dict[str, TensorType] = {}
        self.input_spans: dict[str, Span] = {}
        self.nodes: list[Node] = []
        # frozen from the start (the builder alone adds to it: declare_params, replay), so the Graph takes it as is
        self.params: FrozenDict[str, Param] = FrozenDict()
        self.plans: dict[int, tuple[tuple | dict, list]] = {}     # id of an op's ParamSpecs -> how to declare them
        self.owners: dict[str, tuple[tuple[int | str, ...], Span | None]] = {}
        self.value_names: dict[str, Node | None] = {}     # every value so far -> the node making it (None: input)
        self.suffixes: dict[str, int] = {}
        self.module_docs: dict[str, str] = {}
        self.doc_order: list[str] = []      # module_docs' keys in the order they were added (O(1) "docs since")
        self.param_bytes = 0
        self.shortcuts = True               # add_node's shortcut for a free name (see session.SHORTCUTS)

    def fresh_value(self, hint: str) -> str:
        """A unique value name derived from ``hint`` (a module path or an op name): ``relu``, ``relu_2``, ..."""
        base = _ident(hint) or "v"
        name, k = base, self.suffixes.get(base, 1)
        if k > 1:
            name = f"{base}_{k}"
        if name in self.value_names:
            while name in self.value_names:
                k += 1
                name = f"{base}_{k}"
            self.suffixes[base] = k    # names are never released, so the next free suffix is at least k
        self.value_names[name] = None
        return name

    def add_doc(self, path: str, doc: str) -> None:
        """Record the doc string of the module at ``path``; the first one given stays."""
        if path not in self.module_docs:
            self.module_docs[path] = doc
            self.doc_order.append(path)

    def docs_since(self, count: int) -> tuple[tuple[str, str], ...]:
        """Docs added after the first ``count`` (``len(doc_order)`` read earlier), in order."""
        order = self.doc_order
        if len(order) == count:
            return ()
        docs = self.module_docs
        return tuple([(k, docs[k]) for k in order[count:]])

    def add_input(self, name: str, t: TensorType, span: Span | None) -> str:
        """Declare a graph input."""
        self.value_names[name] = None
        self.inputs[name] = t
        if span:
            self.input_spans[name] = span
        return name

    def claim_module(self, path: str, owner: tuple[int | str, ...], span: Span | None) -> None:
        """Record who owns the parameters at ``path``; two different layers may not share a name."""
        prev = _setdefault(self.owners, path, (owner, span))      # (one look-up: the path is new, most often)
        if prev[0] is not owner and prev[0] != owner:
            raise ElaborationError(Diagnostic(
                f"two different layers both want the parameter name '{path}'", span,
                "give each layer its own name; to share weights, apply the same named layer twice",
                notes=((f"'{path}' was first used here", prev[1]),)), self.sources)

    def declare_params(self, path: str, specs: tuple | dict, span: Span | None) -> FrozenDict[str, str]:
        """Add the op's parameters under ``path`` (``specs``: (local name, ParamSpec) pairs, or a dict of them);
        re-declaring the same shape shares them. Returns local name -> full name, frozen (as a node holds it)."""
        plan = self.plans.get(id(specs))
        if plan is None or plan[0] is not specs:
            plan = self._plan(specs)
        mapping: FrozenDict[str, str] = FrozenDict()      # (the node's own mapping: filled here, not copied again)
        params = self.params
        for local, args, nbytes, spec in plan[1]:
            full = f"{path}.{local}" if path and local else path or local   # "" = the path itself
            if args is not None:        # built without re-validation: every field already has its IR type
                param = _make_param(full, *args)
            else:
                param = Param(name=full, shape=spec.shape, dtype=spec.dtype, init=spec.init, buffer=spec.buffer,
                              axis=spec.axis, fan_in=spec.fan_in, layout=spec.layout, groups=spec.groups)
            old = _setdefault(params, full, param)       # (one look-up in a mapping of 100k+ names)
            if old is param:
                self.param_bytes += nbytes if args is not None else param.numel() * DTYPE_BYTES.get(param.dtype, 8)
                if self.param_bytes > MAX_PARAM_BYTES:
                    raise budget_error(self.param_bytes, span, self.sources)
            elif old != param:
                raise ShapeError(Diagnostic(
                    f"shared layer '{path}' is applied to inputs that need {local} of shape "
                    f"{list(param.shape)}, but its first use made it {list(old.shape)}", span,
                    "a shared layer has one set of weights: apply it to inputs of one shape, or use two layers"),
                    self.sources)
            else:
                _set(params, full, param)       # the same declaration again: the newest object, as before
            _set(mapping, local, full)
        return mapping

    def _plan(self, specs: tuple | dict) -> tuple[tuple | dict, list[tuple[str, tuple | None, int, ParamSpec]]]:
        """How to declare ``specs`` (the rule cache hands out the same pairs again, so each is looked at once): per
        parameter its local name, the Param fields after the name when every one is already of its IR type (else
        None: validated), its bytes, and the spec. At most PLAN_MEMO plans are remembered at once."""
        steps: list[tuple[str, tuple | None, int, ParamSpec]] = []
        for local, spec in specs.items() if isinstance(specs, dict) else specs:
            numel = _plain_numel(spec)
            if numel is not None:
                steps.append((local, (spec.shape, spec.dtype, spec.init, spec.buffer, spec.axis, spec.fan_in,
                                      spec.layout, spec.groups), numel * DTYPE_BYTES.get(spec.dtype, 8), spec))
            else:
                steps.append((local, None, 0, spec))
        if len(self.plans) >= PLAN_MEMO:
            self.plans.clear()
        plan = self.plans[id(specs)] = (specs, steps)      # (the entry holds the specs: the id stays theirs)
        return plan

    def count_param(self, param: Param, span: Span | None) -> None:
        """Add a new parameter's bytes to the model's total; LimitError past MAX_PARAM_BYTES."""
        self.param_bytes += param.numel() * DTYPE_BYTES.get(param.dtype, 8)
        if self.param_bytes > MAX_PARAM_BYTES:
            raise budget_error(self.param_bytes, span, self.sources)

    def add_node(self, op: OpDef, inputs: list[str], types: list[TensorType] | tuple[TensorType, ...], params: dict[str, str],
                 module: str | None, scope: tuple[str, ...], span: Span | None, tags: tuple[str, ...] = (),
                 producer: Node | None = None) -> tuple[str, ...]:
        """Append a node and return its output value names (``producer``: the node making ``inputs[0]``, when the
        caller knows it; None: looked up)."""
        nodes, value_names = self.nodes, self.value_names
        if len(nodes) >= MAX_NODES:
            raise LimitError(Diagnostic(f"the model has more than {MAX_NODES:,} nodes", span,
                                        "check repeat counts"), self.sources)
        hint = module or ".".join((*scope, op.name))      # unnamed ops are named after their block: layer1_0_relu
        outs: tuple[str, ...]
        if len(types) == 1:
            base = hint.replace(".", "_")
            free = False
            if self.shortcuts and base.isidentifier() and base.isascii() and base not in self.suffixes:
                # fresh_value's answer in its usual case, the hint free (one look-up in a mapping of 100k+ names)
                count = len(value_names)
                value_names.setdefault(base, None)
                free = len(value_names) > count
            outs = (base,) if free else (self.fresh_value(hint),)
        else:
            outs = tuple(self.fresh_value(f"{hint}_{i}") for i in range(len(types)))
        # a node reading one value shares its producer's outputs tuple, and its types tuple when the type is the
        # same (relu, norms, residual adds): two tuples less per node in a chain
        ins: tuple[str, ...]
        typed: tuple[TensorType, ...]
        if len(inputs) == 1:
            if producer is None:
                producer = value_names.get(inputs[0])
            if producer is not None and len(producer.outputs) == 1:
                ins = producer.outputs
                typed = producer.types if len(types) == 1 and producer.types[0] is types[0] else tuple(types)
            else:
                ins, typed = tuple(inputs), tuple(types)
        else:
            producer = value_names.get(inputs[0]) if inputs else None
            ins = tuple(inputs)
            typed = producer.types if producer is not None and len(types) == 1 and len(producer.types) == 1 \
                and producer.types[0] is types[0] else tuple(types)
        # every field is already of its IR type (ops and types come from the rules): constructed without validation
        if not params:
            params = _NO_PARAMS
        elif type(params) is not FrozenDict:
            params = FrozenDict(params)
        node = _make_node(outs[0], op, ins, outs, typed, params, module,
                          tuple(scope), span, tuple(tags))
        nodes.append(node)
        for v in outs:
            value_names[v] = node
        return outs

    def finish(self, outputs: dict[str, str], doc: str, span: Span | None) -> Graph:
        """The immutable Graph, from parts already of their IR types (not validated again: a 100k-node graph's
        mappings would be copied twice more); the builder keeps the frozen mappings, so no copy outlives this."""
        self.inputs = FrozenDict(self.inputs)
        self.input_spans, self.module_docs = FrozenDict(self.input_spans), FrozenDict(self.module_docs)
        return trusted(Graph, {"name": self.name, "inputs": self.inputs, "nodes": tuple(self.nodes),
                               "outputs": FrozenDict(outputs), "params": self.params, "doc": doc, "span": span,
                               "input_spans": self.input_spans, "module_docs": self.module_docs, "mode": "train"})
