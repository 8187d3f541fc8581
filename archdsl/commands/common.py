"""Arguments shared by several commands, and the one way a command turns FILE into a spec."""

from __future__ import annotations

import argparse
import difflib
import math
from pathlib import Path
from typing import Any

from archdsl.errors import ArchError, Diagnostic, UsageError

MAX_SEED = 2**64 - 1     # torch.manual_seed takes -(2**63) .. 2**64 - 1


def add_spec_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    """FILE (or FILE...), -m/--model and --param k=v."""
    if many:
        p.add_argument("files", nargs="+", metavar="FILE", help=".arch or .yaml spec files (or zoo model names)")
    else:
        p.add_argument("file", metavar="FILE", help=".arch or .yaml spec file, or a zoo model name")
    p.add_argument("-m", "--model", help="model to use (default: the only model in the file)")
    p.add_argument("--param", action="append", metavar="K=V", help="override a model parameter (repeatable)")
    p.add_argument("-I", "--import-path", action="append", metavar="DIR", default=[],
                   help="also allow imports from DIR (repeatable); by default imports stay inside the spec's "
                   "folder and the shipped std/ library")


def spec_source(file: str) -> Path | str:
    """FILE as given on the command line: an existing spec file (a Path) or a zoo model name (kept as str).

    Never spec text: anything else is a UsageError "no such file or zoo model", with a did-you-mean.
    """
    from archdsl.zoo import names, spec_path

    try:
        path = Path(file)
        if file and path.is_file():
            return path
        if file and path.is_dir():
            raise UsageError(Diagnostic(f"{file} is a folder, not a spec file"))
    except (OSError, ValueError):   # ENAMETOOLONG, a NUL byte: no such file either
        pass
    if file.isidentifier() and spec_path(file) is not None:
        return file
    close = difflib.get_close_matches(Path(file).stem if file else file, names(), n=1) if len(file) < 200 else []
    shown = file if len(file) <= 80 else file[:77] + "..."
    shown = shown if shown and shown.isprintable() and shown.strip() == shown else repr(shown)
    if file.endswith((".arch", ".yaml", ".yml")):
        raise UsageError(Diagnostic(f"no such spec file: {shown}"))
    raise UsageError(Diagnostic(f"no such spec file or zoo model: {shown}",
                                hint=f"did you mean '{close[0]}'?" if close else
                                "give a .arch or .yaml file, or a model name from archdsl.zoo.names()"))


def check_seed(seed: int) -> int:
    """UsageError unless ``seed`` fits torch.manual_seed."""
    if not -(2**63) <= seed <= MAX_SEED:
        raise UsageError(Diagnostic(f"--seed must fit in 64 bits, got a {seed.bit_length()}-bit number"))
    return seed


def parse_params(pairs: list[str] | None) -> dict:
    """``--param k=v`` overrides; values read as int, float, bool or list/tuple literals, else kept as text."""
    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(Diagnostic(f"--param expects NAME=VALUE, got {pair!r}"))
        out[key] = _literal(key, text)
    return out


def _literal(key: str, text: str) -> Any:
    """One ``--param`` value: a bool, number, or list/tuple literal in .arch syntax; anything else is text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if cast is int and not -(2**63) <= value < 2**63:
            raise UsageError(Diagnostic(f"--param {key}: {text.strip()[:40]} does not fit in 64 bits"))
        if math.isfinite(value):
            return value
    if text.strip().startswith(("[", "(")):
        from archdsl.syntax.parser import parse_expression

        try:
            return _constant(parse_expression(text.strip(), f"--param {key}"))
        except ArchError as exc:
            raise UsageError(Diagnostic(f"--param {key}: cannot read {text!r}: {exc.diagnostics[0].message}",
                                        hint="write a literal such as [1, 2] or (3, true)")) from None
    return text


def _constant(expr: Any) -> Any:
    """The value of a literal expression (numbers, strings, true/false/none, lists and tuples of them)."""
    from archdsl.syntax import ast as A

    if isinstance(expr, (A.Num, A.Const)) or (isinstance(expr, A.Str) and "{" not in expr.value):
        return expr.value
    if isinstance(expr, A.UnaryOp) and expr.op == "-" and isinstance(expr.operand, A.Num):
        return -expr.operand.value
    if isinstance(expr, A.ListLit) and not expr.seq:
        return [_constant(x) for x in expr.items]
    if isinstance(expr, A.TupleLit):
        return tuple(_constant(x) for x in expr.items)
    raise UsageError(Diagnostic("not a literal value", expr.span))
