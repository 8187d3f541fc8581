"""Testing helpers for users' own specs and passes: random weights, equivalence checks, hypothesis strategies.

``archdsl.testing.strategies`` needs hypothesis (the ``dev`` extra); the rest needs only torch.
"""

from archdsl.testing.equivalence import Mismatch, check_equivalent, compare_outputs
from archdsl.testing.weights import randomize

__all__ = ["Mismatch", "check_equivalent", "compare_outputs", "randomize"]
