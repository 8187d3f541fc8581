"""The zoo: every shipped model compiles, verifies, has the reference's exact state_dict and counts, and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archdsl
from archdsl import zoo
from archdsl.analysis import bind, stats
from archdsl.errors import UsageError
from archdsl.verify import verify
from tests.specs.reference_models import (
    compiled,
    example_inputs,
    meta_module,
    module_listing,
    sizes,
    small_sizes,
    state_dict_listing,
    zoo_table,
)

MODELS = zoo.names()
WITH_LISTING = [n for n in MODELS if state_dict_listing(n) is not None]
IN_TABLE = [n for n in MODELS if n in zoo_table()]
WITH_GMACS = [n for n in IN_TABLE if zoo_table()[n].gmacs is not None]
FORWARD_LIMIT = 30_000_000   # real forward passes below this many parameters, meta-device ones above (CI time)


@pytest.mark.parametrize("path", zoo.spec_files(), ids=lambda p: p.name)
def test_every_shipped_spec_parses_and_defines_new_model_names(path: Path) -> None:
    models = zoo.models_in(path)
    others = {m for p in zoo.spec_files() if p != path for m in zoo.models_in(p)}
    assert sorted(set(models) & others) == [], "model names defined in two zoo files"
    assert all(zoo.spec_path(m) == path for m in models)


@pytest.mark.parametrize("name", MODELS)
def test_model_compiles_verifies_and_cites_its_paper(name: str) -> None:
    graph = compiled(name)
    verify(graph)
    assert graph.name == name
    assert graph.doc.strip(), f"zoo model {name} needs a doc string naming its paper"


@pytest.mark.parametrize("name", WITH_LISTING)
def test_state_dict_equals_reference_listing(name: str) -> None:
    ref = state_dict_listing(name)
    ours = module_listing(meta_module(name))
    assert sorted(set(ref.items) - set(ours)) == [], "keys missing from the zoo model"
    assert sorted(set(ours) - set(ref.items)) == [], "keys the reference does not have"
    assert {k: v for k, v in ours.items() if v != ref.items[k]} == {}, "dtype or shape differs (ours shown)"
    assert len(ours) == ref.entries
    assert compiled(name).num_params() == ref.params


@pytest.mark.parametrize("name", MODELS)
def test_stats_parameter_total_equals_the_built_module(name: str) -> None:
    graph = compiled(name)
    module = meta_module(name)
    assert stats(graph).params == sum(p.numel() for p in module.parameters()) == graph.num_params()
    persistent = {k for k, _ in module.named_buffers() if k.rpartition(".")[2] not in module.get_submodule(
        k.rpartition(".")[0])._non_persistent_buffers_set}
    assert stats(graph).buffers == sum(b.numel() for k, b in module.named_buffers() if k in persistent)


@pytest.mark.parametrize("name", IN_TABLE)
def test_parameter_count_equals_zoo_table(name: str) -> None:
    row = zoo_table()[name]
    assert compiled(name).num_params() == row.params
    if row.entries is not None:
        assert len(meta_module(name).state_dict()) == row.entries


@pytest.mark.parametrize("name", WITH_GMACS)
def test_macs_equal_zoo_table_at_224(name: str) -> None:
    graph = bind(compiled(name), sizes(compiled(name), 224))
    assert round(stats(graph).macs / 1e9, 3) == zoo_table()[name].gmacs


@pytest.mark.parametrize("name", MODELS)
def test_forward_on_a_small_input_has_the_inferred_shapes(name: str) -> None:
    graph = compiled(name)
    env = small_sizes(graph)
    real = graph.num_params() < FORWARD_LIMIT
    module = (archdsl.build(graph, seed=0) if real else meta_module(name)).eval()
    inputs = example_inputs(graph, env)
    with torch.no_grad():
        out = module(*(inputs if real else [x.to("meta") for x in inputs]))
    outs = out if isinstance(out, tuple) else (out,)
    want = [tuple(t.shape) for t in bind(graph, env).output_types().values()]
    assert [tuple(o.shape) for o in outs] == want
    assert not real or all(torch.isfinite(o).all() for o in outs)


def test_names_are_sorted_unique_and_resolve_to_their_spec() -> None:
    assert MODELS == sorted(set(MODELS))
    assert {"resnet18", "resnet50", "vgg16_bn", "alexnet", "squeezenet1_1", "densenet121", "googlenet",
            "inception_v3"} <= set(MODELS)
    assert zoo.spec_path("resnet50").name == "resnet.arch"
    assert zoo.spec_path("BasicBlock") is None   # blocks are not models
    assert all(zoo.spec_path(n).parent == zoo.spec_dir() for n in MODELS)   # std/ is a library, not the zoo


def test_unknown_name_suggests_the_closest_model() -> None:
    with pytest.raises(UsageError) as info:
        zoo.compile("resnet5")
    assert "did you mean 'resnet50'" in info.value.render()


def test_build_takes_model_parameters_and_seed() -> None:
    a = zoo.build("resnet18", seed=1, num_classes=10)
    b = zoo.build("resnet18", seed=1, num_classes=10)
    assert a.fc.weight.shape == (10, 512)
    assert torch.equal(a.conv1.weight, b.conv1.weight)


def test_top_level_api_resolves_zoo_names() -> None:
    assert archdsl.compile("resnet50").name == "resnet50"
    assert archdsl.compile("alexnet").name == "alexnet"


STD_USER = """
import "std/blocks.arch"
model M() {
  in x: [N, 8, H, W]
  stem = ConvBNAct(16, 3, stride=2, padding=1, act=none)
  unit = BasicConv2d(16, (1, 3), padding=(0, 1))
  se = SqueezeExcite(4, gate=hardsigmoid)
  out x |> stem |> unit |> se
}
"""


def test_std_blocks_name_their_layers_like_timm_and_torchvision() -> None:
    graph = archdsl.compile(STD_USER)
    assert set(graph.params) == {
        *(f"{m}.conv.weight" for m in ("stem", "unit")),
        *(f"{m}.bn.{p}" for m in ("stem", "unit")
          for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
        "se.fc1.weight", "se.fc1.bias", "se.fc2.weight", "se.fc2.bias"}
    module = archdsl.build(graph).eval()
    assert module.unit.bn.eps == 1e-3 and module.stem.bn.eps == 1e-5
    assert module(torch.randn(2, 8, 10, 10)).shape == (2, 16, 5, 5)
    ops = [n.op.name for n in graph.nodes]
    assert ops.count("relu") == 2 and "hardsigmoid" in ops   # unit and se; act=none drops the stem's


def test_reference_facts_are_in_the_repository() -> None:
    """The zoo's reference data ships with the tests: without it these tests would pass vacuously."""
    assert len(WITH_LISTING) >= 39 and len(IN_TABLE) >= 36 and len(WITH_GMACS) >= 10
