"""A Module as a YAML spec (the form ``yaml_frontend`` reads); ``parse_yaml(format_yaml(m)) == m``.

Written line by line so that comments and blank lines (``ast.Trivia``) sit where they sat in the
source: above a statement at its indentation, or at the end of its first line. PyYAML only quotes
scalars. A value longer than the line width becomes a literal block (``|-``) holding the same
layout ``archdsl fmt`` gives the .arch form; long parameter lists and named outputs become block
mappings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from archdsl.errors import Diagnostic, ParseError
from archdsl.syntax import ast as A
from archdsl.syntax.printer import LINE_WIDTH, format_expr, format_param, format_tensor_type, format_value

_LINE_BREAKS = "\r\x85\u2028\u2029\ufeff"
STEP = "  "


class _Flow(dict):
    """A mapping written inline: ``{x: '[N, C, H, W]'}``."""


class _Dumper(yaml.SafeDumper):
    """Safe dumper that indents lists under their key and writes ``_Flow`` mappings inline."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        """Never indentless: ``body:`` items sit two columns in."""
        super().increase_indent(flow, False)


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None           # multi-line doc strings as literal blocks
    if data.endswith("\n") and (len(data) == 1 or data[-2] == "\n"):
        style = '"'         # a kept ("|+") block ends its document with "...", which breaks the indented layout
    if any(ch in _LINE_BREAKS for ch in data):
        style = '"'                                  # escaped, or a reader would see a line break
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(str, _represent_str)


def _dump(data: Any, indent: str) -> list[str]:
    """``data`` as YAML lines, each prefixed with ``indent``."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)
    return [indent + line if line else line for line in text.rstrip("\n").split("\n")]


def _literal(e: A.Expr, indent: str) -> list[str] | None:
    """``e`` laid out as .arch text in a literal block below a key, or None when it fits on one line."""
    text = format_value(e, "", max(40, LINE_WIDTH - len(indent)))
    if "\n" not in text or any(not (ch.isprintable() or ch == "\n") for ch in text):
        return None
    return ["|-", *(indent + line if line else line for line in text.split("\n"))]


def _comment(text: str) -> str:
    """A comment as YAML can hold it: characters YAML reads as line breaks become spaces."""
    return "".join(" " if ch in _LINE_BREAKS or ch == "\n" else ch for ch in text)


def _with_trailing(lines: list[str], comment: str | None) -> list[str]:
    """A trailing comment at the end of the first line (after a key, or a block scalar's indicator)."""
    if comment:
        lines = [f"{lines[0]}  {_comment(comment)}", *lines[1:]]
    return lines


def _before(out: list[str], before: tuple[str, ...], indent: str) -> None:
    for entry in before:
        if entry or (out and out[-1]):
            out.append(indent + _comment(entry) if entry else "")


def _entry(key: str, value: A.Expr, indent: str, first: str = "") -> list[str]:
    """``key: value`` at ``indent`` (after ``first``, such as "- "), long values as literal blocks."""
    lines = _dump({key: format_expr(value)}, indent + first)
    if len(lines) == 1 and len(lines[0]) <= LINE_WIDTH:
        return lines
    block = _literal(value, indent + len(first) * " " + STEP)
    if block is None:
        return lines
    head = _dump({key: None}, indent + first)[0].removesuffix("null").rstrip()
    return [f"{head} {block[0]}", *block[1:]]


def _stmt(stmt: A.InputStmt | A.OutputStmt | A.Assign, indent: str) -> list[str]:
    """One body item."""
    if isinstance(stmt, A.InputStmt):
        name = f"*{stmt.name}" if stmt.variadic else stmt.name
        where = "" if stmt.where is None else f" where {format_expr(stmt.where)}"
        return _dump([{"in": _Flow({name: format_tensor_type(stmt.type) + where})}], indent)
    if isinstance(stmt, A.OutputStmt):
        if stmt.name is None:
            return _entry("out", stmt.value, indent, "- ")
        named = _Flow(name=stmt.name)
        if stmt.type is not None:
            named["type"] = format_tensor_type(stmt.type)
        named["value"] = format_expr(stmt.value)
        lines = _dump([{"out": named}], indent)
        if len(lines) == 1 and len(lines[0]) <= LINE_WIDTH:
            return lines
        inner = indent + 3 * STEP
        fields = [line for k in ("name", "type") if k in named for line in _dump({k: named[k]}, inner)]
        return [f"{indent}- out:", *fields, *_entry("value", stmt.value, inner)]
    if stmt.let:
        lines = _dump([{"let": _Flow({stmt.targets[0]: format_expr(stmt.value)})}], indent)
        if len(lines) == 1 and len(lines[0]) <= LINE_WIDTH:
            return lines
        return [f"{indent}- let:", *_entry(stmt.targets[0], stmt.value, indent + 2 * STEP)]
    return _entry(", ".join(stmt.targets), stmt.value, indent, "- ")


def _params(block: A.BlockDef) -> dict[str, str]:
    """``{name: "type = default"}``; YAML keys are unique, so a repeated parameter is refused."""
    params: dict[str, str] = {}
    for p in block.params:
        if p.name in params:
            raise ParseError(Diagnostic(f"parameter '{p.name}' of '{block.name}' is declared twice", p.span))
        params[p.name] = format_param(p).partition(": ")[2]
    return params


def _block(block: A.BlockDef, indent: str) -> list[str]:
    """``Name:`` then ``doc``, ``params`` and ``body`` (what is empty left out), with their comments."""
    out: list[str] = []
    _before(out, block.header.before, indent)
    key = _dump({block.name: None}, indent)[0].removesuffix("null").rstrip()
    if block.doc is None and not block.params and not block.body:
        out += _with_trailing([f"{key} {{}}"], block.header.trailing)
        _before(out, block.end, indent + STEP)
        return out
    out += _with_trailing([key], block.header.trailing)
    inner = indent + STEP
    if block.doc is not None:
        _before(out, block.doc_trivia.before, inner)
        out += _with_trailing(_dump({"doc": block.doc}, inner), block.doc_trivia.trailing)
    if block.params:
        params = _params(block)
        lines = _dump({"params": _Flow(params)}, inner)
        out += lines if len(lines[0]) <= LINE_WIDTH else [f"{inner}params:", *_dump(params, inner + STEP)]
    if block.body:
        out.append(f"{inner}body:")
        for stmt in block.body:
            _before(out, stmt.trivia.before, inner + STEP)
            out += _with_trailing(_stmt(stmt, inner + STEP), stmt.trivia.trailing)
    _before(out, block.end, inner + STEP)
    return out


def _item(item: A.Import | A.Assign | A.BlockDef, indent: str) -> list[str]:
    if isinstance(item, A.Import):
        return _dump([item.path if item.alias is None else _Flow(path=item.path, **{"as": item.alias})], indent)
    if isinstance(item, A.Assign):
        return _entry(item.targets[0], item.value, indent)
    return _block(item, indent)


def _section(item: A.Import | A.Assign | A.BlockDef) -> tuple[str, str | None]:
    if isinstance(item, A.Import):
        return "imports", None
    if isinstance(item, A.Assign):
        return "let", item.targets[0]
    return f"{item.kind}s", item.name


def _sections(module: A.Module) -> list[tuple[str, list]]:
    """Runs of items as sections; a new run starts when the kind changes or a key repeats."""
    sections: list[tuple[str, list]] = []
    keys: set[str] = set()
    for item in module.items:
        section, key = _section(item)
        if not sections or sections[-1][0] != section or key in keys:
            sections.append((section, []))
            keys = set()
        if key is not None:
            keys.add(key)
        sections[-1][1].append(item)
    return sections


def _closing_comments_below(module: A.Module) -> A.Module:
    """YAML has no ``}``: a comment after a block's ``}`` becomes a comment above what follows it
    (and comments from inside a block's header go above the block, with those already there)."""
    items = [dataclasses.replace(i, trivia=dataclasses.replace(i.trivia, before=i.trivia.before + i.header.before),
                                 header=dataclasses.replace(i.header, before=()))
             if isinstance(i, A.BlockDef) and i.header.before else i for i in module.items]
    end = module.end
    for i, item in enumerate(items):
        if isinstance(item, A.BlockDef) and item.trivia.trailing:
            items[i] = dataclasses.replace(item, trivia=dataclasses.replace(item.trivia, trailing=None))
            moved = ("", item.trivia.trailing)
            if i + 1 < len(items):
                after = items[i + 1].trivia
                items[i + 1] = dataclasses.replace(items[i + 1], trivia=dataclasses.replace(
                    after, before=moved + after.before))
            else:
                end = moved + end
    return dataclasses.replace(module, items=tuple(items), end=end)


def format_yaml(module: A.Module) -> str:
    """The YAML spec for ``module``: one mapping of sections, or a list of them when a section repeats."""
    module = _closing_comments_below(module)
    sections = _sections(module)
    names = [name for name, _ in sections]
    listed = len(set(names)) != len(names)
    out: list[str] = []
    for number, (name, items) in enumerate(sections):
        if listed:
            head, indent = f"- {name}:", 2 * STEP
        else:
            head, indent = f"{name}:", STEP
        for index, item in enumerate(items):
            before = item.trivia.before
            if index == 0:                       # comments above a section's first item go above its key
                if number and not (before and before[0] == ""):
                    out.append("")
                _before(out, before, "")
                before = ()
                out.append(head)
            elif before and before[0] == "" or isinstance(item, A.BlockDef):
                out.append("")
            _before(out, before, indent)
            out += _with_trailing(_item(item, indent), item.trivia.trailing)
    if not out and not module.end:
        return "{}\n"
    if module.end and out:
        out.append("")
    _before(out, module.end, "")
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"

