"""Every form of every linear-attention op against the naive recurrence: outputs, final states and gradients.

Relative error ||ref - out|| / ||ref||; float64 tight (1e-10), float32 against a float64 reference (2e-4).
"""

from __future__ import annotations

import pytest
import torch

from tests.kernels.la_helpers import CASE_IDS, CASES, loss_and_grads, rel

SHAPES = [(2, 64, 2, 16), (1, 100, 3, 8), (2, 7, 1, 4)]
SHAPE_IDS = [f"B{b}-T{t}-H{h}-D{d}" for b, t, h, d in SHAPES]
TOL = {torch.float64: 1e-10, torch.float32: 2e-4}


def compare(case, shape, dtype, mode, causal):
    x = case.inputs(*shape, dtype=torch.float64)
    o_ref, s_ref = case.run(x, "naive", causal=causal)
    g_ref = loss_and_grads(x, o_ref, s_ref)
    y = {k: v.detach().to(dtype).requires_grad_() for k, v in x.items()}
    o, s = case.run(y, mode, causal=causal)
    assert o.dtype == dtype and o.shape == o_ref.shape
    assert rel(o, o_ref) < TOL[dtype], f"output: {rel(o, o_ref):.2e}"
    if causal:
        assert rel(s, s_ref) < TOL[dtype], f"final state: {rel(s, s_ref):.2e}"
    grads = loss_and_grads(y, o, s)
    assert grads.keys() == g_ref.keys()
    for name, g in grads.items():
        assert rel(g, g_ref[name]) < TOL[dtype], f"d{name}: {rel(g, g_ref[name]):.2e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_chunk_matches_naive(case, shape, dtype):
    compare(case, shape, dtype, "chunk", causal=True)


@pytest.mark.parametrize("shape", SHAPES[:2], ids=SHAPE_IDS[:2])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_recurrent_matches_naive(case, shape):
    compare(case, shape, torch.float64, "recurrent", causal=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("shape", SHAPES[:2], ids=SHAPE_IDS[:2])
@pytest.mark.parametrize("case", [c for c in CASES if c.bidirectional], ids=[c.name for c in CASES if c.bidirectional])
def test_bidirectional_chunk_matches_naive(case, shape, dtype):
    compare(case, shape, dtype, "chunk", causal=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.bidirectional], ids=[c.name for c in CASES if c.bidirectional])
def test_auto_on_cpu_is_chunk(case):
    x = case.inputs(1, 20, 2, 4, torch.float64)
    o_auto, s_auto = case.run(x, "auto")
    o_chunk, s_chunk = case.run(x, "chunk")
    assert torch.equal(o_auto, o_chunk) and torch.equal(s_auto, s_chunk)
