"""The pass manager: pipelines by name, verification after each pass naming the culprit, the round cap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

import archdsl
from archdsl.errors import UsageError
from archdsl.ir.frozen import FrozenDict
from archdsl.passes import Pass, PassError, PassResult, resolve, run_pipeline
from archdsl.passes.registry import PASSES, PIPELINES


def test_registry_names_are_kebab_case_and_pipelines_resolve() -> None:
    for name, cls in PASSES.items():
        assert cls.name == name and name == name.lower() and " " not in name and "_" not in name
    for name in PIPELINES:
        assert [p.name for p in resolve(name)] == list(PIPELINES[name])


def test_unknown_pass_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown pass or pipeline 'fold-bnn'"):
        resolve("fold-bnn,dce")


@dataclass(frozen=True)
class DropsAParameter(Pass):
    """A deliberately broken pass: it removes a parameter the graph still uses."""

    name: ClassVar = "breaks-things"
    summary: ClassVar = "test only"
    requires_eval: ClassVar = False

    def apply(self, graph, weights=None) -> PassResult:
        victim = next(iter(graph.params))
        return PassResult(graph.replace(params=graph.params.without(victim)), weights, True)


@dataclass(frozen=True)
class Flips(Pass):
    """A pass that always reports a change (two such passes never settle)."""

    name: ClassVar = "flips"
    summary: ClassVar = "test only"
    requires_eval: ClassVar = False

    def apply(self, graph, weights=None) -> PassResult:
        return PassResult(graph.replace(doc=graph.doc + "."), weights, True)


def test_the_manager_names_the_pass_that_broke_the_graph() -> None:
    with pytest.raises(PassError, match="pass breaks-things produced an invalid graph"):
        run_pipeline(archdsl.compile("resnet18"), passes=[DropsAParameter()])


def test_a_pipeline_that_never_settles_stops_at_the_cap() -> None:
    with pytest.raises(PassError, match="did not settle after 3 rounds"):
        run_pipeline(archdsl.compile("resnet18"), passes=[Flips()], max_rounds=3)


def test_eval_only_passes_refuse_train_mode_graphs() -> None:
    graph = archdsl.compile("resnet18")
    with pytest.raises(PassError, match="exact only in eval mode"):
        PASSES["fold-bn"]().apply(graph)
    assert run_pipeline(graph, passes="fold-bn").graph.mode == "eval"   # the manager switches modes


def test_the_ir_is_deeply_frozen() -> None:
    graph = archdsl.compile("resnet18")
    assert isinstance(graph.params, FrozenDict) and isinstance(graph.nodes[0].params, FrozenDict)
    with pytest.raises(TypeError, match="immutable"):
        del graph.params["fc.weight"]
    with pytest.raises(TypeError, match="immutable"):
        graph.outputs["x"] = "y"
    assert isinstance(graph.replace(params=dict(graph.params)).params, FrozenDict)


def test_a_pass_never_mutates_its_input() -> None:
    graph = archdsl.compile("repvgg_a0")
    copy = graph.model_copy(deep=True)
    run_pipeline(graph, archdsl.Weights.of(archdsl.build(graph), graph))
    assert graph == copy


def test_report_counts_per_pass_and_block() -> None:
    report = archdsl.simplify("repvgg_a0").report
    (before, after) = report.total
    assert (before.params, after.params) == (9_108_968, 8_309_384)
    assert [p[0] for p in report.passes] == ["merge-branches"] and report.passes[0][1] == 22
    assert "stem.conv_kxk + stem.conv_1x1 -> stem.reparam_conv" in report.text()
    assert json.loads(report.to_json())["after"] == {"nodes": 47, "params": 8_309_384, "macs": after.macs}


def test_report_without_mac_figures_when_the_probe_size_does_not_fit() -> None:
    """A model that needs inputs larger than the 224-pixel probe still simplifies; its MACs show as '?'."""
    text = """
model Big() {
  in x: [N, 3, H, W]
  conv = Conv2d(4, 300, bias=false)
  bn = BatchNorm2d()
  out x |> conv |> bn
}
"""
    report = archdsl.simplify(text).report
    assert report.total[1].macs is None and "MACs ? -> ?" in report.text()
    assert json.loads(report.to_json())["after"]["macs"] is None
