"""The Triton kernels (forward and hand-written backward) against the naive recurrence.

Without a GPU they run in Triton's interpreter (TRITON_INTERPRET=1, set by tests/conftest.py) at tiny sizes. Triton
comes with the ``kernels`` extra, which ``make test`` installs: in CI a missing triton fails these tests
instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from archdsl import kernels
from tests.kernels.la_helpers import CASES, loss_and_grads, rel

if importlib.util.find_spec("triton") is None:
    if os.environ.get("CI"):
        pytest.fail("triton is not installed: pip install -e '.[kernels]' (make test does)", pytrace=False)
    pytest.skip("triton is not installed (pip install -e '.[kernels]')", allow_module_level=True)

if not torch.cuda.is_available():
    import triton.language as tl

    if os.environ.get("TRITON_INTERPRET") != "1" or type(tl.zeros).__name__ != "InterpretedFunction":
        pytest.fail("without a GPU these tests need TRITON_INTERPRET=1 set before triton is first imported "
                    "(tests/conftest.py sets it)", pytrace=False)

SCALAR = [c for c in CASES if c.fn in ("linear_attn", "retention", "lightning_attn", "simple_gla")]
DELTA = [c for c in CASES if "delta" in c.fn]
GLA = next(c for c in CASES if c.fn == "gla")
# output and gradient tolerance per dtype: fp32 to a float64 reference, half precision by its rounding
TOL = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def compare(case, shape, dtype, causal=True, cu_seqlens=None):
    x = case.inputs(*shape, dtype=torch.float64)
    if cu_seqlens is not None:
        x["initial_state"] = case.inputs(len(cu_seqlens) - 1, 1, shape[2], shape[3], torch.float64)["initial_state"]
    y = {k: (v.detach().to(dtype) if k in "qkv" else v.detach().float()).requires_grad_() for k, v in x.items()}
    ref = {k: v.detach().double().requires_grad_() for k, v in y.items()}     # same rounded inputs
    o_ref, s_ref = case.run(ref, "naive", causal=causal, cu_seqlens=cu_seqlens)
    o, s = case.run(y, "triton", causal=causal, cu_seqlens=cu_seqlens)
    assert o.dtype == dtype
    assert rel(o, o_ref) < TOL[dtype], f"output {rel(o, o_ref):.2e}"
    if causal:
        assert s.dtype == torch.float32 and rel(s, s_ref) < TOL[dtype], f"state {rel(s, s_ref):.2e}"
    g_ref, grads = loss_and_grads(ref, o_ref, s_ref), loss_and_grads(y, o, s)
    assert grads.keys() == g_ref.keys()
    for name, g in grads.items():
        assert rel(g, g_ref[name]) < TOL[dtype], f"d{name}: {rel(g, g_ref[name]):.2e}"


@pytest.mark.parametrize("case", SCALAR, ids=[c.name for c in SCALAR])
def test_triton_fp32_matches_naive(case):
    compare(case, (2, 70, 2, 16), torch.float32)


def test_triton_gla_fp32_matches_naive():
    compare(GLA, (2, 40, 2, 16), torch.float32)


@pytest.mark.parametrize("case", DELTA, ids=[c.name for c in DELTA])
def test_triton_delta_rule_fp32_matches_naive(case):
    compare(case, (2, 70, 2, 16), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("fn", ["simple_gla", "gla", "gated_delta_rule"])
def test_triton_half_matches_naive(fn, dtype):
    compare(next(c for c in [*SCALAR, GLA, *DELTA] if c.fn == fn), (1, 40, 2, 16), dtype)


@pytest.mark.parametrize("case", [*[c for c in SCALAR if c.fn in ("simple_gla", "linear_attn")][:2], GLA],
                         ids=lambda c: c.name)
def test_triton_bidirectional_matches_naive(case):
    compare(case, (1, 50, 2, 8), torch.float32, causal=False)


@pytest.mark.parametrize("fn", ["simple_gla", "gla", "gated_delta_rule"])
def test_triton_varlen_matches_naive(fn):
    compare(next(c for c in [*SCALAR, GLA, *DELTA] if c.fn == fn), (1, 45, 2, 8), torch.float32,
            cu_seqlens=torch.tensor([0, 7, 30, 45]))


@pytest.mark.parametrize("fn", ["simple_gla", "gla", "gated_delta_rule"])
def test_triton_wide_heads_tile_the_state(fn):
    """K = V = 80: the state kernels run on 64 x 64 tiles (two along each axis)."""
    compare(next(c for c in [*SCALAR, GLA, *DELTA] if c.fn == fn), (1, 20, 1, 80), torch.float32)


def test_triton_strong_decay_has_no_nan():
    """T % 64 != 0 and decays far beyond 1.6 nats per step: finite state and gradients."""
    q, k, v = (torch.randn(1, 70, 1, 16) for _ in range(3))
    g = torch.full((1, 70, 1), -40.0, requires_grad=True)
    o, s = kernels.simple_gla(q, k, v, g, output_final_state=True, mode="triton")
    o_ref, s_ref = kernels.simple_gla(q, k, v, g, output_final_state=True, mode="naive")
    assert torch.isfinite(o).all() and torch.isfinite(s).all()
    assert rel(o, o_ref) < 1e-5 and rel(s, s_ref) < 1e-5
    (dg,) = torch.autograd.grad(o.sum() + s.sum(), g)
    assert torch.isfinite(dg).all()


def test_triton_rejects_float64():
    q = torch.randn(1, 4, 1, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        kernels.simple_gla(q, q, q, mode="triton")
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        kernels.delta_rule(q, q, q, q[..., 0], mode="triton")
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        kernels.gla(q, q, q, q, mode="triton")
