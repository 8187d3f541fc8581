"""``archdsl ops``: the op reference from the declarations, and docs/ops.md kept in step with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl.cli import main
from archdsl.commands import ops as reference
from archdsl.ops.registry import all_ops

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ops.md"


def test_docs_ops_md_is_current() -> None:
    """docs/ops.md is exactly what the declarations generate; regenerate: archdsl ops --markdown > docs/ops.md"""
    assert DOCS.read_text(encoding="utf-8") == reference.markdown(), \
        "docs/ops.md is stale: run `archdsl ops --markdown > docs/ops.md`"


def test_every_op_is_listed_with_an_anchor() -> None:
    text = reference.markdown()
    for op in all_ops():
        assert f"\n### {op.__name__}\n" in text and f"(#{op.__name__.lower()})" in text


def test_one_op_page(capsys) -> None:
    assert main(["ops", "GroupNorm"]) == 0
    out = capsys.readouterr().out
    assert "GroupNorm(num_groups: int, eps: float = 1e-05, affine: bool = true)" in out
    assert "IR name group_norm" in out and "traits:" in out
    assert "parameters (example on x: [N, 8, 16, 16]): weight [8] float32, bias [8] float32" in out
    assert "example: GroupNorm(2)" in out


def test_op_page_by_ir_name_with_a_spec_example(capsys) -> None:
    assert main(["ops", "conv2d"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Conv2d  (IR name conv2d; family conv)")
    assert 'padding_mode: "zeros" | "reflect" | "replicate" | "circular" = "zeros"' in out
    assert "weight [" in out and ".arch)" in out          # an example call found in a shipped spec


def test_listing_groups_by_family(capsys) -> None:
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "conv:\n  Conv1d" in out and "\nnorm:\n" in out and "Upsample" in out


@pytest.mark.parametrize(("name", "hint"), [("GroupNrom", "GroupNorm"), ("zzzzzz", "archdsl ops")])
def test_unknown_op_is_a_usage_error(capsys, name: str, hint: str) -> None:
    assert main(["ops", name]) == 2
    err = capsys.readouterr().err
    assert f"no op named '{name}'" in err and hint in err
