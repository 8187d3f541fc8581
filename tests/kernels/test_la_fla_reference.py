"""archdsl's linear-attention forms against flash-linear-attention's own naive references (optional: fla-core).

fla's delta-rule and retention references take ``[B, H, T, D]`` (the rest ``[B, T, H, D]``); they compute in
float32, so the comparison is in float32 with a stated tolerance. Marked ``reference``: run with
``pytest -m reference`` where fla-core is installed.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from archdsl import kernels
from tests.kernels.la_helpers import rel

pytestmark = pytest.mark.reference

with warnings.catch_warnings():
    warnings.simplefilter("ignore")            # fla warns that Triton falls back to CPU
    fla_naive = pytest.importorskip("fla.ops.gla.naive")
    from fla.ops.delta_rule.naive import delta_rule_recurrence
    from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule
    from fla.ops.linear_attn.naive import naive_recurrent_linear_attn
    from fla.ops.retention.naive import naive_retention
    from fla.ops.simple_gla.naive import naive_recurrent_simple_gla

B, T, H, D = 2, 50, 3, 16
TOL = 1e-5


@pytest.fixture
def x():
    torch.manual_seed(0)
    return {"q": torch.randn(B, T, H, D), "k": torch.randn(B, T, H, D), "v": torch.randn(B, T, H, D),
            "g": F.logsigmoid(torch.randn(B, T, H) + 2), "gk": F.logsigmoid(torch.randn(B, T, H, D)) / 4,
            "beta": torch.rand(B, T, H), "h0": torch.randn(B, H, D, D)}


def head_first(t):
    return t.transpose(1, 2)


@pytest.mark.parametrize("mode", ["chunk", "naive"])
def test_linear_attn(x, mode):
    o_ref, s_ref = naive_recurrent_linear_attn(x["q"], x["k"], x["v"], initial_state=x["h0"],
                                               output_final_state=True)
    o, s = kernels.linear_attn(x["q"], x["k"], x["v"], initial_state=x["h0"], output_final_state=True,
                               normalize=False, mode=mode)
    assert rel(o, o_ref) < TOL and rel(s, s_ref) < TOL


@pytest.mark.parametrize("mode", ["chunk", "naive"])
def test_simple_gla(x, mode):
    o_ref, s_ref = naive_recurrent_simple_gla(x["q"], x["k"], x["v"], x["g"], initial_state=x["h0"],
                                              output_final_state=True)
    o, s = kernels.simple_gla(x["q"], x["k"], x["v"], x["g"], initial_state=x["h0"], output_final_state=True,
                              mode=mode)
    assert rel(o, o_ref) < TOL and rel(s, s_ref) < TOL


@pytest.mark.parametrize("mode", ["chunk", "naive"])
def test_gla(x, mode):
    o_ref, s_ref = fla_naive.naive_recurrent_gla(x["q"], x["k"], x["v"], x["gk"], initial_state=x["h0"],
                                                 output_final_state=True)
    o, s = kernels.gla(x["q"], x["k"], x["v"], x["gk"], initial_state=x["h0"], output_final_state=True, mode=mode)
    assert rel(o, o_ref) < TOL and rel(s, s_ref) < TOL


@pytest.mark.parametrize("mode", ["chunk", "naive"])
def test_retention_head_first_reference(x, mode):
    o_ref = head_first(naive_retention(head_first(x["q"]), head_first(x["k"]), head_first(x["v"])))
    o, _ = kernels.retention(x["q"], x["k"], x["v"], mode=mode)
    assert rel(o, o_ref) < TOL


@pytest.mark.parametrize("mode", ["chunk", "naive"])
def test_delta_rule_head_first_reference(x, mode):
    k = F.normalize(x["k"], dim=-1)
    o_ref, s_ref = delta_rule_recurrence(head_first(x["q"]), head_first(k), head_first(x["v"]),
                                         head_first(x["beta"]), initial_state=x["h0"], output_final_state=True)
    o, s = kernels.delta_rule(x["q"], k, x["v"], x["beta"], initial_state=x["h0"], output_final_state=True,
                              mode=mode)
    assert rel(o, head_first(o_ref)) < TOL and rel(s, s_ref) < TOL


@pytest.mark.parametrize("mode", ["chunk", "naive"])
def test_gated_delta_rule(x, mode):
    k = F.normalize(x["k"], dim=-1)
    o_ref, s_ref = naive_recurrent_gated_delta_rule(x["q"], k, x["v"], x["beta"], x["g"], initial_state=x["h0"],
                                                    output_final_state=True)
    o, s = kernels.gated_delta_rule(x["q"], k, x["v"], x["g"], x["beta"], initial_state=x["h0"],
                                    output_final_state=True, mode=mode)
    assert rel(o, o_ref) < TOL and rel(s, s_ref) < TOL
