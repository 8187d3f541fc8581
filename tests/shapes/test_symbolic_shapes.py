"""Symbolic sizes: patterns solved when the input binds, ceil == floor on patterns, sizes bound at the top of the
generated forward (reshape, slice, expand, interpolate with any symbol expression), ONNX at two sizes, check_inputs."""

from __future__ import annotations

import operator

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.backends.torch.codegen import generate_source
from archdsl.backends.torch.runtime import InputShapeError
from archdsl.ir.dims import SymDim, divide_exactly, linear_form
from archdsl.ir.symbols import SymbolSource, pattern_text, symbol_sources, underived
from archdsl.ir.types import TensorType

P, Q, H = SymDim.symbol("P"), SymDim.symbol("Q"), SymDim.symbol("H")


# -- arithmetic ----------------------------------------------------------------------------------------
@given(st.integers(1, 64), st.integers(1, 40))
def test_ceil_and_floor_halving_agree_on_a_multiple(k: int, p: int) -> None:
    """ceil(k*2*P / 2) == floor(k*2*P / 2) == k*P, symbolically and at every P."""
    even = 2 * k * P
    ceil, floor = (even + 1) // 2, even // 2
    assert ceil == floor == k * P
    assert ceil.evaluate({"P": p}) == -(-2 * k * p // 2)


def test_stride_two_conv_and_two_by_two_pool_meet_on_a_pattern() -> None:
    """A stride-2 conv (ceil) and a 2x2 pool (floor) give one size on [.., 32*P], so a shortcut type-checks."""
    conv = (32 * P + 2 * 1 - 3) // 2 + 1
    pool = (32 * P - 2) // 2 + 1
    assert conv == pool == 16 * P
    assert (H + 1) // 2 != H // 2               # on a bare symbol they differ (H odd)


@pytest.mark.parametrize(("d", "form"), [(32 * P, ("P", 32, 0)), (2 * P + 1, ("P", 2, 1)), (P, ("P", 1, 0)),
                                         (P * Q, None), (P // 2, None), (7, None), (-P, None)])
def test_linear_form(d, form) -> None:
    assert linear_form(d) == form


@given(st.integers(1, 9), st.integers(-5, 5), st.integers(1, 30), st.integers(1, 30))
def test_divide_exactly_inverts_multiplication(c: int, k: int, p: int, q: int) -> None:
    h = (H + 1) // 2
    monomial = c * h * Q
    product = monomial * (P + k)
    quotient = divide_exactly(product, monomial)
    assert quotient == P + k
    env = {"P": p, "Q": q, "H": 2 * p + 1}
    assert (quotient if isinstance(quotient, int) else quotient.evaluate(env)) == p + k
    assert divide_exactly(P + 1, Q) is None and divide_exactly(2 * P + 1, 2) is None


def test_symbol_sources_prefer_a_bare_axis_and_solve_patterns() -> None:
    inputs = {"a": TensorType(shape=(SymDim.symbol("N"), 32 * P, 2 * Q + 1)),
              "b": TensorType(shape=(SymDim.symbol("N"), P))}
    found = symbol_sources(inputs)
    assert found == {"N": SymbolSource("a", 0), "P": SymbolSource("b", 1), "Q": SymbolSource("a", 2, 2, 1)}
    assert found["Q"].formula("x.shape[2]") == "(x.shape[2] - 1) // 2"
    assert underived({"a": TensorType(shape=(P * Q,))}) == ["P", "Q"]
    assert pattern_text(32 * P) == "a multiple of 32" and pattern_text(2 * P + 1) == "odd"


# -- the language ----------------------------------------------------------------------------------
UNET_LIKE = """
block Halve() {
  in x: [N, C, 2*H2, 2*W2]
  out x |> reshape((N, C, H2, 2, W2, 2)) |> mean((3, 5))
}
model M(width: int = 4) {
  in image: [N, 3, 32*P, 32*Q]
  down = Conv2d(width, 3, stride=2, padding=1)
  proj = Conv2d(width, 1)
  a = image |> down
  b = image |> MaxPool2d(2) |> proj
  out concat([a, b], dim=1) |> Halve()
}
"""


def test_pattern_inputs_bind_and_block_patterns_are_solved() -> None:
    g = archdsl.compile(UNET_LIKE)
    assert str(g.inputs["image"]) == "[N, 3, 32*P, 32*Q]"
    assert [str(t) for t in g.output_types().values()] == ["[N, 8, 8*P, 8*Q]"]
    m = archdsl.build(g, check_inputs=True)
    source = generate_source(g, check_inputs=True)
    assert "P = image.shape[2] // 32" in source and "Q = image.shape[3] // 32" in source
    for h, w in ((64, 96), (32, 32)):
        assert tuple(m(torch.randn(1, 3, h, w)).shape) == (1, 8, h // 4, w // 4)


def test_check_inputs_names_the_pattern_an_input_breaks() -> None:
    m = archdsl.build(archdsl.compile(UNET_LIKE), check_inputs=True)
    with pytest.raises(InputShapeError, match=r"axis 2 should be 32\*P \(a multiple of 32\), not 65"):
        m(torch.randn(1, 3, 65, 96))
    with pytest.raises(InputShapeError, match=r"declared at <string>:7:3"):
        m(torch.randn(1, 3, 64, 90))


@pytest.mark.parametrize(("src", "message"), [
    ("model M() {\n in x: [N, H*W]\n out x\n}", "the input size H\\*W does not determine H and W"),
    ("model M() {\n in x: [N, 3, H]\n out x |> B()\n}\nblock B() {\n in x: [N, C, 2*H2]\n out x\n}",
     "dim 2 should be 2\\*H2, but H is not known to be a multiple of 2"),
    ("model M() {\n in x: [N, 3, 6]\n out x |> B()\n}\nblock B() {\n in x: [N, C, 4*H2 + 1]\n out x\n}",
     "but 6 is not 1 more than a multiple of 4"),
    ("model M() {\n in x: [N, 3, 2*H]\n out x |> B()\n}\nblock B() {\n in x: [N, C, A*D]\n out x\n}",
     "linear in one new name"),
])
def test_pattern_errors(src: str, message: str) -> None:
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(src)


MOVES = """
model M() {
  in x: [N, 4, H, W]
  let h = (H + 1) // 2
  let w = (W + 1) // 2
  pos = Parameter((1, 4, 16), "normal(std=0.02)")
  y = x |> interpolate(size=(2 * h, 2 * w), mode="bilinear", align_corners=false)
  t = y |> reshape((N, 4, h, 2, w, 2)) |> permute((0, 3, 5, 2, 4, 1)) |> reshape((N * 4, h * w, 4))
  z = t |> reshape((-1, 2, 2, h, w, 4)) |> permute((0, 5, 3, 1, 4, 2)) |> reshape((N, 4, 2 * h, 2 * w))
  back = z |> interpolate(size=(H, W), mode="bilinear", align_corners=false)
  row = pos |> slice(2, 1, end=W) |> unsqueeze(2) |> expand((N, 4, H, W - 1))
  out concat([back, row], dim=3)
}
"""


def _reference(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """MOVES in plain PyTorch (MobileViT's unfold / fold around a transformer, a sliced position row)."""
    n, c, hh, ww = x.shape
    h, w = -(-hh // 2), -(-ww // 2)
    y = torch.nn.functional.interpolate(x, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
    t = y.reshape(n, c, h, 2, w, 2).permute(0, 3, 5, 2, 4, 1).reshape(n * 4, h * w, c)
    z = t.reshape(-1, 2, 2, h, w, c).permute(0, 5, 3, 1, 4, 2).reshape(n, c, 2 * h, 2 * w)
    back = torch.nn.functional.interpolate(z, size=(hh, ww), mode="bilinear", align_corners=False)
    row = pos[:, :, 1:ww].unsqueeze(2).expand(n, c, hh, ww - 1)
    return torch.cat([back, row], dim=3)


@pytest.mark.parametrize("shape", [(2, 4, 8, 6), (1, 4, 7, 5), (3, 4, 1, 3)])
def test_sizes_bound_at_the_top_of_forward_match_torch(shape) -> None:
    g = archdsl.compile(MOVES)
    m = archdsl.build(g, seed=0)
    x = torch.randn(*shape)
    torch.testing.assert_close(m(x), _reference(x, m.pos), rtol=0, atol=0)
    assert "H = x.shape[2]" in generate_source(g)


def test_resizing_to_the_same_size_is_the_identity() -> None:
    """MobileViT always resizes; timm only when the sizes differ: equal only because this is exact."""
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    assert torch.equal(torch.nn.functional.interpolate(x, size=(8, 6), mode="bilinear", align_corners=False), x)


def test_reshape_splits_a_flattened_axis_back_into_symbols() -> None:
    g = archdsl.compile("model M() {\n in x: [N, 6, H, W]\n out reshape(flatten(x, 2), (N, 6, H, W))\n}")
    x = torch.randn(2, 6, 3, 5)
    assert torch.equal(archdsl.build(g)(x), x)


def test_a_size_no_input_determines_is_a_located_error() -> None:
    from archdsl.backends.torch.rules.common import bound_symbol

    with pytest.raises(archdsl.ArchError, match="cannot be computed from the model's inputs"):
        bound_symbol("T")


@pytest.mark.parametrize("sizes", [{"N": 2, "H": 7, "W": 5}, {"N": 1, "H": 8, "W": 6}])
def test_onnx_computes_the_bound_sizes_at_two_input_sizes(sizes) -> None:
    pytest.importorskip("onnxruntime")
    from archdsl.backends.onnx import onnx_parity

    report = onnx_parity(MOVES, sizes=sizes)
    assert report.ok, str(report)


def test_onnx_binds_pattern_symbols() -> None:
    pytest.importorskip("onnxruntime")
    from archdsl.backends.onnx import onnx_parity

    for p, q in ((1, 2), (2, 1)):
        report = onnx_parity(UNET_LIKE, sizes={"N": 1, "P": p, "Q": q})
        assert report.ok, str(report)


@given(st.sampled_from([operator.floordiv, operator.mod]), st.integers(1, 6), st.integers(1, 50))
def test_patterns_divide_exactly(op, k: int, p: int) -> None:
    d = op(32 * k * P, 2 * k)
    assert (d if isinstance(d, int) else d.evaluate({"P": p})) == op(32 * k * p, 2 * k)


def test_fmt_and_yaml_round_trip_pattern_inputs(tmp_path) -> None:
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_frontend import parse_yaml
    from archdsl.syntax.yaml_printer import format_yaml

    module = parse(UNET_LIKE)
    text = format_module(module)
    assert "in image: [N, 3, 32 * P, 32 * Q]" in text and "in x: [N, C, 2 * H2, 2 * W2]" in text
    assert parse(text) == module and format_module(parse(text)) == text
    yaml_text = format_yaml(module)
    assert "32 * P" in yaml_text
    assert parse_yaml(yaml_text) == module
    (tmp_path / "m.yaml").write_text(yaml_text, encoding="utf-8")
    assert archdsl.compile(tmp_path / "m.yaml").inputs == archdsl.compile(UNET_LIKE).inputs


WHERE = """
block Halve() {
  in x: [N, C, H, W] where H % 2 == 0 and W % 2 == 0
  out x |> reshape((N, C, H // 2, 2, W // 2, 2)) |> mean((3, 5))
}
model M(width: int = 4) {
  in image: [N, 3, H, W] where H % 32 == 0 and W % 32 == 0
  down = Conv2d(width, 3, stride=2, padding=1)
  proj = Conv2d(width, 1)
  a = image |> down
  b = image |> MaxPool2d(2) |> proj
  out concat([a, b], dim=1) |> Halve()
}
"""


def test_where_makes_a_size_a_multiple_that_arithmetic_knows() -> None:
    g = archdsl.compile(WHERE)
    assert [str(t) for t in g.output_types().values()] == ["[N, 8, 8*(H//32), 8*(W//32)]"]
    m = archdsl.build(g, check_inputs=True)
    assert "H = image.shape[2]" in generate_source(g)
    assert tuple(m(torch.randn(2, 3, 64, 96)).shape) == (2, 8, 16, 24)
    with pytest.raises(InputShapeError, match=r"axis 3 should be W where W % 32 == 0 \(a multiple of 32\), not 90"):
        m(torch.randn(1, 3, 64, 90))


@pytest.mark.parametrize(("src", "message"), [
    ("model M() {\n in x: [N, H] where H > 3\n out x\n}", "states sizes as 'S % k == r'"),
    ("model M() {\n in x: [N, H] where H % 4 == 4\n out x\n}", "states sizes as 'S % k == r'"),
    ("model M() {\n in x: [N, H] where W % 2 == 0\n out x\n}", "'where' constrains 'W'"),
    ("model M() {\n in x: [N, 3, H]\n out x |> B()\n}\nblock B() {\n in x: [N, C, H] where H % 2 == 0\n out x\n}",
     "input 'x' of B needs H % 2 == 0, which the sizes that arrive do not provably satisfy"),
])
def test_where_errors(src: str, message: str) -> None:
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(src)


def test_where_round_trips_through_fmt_and_yaml(tmp_path) -> None:
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_frontend import parse_yaml
    from archdsl.syntax.yaml_printer import format_yaml

    module = parse(WHERE)
    text = format_module(module)
    assert "in image: [N, 3, H, W] where H % 32 == 0 and W % 32 == 0" in text
    assert parse(text) == module
    yaml_text = format_yaml(module)
    assert "where H % 32 == 0" in yaml_text and parse_yaml(yaml_text) == module
    (tmp_path / "m.yaml").write_text(yaml_text, encoding="utf-8")
    assert archdsl.compile(tmp_path / "m.yaml").inputs == archdsl.compile(WHERE).inputs


def test_onnx_binds_a_constrained_size() -> None:
    pytest.importorskip("onnxruntime")
    from archdsl.backends.onnx import onnx_parity

    for h, w in ((32, 64), (64, 32)):
        report = onnx_parity(WHERE, sizes={"N": 1, "H": h, "W": w})
        assert report.ok, str(report)


def test_ceil_and_floor_of_a_symbolic_ratio_in_the_language() -> None:
    """`ceil(32*P / 2) == floor(32*P / 2) == 32*P / 2 == 16*P`; `ceil(H / 2)` is `(H + 1)//2`."""
    src = """
    model M() {
      in x: [N, 32*P, H]
      let a = ceil(32 * P / 2)
      let b = floor(32 * P / 2)
      let c = 32 * P / 2
      y = x |> reshape((N, a, 2, H)) |> reshape((N, b, 2 * H)) |> reshape((N, c * 2, H))
      out y |> interpolate(size=2 * ceil(H / 2), mode="linear")
    }
    """
    g = archdsl.compile(src)
    assert [str(t) for t in g.output_types().values()] == ["[N, 32*P, 2*((H + 1)//2)]"]
    out = archdsl.build(g)(torch.randn(2, 32, 5))
    assert tuple(out.shape) == (2, 32, 6)
    with pytest.raises(archdsl.ArchError, match="not a whole size"):
        archdsl.compile("model M() {\n in x: [N, H]\n out x |> reshape((N, H / 2, 2))\n}")


@pytest.mark.parametrize("src", [UNET_LIKE, WHERE], ids=["pattern", "where"])
def test_deploy_spec_declares_patterns_and_rules(src: str) -> None:
    """graph -> .arch (simplify's deploy spec) keeps `32 * P` and `where H % 32 == 0`, and compiles back."""
    from archdsl.ir.to_spec import graph_to_spec

    g = archdsl.compile(src)
    text = graph_to_spec(g)
    assert ("[N, 3, 32 * P, 32 * Q]" in text) if src is UNET_LIKE else ("where H % 32 == 0 and W % 32 == 0" in text)
    back = archdsl.compile(text)
    assert back.inputs == g.inputs and back.output_types() == g.output_types()
