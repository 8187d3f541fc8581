"""``archdsl fmt FILE [--to arch|yaml]``: canonical formatting, and conversion between .arch and YAML."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from archdsl.elaborate.loader import parse_source
from archdsl.errors import Diagnostic, UsageError


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("fmt", help="format a spec, or convert it between .arch and YAML", description=__doc__)
    p.add_argument("file", metavar="FILE", help=".arch or .yaml spec file")
    p.add_argument("--to", choices=("arch", "yaml"), help="output form (default: the input's own)")
    p.add_argument("-o", "--output", help="write here instead of standard output")
    p.add_argument("--in-place", action="store_true", help="rewrite FILE (same form only)")
    p.add_argument("--check", action="store_true", help="exit 1 if FILE is not already formatted")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise UsageError(Diagnostic(f"cannot read spec file: {path}")) from None


def format_text(text: str, file: str, to: str) -> str:
    """Parse ``text`` (form chosen by ``file``'s extension) and print it in form ``to``."""
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_printer import format_yaml

    module = parse_source(text, file)
    return format_yaml(module) if to == "yaml" else format_module(module)


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".archdsl-fmt-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    """Format or convert one file."""
    own = "yaml" if args.file.endswith((".yaml", ".yml")) else "arch"
    to = args.to or own
    text = _read(args.file)
    result = format_text(text, args.file, to)
    if args.check:
        if result != text:
            print(f"{args.file}: would be reformatted", file=sys.stderr)
            return 1
        return 0
    if args.in_place:
        if to != own:
            raise UsageError(Diagnostic("--in-place cannot change the form; use -o NEW_FILE with --to"))
        _write_atomic(args.file, result)
    elif args.output:
        _write_atomic(args.output, result)
    else:
        sys.stdout.write(result)
    return 0
