"""The linear-attention family lowered to ONNX (parallel chunks or a Scan) equals the PyTorch backend (chunked kernels) in
onnxruntime: every op, causal and bidirectional, feature maps, normaliser, initial and final states."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import archdsl  # noqa: E402
from archdsl.backends.onnx.parity import onnx_parity  # noqa: E402
from archdsl.ops import linear_attention as LA  # noqa: E402

QKV = "in q: [B, T, 2, 4]\n in k: [B, T, 2, 4]\n in v: [B, T, 2, 3]"
G = QKV + "\n in g: [B, T, 2]"
CASES = [
    (QKV, "out (q, k, v) |> linear_attention"),
    (QKV, "out (q, k, v) |> linear_attention(feature_map=\"elu1\", normalize=true)"),
    (QKV, "out (q, k, v) |> linear_attention(feature_map=\"cosformer\", causal=false)"),
    (QKV, "out (q, k, v) |> linear_attention(feature_map=\"cosformer\", cosformer_len=9)"),
    (QKV, "out (q, k, v) |> linear_attention(feature_map=\"focused\", normalize=true, causal=false)"),
    (QKV, "o, s = (q, k, v) |> linear_attention(output_final_state=true, feature_map=\"relu\", normalize=true)\n"
          " out o\n out s"),
    (QKV, "out (q, k, v) |> retention"),
    (QKV, "out (q, k, v) |> retention(causal=false)"),
    (QKV + "\n in h: [B, 2, 4, 3]",
     "o, s = (q, k, v, h) |> retention(has_initial_state=true, output_final_state=true)\n out o\n out s"),
    (QKV, "out (q, k, v) |> lightning_attention(1, 4, scale=0.3)"),
    (G, "out (q, k, v, logsigmoid(g)) |> simple_gla"),
    (G + "\n in a: [2]\n in d: [2]", "out (q, k, v, mamba2_decay(g, a, d)) |> simple_gla"),
    (G, "out (q, k, v, logsigmoid(g)) |> simple_gla(causal=false)"),
    (QKV + "\n in g: [B, T, 2, 4]", "out (q, k, v, logsigmoid(g)) |> gla"),
    (QKV + "\n in g: [B, T, 2, 4]", "out (q, k, v, logsigmoid(g)) |> gla(causal=false)"),
    (QKV + "\n in b: [B, T, 2]", "out (normalize(q, -1), normalize(k, -1), v, sigmoid(b)) |> delta_rule"),
    (QKV + "\n in b: [B, T, 2]", "out (q, k, v, sigmoid(b)) |> delta_rule(qk_l2norm=true)"),
    (G + "\n in b: [B, T, 2]\n in h: [B, 2, 4, 3]",
     "o, s = (normalize(q, -1), normalize(k, -1), v, logsigmoid(g), sigmoid(b), h) |> "
     "gated_delta_rule(has_initial_state=true, output_final_state=true)\n out o\n out s"),
    ("in x: [B, T, 6]", "c = ShortConvolution(3)\n out x |> c"),
    ("in x: [B, T, 6]", "c = ShortConvolution(4, activation=\"none\", bias=true)\n out x |> c"),
]


def _graph(inputs: str, body: str, dtype: str = "float32"):
    text = "model M() {\n " + inputs.replace("[B", f"{dtype}[B") + "\n " + body + "\n}\n"
    return archdsl.compile(text)


def test_the_cases_cover_the_family():
    covered = {type(n.op) for ins, body in CASES for n in _graph(ins, body).nodes}
    assert set(LA.OPS) <= covered


@pytest.mark.parametrize(("inputs", "body"), CASES, ids=[b.split("|> ")[-1].split("\n")[0][:40] for _, b in CASES])
@pytest.mark.parametrize("steps", [1, 6, 150])   # 150: three chunks of the parallel form, padded
def test_scan_equals_torch(inputs, body, steps):
    report = onnx_parity(_graph(inputs, body), sizes={"B": 2, "T": steps})
    assert report.ok, str(report)


def test_float64_is_tight():
    report = onnx_parity(_graph(G, "out (q, k, v, logsigmoid(g)) |> simple_gla(causal=false)", "float64"),
                         sizes={"B": 2, "T": 5})
    assert report.ok and report.outputs[0].tolerance == 1e-10, str(report)


# models written with the std library's layers (fla's names), exported whole
STD = """
import "std/linear_attention.arch"
model Tiny() {{
  in x: [B, T, 32]
  out x |> LinearAttentionBlock({mixer}, 64)
}}
"""
MIXERS = ["GatedLinearAttention(4)", "DeltaNet(4)", "GatedDeltaNet(2, 8, num_v_heads=4)", "MultiScaleRetention(4)",
          "LinearAttentionLayer(4, feature_map=\"cosformer\", causal=false)",
          "LinearAttentionLayer(4, feature_map=\"relu\", phi=[Linear(8), softmax(-1)])"]


@pytest.mark.parametrize("mixer", MIXERS)
def test_std_layers(mixer):
    report = onnx_parity(archdsl.compile(STD.format(mixer=mixer)), sizes={"B": 2, "T": 70})
    assert report.ok, str(report)


PACKED = "in q: [1, T, 2, 4]\n in k: [1, T, 2, 4]\n in v: [1, T, 2, 3]\n in cu: int64[3]"
PACKED_CASES = [
    (PACKED + "\n in h: [2, 2, 4, 3]", "o, s = (q, k, v, h, cu) |> retention(varlen=true, has_initial_state=true, "
     "output_final_state=true)\n out o\n out s"),
    (PACKED, "out (q, k, v, cu) |> linear_attention(varlen=true, feature_map=\"cosformer\", normalize=true)"),
    (PACKED, "out (q, k, v, cu) |> linear_attention(varlen=true, causal=false, normalize=true)"),
    (PACKED + "\n in g: [1, T, 2, 4]", "o, s = (q, k, v, logsigmoid(g), cu) |> gla(varlen=true, "
     "output_final_state=true)\n out o\n out s"),
    (PACKED + "\n in b: [1, T, 2]", "o, s = (normalize(q, -1), normalize(k, -1), v, sigmoid(b), cu) |> "
     "delta_rule(varlen=true, output_final_state=true)\n out o\n out s"),
]


@pytest.mark.parametrize(("inputs", "body"), PACKED_CASES, ids=[b.split("|> ")[-1][:30] for _, b in PACKED_CASES])
@pytest.mark.parametrize("cu", [[0, 3, 7], [0, 0, 7], [0, 7, 7]], ids=["3+4", "0+7", "7+0"])
def test_packed_sequences(inputs, body, cu):
    graph = _graph(inputs, body)
    rng = np.random.default_rng(len(cu))
    feeds = {name: np.asarray(cu, np.int64) if name == "cu" else
             rng.standard_normal([d if isinstance(d, int) else 7 for d in t.shape]).astype(np.float32)
             for name, t in graph.inputs.items()}
    report = onnx_parity(graph, inputs=feeds)
    assert report.ok, str(report)
