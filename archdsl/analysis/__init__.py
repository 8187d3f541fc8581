"""Static analysis of a Graph: size binding, parameter and MAC counts, report formats.

The public names load on first use (PEP 562): ``from archdsl.analysis.report import FORMATS`` in a command's
argument parser then does not import the IR, which keeps ``archdsl --help`` fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archdsl.analysis.cost import Row, Stats, node_path, stats
    from archdsl.analysis.report import FORMATS, human, to_csv, to_json, to_text
    from archdsl.analysis.sizes import bind, parse_sizes, substitute

__all__ = ["FORMATS", "Row", "Stats", "bind", "human", "node_path", "parse_sizes", "stats", "substitute",
           "to_csv", "to_json", "to_text"]

_LAZY = {**dict.fromkeys(("bind", "parse_sizes", "substitute"), "archdsl.analysis.sizes"),
         **dict.fromkeys(("Row", "Stats", "node_path", "stats"), "archdsl.analysis.cost"),
         **dict.fromkeys(("FORMATS", "human", "to_csv", "to_json", "to_text"), "archdsl.analysis.report")}


def __getattr__(name: str):
    """Load a public name from its module on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'archdsl.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
