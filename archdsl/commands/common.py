"""Arguments shared by several commands."""

from __future__ import annotations

import argparse


def add_spec_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    """FILE (or FILE...), -m/--model and --param k=v."""
    if many:
        p.add_argument("files", nargs="+", metavar="FILE", help=".arch or .yaml spec files (or zoo model names)")
    else:
        p.add_argument("file", metavar="FILE", help=".arch or .yaml spec file, or a zoo model name")
    p.add_argument("-m", "--model", help="model to use (default: the only model in the file)")
    p.add_argument("--param", action="append", metavar="K=V", help="override a model parameter (repeatable)")
