"""Graph -> onnx_ir Model: inputs with dim_params, the author's names, one rule per node, weights as initialisers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import onnx_ir as ir

from archdsl.backends.onnx.emitter import DTYPES, Emitter, NodeEmitter, onnx_shape, typed
from archdsl.backends.onnx.registry import rule_for
from archdsl.errors import ArchError, Diagnostic
from archdsl.ir.graph import Graph, Node
from archdsl.ir.symbols import symbol_sources

IR_VERSION = 10
OPSETS = (18, 19, 20, 21)
DEFAULT_OPSET = 21


class ExportError(ArchError):
    """A graph (or its weights) cannot be lowered to ONNX; each diagnostic names the op and where it is."""


def node_label(node: Node) -> str:
    """The ONNX node name of an IR node: its layer path (``layer1.0.conv1``) or scope path and IR name."""
    if node.module:
        return node.module
    return ".".join((*node.scope, node.name)) if node.scope else node.name


def _value_info(name: str, t) -> ir.Value:
    return ir.Value(name=name, shape=onnx_shape(t), type=ir.TensorType(DTYPES[t.dtype]))


class _Params(Mapping):
    """A node's parameters by local name; an initialiser is made when a rule first reads it."""

    def __init__(self, lowerer: Lowerer, names: dict[str, str]) -> None:
        self.lowerer, self.names = lowerer, names

    def __getitem__(self, local: str) -> ir.Value:
        return self.lowerer.param(self.names[local])

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class Lowerer:
    """Lowers one graph; ``weights`` maps parameter names to tensors (None: shapes only, for checking)."""

    def __init__(self, graph: Graph, weights: Mapping[str, ir.TensorProtocol] | None, opset: int) -> None:
        self.graph = graph
        self.weights = weights
        self.emitter = Emitter(opset)
        self.values: dict[str, ir.Value] = {}
        self.params: dict[str, ir.Value] = {}
        self.errors: list[Diagnostic] = []
        self.bound: set[int] = set()                   # rule outputs already named after their IR value
        self.emitter.reserve([*graph.inputs, *(v for n in graph.nodes for v in n.outputs), *graph.outputs])

    def param(self, key: str) -> ir.Value:
        """The initialiser of parameter ``key`` (made on first use, so unused buffers are left out)."""
        if key not in self.params:
            p = self.graph.params[key]
            if self.weights is None:
                name = self.emitter.unique(key)
                value = ir.Value(name=name, shape=ir.Shape(tuple(int(d) for d in p.shape)),
                                 type=ir.TensorType(DTYPES[p.dtype]))
                self.emitter.initializers[name] = value
            else:
                value = self.emitter.initializer(key, self.weights[key])
            self.params[key] = value
        return self.params[key]

    def node(self, node: Node, types: dict) -> None:
        """Lower one node with its rule and bind its outputs to the IR value names."""
        rule = rule_for(node.op)
        if rule is None:
            self.errors.append(Diagnostic(f"op {node.op.name} (node {node.name}) has no ONNX lowering", node.span,
                                          hint="add a rule to backends/onnx/rules/"))
            return
        ins = [types[v] for v in node.inputs]
        meta = {"archdsl.op": node.op.name}
        if node.span:
            meta["archdsl.span"] = str(node.span)
        if node.scope:
            meta["archdsl.scope"] = ".".join(node.scope)
        e = NodeEmitter(self.emitter, node_label(node), ins, list(node.types), metadata=meta)
        params = _Params(self, node.params)
        try:
            out = rule(e, node.op, [self.values[v] for v in node.inputs], params)
        except (ValueError, KeyError) as exc:
            self.errors.append(Diagnostic(f"cannot lower {node.op.name} (node {node.name}) to ONNX opset "
                                          f"{self.emitter.opset}: {exc}", node.span,
                                          "a newer opset may have the operator (--opset); else give the op "
                                          "attributes its ONNX form supports (`archdsl ops NAME` lists them)"))
            return
        outs = [out] if isinstance(out, ir.Value) else list(out)
        if len(outs) != len(node.outputs):
            raise RuntimeError(f"the ONNX rule of {node.op.name} made {len(outs)} outputs, not {len(node.outputs)}")
        made = {id(v) for n in e.made for v in n.outputs}
        for value, name, t in zip(outs, node.outputs, node.types, strict=True):
            if id(value) in made and id(value) not in self.bound:
                self.bound.add(id(value))
                value.name = name
                typed(value, t)
            self.values[name] = value

    graph_inputs: list[ir.Value]

    def outputs(self) -> list[ir.Value]:
        """Graph outputs named as the model's outputs; an Identity where a value cannot take the name."""
        outs: list[ir.Value] = []
        types = self.graph.value_types()
        plain = set(self.graph.inputs) | {v for n in self.graph.nodes for v in n.outputs}
        for key, vname in self.graph.outputs.items():
            value = self.values[vname]
            producer = value.producer()
            free = key == value.name or (key not in plain and key not in self.emitter.initializers)
            if producer is None or value in outs or value in self.graph_inputs or not free:
                e = NodeEmitter(self.emitter, key, [], [])
                value = e.op("Identity", value)
            value.name = key if free else value.name
            typed(value, types[vname])
            outs.append(value)
        return outs

    def run(self) -> ir.Graph:
        """The lowered graph; ExportError listing every node that could not be lowered."""
        g = self.graph
        self.graph_inputs = [_value_info(name, t) for name, t in g.inputs.items()]
        self.values.update(zip(g.inputs, self.graph_inputs, strict=True))
        self.emitter.symbol_sources = {s: (self.values[src.input], src) for s, src in symbol_sources(g.inputs).items()}
        types = g.value_types()
        for node in g.nodes:
            self.node(node, types)
        if self.errors:
            raise ExportError(self.errors)
        return ir.Graph(self.graph_inputs, self.outputs(), nodes=self.emitter.nodes,
                        initializers=list(self.emitter.initializers.values()),
                        opset_imports={"": self.emitter.opset}, name=g.name, doc_string=g.doc or None)


def lower(graph: Graph, weights: Mapping[str, ir.TensorProtocol] | None = None, opset: int = DEFAULT_OPSET,
          metadata: dict[str, str] | None = None) -> ir.Model:
    """The ONNX model (onnx_ir) of ``graph``; ``weights`` None gives initialisers without data (checking)."""
    check_opset(opset)
    from archdsl import __version__

    props = {"archdsl.model": graph.name}
    if graph.span:
        props["archdsl.source"] = graph.span.file
    props.update(metadata or {})
    return ir.Model(Lowerer(graph, weights, opset).run(), ir_version=IR_VERSION, producer_name="archdsl",
                    producer_version=__version__, doc_string=graph.doc or None, metadata_props=props)


def check_opset(opset: Any) -> int:
    """``opset`` when it is one archdsl lowers to; a UsageError naming the supported range otherwise."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        from archdsl.errors import UsageError

        raise UsageError(Diagnostic(f"ONNX opset {opset!r} is not supported",
                                    hint=f"choose an opset from {OPSETS[0]} to {OPSETS[-1]} (default {DEFAULT_OPSET})"))
    return opset


def lowering_problems(graph: Graph, opset: int = DEFAULT_OPSET) -> Sequence[Diagnostic]:
    """Diagnostics for every node of ``graph`` that cannot be lowered (no weights needed); empty when all can."""
    try:
        lower(graph, None, opset)
    except ExportError as exc:
        return exc.diagnostics
    return ()
