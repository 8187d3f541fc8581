"""archdsl: a declarative architecture language and verifying compiler for neural networks."""

from archdsl import zoo  # `archdsl.zoo.names()` after `import archdsl`
from archdsl.api import build, compile, compile_all
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
from archdsl.exporting import onnx_parity, to_onnx
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import Span, TensorType
from archdsl.ir.weights import Weights
from archdsl.passes import PassError
from archdsl.saving import load_built, save_built
from archdsl.simplify import Simplified, simplify

__all__ = [
    "ArchError", "Diagnostic", "ElaborationError", "Graph", "LimitError", "Node", "Param", "ParseError", "PassError",
    "ShapeError", "Simplified", "Span", "SpecImportError", "TensorType", "UsageError", "VerifyError", "Weights",
    "build", "compile", "compile_all", "load_built", "onnx_parity", "save_built", "simplify", "to_onnx", "zoo",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``linearize`` and ``LinearInterpreter`` import torch, so they load on first use."""
    if name in ("linearize", "LinearInterpreter"):
        from archdsl.analysis.linearize import LinearInterpreter, linearize

        return {"linearize": linearize, "LinearInterpreter": LinearInterpreter}[name]
    raise AttributeError(f"module 'archdsl' has no attribute {name!r}")
