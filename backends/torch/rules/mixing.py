"""Lowering of the mixing op F.normalize."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops.mixing import Normalize


@lowering(Normalize)
def _normalize(op: Normalize, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    x = args[0]
    if isinstance(op.dim, int):
        return fn("F.normalize", x, p=op.p, dim=op.dim, eps=op.eps)
    norm = fn("torch.linalg.vector_norm", x, repr(op.p), dim=tuple(op.dim), keepdim=True)
    return f"{x} / {norm}.clamp_min({op.eps!r})"
