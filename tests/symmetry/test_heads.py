"""Attention written with reshapes: per-head classes and head blocks are derived, sound and tight."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

import archdsl
from archdsl.symmetry import GroupElement, derive
from archdsl.symmetry.check import Harness, relative_error
from tests.symmetry.helpers import CHANGED, TIGHT

HEADS = Path(__file__).resolve().parents[1] / "data" / "symmetry" / "heads.arch"
FOLLOWED = ("split_heads", "fused_heads", "two_projections")
ALL = (*FOLLOWED, "biased_heads", "shuffled", "mixed_heads")


@functools.cache
def graph(name: str):
    return archdsl.compile(HEADS, name)


@functools.cache
def spec(name: str):
    return derive(graph(name))


@functools.cache
def harness(name: str) -> Harness:
    return Harness.build(graph(name))


@pytest.mark.parametrize("name", FOLLOWED)
def test_each_head_is_its_own_class_and_heads_are_one_block(name: str) -> None:
    s = spec(name)
    assert [(b.size, len(b.blocks)) for b in s.block_classes] == [(3, 3)]
    assert len(s.classes) == 6                          # per head: query-key units and value units
    assert all(c.kind != "pinned" for c in s.classes)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kinds", [("perm", "block"), ("perm", "block", "scale", "sign", "linear")],
                         ids=["perm", "all"])
def test_random_group_elements_leave_the_outputs_unchanged(name: str, kinds: tuple) -> None:
    s, h = spec(name), harness(name)
    for seed in range(3):
        assert h.error(s, s.sample(seed, kinds)) < TIGHT


@pytest.mark.parametrize("name", FOLLOWED)
def test_a_head_permutation_that_skips_a_member_changes_the_outputs(name: str) -> None:
    s, h = spec(name), harness(name)
    b = s.block_classes[0]
    g = GroupElement(blocks={b.id: np.roll(np.arange(len(b.blocks)), 1)})
    assert h.error(s, g) < TIGHT
    for param in sorted({m.param for c in s.classes for m in c.members}):
        assert h.error(s, g, keep=lambda e, p=param: e.param != p) > CHANGED, f"{param} left out"


def _qk_rows(name: str) -> tuple[str, list[int]]:
    """The query rows of the first projection, head by head (3 heads of 2 units)."""
    return {"fused_heads": ("qkv.weight", [0, 1, 2, 3, 4, 5]),
            "split_heads": ("qkv.weight", [0, 1, 7, 8, 14, 15])}[name]


@pytest.mark.parametrize("name", ["fused_heads", "split_heads"])
def test_permuting_query_and_key_units_across_heads_changes_the_outputs(name: str) -> None:
    h = harness(name)
    weight, rows = _qk_rows(name)
    keys = [r + 6 for r in rows] if name == "fused_heads" else [r + 2 for r in rows]

    def permuted(order: list[int]) -> dict:
        state = dict(h.state)
        w, bias = state[weight].clone(), state[weight.replace("weight", "bias")].clone()
        for idx in (rows, keys):
            src = [idx[i] for i in order]
            w[idx], bias[idx] = state[weight][src], state[weight.replace("weight", "bias")][src]
        state[weight], state[weight.replace("weight", "bias")] = w, bias
        return state

    ref = h.run(h.state)
    assert relative_error(ref, h.run(permuted([1, 0, 2, 3, 4, 5]))) < TIGHT        # inside head 0
    assert relative_error(ref, h.run(permuted([2, 1, 0, 3, 4, 5]))) > CHANGED      # across heads 0 and 1


def test_a_per_head_bias_keeps_heads_in_place() -> None:
    s, h = spec("biased_heads"), harness("biased_heads")
    assert s.block_classes == [] and len(s.classes) == 6
    state = dict(h.state)                            # permute heads everywhere except the bias
    heads = torch.tensor([2, 0, 1])
    w = state["qkv.weight"].reshape(3, 3, 2, 6)[:, heads].reshape(18, 6)
    b = state["qkv.bias"].reshape(3, 3, 2)[:, heads].reshape(18)
    cols = state["proj.weight"].reshape(6, 3, 2)[:, heads].reshape(6, 6)
    state.update({"qkv.weight": w, "qkv.bias": b, "proj.weight": cols})
    assert relative_error(h.run(h.state), h.run(state)) > CHANGED


@pytest.mark.parametrize("name", ["shuffled", "mixed_heads"])
def test_splits_the_derivation_cannot_follow_are_pinned_with_a_reason(name: str) -> None:
    s = spec(name)
    assert s.block_classes == []
    reasons = " ".join(c.reason for c in s.pinned)
    assert "head split" in reasons or "split into several axes" in reasons


def test_zoo_attention_written_with_reshapes_has_head_blocks() -> None:
    from archdsl import zoo

    assert len(derive(zoo.compile("pvt_v2_b0")).block_classes) == 6
