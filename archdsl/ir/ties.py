"""Tied parameters: state_dict names that are another parameter's tensor (``lm_head.weight`` is ``wte.weight``)."""

from __future__ import annotations

from archdsl.ir.graph import Graph


def tied_names(graph: Graph) -> dict[str, str]:
    """{alias: parameter key} for every node parameter declared by another layer (``tie_weight=wte``).

    A layer applied twice reads its own parameters (same path): that is sharing, not an alias.
    """
    out: dict[str, str] = {}
    for node in graph.nodes:
        for local, key in node.params.items():
            if local and node.module and key != f"{node.module}.{local}":
                out[f"{node.module}.{local}"] = key
    return out
