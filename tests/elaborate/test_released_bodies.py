"""A block's body syntax is released after it is applied and parsed again when it is read again
(``ast.release_body``): graphs, printing and errors are exactly those of an elaboration that keeps every body."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from archdsl import zoo
from archdsl.elaborate import apply, elaborate_model, load
from archdsl.elaborate.loader import _parse_cached
from archdsl.errors import ArchError
from archdsl.ir.printer import print_graph
from archdsl.syntax import ast as A
from archdsl.syntax.parser import parse
from archdsl.verify import verify

DATA = Path(__file__).resolve().parent.parent.parent / "specs"


def distinct(count: int) -> str:
    """The benchmark's shape: ``count`` distinct documented blocks, each applied once, some twice more."""
    blocks = "".join(f"""block B{i}(c: int) {{
  "Block {i}."
  in x: [N, c]
  a = Linear({8 + i % 5})
  n = LayerNorm()   # a comment
  b = Linear(c)
  out x + (gelu(x |> a |> n) |> b)
}}
""" for i in range(count))
    calls = ", ".join(f"B{i}(16)" for i in range(count))
    again = ", ".join(f"B{i}(16)" for i in range(0, count, 3))    # the same arguments: replayed
    return f"""{blocks}
model Distinct() {{
  in x: [N, 16]
  body = seq[{calls}]
  more = seq[{again}]
  out x |> body |> more
}}
"""


# a block applied with other arguments after its first application, indented, with comments and blank lines
TWICE = """
# a header comment

    block Unit(c: int, h: int) {
      "Documented."
      in x: [N, c]   # its input

      up = Linear(h)
      down = Linear(c)
      out x + relu(x |> up |> down)
    }

model Twice() {
  in x: [N, 8]
  first = Unit(8, 4)
  second = Unit(8, 6)
  out x |> first |> second |> Unit(8, 5)
}
"""


@pytest.fixture(autouse=True)
def release_small_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies are let go only in big spec files (apply.RELEASE_FROM_TEXT); these tests use small ones."""
    monkeypatch.setattr(apply, "RELEASE_FROM_TEXT", 0)


def test_only_big_spec_files_let_bodies_go(monkeypatch: pytest.MonkeyPatch) -> None:
    text = distinct(12)
    slot = A.BlockDef.__dict__["body"]
    for threshold, released in ((len(text) + 1, False), (len(text), True)):
        monkeypatch.setattr(apply, "RELEASE_FROM_TEXT", threshold)
        _, _, ns = elaborate(text, "Distinct", True, monkeypatch)
        assert (type(slot.get(ns.blocks["B1"])) is A.SourceText) is released


def elaborate(text: str, model: str, release: bool, monkeypatch: pytest.MonkeyPatch):
    """The graph (or the error) of ``model``, with bodies released or kept; parsed afresh either way."""
    _parse_cached.cache_clear()
    with monkeypatch.context() as patch:
        if not release:
            patch.setattr(apply, "release_body", lambda block, text: False)
        ns, loader = load(text)
        try:
            graph = elaborate_model(ns, loader, model)
        except ArchError as exc:
            return None, str(exc), ns
        assert verify(graph, loader.sources) == []
        return graph, print_graph(graph), ns


def same(text: str, model: str, monkeypatch: pytest.MonkeyPatch):
    kept, kept_text, _ = elaborate(text, model, False, monkeypatch)
    released, released_text, ns = elaborate(text, model, True, monkeypatch)
    assert released_text == kept_text
    if kept is not None:
        assert released == kept and released.to_json() == kept.to_json()
        assert [n.span for n in released.nodes] == [n.span for n in kept.nodes]
    return released, ns


def test_distinct_blocks_give_the_same_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    graph, ns = same(distinct(30), "Distinct", monkeypatch)
    assert graph is not None
    slot = A.BlockDef.__dict__["body"]
    assert type(slot.get(ns.blocks["B1"])) is A.SourceText           # applied once: let go
    assert type(slot.get(ns.blocks["Distinct"])) is tuple           # the model itself is kept


def test_a_block_applied_again_with_other_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    graph, ns = same(TWICE, "Twice", monkeypatch)
    assert graph is not None and {"first.up", "second.up"} <= {n.module for n in graph.nodes}
    body = ns.blocks["Unit"].body
    assert type(body) is A._Kept                                    # parsed again once, then kept
    assert A.release_body(ns.blocks["Unit"], ns.source) is False and ns.blocks["Unit"].body is body


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "repvgg_a0", "densenet121", "gla_lm"])
def test_zoo_models(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = zoo.spec_path(name)
    assert path is not None
    text = path.read_text(encoding="utf-8")
    kept, kept_text, _ = elaborate(text, name, False, monkeypatch)
    released, released_text, _ = elaborate(text, name, True, monkeypatch)
    assert kept is not None and released == kept and released_text == kept_text


def test_errors_in_a_later_application_keep_message_and_place(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = TWICE.replace("out x |> first |> second |> Unit(8, 5)", "out x |> first |> second |> Unit(9, 5)")
    graph, _ = same(bad, "Twice", monkeypatch)
    assert graph is None
    _, message, _ = elaborate(bad, "Twice", True, monkeypatch)
    assert ":6:" in message or ":7:" in message                      # inside the block's body, as before
    used = TWICE.replace("down = Linear(c)\n", "down = Linear(c)\n      unused = Linear(c)\n")
    with pytest.warns(UserWarning) as first:
        elaborate(used, "Twice", False, monkeypatch)
    with pytest.warns(UserWarning) as second:
        elaborate(used, "Twice", True, monkeypatch)
    assert [str(w.message) for w in first] == [str(w.message) for w in second]


def test_reparsed_bodies_equal_the_first_parse_spans_and_trivia_included() -> None:
    files = sorted(DATA.glob("*.arch"))
    assert files
    for file in files:
        text = file.read_text(encoding="utf-8")
        for block in parse(text, str(file)).items:
            if isinstance(block, A.BlockDef):
                before, trivia = repr(block.body), [s.trivia for s in block.body]
                assert A.release_body(block, A.SourceText(text))
                assert repr(block.body) == before and [s.trivia for s in block.body] == trivia


def test_released_blocks_pickle_and_compare_as_before() -> None:
    module = parse(TWICE, "twice.arch")
    block = module.items[0]
    copy = pickle.loads(pickle.dumps(block))
    assert A.release_body(block, A.SourceText(TWICE))
    assert block == copy and pickle.loads(pickle.dumps(block)) == copy and hash(repr(block)) == hash(repr(copy))


def test_only_arch_text_is_released() -> None:
    yaml_like = A.BlockDef("block", "B", (), (), None)              # a Span object with no text: not from a parse
    assert A.release_body(yaml_like, A.SourceText("block B() {}")) is False
    assert A.release_body(parse(TWICE, "t.arch").items[0], None) is False


def test_a_full_replay_memo_starts_again_with_the_same_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """The applier remembers at most EXPANSION_MEMO block applications for replay; past it, it starts again."""
    text = distinct(12).replace("more = seq[", "more = seq[B0(16), B1(16), B0(16), ")
    kept, kept_text, _ = elaborate(text, "Distinct", True, monkeypatch)
    monkeypatch.setattr(apply, "EXPANSION_MEMO", 2)
    small, small_text, _ = elaborate(text, "Distinct", True, monkeypatch)
    assert kept is not None and small == kept and small_text == kept_text
