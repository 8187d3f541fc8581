"""The linear-attention ops from specs: shape rules and errors, cost, lowering equal to archdsl.kernels, the
std blocks (GLA, DeltaNet, Gated DeltaNet, ...) built and run forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archdsl
from archdsl import kernels
from archdsl.ir.types import TensorType
from archdsl.ops import linear_attention as LA
from tests.ops.helpers import compile_op

QKV = {"q": "B, T, 2, 4", "k": "B, T, 2, 4", "v": "B, T, 2, 3"}
GATES = {"g": "B, T, 2", "beta": "B, T, 2", "gk": "B, T, 2, 4"}


def spec(inputs: dict[str, str], body: str) -> str:
    lines = [f"in {name}: [{dims}]" for name, dims in inputs.items()]
    return "model M() {\n  " + "\n  ".join([*lines, body]) + "\n}\n"


# (op call, extra inputs beyond q, k, v, archdsl.kernels call on those tensors)
OPS = {
    "linear_attention": ("linear_attention(feature_map='elu1', normalize=true)", [],
                         lambda q, k, v, **kw: kernels.linear_attn(q, k, v, feature_map="elu1", normalize=True,
                                                                   eps=1e-6, **kw)),
    "retention": ("retention()", [], kernels.retention),
    "lightning_attention": ("lightning_attention(2, 6)", [],
                            lambda q, k, v, **kw: kernels.lightning_attn(q, k, v, 2, 6, **kw)),
    "simple_gla": ("simple_gla()", ["g"], kernels.simple_gla),
    "gla": ("gla()", ["gk"], kernels.gla),
    "delta_rule": ("delta_rule(qk_l2norm=true)", ["beta"],
                   lambda *a, **kw: kernels.delta_rule(*a, use_qk_l2norm_in_kernel=True, **kw)),
    "gated_delta_rule": ("gated_delta_rule(scale=0.3)", ["g", "beta"],
                         lambda *a, **kw: kernels.gated_delta_rule(*a, scale=0.3, **kw)),
}


def tensors(names, b=2, t=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = {"q": (b, t, 2, 4), "k": (b, t, 2, 4), "v": (b, t, 2, 3), "g": (b, t, 2), "beta": (b, t, 2),
              "gk": (b, t, 2, 4)}
    out = {n: torch.randn(shapes[n], generator=gen, dtype=torch.float64) for n in names}
    for n in ("g", "gk"):
        if n in out:
            out[n] = F.logsigmoid(out[n])
    if "beta" in out:
        out["beta"] = out["beta"].sigmoid()
    return out


def state_dims(name):
    return (2, 2, 4, 4) if name == "linear_attention" else (2, 2, 4, 3)


@pytest.mark.parametrize("name", list(OPS))
def test_spec_op_equals_kernel_call(name):
    call, gates, ref = OPS[name]
    inputs = {**QKV, **{g: GATES[g] for g in gates}, "h0": "B, " + ", ".join(map(str, state_dims(name)[1:]))}
    args = ", ".join(["q", "k", "v", *gates, "h0"])
    opts = "has_initial_state=true, output_final_state=true"
    call = call.replace("()", f"({opts})") if call.endswith("()") else call[:-1] + f", {opts})"
    module = archdsl.build(spec(inputs, f"o, s = ({args}) |> {call}\n  out o\n  out state = s")).double()
    x = tensors(["q", "k", "v", *gates])
    h0 = torch.randn(state_dims(name), dtype=torch.float64)
    o, s = module(*x.values(), h0)
    o_ref, s_ref = ref(*x.values(), initial_state=h0, output_final_state=True)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(s, s_ref)


def test_varlen_from_a_spec():
    inputs = {"q": "1, T, 2, 4", "k": "1, T, 2, 4", "v": "1, T, 2, 3", "g": "1, T, 2", "cu": "int64[N]"}
    text = spec(inputs, "o, s = (q, k, v, g, cu) |> simple_gla(varlen=true, output_final_state=true)\n  out o\n"
                        "  out state = s").replace("[int64[N]]", "int64[N]")
    graph = archdsl.compile(text)
    assert str(graph.value_types()[graph.outputs["state"]]) == "[N - 1, 2, 4, 3]"
    module = archdsl.build(graph).double()
    x = tensors(["q", "k", "v", "g"], b=1, t=12)
    cu = torch.tensor([0, 5, 12])
    o, s = module(*x.values(), cu)
    o_ref, s_ref = kernels.simple_gla(*x.values(), cu_seqlens=cu, output_final_state=True)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(s, s_ref)


def test_bidirectional_from_a_spec():
    module = archdsl.build(spec({**QKV, "gk": GATES["gk"]}, "out (q, k, v, gk) |> gla(causal=false)")).double()
    x = tensors(["q", "k", "v", "gk"])
    torch.testing.assert_close(module(*x.values()), kernels.gla(*x.values(), causal=False)[0])


def test_symbolic_shapes_and_cost():
    graph = archdsl.compile(spec({**QKV, "g": GATES["g"]},
                                 "o, s = (q, k, v, g) |> simple_gla(output_final_state=true)\n  out o = o\n"
                                 "  out state = s"))
    types = graph.value_types()
    assert str(types[graph.outputs["o"]]) == "[B, T, 2, 3]"
    assert str(types[graph.outputs["state"]]) == "[B, 2, 4, 3]"
    op = LA.SimpleGLA()
    ins = [TensorType(shape=(2, 5, 2, 4)), TensorType(shape=(2, 5, 2, 4)), TensorType(shape=(2, 5, 2, 3)),
           TensorType(shape=(2, 5, 2))]
    assert op.cost(ins, op.infer(ins)).macs == 2 * 5 * 2 * (2 * 4 * 3)
    cos = LA.LinearAttention(feature_map="cosformer", normalize=True, output_final_state=True)
    assert cos.infer(ins[:3])[1].shape == (2, 2, 8, 4)
    assert LA.LinearAttention().infer([TensorType(shape=(1, 3, 2, 4), dtype="float64")] * 3) == \
        [TensorType(shape=(1, 3, 2, 4), dtype="float64")]


@pytest.mark.parametrize(("body", "inputs", "fragments"), [
    ("out (q, k, v) |> gla()", QKV, ["takes 4 tensors (q, k, v, g), got 3"]),
    ("out (q, k, v, g) |> gla()", {**QKV, "g": GATES["g"]}, ["g must be a float [B, T, H, K]"]),
    ("out (q, k, v, gk) |> simple_gla()", {**QKV, "gk": GATES["gk"]}, ["g must be a float [B, T, H]"]),
    ("out (q, v, v) |> retention()", QKV, ["q and k must have the same shape"]),
    ("out (q, k, v) |> retention()", {**QKV, "v": "B, T, 3, 3"}, ["v must be [B, T, H, V] with q's B, T, H"]),
    ("out (q, k, v) |> retention()", {**QKV, "q": "B, 2, 4", "k": "B, 2, 4"}, ["q must be [B, T, H, D]"]),
    ("out (q, k, v, h) |> retention(has_initial_state=true)", {**QKV, "h": "B, 2, 4, 4"},
     ["initial_state must be [N, H, K, V] = [B, 2, 4, 3]"]),
    ("out (q, k, v, cu) |> retention(varlen=true)", {**QKV, "cu": "5"}, ["cu_seqlens must be an integer vector"]),
    ("out (q, k, v, g) |> delta_rule(causal=false)", {**QKV, "g": GATES["g"]}, ["delta_rule is causal only"]),
    ("out (q, k, v) |> retention(causal=false, output_final_state=true)", QKV, ["has no recurrent state"]),
    ("out (q, k, v) |> lightning_attention(3, 3)", QKV, ["layer_idx must be in [0, num_layers)"]),
    ("out (q, k, v) |> linear_attention(feature_map='softmax')", QKV, ["feature_map"]),
    ("out (q, k, v) |> linear_attention(focus_power=0.0)", QKV, ["must be positive"]),
])
def test_clear_errors(body, inputs, fragments):
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.compile(spec(inputs, body))
    for fragment in fragments:
        assert fragment.lower() in str(info.value).lower(), str(info.value)


def test_varlen_needs_batch_one():
    with pytest.raises(archdsl.ArchError, match="batch of 1"):
        archdsl.compile(spec({**QKV, "q": "2, T, 2, 4", "k": "2, T, 2, 4", "v": "2, T, 2, 3", "cu": "N"},
                             "out (q, k, v, cu) |> retention(varlen=true)").replace("[N]", "int64[N]"))


def test_mamba2_decay():
    graph = compile_op("out mamba2_decay(a, w, b)", {"a": "B, T, 3", "w": "3", "b": "3"})
    module = archdsl.build(graph).double()
    a, w, b = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64), \
        torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(module(a, w, b), -w.exp() * F.softplus(a + b))
    with pytest.raises(archdsl.ArchError, match="A_log and dt_bias must be"):
        compile_op("out mamba2_decay(a, w, b)", {"a": "B, T, 3", "w": "4", "b": "3"})


# A small GLA / DeltaNet-style model written with the std blocks, and one written out by hand.
STD = """
import "std/linear_attention.arch"
model Tiny() {{
  in x: [B, T, 32]
  out x |> LinearAttentionBlock({mixer}, 64)
}}
"""
HAND = """
model HandGLA() {
  in x: [B, T, 16]
  q_proj = Linear(16, bias=false)
  k_proj = Linear(16, bias=false)
  v_proj = Linear(16, bias=false)
  gk_proj = [Linear(4, bias=false), Linear(16)]
  o_proj = Linear(16, bias=false)
  q = x |> q_proj |> reshape((B, T, 2, 8))
  k = x |> k_proj |> reshape((B, T, 2, 8))
  v = x |> v_proj |> reshape((B, T, 2, 8))
  g = ((x |> gk_proj |> logsigmoid) / 16) |> reshape((B, T, 2, 8))
  out x + ((q, k, v, g) |> gla() |> flatten(2) |> o_proj)
}
"""
MIXERS = ["GatedLinearAttention(4)", "DeltaNet(4)", "GatedDeltaNet(2, 8)", "GatedDeltaNet(2, 8, num_v_heads=4)", "MultiScaleRetention(4)",
          "LinearAttentionLayer(4)", "LinearAttentionLayer(4, feature_map=\"focused\", normalize=false)",
          "LinearAttentionLayer(4, feature_map=\"cosformer\", causal=false)",
          "LinearAttentionLayer(4, feature_map=\"relu\", phi=[Linear(8), softmax(-1)])"]


@pytest.mark.parametrize("mixer", MIXERS)
def test_std_blocks_run_forward_and_backward(mixer):
    module = archdsl.build(STD.format(mixer=mixer), seed=0).double()
    x = torch.randn(2, 11, 32, dtype=torch.float64, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.norm() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    if "causal=false" not in mixer:        # short convs and recurrences are causal: later tokens change nothing
        x2 = x.detach().clone()
        x2[:, 6:] += 1.0
        torch.testing.assert_close(module(x2)[:, :6], y.detach()[:, :6])


def test_learnable_feature_map_is_one_layer_for_q_and_k():
    module = archdsl.build(STD.format(mixer="LinearAttentionLayer(4, phi=[Linear(8), softmax(-1)])"), seed=0)
    feature = {k for k in module.state_dict() if ".feature." in k}
    assert feature == {"attn.feature.0.weight", "attn.feature.0.bias"}


def test_value_heads_share_query_heads():
    graph = archdsl.compile(STD.format(mixer="GatedDeltaNet(2, 8, expand_v=1.0, num_v_heads=4)"))
    shapes = {k: tuple(p.shape) for k, p in graph.params.items()}
    assert shapes["attn.q_proj.weight"] == (16, 32) and shapes["attn.v_proj.weight"] == (32, 32)
    assert shapes["attn.b_proj.weight"] == (4, 32) and shapes["attn.A_log"] == (4,)
    module = archdsl.build(STD.format(mixer="RepeatHeads(3)").replace("LinearAttentionBlock(RepeatHeads(3), 64)",
                                                                      "reshape((B, T, 2, 16)) |> RepeatHeads(3)"))
    x = torch.randn(1, 5, 32)
    y = module(x)
    assert y.shape == (1, 5, 6, 16)
    torch.testing.assert_close(y, x.reshape(1, 5, 2, 16).repeat_interleave(3, dim=2))


def test_hand_written_gla_block():
    module = archdsl.build(HAND, seed=0)
    names = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert names["gk_proj.0.weight"] == (4, 16) and names["gk_proj.1.bias"] == (16,)
    x = torch.randn(2, 70, 16, requires_grad=True)
    y = module(x)
    y.sum().backward()
    assert y.shape == x.shape and torch.isfinite(x.grad).all()
