"""``archdsl.to_onnx`` and ``archdsl.onnx_parity``: the ONNX backend's entry points, importable without onnx.

The backend itself (``archdsl.backends.onnx``) needs the ``onnx`` extra; calling these without it is a
UsageError that names the extra.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from archdsl.errors import Diagnostic, UsageError


def onnx_backend() -> ModuleType:
    """``archdsl.backends.onnx``; a UsageError naming the extra when onnx is not installed."""
    try:
        import archdsl.backends.onnx as backend
    except ModuleNotFoundError as exc:
        raise UsageError(Diagnostic(f"the ONNX backend needs the package {exc.name!r}",
                                    hint="pip install 'archdsl[onnx]'")) from None
    return backend


def to_onnx(source: Any, model: str | None = None, **kwargs: Any):
    """A spec (path, text, zoo name or Graph) as a checked ``onnx.ModelProto``.

    Keywords: ``weights`` (None: seeded init; a safetensors file or built folder; a state_dict), ``opset``
    (18-21, default 21), ``seed``, ``passes`` ("deploy"), ``functions`` (blocks as model-local functions), and
    the model's parameters.
    """
    return onnx_backend().to_onnx(source, model, **kwargs)


def onnx_parity(source: Any, model: str | None = None, **kwargs: Any):
    """onnxruntime against the PyTorch backend on the same weights and inputs: a ParityReport (``.ok``).

    Keywords: ``weights``, ``inputs`` (name -> array; default random at the smallest valid sizes), ``sizes``,
    ``opset``, ``seed``, ``passes``, and the model's parameters.
    """
    return onnx_backend().onnx_parity(source, model, **kwargs)
