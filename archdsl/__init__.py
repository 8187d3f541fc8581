"""archdsl: a declarative architecture language and verifying compiler for neural networks."""

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
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import Span, TensorType
from archdsl.saving import load_built, save_built

__all__ = [
    "ArchError", "Diagnostic", "ElaborationError", "Graph", "LimitError", "Node", "Param", "ParseError",
    "ShapeError", "Span", "SpecImportError", "TensorType", "UsageError", "VerifyError", "build", "compile",
    "compile_all", "load_built", "save_built",
]
__version__ = "0.1.0"
