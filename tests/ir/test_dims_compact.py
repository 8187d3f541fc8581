"""The short form of symbolic sizes that tables print (``stats``' MAC column)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archdsl.ir.dims import parse_dim


@pytest.mark.parametrize(("text", "short"), [
    ("9408*N*((H + 1)//2)*((W + 1)//2)", "9.41K·N·⌈H/2⌉·⌈W/2⌉"),
    ("9408*((H + 1)//2)*((W + 1)//2)*N + 2097152*((H + 15)//16)*((W + 15)//16)*N + 512000*N",
     "N·(9.41K·⌈H/2⌉·⌈W/2⌉ + 2.1M·⌈H/16⌉·⌈W/16⌉ + 512K)"),
    ("N*(H//2) - 3", "N·⌊H/2⌋ - 3"),
    ("432*N", "432·N"),
    ("((H - 1)//2)*N", "N·(⌈H/2⌉ - 1)"),
    ("(H + W)//3", "⌊(H + W)/3⌋"),
])
def test_short_forms(text: str, short: str) -> None:
    assert parse_dim(text).compact() == short


@given(st.integers(1, 10**7), st.integers(2, 32))
def test_the_resnet_stem_formula_stays_short(coef: int, k: int) -> None:
    d = parse_dim(f"{coef}*N*((H + {k - 1})//{k})*((W + {k - 1})//{k})")
    assert len(d.compact()) <= len(f"{coef:.3g}") + 24 and len(d.compact()) < len(str(d))
