"""Every pass commutes with the symmetry group: T(g . theta) = rho(g) . T(theta); negative controls fail."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from archdsl.passes import PASSES, PassResult, run_pipeline
from archdsl.symmetry.equivariance import check_pass, ramp
from tests.symmetry.helpers import graph, harness

MODELS = ("tiny_resnet", "grouped", "reparam_net", "segments", "tiny_vit")
EXACT = {"fold-bn", "drop-eval-identities", "cse", "dce", "merge-branches"}     # bitwise under permutations


@dataclass(frozen=True)
class Pipeline:
    """A whole pipeline as one pass (run_pipeline to its fixpoint)."""

    passes: str = "deploy"
    name = "deploy"

    def apply(self, g, weights=None) -> PassResult:
        r = run_pipeline(g, weights, self.passes)
        return PassResult(r.graph, r.weights, r.graph != g)


def eval_graph(name: str):
    return graph(name).replace(mode="eval")


@pytest.mark.parametrize("pass_name", sorted(PASSES))
def test_each_pass_is_equivariant_and_its_negative_control_fails(pass_name: str) -> None:
    changed = False
    for model in MODELS:
        r = check_pass(PASSES[pass_name](), eval_graph(model), harness(model).state, seed=3)
        assert r.ok(1e-10), (model, r)
        assert not r.diagnostics, (model, r.diagnostics)
        if pass_name in EXACT:
            assert r.bitwise, (model, r.max_error)
        changed |= r.changed
        bad = check_pass(PASSES[pass_name](), eval_graph(model), harness(model).state, seed=3, mutate=ramp)
        assert bad.max_error > 1e-6, (model, "the order-dependent mutation went unnoticed")
    assert changed or pass_name == "dce", f"{pass_name} changed none of {MODELS}: the check proved nothing"


@pytest.mark.parametrize("model", MODELS)
def test_the_deploy_pipeline_is_equivariant(model: str) -> None:
    r = check_pass(Pipeline(), eval_graph(model), harness(model).state, seed=4)
    assert r.ok(1e-10) and r.bitwise, r


def test_a_rewrite_that_loses_symmetry_is_reported() -> None:
    @dataclass(frozen=True)
    class Swap:
        """Not a real pass: returns another model's graph and weights (no class has a counterpart)."""

        name = "swap"

        def apply(self, g, weights=None) -> PassResult:
            from archdsl.ir.weights import Weights

            return PassResult(eval_graph("mlp"), Weights(harness("mlp").state), True)

    r = check_pass(Swap(), eval_graph("tiny_resnet"), harness("tiny_resnet").state)
    assert not r.ok() and any("has no counterpart" in d for d in r.diagnostics)
