"""archdsl: a declarative architecture language and verifying compiler for neural networks.

The public names below load on first use (PEP 562), so ``import archdsl`` and the command line start fast:
the error family is imported at once; the compiler, the zoo, the passes and the torch backend when touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from archdsl.errors import (
    ArchError,
    Diagnostic,
    ElaborationError,
    LimitError,
    ParseError,
    ShapeError,
    SpecImportError,
    UsageError,
    VerifyError,
)

if TYPE_CHECKING:
    from archdsl import zoo
    from archdsl.api import build, compile, compile_all
    from archdsl.exporting import onnx_parity, to_onnx
    from archdsl.ir.graph import Graph, Node, Param
    from archdsl.ir.types import Span, TensorType
    from archdsl.ir.weights import Weights
    from archdsl.passes import PassError
    from archdsl.saving import load_built, save_built
    from archdsl.simplifying import Simplified, simplify

# Public name -> the module that defines it (``linearize`` and ``LinearInterpreter`` import torch).
_LAZY = {
    "build": "archdsl.api", "compile": "archdsl.api", "compile_all": "archdsl.api",
    "onnx_parity": "archdsl.exporting", "to_onnx": "archdsl.exporting",
    "Graph": "archdsl.ir.graph", "Node": "archdsl.ir.graph", "Param": "archdsl.ir.graph",
    "Span": "archdsl.ir.types", "TensorType": "archdsl.ir.types", "Weights": "archdsl.ir.weights",
    "PassError": "archdsl.passes", "load_built": "archdsl.saving", "save_built": "archdsl.saving",
    "Simplified": "archdsl.simplifying", "simplify": "archdsl.simplifying",
    "linearize": "archdsl.analysis.linearize", "LinearInterpreter": "archdsl.analysis.linearize",
}

__all__ = [
    "ArchError", "Diagnostic", "ElaborationError", "Graph", "LimitError", "Node", "Param", "ParseError", "PassError",
    "ShapeError", "Simplified", "Span", "SpecImportError", "TensorType", "UsageError", "VerifyError", "Weights",
    "build", "compile", "compile_all", "load_built", "onnx_parity", "save_built", "simplify", "to_onnx", "zoo",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Load a public name (or the ``zoo`` module) on first use and keep it as a module attribute."""
    if name == "zoo":
        value = importlib.import_module("archdsl.zoo")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'archdsl' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not."""
    return sorted({*globals(), *_LAZY, "zoo"})
