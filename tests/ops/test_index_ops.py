"""Constructors, buffers, index ops, comparisons and max/min reductions against torch (float64, exact where torch is).

ONNX parity for every op is in tests/backends/onnx/test_onnx_ops.py; here: values, dtypes, symbolic shape rules,
buffers in the state_dict, and the errors a wrong use gets.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.ops.index import parse_equation


def build(inputs: str, body: str) -> torch.nn.Module:
    """A model from input declarations and a body, in float64 and eval mode."""
    return archdsl.build(f"model M() {{\n {inputs}\n {body}\n}}").double().eval()


def error(inputs: str, body: str, *fragments: str) -> str:
    """Compiling fails with an ArchError whose text holds every fragment."""
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.compile(f"model M() {{\n {inputs}\n {body}\n}}")
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    return text


X = torch.randn(2, 4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("body", "ref"), [
    ("a = arange(6)\n out x + a", lambda x: x + torch.arange(6)),
    ("a = arange(1, 13, 2)\n out x * a", lambda x: x * torch.arange(1, 13, 2)),
    ("a = arange(0.0, 0.6, 0.1)\n out x - a", lambda x: x - torch.arange(0.0, 0.6, 0.1).double()),
    ("z = zeros((5, 6))\n o = ones((6,))\n out x + z + o", lambda x: x + 1),
    ("f = full((1, 6), 0.25)\n out x * f", lambda x: x * 0.25),
    ("e = eye(5, 6)\n out x * e", lambda x: x * torch.eye(5, 6)),
])
def test_constructors(body, ref):
    torch.testing.assert_close(build("in x: [N, 4, 5, 6]", body)(X), ref(X), rtol=0, atol=0)


def test_constructor_dtypes_follow_torch():
    g = archdsl.compile("model M() {\n in x: [N, 3]\n a = arange(3)\n b = arange(0.5, 3.5)\n c = full((3,), 2)\n"
                        " d = full((3,), true)\n e = zeros((3,), dtype=\"int32\")\n"
                        " out x + b + a * 0.5 + c * 1.5 + where(d, x, other=0.0) + e * 0.5\n}")
    made = [n.types[0].dtype for n in g.nodes if n.op.family == "construct"]
    assert made == ["int64", "float32", "int64", "bool", "int32"]


@pytest.mark.parametrize(("body", "ref"), [
    ("r = arange(3, 0, -1)\n out index_select(x, r, 1)", lambda x: x.index_select(1, torch.tensor([3, 2, 1]))),
    ("r = arange(6)\n i = reshape(r, (2, 3))\n out index_select(x, i, -1)", lambda x: x[..., torch.arange(6).view(2, 3)]),
    ("r = arange(4, -1, -1)\n out gather(x, expand(reshape(r, (1, 1, 5, 1)), (N, 4, 5, 6)), 2)", lambda x: x.flip(2)),
    ("out roll(x, (1, -2), (2, 3))", lambda x: torch.roll(x, (1, -2), (2, 3))),
    ("out roll(x, 7, -1)", lambda x: torch.roll(x, 7, -1)),
    ("out where(gt(x, 0.0), x, other=0.5)", lambda x: torch.where(x > 0, x, 0.5)),
    ("out where(lt(x, x * x), input=1.0, other=-1.0)", lambda x: torch.where(x < x * x, 1.0, -1.0)),
    ("out where(ge(x, 0.1), x, -x) + where(le(x, -0.1), x, x * 2)",
     lambda x: torch.where(x >= 0.1, x, -x) + torch.where(x <= -0.1, x, x * 2)),
    ("out where(eq(x, x), x, other=0.0) + where(ne(x, 0.5), x, other=1.0)", lambda x: 2 * x),
    ("out absolute(x) + clamp(x, -0.5, 0.5) + clamp(x, min=0.1) + clamp(x, max=0.2)",
     lambda x: x.abs() + x.clamp(-0.5, 0.5) + x.clamp(min=0.1) + x.clamp(max=0.2)),
    ("out cumsum(x, -2)", lambda x: x.cumsum(-2)),
    ("out tril(x) + triu(x, 1) + tril(x, -2)", lambda x: x.tril() + x.triu(1) + x.tril(-2)),
    ("out repeat_interleave(x, 3, 1)", lambda x: x.repeat_interleave(3, 1)),
    ("out repeat_interleave(x, 2)", lambda x: x.repeat_interleave(2)),
    ("out amax(x, (1, 3)) + amin(x, 1, true) |> squeeze(1) |> amax(-1)",
     lambda x: x.amax((1, 3)) + x.amin(1, keepdim=True).squeeze(1).amax(-1)),
])
def test_index_ops_equal_torch(body, ref):
    torch.testing.assert_close(build("in x: [N, 4, 5, 6]", body)(X), ref(X), rtol=0, atol=0)


def test_argmax_argmin_are_int64_first_on_ties():
    m = build("in x: [N, 4]", "out argmax(x, 1) * 10 + argmin(x, -1)")
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    out = m(x)
    assert out.dtype == torch.int64 and out.tolist() == [13, 0]
    flat = build("in x: [N, 4]", "out argmax(x) + squeeze(argmin(x, keepdim=true))")(x)
    assert flat.shape == () and int(flat) == int(x.argmax() + x.argmin())


def test_comparisons_make_bool_and_integer_arithmetic_stays_integer():
    g = archdsl.compile("model M() {\n in x: [N, 3]\n r = arange(3)\n s = r - 1\n t = s * 2\n"
                        " out where(gt(x, 0.0), x, other=0.0) + t * 1.0 + r / 2\n}")
    dtypes = [(n.op.name, n.types[0].dtype) for n in g.nodes]
    assert dtypes[:4] == [("arange", "int64"), ("scalar", "int64"), ("scalar", "int64"), ("gt", "bool")]
    assert dtypes[-2] == ("scalar", "float32")                                 # r / 2: true division
    out = archdsl.build(g)(torch.ones(1, 3))
    torch.testing.assert_close(out, torch.tensor([[-1.0, 1.5, 4.0]]))


def test_einsum_equals_torch_and_checks_sizes():
    a, b = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 4, 5, dtype=torch.float64)
    m = build("in a: [N, T, 4]\n in b: [N, 4, 5]", "out einsum(a, b, \"btk,bkd->btd\") + einsum(a, b, \"...ij,...jk\")")
    torch.testing.assert_close(m(a, b), 2 * torch.einsum("btk,bkd->btd", a, b))
    error("in a: [N, T, 4]\n in b: [N, 3, 5]", "out einsum(a, b, \"btk,bkd->btd\")", "letter 'k' has size 4")
    error("in a: [N, T, 4]", "out einsum(a, \"bt->btq\")", "output letter(s) q appear in no input")
    error("in a: [N, T, 4]", "out einsum(a, \"bt->bt\")", "does not fit the operand")


@given(st.lists(st.sampled_from("abcd"), min_size=1, max_size=4), st.lists(st.sampled_from("abcd"), min_size=1,
                                                                          max_size=4))
def test_einsum_implicit_output_is_torch_s(left, right):
    equation = "".join(left) + "," + "".join(right)
    sizes = {"a": 2, "b": 3, "c": 1, "d": 4}
    x = torch.randn([sizes[c] for c in left], dtype=torch.float64)
    y = torch.randn([sizes[c] for c in right], dtype=torch.float64)
    try:
        want = torch.einsum(equation, x, y)
    except RuntimeError:
        return                                   # a letter repeated within one operand's diagonal torch rejects
    _, out = parse_equation(equation)
    assert [sizes[c] for c in out] == list(want.shape)


@given(shift=st.integers(-9, 9), axis=st.integers(-3, 2))
def test_roll_any_shift_and_axis(shift, axis):
    m = build("in x: [N, 4, 5]", f"out roll(x, {shift}, {axis})")
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    assert torch.equal(m(x), torch.roll(x, shift, axis))


def test_symbolic_shape_rules():
    g = archdsl.compile("model M() {\n in x: [N, C, H, W]\n r = arange(3)\n i = reshape(r, (3, 1))\n"
                        " a = index_select(x, i, 2)\n b = repeat_interleave(x, 2, 3)\n c = einsum(x, \"nchw->nhw\")\n"
                        " out p = flatten(a) |> amax(-1)\n out q = flatten(b) |> argmax(1)\n out r = c |> cumsum(1)\n}")
    assert [str(t) for t in g.output_types().values()] == ["[N]", "int64[N]", "[N, H, W]"]
    shapes = {n.name: str(n.types[0]) for n in g.nodes}
    assert shapes["index_select"] == "[N, C, 3, 1, W]" and shapes["repeat_interleave"] == "[N, C, H, 2*W]"


def test_buffers_are_registered_once_and_in_the_state_dict_iff_persistent():
    text = ("model M() {\n in x: [N, 4]\n r = arange(4)\n kept = Buffer()\n scratch = Buffer(persistent=false)\n"
            " k = (r * 2) |> kept\n s = (r + 1) |> scratch\n out x * k + x * s\n}")
    m = archdsl.build(text)
    assert list(m.state_dict()) == ["kept"]
    assert m.kept.dtype == torch.int64 and m.scratch.tolist() == [1, 2, 3, 4]
    assert "arange" not in m.archdsl_source.split("def forward")[1]        # computed once, in __init__
    x = torch.randn(2, 4)
    torch.testing.assert_close(m(x), x * torch.arange(4) * 2 + x * (torch.arange(4) + 1))
    m.load_state_dict({"kept": torch.tensor([1, 1, 1, 1])})               # a loaded buffer is used as loaded
    torch.testing.assert_close(m(x), x + x * (torch.arange(4) + 1))
    assert archdsl.compile(text).params["kept"].buffer


@pytest.mark.parametrize(("inputs", "body", "fragments"), [
    ("in x: [N, 4]", "out index_select(x, x, 1)", ["index must be an int64 or int32 tensor"]),
    ("in x: [N, 4]", "r = arange(4)\n out gather(x, r, 1)", ["must have the rank of the input"]),
    ("in x: [N, 4]", "out where(x, x, other=0.0)", ["condition must be a bool tensor", "gt(x, 0.0)"]),
    ("in x: [N, 4]", "out where(gt(x, 0.0), x)", ["Where: takes 3 tensors here"]),
    ("in x: [N, 4]", "r = arange(4)\n out x + where(gt(r, 1), r, other=0.5)", ["0.5 does not fit the int64"]),
    ("in x: [N, 4]", "out roll(x, (1, 2), 1)", ["must pair up"]),
    ("in x: [N, 4]", "out clamp(x)", ["give min, max or both"]),
    ("in x: [N, 4]", "out clamp(x, 2.0, 1.0)", ["above max"]),
    ("in x: [N, 4]", "out tril(amax(x, 1))", ["needs at least two axes"]),
    ("in x: [N, 4]", "a = arange(3, 1)\n out x", ["is empty"]),
    ("in x: [N, 4]", "z = zeros((0, 4))\n out x + z", ["sizes must be positive"]),
    ("in x: [N, 4]", "out gt(x)", ["compares two tensors, or a tensor with a number"]),
    ("in x: [N, 4]", "b = Buffer()\n out x |> b", ["Buffer: needs a tensor of known size"]),
    ("in x: [N, 4]", "out einsum(x, \"i j->k\")", ["appear in no input"]),
])
def test_errors_are_located_and_say_what_to_do(inputs, body, fragments):
    error(inputs, body, *fragments)


def test_a_buffer_of_run_time_values_is_refused_when_built():
    with pytest.raises(archdsl.ArchError, match="buffer 'b' is computed from the model's inputs"):
        archdsl.build("model M() {\n in x: [2, 4]\n b = Buffer()\n out x |> b\n}")


def test_a_free_parameter_needs_an_initialiser():
    text = error("in x: [N, 3]", "pos = Parameter((1, 3))\n out x + pos", "Parameter needs the argument 'init'",
                 "Parameter(shape, init, ...)")
    assert "3:" in text                                          # located at the call
    archdsl.compile("model M() {\n in x: [N, 3]\n pos = Parameter((1, 3), \"trunc_normal(std=0.02)\")\n out x + pos\n}")


ROUND_TRIP = """model M(vocab: int = 7) {
  "Constructors, a buffer, index ops and a tie: fmt and YAML keep every one."
  in ids: int64[B, 8]
  wte = Embedding(vocab, 8)
  head = Linear(vocab, bias=false, tie_weight=wte)
  idxs = Buffer(persistent=false)
  order = (arange(7, 0, -1) - 1) |> idxs   # reversed vocabulary
  mask = tril(ones((8, 8), dtype="bool"))
  h = ids |> wte
  scores = einsum(h, h, "btd,bsd->bts")
  out logits = index_select(h |> head, order, -1) + amax(where(mask, scores, other=0.0), -1, true)
  out picked = argmax(clamp(roll(h, 1, 1), -1.0, 1.0) |> cumsum(1) |> repeat_interleave(2, 1), -1)
}
"""


def test_fmt_and_yaml_round_trip_the_new_constructs():
    from archdsl.ir.printer import print_graph
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_frontend import parse_yaml
    from archdsl.syntax.yaml_printer import format_yaml

    want = print_graph(archdsl.compile(ROUND_TRIP))
    formatted = format_module(parse(ROUND_TRIP))
    assert format_module(parse(formatted)) == formatted
    assert print_graph(archdsl.compile(formatted)) == want
    assert print_graph(archdsl.compile(format_module(parse_yaml(format_yaml(parse(ROUND_TRIP)))))) == want


def naive_bias_index(r: int, stride: int) -> torch.Tensor:
    """LeViT's index as the paper states it: |dy| * R + |dx| for each (query, key) pair, queries every stride-th."""
    queries = [(y, x) for y in range(0, r, stride) for x in range(0, r, stride)]
    keys = [(y, x) for y in range(r) for x in range(r)]
    return torch.tensor([[abs(qy - ky) * r + abs(qx - kx) for ky, kx in keys] for qy, qx in queries])


def test_levit_bias_indexes_are_the_paper_s_and_stay_out_of_the_state_dict():
    m = archdsl.build("levit_128")
    found = {name: b for name, b in m.named_buffers() if name.endswith("attention_bias_idxs")}
    assert len(found) == 14 and not any(k.endswith("attention_bias_idxs") for k in m.state_dict())
    for name, idx in found.items():
        table = m.get_parameter(name.replace("attention_bias_idxs", "attention_biases"))
        r = round(table.shape[1] ** 0.5)
        stride = 2 if "attn_downsample" in name else 1
        assert torch.equal(idx, naive_bias_index(r, stride)), name


def test_a_buffer_is_named_where_it_is_assigned():
    m = archdsl.build("model M() {\n in x: [N, 4]\n idx = Buffer(arange(4) * 2, persistent=false)\n"
                      " kept = Buffer(arange(4) + 1)\n out x * idx + x * kept\n}")
    assert list(m.state_dict()) == ["kept"] and [n for n, _ in m.named_buffers()] == ["idx", "kept"]
    error("in x: [N, 4]", "out x * Buffer(arange(4))", "an unnamed Buffer", "`idx = Buffer(...)`")


SWIN = """model SwinBuffers(window: int = 7, shift: int = 3, grid: int = 14) {
  "Swin's relative position index and shifted-window attention mask, computed when the model is built."
  in x: [N, 1]
  let n = window * window
  p = arange(window)
  dy = reshape(p, (window, 1, 1, 1)) - reshape(p, (1, 1, window, 1)) + (window - 1)
  dx = reshape(p, (1, window, 1, 1)) - reshape(p, (1, 1, 1, window)) + (window - 1)
  relative_position_index = Buffer(reshape(dy * (2 * window - 1) + dx, (n, n)))
  q = arange(grid)
  band = where(ge(q, grid - window), input=1, other=0) + where(ge(q, grid - shift), input=1, other=0)
  label = reshape(band, (grid, 1)) * 3 + reshape(band, (1, grid))
  windows = reshape(label, (grid // window, window, grid // window, window)) |> permute((0, 2, 1, 3))
      |> reshape((-1, n))
  m = (grid // window) ** 2
  attn_mask = Buffer(where(ne(reshape(windows, (m, 1, n)), reshape(windows, (m, n, 1))), input=-100.0, other=0.0),
                     persistent=false)
  out index = relative_position_index
  out mask = attn_mask
  out y = x * 2
}
"""


def swin_reference(window: int, shift: int, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's SwinTransformerBlock buffers, as timm computes them (relative_position_index, attn_mask)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    index = rel.sum(-1)
    img = torch.zeros(1, grid, grid, 1)
    cnt = 0
    for h in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for w in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[:, h, w, :] = cnt
            cnt += 1
    wins = img.view(1, grid // window, window, grid // window, window, 1).permute(0, 1, 3, 2, 4, 5)
    wins = wins.reshape(-1, window * window)
    mask = wins.unsqueeze(1) - wins.unsqueeze(2)
    return index, mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


@pytest.mark.parametrize(("window", "shift", "grid"), [(7, 3, 14), (4, 2, 8), (3, 1, 9)])
def test_swin_index_and_shifted_window_mask_are_timm_s(window, shift, grid):
    m = archdsl.build(archdsl.compile(SWIN, window=window, shift=shift, grid=grid))
    index, mask, y = m(torch.ones(2, 1))
    want_index, want_mask = swin_reference(window, shift, grid)
    assert torch.equal(index, want_index) and torch.equal(mask, want_mask)
    assert list(m.state_dict()) == ["relative_position_index"] and index.dtype == torch.int64
    assert "arange" not in m.archdsl_source.split("def forward")[1]


@pytest.mark.reference
def test_swin_buffers_equal_timm_s_block():
    swin = pytest.importorskip("timm.models.swin_transformer")
    block = swin.SwinTransformerBlock(dim=8, input_resolution=(14, 14), num_heads=2, window_size=7, shift_size=3)
    index, mask, _ = archdsl.build(archdsl.compile(SWIN))(torch.ones(1, 1))
    assert torch.equal(index, block.attn.relative_position_index)
    assert torch.equal(mask, block.attn_mask)


def test_onnx_keeps_a_persistent_buffer_as_its_initialiser_and_folds_the_rest():
    pytest.importorskip("onnxruntime")
    from archdsl.backends.onnx import to_onnx

    text = ("model M() {\n in x: [N, 4]\n kept = Buffer(arange(4) * 2)\n scratch = Buffer(arange(4) + 1, false)\n"
            " out x * kept + x * scratch\n}")
    state = {"kept": torch.tensor([5, 6, 7, 8])}                          # loaded weights win over the build value
    proto = to_onnx(archdsl.compile(text), weights=state)
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i).tolist() for i in proto.graph.initializer}
    assert [v for k, v in inits.items() if k.startswith("kept")] == [[5, 6, 7, 8]]      # the state_dict's value
    assert not any(k.startswith("scratch") for k in inits)                             # computed from constants
    report = archdsl.onnx_parity(archdsl.compile(text), weights=state)
    assert report.ok, str(report)


def test_the_written_spec_keeps_constructors_and_buffers():
    from archdsl.ir.printer import print_graph
    from archdsl.ir.to_spec import graph_to_spec

    g = archdsl.compile("model M() {\n in x: [N, 4]\n kept = Buffer(arange(4) * 2)\n"
                        " scratch = Buffer(arange(4) + 1, false)\n out x * kept + x * scratch + x @ eye(4)\n}")
    again = archdsl.compile(graph_to_spec(g))
    assert [n.op for n in again.nodes] == [n.op for n in g.nodes] and list(again.params) == ["kept"]
    assert print_graph(again).count("buffer") == print_graph(g).count("buffer")
