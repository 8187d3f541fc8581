"""Shared checks for pass tests: build a spec, randomise it, simplify it, compare the functions."""

from __future__ import annotations

import torch

import archdsl
from archdsl.testing import check_equivalent, randomize
from archdsl.testing.strategies import SpecCase


def built(graph: archdsl.Graph, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """The training-form module in eval mode with random weights far from the identity."""
    return randomize(archdsl.build(graph, seed=seed).to(dtype), seed=seed).eval()


def assert_same_function(case: SpecCase, passes: str = "deploy", dtype: torch.dtype = torch.float64,
                         seed: int = 0) -> archdsl.Simplified:
    """Simplify ``case`` in weight mode and check the deploy model computes what the training model does."""
    graph = archdsl.compile(case.text)
    before = built(graph, dtype, seed)
    result = archdsl.simplify(graph, weights=before, passes=passes)
    after = result.module()
    assert all(p.dtype == dtype for p in after.parameters())
    bad = check_equivalent(before, after, graph, case.sizes, dtype, seed)
    assert not bad, f"{bad[0]}\n{case.text}\n" + "\n".join(c.describe() for c in result.result.changes)
    return result


def ops_of(graph: archdsl.Graph) -> list[str]:
    """The op names of a graph's nodes, in order."""
    return [n.op.name for n in graph.nodes]
