"""The model zoo: every model of the shipped ``specs/*.arch`` files, by its reference name.

``archdsl.zoo.build("resnet50")`` elaborates the model of that name from the spec file that defines it;
``archdsl.compile("resnet50")`` and ``archdsl build resnet50`` resolve names through :func:`spec_path`.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from pathlib import Path
from typing import Any

from archdsl.errors import ArchError, Diagnostic, UsageError
from archdsl.ir.graph import Graph

SPEC_SUFFIXES = (".arch", ".yaml", ".yml")

__all__ = ["build", "compile", "models_in", "names", "spec_dir", "spec_files", "spec_path"]


def spec_dir() -> Path:
    """The folder of the shipped specs (the ``archdsl.specs`` package)."""
    return Path(str(importlib.resources.files("archdsl.specs")))


def names() -> list[str]:
    """Every zoo model name, sorted (models defined in ``specs/*.arch``, not in ``specs/std/``)."""
    return sorted(_index())


def spec_path(name: str) -> Path | None:
    """The spec file that defines the model ``name``, or None when the zoo has no such model."""
    return _index().get(name)


def compile(name: str, **params: Any) -> Graph:  # noqa: A001
    """Compile the zoo model ``name`` to a verified Graph (``params`` override the model's parameters)."""
    from archdsl.api import compile as compile_spec

    return compile_spec(_require(name), name, **params)


def build(name: str, seed: int | None = 0, **params: Any):
    """Build the zoo model ``name`` as an ``nn.Module`` with PyTorch-default initialisation under ``seed``."""
    from archdsl.api import build as build_spec

    return build_spec(_require(name), name, seed=seed, **params)


def _require(name: str) -> Path:
    """The spec path of ``name``; a UsageError with a suggestion when the zoo has no such model."""
    path = spec_path(name)
    if path is None:
        close = difflib.get_close_matches(name, names(), n=1)
        raise UsageError(Diagnostic(f"the zoo has no model named '{name}'",
                                    hint=f"did you mean '{close[0]}'?" if close else
                                    "list the models with archdsl.zoo.names()"))
    return path


def spec_files() -> list[Path]:
    """The shipped spec files that make up the zoo (``specs/*.arch`` and YAML specs; not ``specs/std/``)."""
    return sorted(p for p in spec_dir().iterdir() if p.is_file() and p.suffix in SPEC_SUFFIXES)


def _index() -> dict[str, Path]:
    """Model name -> defining file; files are re-read only when their modification time changes.

    A file that does not parse contributes no models, and a name defined twice resolves to the first file
    in sorted order, so one broken spec does not hide the others; the zoo tests refuse both.
    """
    return _index_of(tuple((str(p), p.stat().st_mtime_ns) for p in spec_files()))


@functools.lru_cache(maxsize=4)
def _index_of(files: tuple[tuple[str, int], ...]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path, mtime in files:
        try:
            models = _models_in(path, mtime)
        except ArchError:
            continue
        for model in models:
            index.setdefault(model, Path(path))   # the zoo tests refuse a name defined in two files
    return index


@functools.lru_cache(maxsize=256)
def _models_in(path: str, mtime: int) -> tuple[str, ...]:
    """Names of the models a spec file defines itself (parsed only; imports are not followed)."""
    return models_in(Path(path))


def models_in(path: Path) -> tuple[str, ...]:
    """Names of the models the spec file ``path`` defines itself; raises ParseError when it does not parse."""
    from archdsl.elaborate.loader import parse_source
    from archdsl.syntax import ast as A

    module = parse_source(path.read_text(encoding="utf-8"), str(path))
    return tuple(item.name for item in module.items if isinstance(item, A.BlockDef) and item.kind == "model")
