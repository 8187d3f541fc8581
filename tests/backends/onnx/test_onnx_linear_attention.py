"""The linear-attention family lowered to an ONNX Scan equals the PyTorch backend (chunked kernels) in
onnxruntime: every op, causal and bidirectional, feature maps, normaliser, initial and final states."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")

import archdsl  # noqa: E402
from archdsl.backends.onnx import ExportError, to_onnx  # noqa: E402
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
    (G + "\n in b: [B, T, 2]\n in h: [B, 2, 4, 3]",
     "o, s = (normalize(q, -1), normalize(k, -1), v, logsigmoid(g), sigmoid(b), h) |> "
     "gated_delta_rule(has_initial_state=true, output_final_state=true)\n out o\n out s"),
]


def _graph(inputs: str, body: str, dtype: str = "float32"):
    text = "model M() {\n " + inputs.replace("[B", f"{dtype}[B") + "\n " + body + "\n}\n"
    return archdsl.compile(text)


def test_the_cases_cover_the_family():
    covered = {type(n.op) for ins, body in CASES for n in _graph(ins, body).nodes}
    assert set(LA.OPS) <= covered


@pytest.mark.parametrize(("inputs", "body"), CASES, ids=[b.split("|> ")[-1].split("\n")[0][:40] for _, b in CASES])
@pytest.mark.parametrize("steps", [1, 6])
def test_scan_equals_torch(inputs, body, steps):
    report = onnx_parity(_graph(inputs, body), sizes={"B": 2, "T": steps})
    assert report.ok, str(report)


def test_float64_is_tight():
    report = onnx_parity(_graph(G, "out (q, k, v, logsigmoid(g)) |> simple_gla(causal=false)", "float64"),
                         sizes={"B": 2, "T": 5})
    assert report.ok and report.outputs[0].tolerance == 1e-10, str(report)


def test_packed_sequences_are_refused_with_the_location():
    g = archdsl.compile("model M() {\n in q: [1, T, 2, 4]\n in k: [1, T, 2, 4]\n in v: [1, T, 2, 3]\n"
                        " in cu: int64[S]\n out (q, k, v, cu) |> retention(varlen=true)\n}\n")
    with pytest.raises(ExportError) as info:
        to_onnx(g)
    text = str(info.value)
    assert "retention" in text and "varlen" in text and "<string>:6" in text
