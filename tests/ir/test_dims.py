"""Symbolic dims: arithmetic agrees with integer arithmetic, printing round-trips, normal forms are canonical."""

from __future__ import annotations

import operator

from hypothesis import given
from hypothesis import strategies as st

from archdsl.ir.dims import Dim, SymDim, parse_dim

SYMBOLS = ("N", "H", "W")
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
DIVS = {"//": operator.floordiv, "%": operator.mod}


def _binary(children: st.SearchStrategy) -> st.SearchStrategy:
    ring = st.tuples(st.sampled_from(sorted(OPS)), children, children).map(lambda t: OPS[t[0]](t[1], t[2]))
    div = st.tuples(st.sampled_from(sorted(DIVS)), children, st.integers(1, 7)).map(lambda t: DIVS[t[0]](t[1], t[2]))
    return st.one_of(ring, div)


LEAVES = st.one_of(st.integers(-20, 20), st.sampled_from(SYMBOLS).map(SymDim.symbol))
DIMS = st.recursive(LEAVES, _binary, max_leaves=8)
ENVS = st.fixed_dictionaries({s: st.integers(-60, 60) for s in SYMBOLS})


def value(d: Dim, env: dict[str, int]) -> int:
    """The integer a dim stands for under ``env``."""
    return d if isinstance(d, int) else d.evaluate(env)


@given(DIMS, DIMS, st.sampled_from(sorted(OPS)), ENVS)
def test_ring_operations_commute_with_evaluation(a: Dim, b: Dim, op: str, env: dict[str, int]) -> None:
    """evaluate(a op b) == evaluate(a) op evaluate(b) for + - *."""
    assert value(OPS[op](a, b), env) == OPS[op](value(a, env), value(b, env))


@given(DIMS, st.integers(1, 9), st.sampled_from(sorted(DIVS)), ENVS)
def test_floor_division_and_modulo_are_exact(a: Dim, k: int, op: str, env: dict[str, int]) -> None:
    """Floor division and modulo by a positive integer agree with Python's, for every value of the symbols."""
    assert value(DIVS[op](a, k), env) == DIVS[op](value(a, env), k)


@given(DIMS)
def test_printing_round_trips(d: Dim) -> None:
    """parse_dim(str(d)) == d, for ints and symbolic polynomials with floor-division atoms."""
    assert parse_dim(str(d)) == d


@given(DIMS, DIMS)
def test_equal_dims_hash_equal(a: Dim, b: Dim) -> None:
    """Equality is structural on the normal form, and hashing agrees with it."""
    if a == b:
        assert hash(a) == hash(b)
    assert a - a == 0


@given(st.sampled_from(SYMBOLS), st.integers(1, 9), st.integers(-20, 20))
def test_normal_forms(name: str, k: int, c: int) -> None:
    """``H*k//k == H``, ``(H*k + c)//k`` splits off the exact part, and constants collapse to ints."""
    h = SymDim.symbol(name)
    assert h * k // k == h
    assert (h * k + c * k) // k == h + c
    assert isinstance(h - h + c, int)


def test_known_identities() -> None:
    """The identities shape rules rely on."""
    h = SymDim.symbol("H")
    assert (h - 1) // 2 + 1 == (h + 1) // 2
    assert 2 * h // 2 == h
    assert h % 1 == 0
    assert str((h + 1) // 2) == "((H + 1)//2)"
    assert parse_dim("2*H + 1") == 2 * h + 1


def test_nested_floor_divisions_collapse() -> None:
    """floor((floor(p/m) + c)/k) == floor((p + c*m)/(m*k)): two stride-2 convs equal one stride-4 window."""
    from archdsl.ir.dims import SymDim

    h = SymDim.symbol("H")
    assert ((h + 1) // 2 + 1) // 2 == (h + 3) // 4
    assert ((h - 1) // 2) // 2 == (h - 1) // 4
    assert str(((h + 1) // 2 + 1) // 2) == "((H + 3)//4)"
