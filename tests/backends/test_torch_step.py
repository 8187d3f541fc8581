"""``model.step``: recurrent decoding of generated modules. A prefill, then token after token with the state
carried, equals the full forward (float64, tight) for every linear-attention op, the short convolution and the
zoo's language models; models without recurrent ops have no step; misuse is a clear error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archdsl
from archdsl import zoo
from archdsl.errors import ArchError

QKV = "in q: [B, T, 2, 4]\n  in k: [B, T, 2, 4]\n  in v: [B, T, 2, 3]"
OPS = {   # spec body -> extra inputs (name: kind)
    "linear_attention()": {},
    "linear_attention(feature_map='elu1', normalize=true)": {},
    "linear_attention(feature_map='focused', normalize=true)": {},
    "retention()": {},
    "lightning_attention(1, 3)": {},
    "simple_gla()": {"g": "head"},
    "gla()": {"g": "key"},
    "delta_rule(qk_l2norm=true)": {"beta": "head"},
    "gated_delta_rule(qk_l2norm=true)": {"g": "head", "beta": "head"},
}
LMS = ["linear_transformer_lm", "retnet_lm", "gla_lm", "deltanet_lm", "gated_deltanet_lm"]


def op_module(call: str, gates: dict):
    lines = [QKV] + [f"  in {n}: [B, T, 2{', 4' if kind == 'key' else ''}]" for n, kind in gates.items()]
    args = ", ".join(["q", "k", "v", *gates])
    return archdsl.build("model M() {\n  " + "\n".join(lines) + f"\n  out ({args}) |> {call}\n}}\n").double()


def op_inputs(gates: dict, t: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(2, t, *s, generator=gen, dtype=torch.float64)   # noqa: E731
    xs = [rand(2, 4), rand(2, 4), rand(2, 3)]
    for n, kind in gates.items():
        x = rand(2, 4) if kind == "key" else rand(2)
        xs.append(F.logsigmoid(x) if n == "g" else torch.sigmoid(x))
    return xs


def decoded(module, inputs, prefill: int):
    """Outputs of a prefill of ``prefill`` tokens, then one step per token (state carried), concatenated."""
    out, state = module.step(*(x[:, :prefill] for x in inputs))
    outs = [out]
    for t in range(prefill, inputs[0].shape[1]):
        out, state = module.step(*(x[:, t:t + 1] for x in inputs), state=state)
        outs.append(out)
    return torch.cat(outs, 1), state


@pytest.mark.parametrize("call", list(OPS))
@pytest.mark.parametrize("prefill", [1, 5, 70])     # 70: the prefill crosses a chunk of the chunked form
def test_step_equals_forward_for_every_op(call, prefill):
    module = op_module(call, OPS[call])
    xs = op_inputs(OPS[call], prefill + 6)
    with torch.no_grad():
        full = module(*xs)
        steps, state = decoded(module, xs, prefill)
    torch.testing.assert_close(steps, full, rtol=1e-10, atol=1e-12)
    assert len(state) == 1


def test_short_convolution_state_is_its_last_inputs():
    module = archdsl.build("model M() {\n  in x: [B, T, 6]\n  c = ShortConvolution(4)\n  out x |> c\n}\n").double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    with torch.no_grad():
        steps, state = decoded(module, [x], 2)
        torch.testing.assert_close(steps, module(x), rtol=1e-12, atol=1e-12)
    assert list(state) == ["c"] and torch.equal(state["c"], x[:, -3:].transpose(1, 2))


@pytest.mark.parametrize("name", LMS)
def test_language_models_decode_token_by_token(name):
    extra = {"head_dim": 8} if name == "gated_deltanet_lm" else {}
    module = zoo.build(name, seed=0, vocab_size=37, hidden_size=16, num_layers=2, num_heads=2, **extra).double()
    ids = torch.randint(0, 37, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = module(ids)
        steps, state = decoded(module, [ids], 4)
    torch.testing.assert_close(steps, full, rtol=1e-10, atol=1e-12)
    per_layer = {"deltanet_lm": 4, "gated_deltanet_lm": 4, "retnet_lm": 3}.get(name, 1)
    recurrent = 2 * per_layer        # per layer: the attention (+ three short convs, or RetNet's two rotaries)
    assert len(state) == recurrent


def test_step_leaves_the_state_passed_in_unchanged_and_is_resumable():
    module = op_module("gla()", OPS["gla()"])
    xs = op_inputs(OPS["gla()"], 8)
    with torch.no_grad():
        _, s1 = module.step(*(x[:, :4] for x in xs))
        snapshot = {k: v.clone() for k, v in s1.items()}
        a, _ = module.step(*(x[:, 4:] for x in xs), state=s1)
        b, _ = module.step(*(x[:, 4:] for x in xs), state=s1)     # the same state again: the same result
    assert all(torch.equal(snapshot[k], s1[k]) for k in s1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_models_without_recurrent_ops_have_no_step():
    module = archdsl.build("model M() {\n  in x: [B, 4]\n  fc = Linear(3)\n  out x |> fc\n}\n")
    assert not hasattr(module, "step")


@pytest.mark.parametrize("call", ["linear_attention(causal=false)", "gla(causal=false)",
                                  "linear_attention(feature_map='cosformer')"])
def test_step_refuses_forms_without_a_token_by_token_form(call):
    gates = {"g": "key"} if call.startswith("gla") else {}
    module = op_module(call, gates)
    with pytest.raises(ArchError, match="no token-by-token form"):
        module.step(*op_inputs(gates, 3))


def test_bad_state_and_layer_named_step_are_clear_errors():
    module = op_module("retention()", {})
    with pytest.raises(ArchError, match="state must be the dict"):
        module.step(*op_inputs({}, 3), state=torch.zeros(3))
    with pytest.raises(ArchError, match="layer name 'step'"):
        archdsl.build("model M() {\n  in x: [B, T, 6]\n  step = ShortConvolution(4)\n  out x |> step\n}\n")
