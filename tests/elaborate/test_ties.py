"""Parameter tying (``tie_weight=wte``): one tensor, two state_dict names as in torch/nanoGPT, shared by passes."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.ir.ties import tied_names

GPT = """model TinyGPT(vocab: int = 11, d: int = 8) {
  in ids: int64[B, T]
  wte = Embedding(vocab, d)
  ln_f = LayerNorm()
  lm_head = Linear(vocab, bias=false, tie_weight=wte)
  out ids |> wte |> ln_f |> lm_head
}"""


def test_one_tensor_under_both_names_as_nanogpt_saves_it():
    g = archdsl.compile(GPT)
    assert list(g.params) == ["wte.weight", "ln_f.weight", "ln_f.bias"] and g.num_params() == 11 * 8 + 16
    assert tied_names(g) == {"lm_head.weight": "wte.weight"}
    m = archdsl.build(g)
    assert list(m.state_dict()) == ["wte.weight", "ln_f.weight", "ln_f.bias", "lm_head.weight"]
    assert m.lm_head.weight is m.wte.weight
    ids = torch.randint(0, 11, (2, 5))
    ref = torch.nn.functional.layer_norm(m.wte(ids), (8,), m.ln_f.weight, m.ln_f.bias) @ m.wte.weight.T
    torch.testing.assert_close(m(ids), ref)


def test_a_reference_state_dict_with_both_keys_loads_strictly_and_stays_tied():
    m = archdsl.build(GPT)
    table = torch.randn(11, 8)
    state = {"wte.weight": table, "lm_head.weight": table, "ln_f.weight": torch.ones(8), "ln_f.bias": torch.zeros(8)}
    m.load_state_dict(state, strict=True)
    assert m.lm_head.weight is m.wte.weight and torch.equal(m.lm_head.weight, table)


def test_save_and_load_built_keep_the_tie(tmp_path):
    g = archdsl.compile(GPT)
    m = archdsl.build(g)
    archdsl.save_built(g, m, tmp_path / "gpt")
    back = archdsl.load_built(tmp_path / "gpt")
    assert back.lm_head.weight is back.wte.weight
    ids = torch.randint(0, 11, (2, 3))
    torch.testing.assert_close(back(ids), m(ids))


def test_onnx_export_reads_the_one_tensor():
    pytest.importorskip("onnxruntime")
    report = archdsl.onnx_parity(archdsl.compile(GPT))
    assert report.ok, str(report)


def test_passes_do_not_fold_into_a_tied_weight():
    spec = GPT.replace("out ids |> wte |> ln_f |> lm_head", "bn = BatchNorm1d()\n  out ids |> wte |> ln_f |> lm_head |> "
                       "flatten(0, 1) |> bn")
    g = archdsl.compile(spec)
    m = archdsl.build(g).eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    deploy = archdsl.simplify(g, weights=m)
    assert any(n.op.name == "batch_norm1d" for n in deploy.graph.nodes)      # the BN stays: wte reads the weight
    ids = torch.randint(0, 11, (2, 3))
    torch.testing.assert_close(deploy.module()(ids), m(ids))


@pytest.mark.parametrize(("line", "fragment"), [
    ("lm_head = Linear(vocab, bias=false, tie_weight=nothing)", "unknown name"),
    ("lm_head = Linear(vocab, bias=false, tie_weight=3)", "tie_weight needs a layer of this block, got an int"),
    ("lm_head = Linear(vocab, bias=false, tie_scale=wte)", "Linear has no parameter 'scale' to tie"),
    ("lm_head = Linear(vocab, bias=false, tie_weight=ln_f)", "cannot tie Linear's weight float32[11, 8] to ln_f.weight"),
    ("lm_head = Linear(vocab + 1, bias=false, tie_weight=wte)", "cannot tie Linear's weight float32[12, 8]"),
])
def test_tie_errors_are_located(line, fragment):
    spec = GPT.replace("lm_head = Linear(vocab, bias=false, tie_weight=wte)", line)
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.compile(spec)
    assert fragment in str(info.value)
    assert info.value.diagnostics[0].span is not None


def test_a_tie_to_a_layer_applied_later_says_so():
    spec = """model M() {
  in x: [N, 8]
  b = Linear(8)
  a = Linear(8, tie_weight=b)
  out x |> a |> b
}"""
    with pytest.raises(archdsl.ArchError, match="layer 'b' has no parameter 'weight' yet"):
        archdsl.compile(spec)


def test_symmetry_treats_the_tied_weight_as_a_member_of_both_uses():
    from archdsl.symmetry import derive

    g = archdsl.compile(GPT)
    spec = derive(g)
    uses = [m for c in spec.classes for m in c.members if m.param == "wte.weight"]
    assert len(uses) == 2                                  # the embedding's columns and the head's inputs
    m = archdsl.build(g).double().eval()
    ids = torch.randint(0, 11, (2, 5))
    for seed in range(3):
        state = spec.apply({k: v.clone() for k, v in m.state_dict().items() if k in g.params}, spec.sample(seed))
        moved = archdsl.build(g).double().eval()
        moved.load_state_dict({**state, "lm_head.weight": state["wte.weight"]})
        torch.testing.assert_close(moved(ids), m(ids))


def test_the_written_spec_keeps_the_tie():
    from archdsl.ir.to_spec import graph_to_spec

    g = archdsl.compile(GPT)
    text = graph_to_spec(g)
    assert "tie_weight=wte" in text
    again = archdsl.compile(text)
    assert list(again.params) == list(g.params) and tied_names(again) == tied_names(g)
