"""drop-eval-identities, cse and dce: small rewrites, each checked on numbers and for idempotence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.passes import run_pipeline
from archdsl.testing.strategies import SpecCase
from tests.passes.helpers import assert_same_function, ops_of

DROPS = """
model Drops() {
  in x: [N, 4, H, W]
  conv = Conv2d(4, 3, padding=1)
  out x |> Dropout(0.5) |> conv |> StochasticDepth(0.2) |> identity |> Dropout2d(0.1) |> relu
}
"""


def test_eval_identities_are_dropped() -> None:
    result = assert_same_function(SpecCase(DROPS), passes="drop-eval-identities")
    assert ops_of(result.graph) == ["conv2d", "relu"]


@given(st.integers(1, 4), st.booleans())
def test_cse_merges_repeated_applications(n: int, shared: bool) -> None:
    layer = "conv" if shared else "relu"
    body = " + ".join(f"x |> {layer}" for _ in range(n + 1))
    declare = "conv = Conv2d(2, 1)" if shared else ""
    text = f"""
model Repeat() {{
  in x: [N, 2, H, W]
  {declare}
  out {body}
}}
"""
    result = assert_same_function(SpecCase(text), passes="cse,dce")
    assert ops_of(result.graph).count("conv2d" if shared else "relu") == 1


def test_dce_removes_unused_results_and_their_parameters() -> None:
    text = """
model Dead() {
  in x: [N, 2, H, W]
  used = Conv2d(2, 1)
  unused = Conv2d(3, 1)
  _y = x |> unused
  out x |> used
}
"""
    graph = archdsl.compile(text)
    once = run_pipeline(graph, passes="dce")
    assert ops_of(once.graph) == ["conv2d"] and sorted(once.graph.params) == ["used.bias", "used.weight"]
    assert run_pipeline(once.graph, passes="dce").steps == ()       # dce after dce changes nothing


def test_deploy_is_idempotent_on_the_zoo() -> None:
    for name in ("resnet18", "mobilenet_v2", "vit_b_16", "convnext_tiny"):
        deploy = archdsl.simplify(name).graph
        assert archdsl.simplify(deploy).result.steps == (), name
