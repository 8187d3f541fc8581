"""Every pass by its CLI name, and the named pipelines (literal tables: no import side effects)."""

from __future__ import annotations

from archdsl.passes.base import Pass
from archdsl.passes.collapse_linear import CollapseLinear
from archdsl.passes.cse import CommonSubexpressions
from archdsl.passes.dce import DeadCodeElimination
from archdsl.passes.drop_eval_identities import DropEvalIdentities
from archdsl.passes.fold_bn import FoldBatchNorm
from archdsl.passes.merge_branches import MergeBranches

PASSES: dict[str, type[Pass]] = {
    "drop-eval-identities": DropEvalIdentities,
    "merge-branches": MergeBranches,
    "fold-bn": FoldBatchNorm,
    "collapse-linear": CollapseLinear,
    "cse": CommonSubexpressions,
    "dce": DeadCodeElimination,
}

PIPELINES: dict[str, tuple[str, ...]] = {
    # training form -> deploy form: eval identities out, re-param blocks merged, BatchNorms folded, linear chains
    # collapsed where the cost model says so, tidy up
    "deploy": ("drop-eval-identities", "merge-branches", "fold-bn", "collapse-linear", "cse", "dce"),
    "cleanup": ("cse", "dce"),
}
