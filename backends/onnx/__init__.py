"""The ONNX backend: archdsl's IR lowered directly to ONNX with onnx_ir, one rule per op class.

Needs the ``onnx`` extra (``pip install 'archdsl[onnx]'``).
"""

from archdsl.backends.onnx.export import export_model, save, to_onnx
from archdsl.backends.onnx.lower import DEFAULT_OPSET, OPSETS, ExportError, check_opset, lower, lowering_problems
from archdsl.backends.onnx.parity import ParityReport, onnx_parity
from archdsl.backends.onnx.registry import RULES, lowering, missing

__all__ = ["DEFAULT_OPSET", "OPSETS", "RULES", "ExportError", "ParityReport", "check_opset", "export_model", "lower",
           "lowering", "lowering_problems", "missing", "onnx_parity", "save", "to_onnx"]
