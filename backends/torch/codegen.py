"""Graph -> readable Python source of an ``nn.Module`` (no per-node interpretation in forward)."""

from __future__ import annotations

import builtins
import functools
import keyword
import re
from collections import Counter

from archdsl.backends.torch.codegen_cache import LOCAL as CACHED
from archdsl.backends.torch.codegen_cache import METHODS, ParameterValues
from archdsl.backends.torch.constants import BuildTime
from archdsl.backends.torch.registry import rule_for
from archdsl.backends.torch.rules.common import SYMBOL_LOCALS
from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph, Node
from archdsl.ir.symbols import symbol_sources
from archdsl.ir.types import TensorType
from archdsl.ops.base import Trait
from archdsl.reserved import reserved_component

_RESERVED = {"self", "torch", "nn", "F", "rt", "math", CACHED} | set(keyword.kwlist) | set(dir(builtins))
_HEADER = '''{doc}

import torch
import torch.nn as nn
import torch.nn.functional as F

from archdsl.backends.torch import runtime as rt
'''


def class_name(graph: Graph) -> str:
    """A Python class name for the graph's model (never one of the generated module's globals)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", graph.name)
    return name if name and not name[0].isdigit() and name not in _RESERVED else f"Model_{name}"


def local(name: str) -> str:
    """A safe Python local variable name for an IR value."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not name or name[0].isdigit():
        return f"v{name}"        # values of a top-level seq[...] are named 0, 1, ...
    if name in _RESERVED:
        return f"{name}_"
    return name


@functools.lru_cache(maxsize=65536)     # called for every parameter-owning node and container, often per path
def attr_ref(path: str) -> str:
    """Source that reaches the submodule at ``path`` from ``self`` (``self.layer1[0].conv1``)."""
    out = "self"
    for i, part in enumerate(path.split(".")):
        if i and part.isascii() and part.isdigit() and str(int(part)) == part:   # containers index; self does not
            out += f"[{part}]"
        elif part.isascii() and part.isidentifier() and not keyword.iskeyword(part):
            out += f".{part}"
        else:
            out += f"._modules[{part!r}]"
    return out


def docstring(text: str, indent: str = "") -> str:
    """A docstring literal for any text: triple-quoted when that is safe, else ``repr`` (graph.json is input)."""
    if text.isprintable() and not any(c in text for c in '"\\') and text.strip() == text:
        return f'{indent}"""{text}"""'
    return f"{indent}{text!r}"


def _symbol_locals(graph: Graph) -> dict[str, str]:
    """A Python local for every symbol the inputs determine (``H``; ``len_`` for a symbol named ``len``)."""
    return {s: local(s) for s in symbol_sources(graph.inputs)}


def _locals(graph: Graph, symbols: dict[str, str]) -> dict[str, str]:
    """A distinct Python local for every value (sanitising could make two value names meet, or meet a symbol)."""
    out: dict[str, str] = {}
    taken: set[str] = set(symbols.values())
    for v in [*graph.inputs, *(o for n in graph.nodes for o in n.outputs)]:
        name = local(v)
        while name in taken:
            name += "_"
        taken.add(name)
        out.setdefault(v, name)
    return out


class _Emitter:
    """Collects __init__ and forward lines for one graph."""

    def __init__(self, graph: Graph, check_inputs: bool, inplace: bool = True, cache: bool = True):
        self.graph = graph
        self.check_inputs = check_inputs
        self.allow_inplace = inplace
        self.types = graph.value_types()
        self.symbols = _symbol_locals(graph)
        self.local = _locals(graph, self.symbols)
        self.uses = Counter(v for n in graph.nodes for v in n.inputs) + Counter(graph.outputs.values())
        self.cached = ParameterValues(graph, cache)     # values of parameters alone: reused while unchanged
        self.fresh = self._fresh_values()
        self.init: list[str] = []
        self.forward: list[str] = []
        self.containers: set[str] = set()
        self.build_time = BuildTime(self)       # constructors and buffers: computed once, in __init__

    def container(self, path: str) -> None:
        """Create the parent containers of ``path`` (``layer1``, ``layer1.0``) once each."""
        parts = path.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix not in self.containers:
                self.containers.add(prefix)
                self.register(prefix, "rt.Container()")

    def register(self, path: str, source: str) -> None:
        """Emit the line that adds a submodule at ``path``."""
        parent, _, leaf = path.rpartition(".")
        owner = attr_ref(parent) if parent else "self"
        if leaf in _MODULE_ATTRS or reserved_component(leaf) is not None:
            raise UsageError(Diagnostic(f"layer name '{leaf}' (in '{path}') clashes with an nn.Module attribute",
                                        hint="rename the layer"))
        self.init.append(f"        {owner}.add_module({leaf!r}, {source})")

    def node(self, node: Node, last_use: dict[str, int], index: int) -> None:
        """Emit the module (if any) and the forward line of one node."""
        if self.build_time.emit(node):
            return
        ins = [self.types[v] for v in node.inputs]
        rule = rule_for(node.op)
        ref = None
        if node.params:
            ref = self.owned(node, ins, rule)
        expr = self.inplace(node) or rule.call(node.op, [self.local[v] for v in node.inputs], ref, ins)
        targets = ", ".join(self.local[v] for v in node.outputs)
        if len(node.outputs) > 1:
            targets += ","
        comment = f"  # {node.span.line}:{node.span.column}" if node.span else ""
        dead = [v for v in dict.fromkeys(node.inputs) if last_use.get(v) == index]
        dead += [v for v in node.outputs if v not in last_use]

        def lines(keep: set[str]) -> list[str]:
            gone = [self.local[v] for v in dead if v not in keep and not self.local[v].startswith("self.")]
            return [f"        {targets} = {expr}{comment}"] + ([f"        del {', '.join(gone)}"] if gone else [])

        cached = self.cached
        if cached.holds(node):          # into _parameter_values, which returns the values forward reads
            cached.lines += lines(set(cached.frontier))
            cached.note_sources(self, node, ref)
        if cached.holds(node) and not cached.shares(node):     # and inline, where they are not cached
            self.forward += cached.inline(node, lines(set()))
        else:                           # (a parameter read forward needs too is done in both places)
            self.forward += cached.close(self) + lines(set())

    def _fresh_values(self) -> set[str]:
        """Values a single use may overwrite (see :class:`Lowering`): results of ``fresh`` lowerings; for an
        EVAL_IDENTITY op (its eval result is its input) only where that input is fresh and read by it alone."""
        fresh: set[str] = set()
        cached = set(self.cached.frontier)      # reused from call to call: never overwritten
        for n in self.graph.nodes:
            if not rule_for(n.op).fresh:
                continue
            if n.op.has(Trait.EVAL_IDENTITY) and not all(v in fresh and self.uses[v] == 1 for v in n.inputs):
                continue
            fresh.update(v for v in n.outputs if v not in cached)
        return fresh

    def inplace(self, node: Node) -> str | None:
        """The in-place form of ``node`` when an input is a fresh, single-use tensor of the result's type."""
        form = rule_for(node.op).inplace
        if form is None or not self.allow_inplace or node.op.attrs() or len(node.outputs) != 1 or not node.op.has(Trait.ELEMENTWISE):
            return None
        for i, v in enumerate(node.inputs):
            if v in self.fresh and self.uses[v] == 1 and self.types[v] == node.types[0]:
                return form.format(self.local[v], *(self.local[u] for j, u in enumerate(node.inputs) if j != i))
        return None

    def bindings(self, used: set[str]) -> list[str]:
        """Lines binding the symbols the body uses from the inputs' shapes (``P = image.shape[2] // 32``)."""
        sources = symbol_sources(self.graph.inputs)
        return [f"        {self.symbols[s]} = {src.formula(f'{self.local[src.input]}.shape[{src.axis}]')}"
                for s, src in sources.items() if s in used]

    def owned(self, node: Node, ins: list[TensorType], rule) -> str:
        """Declare the node's parameters: a submodule, or bare parameters registered on the parent."""
        path = node.module or ""
        if "" in node.params:   # a free parameter named by its path (class_token, pos_embedding)
            if path not in self._declared:
                self._declared.add(path)
                self.container(path)
                parent, _, leaf = path.rpartition(".")
                owner = attr_ref(parent) if parent else "self"
                p = self.graph.params[node.params[""]]
                kind = "register_buffer" if p.buffer else "register_parameter"
                value = f"rt.new_tensor({tuple(p.shape)!r}, {p.init!r}, {p.dtype!r}, parameter={not p.buffer})"
                self.init.append(f"        {owner}.{kind}({leaf!r}, {value})")
            return attr_ref(path)
        if rule.module is None:
            raise UsageError(Diagnostic(f"op {node.op.name} owns parameters but its torch lowering builds no module",
                                        node.span, "the op's torch rule must give module=... to hold the "
                                        "parameters (a bug in the lowering: report it with this spec)"))
        if path not in self._declared:
            self._declared.add(path)
            self.container(path)
            self.register(path, rule.module(node.op, ins))
            for local, key in node.params.items():     # tie_weight=wte: this layer uses wte's tensor
                if key != f"{path}.{local}":
                    owner, _, leaf = key.rpartition(".")
                    self.init.append(f"        {attr_ref(path)}.{local} = {attr_ref(owner)}.{leaf}")
        return attr_ref(path)

    _declared: set[str]

    def emit(self, source: str) -> str:
        """The whole module source."""
        self._declared = set()
        g = self.graph
        last_use = {v: i for i, n in enumerate(g.nodes) for v in n.inputs}
        outputs = set(g.outputs.values())
        for v in outputs:
            last_use[v] = len(g.nodes)
        args = ", ".join(self.local[k] for k in g.inputs)
        if self.check_inputs:
            self.forward.append(f"        rt.check_inputs(self._input_spec, ({args}{',' if len(g.inputs) == 1 else ''}))")
        used: set[str] = set()
        token = SYMBOL_LOCALS.set((self.symbols, used))
        try:
            body = len(self.forward)
            for i, node in enumerate(g.nodes):
                self.node(node, last_use, i)
        finally:
            SYMBOL_LOCALS.reset(token)
        self.forward += self.cached.close(self)
        self.forward[body:body] = self.bindings(used) + self.cached.start()
        outs = [self.local[v] for v in g.outputs.values()]
        ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ",)"
        self.forward.append(f"        return {ret}")
        doc = ((g.doc or f"{g.name}, generated by archdsl.").splitlines() or [""])[0]
        header = docstring(f"Generated by archdsl from {source}: model {g.name}. Edit the spec, not this file.")
        lines = [_HEADER.format(doc=header), "", f"class {class_name(g)}(nn.Module):",
                 docstring(doc, "    "), "", "    def __init__(self) -> None:", "        super().__init__()"]
        lines += self.init
        if self.check_inputs:
            lines.append(f"        self._input_spec = {_input_spec(g)!r}")
        lines += ["", "    def reparameterize(self):",
                  '        """The deploy form (archdsl simplify): re-param branches merged, BatchNorm folded; eval mode."""',
                  "        return rt.reparameterize(self)"]
        lines += self.cached.methods(self)
        if any(n.op.has(Trait.RECURRENT) for n in g.nodes):
            lines += self.step_method(args)
        lines += ["", f"    def forward(self, {args}):"] + self.forward
        return "\n".join(lines) + "\n"


    def step_method(self, args: str) -> list[str]:
        """``step``: the forward on new tokens with the recurrent ops' states carried (backends/torch/decoding.py)."""
        if "step" in self._declared or "step" in self.containers:
            raise UsageError(Diagnostic("layer name 'step' clashes with the step method of a recurrent model",
                                        hint="rename the layer"))
        return ["", f"    def step(self, {args}, state=None):",
                '        """Run the new tokens with each recurrent op resuming from state (None: zeros); '
                'returns (outputs, state)."""',
                f"        return rt.decoding.step(self, ({args}{',' if ',' not in args else ''}), state)"]


_MODULE_ATTRS = {a for a in dir(__import__("torch").nn.Module) if not a.startswith("__")} | {"reparameterize", *METHODS}


def _input_spec(graph: Graph) -> tuple:
    spec = []
    for name, t in graph.inputs.items():
        span = graph.input_spans.get(name)
        spec.append((name, tuple(str(d) for d in t.shape), t.dtype, str(span) if span else "?"))
    return tuple(spec)


def generate_source(graph: Graph, check_inputs: bool = False, source: str = "a spec", inplace: bool = True,
                    cache: bool = True) -> str:
    """Python source of a module class for ``graph`` (class name from the model name).

    ``inplace=False`` writes every op out of place (the in-place forms compute bitwise the same outputs and
    gradients; tests compare the two). ``cache=False`` computes the values that depend on parameters and
    buffers alone inline on every call instead of reusing them while unchanged (``codegen_cache``; the same
    outputs bit for bit).
    """
    return _Emitter(graph, check_inputs, inplace, cache).emit(source)
