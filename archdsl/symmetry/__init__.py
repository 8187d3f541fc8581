"""Weight-space symmetries derived from a spec: classes, group elements acting on weights, canonical forms.

``derive(graph)`` runs every op's symmetry contract (declared next to its shape rule in ``archdsl/ops``)
and returns a :class:`SymmetrySpec`; ``spec.sample(seed)`` draws a group element, ``spec.apply(state, g)``
acts with it on a state_dict.
"""

from archdsl.symmetry.assemble import derive
from archdsl.symmetry.spec import BlockClass, GroupElement, Member, SymClass, SymmetrySpec

__all__ = ["BlockClass", "GroupElement", "Member", "SymClass", "SymmetrySpec", "derive"]
