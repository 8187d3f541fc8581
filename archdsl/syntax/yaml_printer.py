"""A Module as a YAML spec (the form ``yaml_frontend`` reads); ``parse_yaml(format_yaml(m)) == m``."""

from __future__ import annotations

from typing import Any

import yaml

from archdsl.errors import Diagnostic, ParseError
from archdsl.syntax import ast as A
from archdsl.syntax.printer import format_expr, format_param, format_tensor_type

_LINE_BREAKS = "\r\x85\u2028\u2029\ufeff"


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
    if any(ch in _LINE_BREAKS for ch in data):
        style = '"'                                  # escaped, or a reader would see a line break
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(str, _represent_str)


def _stmt(stmt: A.InputStmt | A.OutputStmt | A.Assign) -> dict[str, Any]:
    """One body item."""
    if isinstance(stmt, A.InputStmt):
        return {"in": _Flow({stmt.name: format_tensor_type(stmt.type)})}
    if isinstance(stmt, A.OutputStmt):
        if stmt.name is None:
            return {"out": format_expr(stmt.value)}
        named = _Flow(name=stmt.name)
        if stmt.type is not None:
            named["type"] = format_tensor_type(stmt.type)
        named["value"] = format_expr(stmt.value)
        return {"out": named}
    if stmt.let:
        return {"let": _Flow({stmt.targets[0]: format_expr(stmt.value)})}
    return {", ".join(stmt.targets): format_expr(stmt.value)}


def _params(block: A.BlockDef) -> dict[str, str]:
    """``{name: "type = default"}``; YAML keys are unique, so a repeated parameter is refused."""
    params: dict[str, str] = {}
    for p in block.params:
        if p.name in params:
            raise ParseError(Diagnostic(f"parameter '{p.name}' of '{block.name}' is declared twice", p.span))
        params[p.name] = format_param(p).partition(": ")[2]
    return params


def _block(block: A.BlockDef) -> dict[str, Any]:
    """``{doc, params, body}``, leaving out what is empty."""
    out: dict[str, Any] = {}
    if block.doc is not None:
        out["doc"] = block.doc
    if block.params:
        out["params"] = _Flow(_params(block))
    if block.body:
        out["body"] = [_stmt(s) for s in block.body]
    return out


def _entry(item: A.Import | A.Assign | A.BlockDef) -> tuple[str, str | None, Any]:
    """``(section, key, value)`` for one top-level item (imports have no key)."""
    if isinstance(item, A.Import):
        return "imports", None, item.path if item.alias is None else _Flow(path=item.path, **{"as": item.alias})
    if isinstance(item, A.Assign):
        return "let", item.targets[0], format_expr(item.value)
    return f"{item.kind}s", item.name, _block(item)


def _sections(module: A.Module) -> list[tuple[str, Any]]:
    """Runs of items as sections; a new run starts when the kind changes or a key repeats."""
    sections: list[tuple[str, Any]] = []
    for item in module.items:
        section, key, value = _entry(item)
        current = sections[-1] if sections else None
        if current is None or current[0] != section or (key is not None and key in current[1]):
            current = (section, [] if key is None else {})
            sections.append(current)
        if key is None:
            current[1].append(value)
        else:
            current[1][key] = value
    return sections


def format_yaml(module: A.Module) -> str:
    """The YAML spec for ``module``: one mapping of sections, or a list of them when a section repeats."""
    sections = _sections(module)
    names = [name for name, _ in sections]
    document: Any = dict(sections) if len(set(names)) == len(names) else [{n: v} for n, v in sections]
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)
