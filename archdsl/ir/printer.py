"""A readable text form of the IR, one line per value."""

from __future__ import annotations

from archdsl.ir.graph import Graph, shape_str


def _attr_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_attr_text(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def print_graph(graph: Graph) -> str:
    """Text form: header with inputs, one line per node, outputs, then the parameter table."""
    ins = ", ".join(f"%{k}: {t}" for k, t in graph.inputs.items())
    lines = [f"graph {graph.name}({ins}) {{"]
    for node in graph.nodes:
        outs = ", ".join(f"%{v}: {t}" for v, t in zip(node.outputs, node.types, strict=True))
        args = ", ".join(f"%{v}" for v in node.inputs)
        attrs = node.op.attrs()
        attr_text = ", ".join(f"{k}={_attr_text(v)}" for k, v in attrs.items())
        extra = f" {{{attr_text}}}" if attr_text else ""
        where = f"  # {node.module}" if node.module else ""
        lines.append(f"  {outs} = {node.op.name}({args}){extra}{where}")
    outs = ", ".join(f"{k}=%{v}" for k, v in graph.outputs.items())
    lines.append(f"  return {outs}")
    lines.append("}")
    if graph.params:
        lines.append(f"params ({graph.num_params():,} trainable elements):")
        for p in graph.params.values():
            kind = "buffer" if p.buffer else "param"
            dt = "" if p.dtype == "float32" else f" {p.dtype}"
            lines.append(f"  {kind} {p.name}: {shape_str(p.shape)}{dt} init={p.init}")
    return "\n".join(lines)
