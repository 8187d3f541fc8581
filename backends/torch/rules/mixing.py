"""Lowerings of the mixing ops: LeViT's attention-bias gather and F.normalize."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops.mixing import AttentionBias, Normalize


def _distances(size: int, stride: int, query_view: str, key_view: str, device: str) -> str:
    """|q - k| along one grid axis, queries every ``stride``-th position, as broadcastable [.., q, .., k] views."""
    q = f"torch.arange(0, {size}, {stride}, device={device}).view{query_view}"
    k = f"torch.arange({size}, device={device}).view{key_view}"
    return f"({q} - {k}).abs()"


@lowering(AttentionBias)
def _attention_bias(op: AttentionBias, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    # codegen registers the table [heads, R0*R1] under the layer path and passes it as ``ref``; the index
    # [Nq, Nk] = |qy - ky| * R1 + |qx - kx| is rebuilt from aranges (cheap, and constant under torch.compile).
    (r0, r1), (q0, q1) = op.grid(), op.query_grid()
    device = f"{ref}.device"
    dy = _distances(r0, op.stride, "(-1, 1, 1, 1)", "(1, 1, -1, 1)", device)
    dx = _distances(r1, op.stride, "(1, -1, 1, 1)", "(1, 1, 1, -1)", device)
    return f"{ref}[:, ({dy} * {r1} + {dx}).reshape({q0 * q1}, {r0 * r1})]"


@lowering(Normalize)
def _normalize(op: Normalize, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    x = args[0]
    if isinstance(op.dim, int):
        return fn("F.normalize", x, p=op.p, dim=op.dim, eps=op.eps)
    norm = fn("torch.linalg.vector_norm", x, repr(op.p), dim=tuple(op.dim), keepdim=True)
    return f"{x} / {norm}.clamp_min({op.eps!r})"
