"""The ``archdsl`` command line: a thin layer over the Python API. Errors print like a compiler."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from archdsl.errors import ArchError, Diagnostic, LimitError

# One module per command under archdsl/commands/, each with `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = ("check", "ir", "fmt", "build", "simplify", "test", "export", "stats", "viz", "symmetry", "align", "ops",
            "linearize", "cache")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 errors in the spec, 2 bad usage).

    A command is one short burst of allocation (importing torch alone makes ~10^6 objects, nearly all kept), so
    it runs with the cyclic collector paused: its passes cost ~15% of `archdsl build resnet50` and free almost
    nothing (`archdsl test resnet18` peaks lower without them); reference counting still frees as usual.
    """
    from archdsl.gcpause import gc_paused

    with gc_paused():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
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
