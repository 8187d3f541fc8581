"""The .arch parser's LALR tables, shipped beside the grammar so no process has to build them.

Building lark's LALR tables from ``grammar/arch.lark`` costs about 0.15 s of CPU in every process; loading
them from ``grammar/arch_tables.json`` costs about 0.015 s. The file is plain JSON (never a pickle: loading it
runs no code), lives inside the installed package beside the grammar, and records the SHA-256 of the grammar
text and the lark version it was built from. When either differs (the grammar was edited, lark was upgraded)
or the file is missing or unreadable, the tables are built from the grammar as before, so a stale file costs
time, never correctness. ``python -m archdsl.syntax.tables`` rewrites the file; a test checks it is in sync.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lark
from lark.lark import Rule, TerminalDef

GRAMMAR = "arch.lark"
TABLES = "arch_tables.json"
START_RULES = ("start", "expr", "tensor_type", "type_name")
OPTIONS: dict[str, Any] = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True,
                           "start": list(START_RULES)}
FORMAT = 1          # bumped when the layout of the JSON file changes


def grammar_text() -> str:
    """The text of ``grammar/arch.lark``."""
    return importlib.resources.files("archdsl.grammar").joinpath(GRAMMAR).read_text(encoding="utf-8")


def fingerprint(text: str) -> dict[str, Any]:
    """What the tables were built from: the grammar's SHA-256, the lark version and this file's format."""
    return {"grammar_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "lark": lark.__version__,
            "format": FORMAT}


def build(text: str, comment: Callable[[Any], Any]) -> lark.Lark:
    """The parser built from the grammar text (the slow path)."""
    return lark.Lark(text, **OPTIONS, lexer_callbacks={"COMMENT": comment})


def serialise(parser: lark.Lark, text: str) -> str:
    """The JSON text of ``parser``'s tables, with the fingerprint of ``text`` (lexer callbacks left out)."""
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k != "lexer_callbacks"}
    payload = {"fingerprint": fingerprint(text), "data": data, "memo": memo}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n"


def _int_keys(obj: dict[str, Any]) -> dict[Any, Any]:
    """JSON object hook: lark's state and memo numbers are int keys, which JSON spells as strings."""
    return {int(k) if k.isdigit() else k: v for k, v in obj.items()}


def load(text: str, comment: Callable[[Any], Any]) -> lark.Lark | None:
    """The parser from the shipped tables, or None when they are missing, unreadable or not for ``text``."""
    try:
        raw = tables_path().read_text(encoding="utf-8")
        payload = json.loads(raw, object_hook=_int_keys)
        if payload.get("fingerprint") != fingerprint(text):
            return None
        return lark.Lark._load_from_dict(payload["data"], payload["memo"], lexer_callbacks={"COMMENT": comment})
    except Exception:       # noqa: BLE001 - any damage to the file means: build the tables instead
        return None


def parser(comment: Callable[[Any], Any]) -> lark.Lark:
    """The .arch parser: from the shipped tables when they match the grammar, else built from it."""
    text = grammar_text()
    return load(text, comment) or build(text, comment)


def tables_path() -> Path:
    """Where the tables file lives in this checkout or installation."""
    return Path(str(importlib.resources.files("archdsl.grammar").joinpath(TABLES)))


def main() -> int:
    """Rewrite ``grammar/arch_tables.json`` from the grammar (run after editing ``arch.lark``).

    lark numbers states in an order that varies between processes, so two runs give different bytes for the
    same grammar; tests/syntax/test_tables.py checks the file by fingerprint and by parsing, not by bytes.
    """
    text = grammar_text()
    path = tables_path()
    path.write_text(serialise(build(text, lambda tok: tok), text), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
