"""The ``archdsl`` command line: a thin layer over the Python API. Errors print like a compiler."""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence
from typing import Any

from archdsl.errors import ArchError, Diagnostic, LimitError, UsageError

# One module per command under archdsl/commands/, each with `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = ("check", "ir", "fmt", "build", "simplify", "test", "export", "stats", "viz", "symmetry", "align", "ops",
            "linearize")


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 errors in the spec, 2 bad usage)."""
    parser = argparse.ArgumentParser(prog="archdsl", description="Check, build, simplify and draw .arch specs.")
    parser.add_argument("--version", action="version", version="archdsl 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"archdsl.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"archdsl.commands.{name}":
                continue
            raise
        module.add_parser(sub)
        modules[name] = module
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if isinstance(getattr(args, "seed", None), int):     # every command's --seed goes to torch.manual_seed
            from archdsl.commands.common import check_seed

            check_seed(args.seed)
        from archdsl.elaborate.loader import extra_import_path

        with extra_import_path(getattr(args, "import_path", None) or []):
            code = modules[args.command].run(args)
        sys.stdout.flush()      # a full disk or closed pipe on stdout is reported here, not at exit
        return code
    except ArchError as exc:
        return _report(exc, getattr(args, "format", "text"))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except OSError as exc:      # the file system said no (ENAMETOOLONG, ENOSPC, EACCES, ...): a usage error
        from archdsl.output import output_error

        if exc.filename is None:
            _silence_stdout()
        where = exc.filename if exc.filename is not None else "standard output"
        return _report(output_error(where, exc, "access" if exc.filename is not None else "write"),
                       getattr(args, "format", "text"))
    except RecursionError:
        return _report(LimitError(Diagnostic("the input nests too deeply to process",
                                             hint="split deep expressions into named values")), "text")
    except MemoryError:
        return _report(LimitError(Diagnostic("out of memory", hint="the model or input is too large for this "
                                             "machine; `archdsl stats` shows its size")), "text")


def _report(exc: ArchError, fmt: str) -> int:
    """Print an error like a compiler (or as JSON) on stderr; its exit code."""
    try:
        print(exc.to_json() if fmt == "json" else exc.render(), file=sys.stderr)
    except OSError:
        pass
    return exc.exit_code


def _silence_stdout() -> None:
    """After stdout failed, point it at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    if sys.stdout is not sys.__stdout__ or sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
