"""``archdsl fmt FILE... [--to arch|yaml]``: canonical formatting, and conversion between .arch and YAML.

Comments, blank-line groups and the author's parentheses are kept; long statements wrap at 100
columns; formatting twice changes nothing. With --check or --in-place, FILE may be several files and
folders (their .arch, .yaml and .yml files, recursively), as in `archdsl fmt --check specs/ examples/`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archdsl.commands.common import spec_source
from archdsl.errors import Diagnostic, LimitError, UsageError
from archdsl.output import write_file
from archdsl.zoo import spec_path


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("fmt", help="format a spec, or convert it between .arch and YAML", description=__doc__)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help=".arch or .yaml spec file (several, or folders, with --check or --in-place)")
    p.add_argument("--to", choices=("arch", "yaml"), help="output form (default: the input's own)")
    p.add_argument("-o", "--output", help="write here instead of standard output")
    p.add_argument("--in-place", action="store_true", help="rewrite FILE (same form only)")
    p.add_argument("--check", action="store_true", help="exit 1 if FILE is not already formatted")


def _read(path: Path) -> str:
    from archdsl.ir.types import Span
    from archdsl.syntax.parser import MAX_SOURCE_BYTES

    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise LimitError(Diagnostic(f"spec file '{path}' is larger than {MAX_SOURCE_BYTES // 2**20} MiB",
                                        Span(file=str(path))))
        return path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError):
        raise UsageError(Diagnostic(f"cannot read spec file: {path}")) from None


def format_text(text: str, file: str, to: str) -> str:
    """Parse ``text`` (form chosen by ``file``'s extension) and print it in form ``to``."""
    from archdsl.elaborate.loader import parse_source
    from archdsl.ir.types import Span
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_printer import format_yaml

    module = parse_source(text, file)
    try:
        return format_yaml(module) if to == "yaml" else format_module(module)
    except RecursionError:
        raise LimitError(Diagnostic("the spec nests too deeply to format", Span(file=file),
                                    "split deep expressions into named values")) from None


SUFFIXES = (".arch", ".yaml", ".yml")


def _expand(files: list[str]) -> list[str]:
    """Files as given, folders replaced by the spec files under them (sorted)."""
    out: list[str] = []
    for file in files:
        folder = Path(file)
        try:
            is_dir = bool(file) and folder.is_dir()     # Path("") is the working directory: not a folder argument
        except (OSError, ValueError):                  # a name too long, a NUL byte: spec_source says why
            is_dir = False
        if is_dir:
            found = sorted(str(p) for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise UsageError(Diagnostic(f"folder {file} holds no .arch, .yaml or .yml files"))
            out += found
        else:
            out.append(file)
    return out


def run(args: argparse.Namespace) -> int:
    """Format or convert each file (several only with --check or --in-place)."""
    files = _expand(args.files)
    if len(files) != 1 and not (args.check or args.in_place):
        raise UsageError(Diagnostic(f"{len(files)} files given: several files need --check or --in-place"))
    status = 0
    for file in files:
        args.file = file
        status = max(status, _run_one(args))
    return status


def _run_one(args: argparse.Namespace) -> int:
    """Format or convert one file."""
    source = spec_source(args.file)
    path = source if isinstance(source, Path) else spec_path(source)
    if path is None:                  # spec_source returns only files and zoo names
        raise UsageError(Diagnostic(f"no such file or zoo model: {args.file}"))
    own = "yaml" if path.suffix in (".yaml", ".yml") else "arch"
    to = args.to or own
    text = _read(path)
    result = format_text(text, str(path), to)
    if args.check:
        if result != text:
            print(f"{args.file}: would be reformatted", file=sys.stderr)
            return 1
        return 0
    if args.in_place:
        if to != own:
            raise UsageError(Diagnostic("--in-place cannot change the form; use -o NEW_FILE with --to"))
        if not isinstance(source, Path):
            raise UsageError(Diagnostic(f"--in-place needs a spec file; {args.file} names a zoo model"))
        write_file(path, result)
    elif args.output:
        write_file(args.output, result)
    else:
        sys.stdout.write(result)
    return 0
