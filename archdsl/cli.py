"""The ``archdsl`` command line: a thin layer over the Python API. Errors print like a compiler."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from archdsl.errors import ArchError

# One module per command under archdsl/commands/, each with `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = ("check", "ir", "fmt", "build", "stats", "viz")


def parse_params(pairs: list[str] | None) -> dict:
    """``--param k=v`` overrides; values read as int, float, bool or list literals, else kept as text."""
    from archdsl.errors import Diagnostic, UsageError

    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(Diagnostic(f"--param expects NAME=VALUE, got {pair!r}"))
        out[key] = _literal(text)
    return out


def _literal(text: str):
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.startswith(("[", "(")):
        from archdsl.elaborate.expressions import Scope  # noqa: F401
        from archdsl.syntax.parser import parse_expression

        import ast as pyast

        parse_expression(text)  # validates with our grammar first
        return pyast.literal_eval(text)
    return text


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
        return modules[args.command].run(args)
    except ArchError as exc:
        fmt = getattr(args, "format", "text")
        print(exc.to_json() if fmt == "json" else exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
