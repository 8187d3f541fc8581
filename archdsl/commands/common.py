"""Arguments shared by several commands, and the one way a command turns FILE into a spec."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from archdsl.errors import Diagnostic, UsageError

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

