"""Function-preserving rewrites (training form -> deploy form) and the manager that runs them."""

from archdsl.passes.base import Change, Pass, PassError, PassResult
from archdsl.passes.manager import PipelineResult, resolve, run_pipeline
from archdsl.passes.registry import PASSES, PIPELINES

__all__ = ["PASSES", "PIPELINES", "Change", "Pass", "PassError", "PassResult", "PipelineResult", "resolve",
           "run_pipeline"]
