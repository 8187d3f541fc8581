"""Weight-space symmetries derived from a spec: classes, group elements acting on weights, canonical forms.

``derive(graph)`` runs every op's symmetry contract (declared next to its shape rule in ``archdsl/ops``)
and returns a :class:`SymmetrySpec`; ``spec.sample(seed)`` draws a group element, ``spec.apply(state, g)``
acts with it on a state_dict.
"""


from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archdsl.symmetry.assemble import derive
    from archdsl.symmetry.spec import BlockClass, GroupElement, Member, SymClass, SymmetrySpec

__all__ = ["BlockClass", "GroupElement", "Member", "SymClass", "SymmetrySpec", "derive"]

# The public names load on first use: every op module imports ``archdsl.symmetry.contract``, and this package's
# ``__init__`` runs first, so importing ``assemble`` (and numpy) here would slow down every command's start.
_LAZY = {"derive": "archdsl.symmetry.assemble", **dict.fromkeys(
    ("BlockClass", "GroupElement", "Member", "SymClass", "SymmetrySpec"), "archdsl.symmetry.spec")}


def __getattr__(name: str):
    """Load ``derive`` or a spec class on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'archdsl.symmetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
