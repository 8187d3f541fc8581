"""Parameter tying: ``lm_head = Linear(vocab, bias=false, tie_weight=wte)`` uses layer wte's ``weight`` tensor.

The tied op declares no parameter of its own for that name: its node maps the local name to the other layer's
parameter, so the graph holds one tensor read by two nodes (passes see a shared parameter and leave it alone;
symmetry derivation ties its axes in both uses). Backends make the state_dict list it under both names, as
torch does for GPT-2/nanoGPT's tied ``transformer.wte.weight`` and ``lm_head.weight`` (see archdsl.ir.ties).
"""

from __future__ import annotations

from typing import Any

from archdsl.elaborate.session import Session
from archdsl.elaborate.values import Named, describe
from archdsl.errors import ArchError, ShapeError
from archdsl.ir.graph import Param
from archdsl.ir.types import Span
from archdsl.ops.base import OpDef, ParamSpec


def tie_params(session: Session, declared: dict[str, Param], op: OpDef, specs: dict[str, ParamSpec],
               ties: dict[str, Any], span: Span | None) -> dict[str, str]:
    """local name -> the tied parameter's key, for each ``tie_<local>=<layer>`` argument; located errors."""
    cls = type(op).__name__
    out: dict[str, str] = {}
    for local, target in ties.items():
        if local not in specs:
            raise _error(session, f"{cls} has no parameter '{local}' to tie", span,
                         f"its parameters: {', '.join(specs) or 'none'} (tie_weight=other_layer)")
        if not isinstance(target, Named):
            raise _error(session, f"tie_{local} needs a layer of this block, got {describe(target)}", span,
                         f"name the layer whose {local} to use: {cls}(..., tie_{local}=wte)")
        key = ".".join((*target.path, local))
        have = declared.get(key)
        if have is None:
            raise _error(session, f"tie_{local}: layer '{'.'.join(target.path)}' has no parameter '{local}' yet",
                         span, "apply that layer before this one: its parameters exist once it is applied")
        want = specs[local]
        if tuple(have.shape) != tuple(want.shape) or have.dtype != want.dtype or have.buffer != want.buffer:
            raise _error(session, f"cannot tie {cls}'s {local} {want.dtype}{list(want.shape)} to {key} "
                         f"{have.dtype}{list(have.shape)}", span, "tied tensors must have the same shape and dtype",
                         ShapeError)
        out[local] = key
    return out


def _error(session: Session, message: str, span: Span | None, hint: str,
           cls: type[ArchError] | None = None) -> ArchError:
    return session.error(message, span, hint, cls=cls) if cls else session.error(message, span, hint)
