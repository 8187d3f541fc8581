"""Binding symbolic sizes: parsing --input, substituting into dims, and rejecting bad sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.analysis import bind, parse_sizes, substitute
from archdsl.errors import ShapeError, UsageError
from archdsl.ir.dims import SymDim, parse_dim

NET = """
model Valid() {
  in x: [N, 3, H, W]
  conv = Conv2d(4, 5, stride=2)
  out x |> conv |> relu
}
"""


def test_parse_sizes_merges_flags() -> None:
    assert parse_sizes(["N=1,H=224", " W = 32 "]) == {"N": 1, "H": 224, "W": 32}
    assert parse_sizes(None) == {}


@pytest.mark.parametrize("text", ["N", "N=", "N=0", "N=-1", "N=x", "1=2", "N=1.5", "N=²"])
def test_parse_sizes_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError, match="--input expects NAME=SIZE"):
        parse_sizes(text)


def test_substitute_partial_keeps_symbols() -> None:
    d = parse_dim("N*((H + 1)//2) + W")
    assert substitute(d, {"N": 2, "H": 5, "W": 1}) == 7
    partial = substitute(d, {"H": 5})
    assert isinstance(partial, SymDim) and partial == parse_dim("3*N + W")
    assert substitute(7, {"N": 1}) == 7


@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 4))
def test_substitute_agrees_with_evaluate(h: int, n: int, k: int) -> None:
    d = parse_dim(f"(N*(H - 1)//{k} + 1)*((H + {k})//2)")
    assert substitute(substitute(d, {"H": h}), {"N": n}) == d.evaluate({"H": h, "N": n})


def test_bind_rewrites_every_type() -> None:
    graph = bind(archdsl.compile(NET), {"N": 2, "H": 9, "W": 11})
    assert [str(t) for n in graph.nodes for t in n.types] == ["[2, 4, 3, 4]", "[2, 4, 3, 4]"]
    assert str(graph.inputs["x"]) == "[2, 3, 9, 11]"


def test_bind_unknown_symbol_lists_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown size 'T'") as info:
        bind(archdsl.compile(NET), {"T": 3})
    assert "N, H, W" in info.value.render()


def test_bind_too_small_input_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="conv2d"):
        bind(archdsl.compile(NET), {"H": 3})
