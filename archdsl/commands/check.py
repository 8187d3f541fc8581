"""``archdsl check FILE...``: parse, elaborate and verify; print diagnostics like a compiler.

Exit status: 0 when every model checks (warnings allowed; with ``--strict`` a warning is an error), 1 when a
spec has errors or defines no model, 2 for usage errors (a missing file, an unknown ``-m`` model, a bad
``--param``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from archdsl.api import compile, compile_all
from archdsl.commands.common import add_spec_args, parse_params, spec_source
from archdsl.errors import ArchError, Diagnostic, ElaborationError, collect_warnings

if TYPE_CHECKING:
    from archdsl.ir.graph import Graph


@dataclass
class FileReport:
    """What checking one file found: the models that passed, and every diagnostic."""

    file: str
    models: list[dict] = field(default_factory=list)
    found: list[Diagnostic] = field(default_factory=list)
    error: ArchError | None = None
    sources: dict[str, str] = field(default_factory=dict)
    strict: bool = False

    @property
    def exit_code(self) -> int:
        """0 ok, 1 spec errors (warnings too under ``--strict``), 2 usage errors."""
        if self.error:
            return self.error.exit_code
        return 1 if self.strict and self.found else 0

    def to_json(self) -> dict:
        """The file's entry in ``--format json``."""
        return {"file": self.file, "ok": self.exit_code == 0, "models": self.models,
                "diagnostics": [{"file": self.file, **d.to_json()} for d in self.found]}


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("check", help="check specs for errors", description=__doc__.splitlines()[0])
    add_spec_args(p, many=True)
    p.add_argument("--format", choices=("text", "json"), default="text", help="diagnostics format")
    p.add_argument("--target", choices=("torch", "onnx"), default="torch",
                   help="also check that every op lowers to this backend (onnx: before any weights exist)")
    p.add_argument("--opset", type=int, default=21, metavar="N", help="with --target onnx: the opset (18 to 21)")
    p.add_argument("--strict", action="store_true", help="treat warnings (dead code) as errors: exit 1")


def check_file(path: str, model: str | None, params: dict, target: str = "torch", opset: int = 21,
               strict: bool = False) -> FileReport:
    """Compile one file's models (or the one named) and collect errors and warnings."""
    from archdsl.verify import diagnostics  # here: `archdsl --help` need not load the verifier

    report = FileReport(path, strict=strict)
    with collect_warnings() as elaborated:
        try:
            graphs = _compile(path, model, params)
            if target == "onnx":
                _check_onnx(graphs, opset)
            if not graphs:
                raise ElaborationError(Diagnostic(f"{path} defines no model, so there is nothing to check", None,
                                                  _NO_MODEL))
        except ArchError as exc:
            report.error = exc
            report.found += exc.diagnostics + [w.diagnostic for w in elaborated]    # warnings found on the way
            report.sources.update(exc.sources)
            return report
    seen: set[tuple] = set()
    for w in elaborated:
        report.sources.update(w.sources)
        _add_once(report.found, seen, w.diagnostic)
    for name, graph in graphs.items():
        own = [w for w in elaborated if w.model in (None, graph.name)]
        warnings = [d for d in diagnostics(graph) if d.severity != "error" and not covered(d, own)]
        for d in warnings:
            _add_once(report.found, seen, d)
        report.models.append(_summary(name, graph, len(warnings) + len(own)))
    if strict:
        report.found = [replace(d, severity="error", hint=_strict_hint(d)) for d in report.found]
    return report


_NO_MODEL = ("a spec is built from a `model Name(...) { ... }`; blocks are elaborated only when a model uses them "
             "(a file of blocks is a library for other specs to import)")


def covered(d: Diagnostic, elaborated: list) -> bool:
    """Whether a graph warning repeats an elaboration warning (the dead value's node, on the value's line)."""
    return d.span is not None and any(
        w.diagnostic.span is not None and w.diagnostic.span.file == d.span.file
        and w.diagnostic.span.line <= d.span.line <= w.diagnostic.span.end_line for w in elaborated)


def _add_once(found: list[Diagnostic], seen: set[tuple], d: Diagnostic) -> None:
    """Append ``d`` unless the same message at the same place is already there (a block used twice)."""
    key = (d.message, str(d.span))
    if key not in seen:
        seen.add(key)
        found.append(d)


def _strict_hint(d: Diagnostic) -> str:
    why = "an error because of --strict"
    return f"{d.hint} ({why})" if d.hint else why


def _check_onnx(graphs: dict[str, Graph], opset: int) -> None:
    """Raise the ONNX backend's located errors for every op of ``graphs`` it cannot lower at ``opset``."""
    from archdsl.exporting import onnx_backend

    backend = onnx_backend()
    backend.check_opset(opset)
    problems = [d for graph in graphs.values() for d in backend.lowering_problems(graph, opset)]
    if problems:
        raise backend.ExportError(problems)


def _compile(path: str, model: str | None, params: dict) -> dict[str, Graph]:
    """The named model, a zoo model by its name, or every model of a spec file."""
    source = spec_source(path)
    if model or isinstance(source, str):
        return {model or path: compile(source, model, **params)}
    return compile_all(source, **params)


def _summary(name: str, graph: Graph, warnings: int) -> dict:
    return {"model": name, "nodes": len(graph.nodes), "params": graph.num_params(), "warnings": warnings}


def _print_text(report: FileReport) -> None:
    """Compiler-style: diagnostics (with source excerpts) on stderr, one ok line per model on stdout."""
    for d in report.found:
        print(d.render(report.sources), file=sys.stderr)
    for m in report.models:
        extra = f", {m['warnings']} warning{'s' if m['warnings'] != 1 else ''}" if m["warnings"] else ""
        where = m["model"] if m["model"] == report.file else f"{report.file}: {m['model']}"   # a zoo name once
        verdict = "not ok under --strict" if report.strict and m["warnings"] else "ok"
        print(f"{where}: {verdict} ({m['nodes']} nodes, {m['params']:,} parameters{extra})")


def run(args: argparse.Namespace) -> int:
    """Check each file; the exit status is the worst over all files (2 usage > 1 spec errors > 0)."""
    params = parse_params(args.param)
    reports = [check_file(path, args.model, params, args.target, args.opset, args.strict) for path in args.files]
    code = max(r.exit_code for r in reports)
    if args.format == "json":
        doc = {"ok": code == 0, "files": [r.to_json() for r in reports],
               "diagnostics": [d for r in reports for d in r.to_json()["diagnostics"]]}
        print(json.dumps(doc, indent=2))
    else:
        for r in reports:
            _print_text(r)
    return code
