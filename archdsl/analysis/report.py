"""Render :class:`~archdsl.analysis.cost.Stats` as an aligned text table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from archdsl.ir.dims import Dim

if TYPE_CHECKING:
    from archdsl.analysis.cost import Stats


def human(n: Dim) -> str:
    """``11689512`` -> ``11.69M``; symbolic counts print as their formula."""
    if not isinstance(n, int):
        return str(n)
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _count(n: Dim) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _macs(n: Dim) -> str:
    """A table cell: exact with commas, or a symbolic count in its short form (JSON and CSV keep the formula)."""
    return f"{n:,}" if isinstance(n, int) else n.compact()


def to_text(s: Stats) -> str:
    """An aligned table with a totals line; block doc strings in a last column."""
    header = ["name", "op", "output", "params", "MACs"]
    body = [[r.name, r.op if r.nodes <= 1 else f"block ({r.nodes} nodes)", r.output, _count(r.params),
             _macs(r.macs)] for r in s.rows]
    total = ["total", "", "", _count(s.params), _macs(s.macs)]
    widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(header))]
    docs = [r.doc for r in s.rows]
    show_doc = any(docs)
    right = {"params"} | ({"MACs"} if isinstance(s.macs, int) else set())   # symbolic formulas read left-aligned

    def fmt(cells: list[str], doc: str = "") -> str:
        parts = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, header, strict=True)]
        return ("  ".join(parts) + (f"  {doc}" if show_doc and doc else "")).rstrip()

    rule = "  ".join("-" * w for w in widths)
    inputs = ", ".join(f"{k}: {v}" for k, v in s.inputs.items())
    lines = [f"model {s.model}   inputs {inputs}", fmt(header, "doc" if show_doc else ""), rule]
    lines += [fmt(cells, doc) for cells, doc in zip(body, docs, strict=True)]
    lines += [rule, fmt(total)]
    macs = human(s.macs) if isinstance(s.macs, int) else "symbolic (bind sizes with --input N=1,H=224,W=224)"
    lines.append(f"params {human(s.params)}   MACs {macs}   buffers {_count(s.buffers)} elements")
    return "\n".join(lines)


def to_json(s: Stats) -> str:
    """A JSON document; concrete counts are numbers, symbolic ones strings."""
    def num(n: Dim) -> int | str:
        return n if isinstance(n, int) else str(n)

    rows = [{"name": r.name, "op": r.op, "output": r.output, "params": r.params, "macs": num(r.macs),
             "nodes": r.nodes, "doc": r.doc} for r in s.rows]
    doc = {"model": s.model, "inputs": s.inputs, "depth": s.depth, "rows": rows,
           "total": {"params": s.params, "buffers": s.buffers, "macs": num(s.macs)}}
    return json.dumps(doc, indent=2)


def to_csv(s: Stats) -> str:
    """CSV with a header row and a final ``total`` row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "op", "output", "params", "macs", "nodes", "doc"])
    for r in s.rows:
        w.writerow([r.name, r.op, r.output, r.params, r.macs, r.nodes, r.doc])
    w.writerow(["total", "", "", s.params, s.macs, sum(r.nodes for r in s.rows), ""])
    return buf.getvalue()


FORMATS = {"text": to_text, "json": to_json, "csv": to_csv}
