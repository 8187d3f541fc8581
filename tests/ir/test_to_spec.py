"""graph_to_spec: the deploy spec `archdsl simplify` writes compiles back to the same graph structure and names."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.ir.to_spec import graph_to_spec

# blocks and seq[...] (resnet18, repvgg_a0), identity-filled gaps where dropout went (vgg11), quoted seq{} names
# (regnet_y_400mf's "block1-0"), free parameters (vit_b_16), linear heads and layer scales (repvit_m0_9)
MODELS = ("resnet18", "repvgg_a0", "vgg11", "regnet_y_400mf", "vit_b_16", "repvit_m0_9")


@pytest.mark.parametrize("name", MODELS)
def test_deploy_spec_round_trips(name: str) -> None:
    deploy = archdsl.simplify(name).graph
    text = graph_to_spec(deploy, name)
    again = archdsl.simplify(archdsl.compile(text)).graph
    assert sorted(again.params) == sorted(deploy.params)
    assert {k: p.shape for k, p in again.params.items()} == {k: p.shape for k, p in deploy.params.items()}
    assert [n.op.name for n in again.nodes] == [n.op.name for n in deploy.nodes]
