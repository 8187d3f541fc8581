"""Training-time collapse: linear regions run as one convolution computed from the expanded parameters at
every step; outputs and gradients equal the expanded form's (float64)."""

from __future__ import annotations

import torch
from hypothesis import given, settings

import archdsl
from archdsl.passes.collapse_train import collapse_train, regions
from archdsl.testing import randomize
from archdsl.testing.equivalence import inputs_for, relative_error
from archdsl.testing.strategies import SpecCase, linear_chains, reparam_blocks


def _same_training_step(case: SpecCase, seed: int = 0) -> int:
    """Outputs and parameter gradients of the collapsed-training module equal the expanded module's."""
    graph = archdsl.compile(case.text)
    model = randomize(archdsl.build(graph, seed=seed).double(), seed=seed).train()
    wrapped = collapse_train(model)
    params = [p for p in model.parameters() if p.requires_grad]
    for i, sizes in enumerate(case.sizes):
        (x,) = inputs_for(graph, sizes, torch.float64, seed + i)
        x.requires_grad_(True)
        expanded, collapsed = model(x), wrapped(x)
        assert relative_error(expanded, collapsed) <= 1e-10, case.text
        target = torch.randn(expanded.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        ga = torch.autograd.grad((expanded * target).sum(), [x, *params], allow_unused=True)
        gb = torch.autograd.grad((collapsed * target).sum(), [x, *params], allow_unused=True)
        scale = torch.cat([a.reshape(-1) for a in ga if a is not None]).norm()   # gradients that are 0 in exact
        for a, b in zip(ga, gb, strict=True):                                   # arithmetic are rounding noise
            assert (a is None) == (b is None), case.text
            assert a is None or (a - b).norm() <= 1e-10 * max(a.norm(), scale), case.text
    return len(wrapped.regions)


@settings(max_examples=12)
@given(linear_chains(spatial=2, training=True))
def test_collapsed_chains_train_like_the_expanded_form(case: SpecCase) -> None:
    _same_training_step(case)


@settings(max_examples=8)
@given(reparam_blocks())
def test_collapsed_reparam_blocks_train_like_the_expanded_form(case: SpecCase) -> None:
    _same_training_step(case)                  # blocks with BatchNorm (batch statistics) stay expanded


def test_expansions_with_residuals_and_biases_train_collapsed() -> None:
    """SESR's block with biases on, a pad in front and a scaled residual: one region, same step."""
    text = ("model M() {\n  in x: [N, 4, H, W]\n  out x |> pad((1, 0, 0, 1)) |> reparam {\n"
            "    conv = seq{e: Conv2d(64, 3, padding=1), s: Conv2d(4, 1), ls: LayerScale(0.5, dim=1)}\n"
            "    id = identity\n    pool = AvgPool2d(3, stride=1, padding=1)\n  }\n}\n")
    assert _same_training_step(SpecCase(text)) == 1


def test_sesr_trains_collapsed() -> None:
    graph = archdsl.compile("sesr_m5_x2", expansion=32)
    found = regions(graph)
    assert len(found) == 7                                         # input block, 5 linear blocks, output block
    assert [r.merged.size for r in found] == [(5, 5)] + [(3, 3)] * 5 + [(5, 5)]
    assert sum(r.collapsed_macs for r in found) == 13_520          # the paper's collapsed convolution weights
    model = randomize(archdsl.build(graph).double(), seed=0).train()
    x = torch.randn(2, 1, 9, 10, dtype=torch.float64)
    assert relative_error(model(x), collapse_train(model)(x)) <= 1e-10
    built = archdsl.build(graph, collapse_train=True)
    assert len(built.regions) == 7 and set(built.state_dict()) == set(model.state_dict())
    built.double().load_state_dict(model.state_dict())
    assert relative_error(model(x), built(x)) <= 1e-10 and not built.eval().inner.training


def test_batchnorm_regions_stay_expanded_in_training() -> None:
    text = ("model M() {\n  in x: [N, 4, H, W]\n  a = Conv2d(64, 3, padding=1)\n  bn = BatchNorm2d()\n"
            "  b = Conv2d(4, 1)\n  out x |> a |> bn |> b\n}\n")
    assert regions(archdsl.compile(text)) == []
