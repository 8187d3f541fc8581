"""Sane limits: repeat counts, block nesting, expression depth, total work, number sizes, node and import counts."""

from __future__ import annotations

from pathlib import Path

import pytest

import archdsl
from archdsl.elaborate import builder
from archdsl.elaborate.loader import MAX_IMPORT_DEPTH
from archdsl.errors import ArchError, LimitError


def model(body: str, before: str = "") -> str:
    """A model with one input ``x: [N, 3, H, W]`` and ``body`` as its statements."""
    return before + "model M() {\n  in x: [N, 3, H, W]\n" + body + "\n}\n"


def limit_error(source: str) -> LimitError:
    """The LimitError compiling ``source`` raises."""
    with pytest.raises(LimitError) as info:
        archdsl.compile(source)
    assert info.value.diagnostics[0].span is not None
    return info.value


def chain_of_blocks(depth: int, innermost: str) -> str:
    """Blocks B0 -> B1 -> ... -> B{depth}, the last with ``out innermost``, applied by a model."""
    text = "".join(f"block B{i}() {{\n  in x: [N, 3, H, W]\n  b = B{i + 1}()\n  out x |> b\n}}\n"
                   for i in range(depth))
    text += f"block B{depth}() {{\n  in x: [N, 3, H, W]\n  out {innermost}\n}}\n"
    return text + model("  b = B0()\n  out x |> b")


@pytest.mark.parametrize("expr", [
    "x" + " |> relu" * 700,
    "x * (" + "+".join(["1"] * 700) + ")",
    " + ".join(["x"] * 700),
    "x * " + "-" * 700 + "1",
    "x if " + "not " * 700 + "true",
    "x if false else " * 700 + "x",
], ids=["pipes", "sum", "tensor-sum", "negations", "nots", "conditionals"])
def test_long_expressions(expr: str) -> None:
    """Expressions too deep for the evaluator are refused with a LimitError, never a RecursionError."""
    assert "nest too deeply" in limit_error(model(f"  out {expr}")).diagnostics[0].message


def test_long_expression_inside_deep_blocks() -> None:
    """Block nesting within its limit plus a long expression still ends in a LimitError at the innermost block."""
    exc = limit_error(chain_of_blocks(63, "x" + " |> relu" * 400))
    assert "nests too deeply" in exc.diagnostics[0].message


def test_repeat_count() -> None:
    """A single range beyond the repeat limit."""
    assert "more than the limit of 10,000" in limit_error(model("  out x * len(range(10**6))")).render()


def test_comprehension_product() -> None:
    """Nested loops in one comprehension are counted together."""
    exc = limit_error(model("  out x * len([1 for i in range(100) for j in range(100) for k in range(100)])"))
    assert exc.diagnostics[0].message == "comprehension makes more than 10,000 items"


def test_total_work() -> None:
    """Many comprehensions, each within the limit, are bounded in total."""
    exc = limit_error(model("  out x * len([[1 for i in range(9000)] for j in range(100)])"))
    assert exc.diagnostics[0].message.startswith("the spec makes more than 500,000")


def test_string_doubling() -> None:
    """Constants that double a string are bounded too."""
    lets = 'let s0 = "ab"\n' + "".join(f"let s{i + 1} = s{i} + s{i}\n" for i in range(64))
    limit_error(model("  out x * len(s64)", lets))


def test_symbolic_size_blowup() -> None:
    """Squaring a symbolic size repeatedly stops before the polynomial explodes."""
    body = "  d0 = N + H + W + 1\n" + "".join(f"  d{i + 1} = d{i} * d{i}\n" for i in range(30))
    assert "too large" in limit_error(model(body + "  out x if d30 == 0 else x")).diagnostics[0].message


@pytest.mark.parametrize("expr", ["9" * 40, "2 ** 100", "int(1e300)", "10 ** 64"])
def test_huge_integers(expr: str) -> None:
    """Integers beyond 64 bits are refused wherever they come from."""
    limit_error(model(f"  out x * ({expr})"))


def test_block_nesting_names_the_recursion() -> None:
    """A block applying itself hits the nesting limit; the message shows the chain."""
    exc = limit_error(model("  b = B()\n  out x |> b", "block B() {\n  in x: [N, 3, H, W]\n  b = B()\n  out x |> b\n}\n"))
    assert exc.diagnostics[0].message == "blocks nest deeper than 64 levels (… -> B -> B -> B -> B -> B)"
    assert exc.diagnostics[0].hint == "block B applies itself; a recursion must stop within 64 levels"


def test_bounded_recursion_is_allowed() -> None:
    """A recursion that stops within the limit is fine (a U-Net-like definition)."""
    block = ("block R(n: int) {\n  in x: [N, 3, H, W]\n  inner = R(n - 1) if n > 0\n"
             "  out relu(x |> inner)\n}\n")
    assert len(archdsl.compile(model("  r = R(10)\n  out x |> r", block)).nodes) == 11


def test_node_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model with more nodes than the limit (lowered here to keep the test fast)."""
    monkeypatch.setattr(builder, "MAX_NODES", 50)
    exc = limit_error(model("  body = [relu for i in range(60)]\n  out x |> body"))
    assert exc.diagnostics[0].message == "the model has more than 50 nodes"


def test_import_depth(tmp_path: Path) -> None:
    """A chain of imports deeper than the limit."""
    n = MAX_IMPORT_DEPTH + 2
    for i in range(n):
        (tmp_path / f"f{i}.arch").write_text(f'import "f{i + 1}.arch"\n' if i + 1 < n else "let z = 1\n")
    (tmp_path / "m.arch").write_text('import "f0.arch"\n' + model("  out x"))
    with pytest.raises(ArchError) as info:
        archdsl.compile(tmp_path / "m.arch")
    assert isinstance(info.value, LimitError)
    assert info.value.diagnostics[0].message == f"imports nest deeper than {MAX_IMPORT_DEPTH} files"
