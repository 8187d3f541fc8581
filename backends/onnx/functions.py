"""The spec's blocks as ONNX model-local functions, so viewers (Netron) show the author's structure.

Every documented block instance (``Graph.module_docs``: ``layer1.0``, ``encoder.layers.encoder_layer_3``) becomes
a function in the domain ``archdsl.blocks`` named by its path, called once from where its nodes were; nested
blocks are outlined first, so a stage's function calls its blocks' functions. Weights stay initialisers of the
main graph and enter a function as inputs (ONNX functions hold no initialisers). onnxruntime inlines them again,
so numbers and speed are those of the flat graph.
"""

from __future__ import annotations

import onnx_ir as ir

from archdsl.ir.graph import Graph

DOMAIN = "archdsl.blocks"
SCOPE = "archdsl.scope"


def _inside(node: ir.Node, path: tuple[str, ...]) -> bool:
    scope = tuple(filter(None, node.metadata_props.get(SCOPE, "").split(".")))
    return scope[:len(path)] == path


def _outline(model: ir.Model, path: str, doc: str) -> bool:
    """Move the (contiguous) nodes of block ``path`` into a function and call it; False when not possible."""
    graph = model.graph
    parts = tuple(path.split("."))
    nodes = list(graph)
    members = [i for i, n in enumerate(nodes) if _inside(n, parts)]
    if not members or members[-1] - members[0] + 1 != len(members):
        return False
    group = nodes[members[0]:members[-1] + 1]
    inside = set(map(id, group))
    produced = {id(v) for n in group for v in n.outputs}
    inputs: dict[int, ir.Value] = {}
    for n in group:
        for v in n.inputs:
            if v is not None and id(v) not in produced:
                inputs.setdefault(id(v), v)
    graph_outputs = set(map(id, graph.outputs))
    outputs = [v for n in group for v in n.outputs
               if id(v) in graph_outputs or any(id(use.node) not in inside for use in v.uses())]
    if not outputs:
        return False
    call = ir.Node(DOMAIN, path, list(inputs.values()), num_outputs=len(outputs), name=path,
                   doc_string=doc or None, metadata_props={SCOPE: path})
    for old, new in zip(outputs, call.outputs, strict=True):
        new.name, new.type, new.shape = old.name, old.type, old.shape
        for use in list(old.uses()):
            if id(use.node) not in inside:
                use.node.replace_input_with(use.idx, new)
        for k, v in enumerate(graph.outputs):
            if v is old:
                graph.outputs[k] = new
    graph.insert_before(group[0], call)
    graph.remove(group, safe=False)
    params = {id(v): ir.Value(name=v.name, type=v.type, shape=v.shape) for v in inputs.values()}
    for n in group:
        for i, v in enumerate(n.inputs):
            if v is not None and id(v) in params:
                n.replace_input_with(i, params[id(v)])
    imports = {"": graph.opset_imports[""]} | ({DOMAIN: 1} if any(n.domain == DOMAIN for n in group) else {})
    body = ir.Graph(list(params.values()), outputs, nodes=group, opset_imports=imports, name=path)
    function = ir.Function(DOMAIN, path, graph=body, attributes=[])
    model.functions[function.identifier()] = function
    return True


def outline_blocks(model: ir.Model, graph: Graph) -> int:
    """Outline every documented block instance of ``graph`` (innermost first); returns how many became functions."""
    done = 0
    for path in sorted(graph.module_docs, key=lambda p: -p.count(".")):
        done += _outline(model, path, graph.module_docs[path])
    if done:
        model.graph.opset_imports[DOMAIN] = 1
    return done
