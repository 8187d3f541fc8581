"""The shipped LALR tables (grammar/arch_tables.json): in sync with the grammar, parse exactly as the built
parser does, and are ignored (tables built from the grammar) when stale, corrupt or missing.

lark numbers its states differently from one process to the next, so "in sync" is checked by the grammar's
fingerprint and by parsing: same trees and same errors (with the same expected tokens) as a freshly built parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import lark
import pytest

from archdsl.syntax import parser as P
from archdsl.syntax import tables

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").rglob("*.arch")) + sorted((ROOT / "tests" / "data").rglob("*.arch"))


def _tables_text() -> str:
    return tables.tables_path().read_text(encoding="utf-8")


def test_shipped_tables_match_the_grammar() -> None:
    text = tables.grammar_text()
    payload = json.loads(_tables_text())
    assert payload["fingerprint"] == tables.fingerprint(text), \
        "grammar/arch_tables.json is stale: run `python -m archdsl.syntax.tables`"


def test_the_parser_in_use_comes_from_the_shipped_tables() -> None:
    assert tables.load(tables.grammar_text(), P._comment) is not None
    assert P._parser().source_path == "<deserialized>"


def _outcome(parser: lark.Lark, text: str, start: str = "start"):
    try:
        return parser.parse(text, start=start)
    except lark.exceptions.UnexpectedInput as exc:
        return type(exc).__name__, exc.line, exc.column, sorted(getattr(exc, "expected", ()) or ())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_loaded_tables_parse_every_spec_as_the_built_parser(path: Path) -> None:
    text = tables.grammar_text()
    built, loaded = tables.build(text, P._comment), tables.load(text, P._comment)
    source = path.read_text(encoding="utf-8")
    assert _outcome(loaded, source) == _outcome(built, source)


@pytest.mark.parametrize(("source", "start"), [
    ("model m() { in x: [N, 4]\n out x |> }", "start"), ("block B(c: int) { out 1 +", "start"),
    ("(1, 2", "expr"), ("[N, C, H W]", "tensor_type"), ("list[int", "type_name"), ("a |> b(c=1) if d else e", "expr"),
])
def test_loaded_tables_report_the_same_errors_and_trees(source: str, start: str) -> None:
    text = tables.grammar_text()
    built, loaded = tables.build(text, P._comment), tables.load(text, P._comment)
    assert _outcome(loaded, source, start) == _outcome(built, source, start)


@pytest.mark.parametrize("damage", ["stale", "corrupt", "missing", "wrong-shape"])
def test_unusable_tables_fall_back_to_building(damage: str, tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / tables.TABLES
    if damage == "stale":
        payload = json.loads(_tables_text())
        payload["fingerprint"]["grammar_sha256"] = "0" * 64
        target.write_text(json.dumps(payload), encoding="utf-8")
    elif damage == "corrupt":
        target.write_text(_tables_text()[:1000], encoding="utf-8")
    elif damage == "wrong-shape":
        target.write_text(json.dumps({"fingerprint": tables.fingerprint(tables.grammar_text()), "data": [1],
                                      "memo": {}}), encoding="utf-8")
    monkeypatch.setattr(tables, "tables_path", lambda: target)
    assert tables.load(tables.grammar_text(), P._comment) is None
    parser = tables.parser(P._comment)
    assert parser.source_path != "<deserialized>"
    assert parser.parse("model m() { in x: [N]\n out x }", start="start") is not None
